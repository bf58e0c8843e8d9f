-- Richer node stats: network and disk throughput (bytes per second over the node's last
-- sampling interval) and the hottest temperature sensor, for the node page's charts.
ALTER TABLE node_stats ADD COLUMN net_rx DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE node_stats ADD COLUMN net_tx DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE node_stats ADD COLUMN disk_read DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE node_stats ADD COLUMN disk_write DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE node_stats ADD COLUMN temperature DOUBLE PRECISION;
