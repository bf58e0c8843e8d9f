DROP TABLE node_stats;
DROP TABLE node_status_history;
DROP TABLE nodes;
