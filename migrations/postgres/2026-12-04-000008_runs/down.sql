DROP INDEX jobs_run;
ALTER TABLE jobs DROP COLUMN run_id;
DROP TABLE run_nodes;
DROP TABLE runs;
