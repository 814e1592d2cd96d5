-- Who created a deployment: the API caller that uploaded it (`token ci (<id>)`, or
-- `api (<address>)` for a tokenless local request). NULL for deployments made by the library
-- without a caller, and for rows written before this column existed.
ALTER TABLE deployments ADD COLUMN created_by TEXT;
