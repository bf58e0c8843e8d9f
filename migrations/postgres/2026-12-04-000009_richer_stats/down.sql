ALTER TABLE node_stats DROP COLUMN temperature;
ALTER TABLE node_stats DROP COLUMN disk_write;
ALTER TABLE node_stats DROP COLUMN disk_read;
ALTER TABLE node_stats DROP COLUMN net_tx;
ALTER TABLE node_stats DROP COLUMN net_rx;
