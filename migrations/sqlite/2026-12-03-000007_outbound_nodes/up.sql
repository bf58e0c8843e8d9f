-- Outbound nodes (SPEC §15): how the primaries reach a node ('inbound': at its api_endpoint;
-- 'outbound': over the WebSocket the node keeps open to a primary), as its heartbeats say,
-- and which primary holds that socket now (NULL: none).
ALTER TABLE nodes ADD COLUMN connect TEXT NOT NULL DEFAULT 'inbound';
ALTER TABLE nodes ADD COLUMN connected_via TEXT;
