-- Project environment variables (deploystack_core::repository::EnvRepository). `value` holds
-- only the value sealed under the platform key (`v1:<key-id>:<ciphertext>`, see
-- deploystack_core::secrets): the CHECK refuses anything else, so no code path can store a
-- plaintext value by mistake. `targets` is a JSON array of production/preview/development,
-- read whole like the other JSON columns; the rule "no two variables of a key share a target"
-- is checked by the repository in the writing transaction (a constraint cannot see inside
-- the array).
--
-- Upload-time variables (`deployments.build_env`) are sealed from this version on too, by
-- the service that writes them. Rows written before keep their plaintext values until
-- `deploystack-server secrets rotate` seals them; the worker reads both forms.
CREATE TABLE env_vars (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    project    TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL CHECK (value LIKE 'v1:%'),
    targets    TEXT    NOT NULL,
    type       TEXT    NOT NULL CHECK (type IN ('plain', 'encrypted', 'sensitive')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX env_vars_by_project ON env_vars (project, key);
