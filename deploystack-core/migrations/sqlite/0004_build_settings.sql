-- What a deployment asks of its build: overrides of framework detection and its environment
-- variables, both as JSON text written once at creation (deploystack_core::model::
-- BuildSettings and a list of EnvVar). JSON rather than columns or a table: the database
-- never looks inside them, they are read whole with the deployment, and new settings need no
-- migration. Deployments created before this migration get no overrides and no variables.
--
-- Environment values are stored as given, sensitive ones included: the worker needs them to
-- build. Only the API hides sensitive values; protect the database file accordingly.
ALTER TABLE deployments ADD COLUMN build_settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE deployments ADD COLUMN build_env TEXT NOT NULL DEFAULT '[]';
