ALTER TABLE nodes DROP COLUMN connected_via;
ALTER TABLE nodes DROP COLUMN connect;
