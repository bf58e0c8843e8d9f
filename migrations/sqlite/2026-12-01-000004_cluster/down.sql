DROP TABLE change_log;
DROP TABLE leader_lease;
DROP TABLE primaries;
DROP TABLE cluster;
