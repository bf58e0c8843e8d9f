-- The audit log names what it is about as it was then (a node's name, a job's or run's
-- name), so a row still reads well after its target is renamed or removed.
ALTER TABLE audit_log ADD COLUMN target_name TEXT;
