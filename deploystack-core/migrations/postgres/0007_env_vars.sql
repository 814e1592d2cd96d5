-- Project environment variables: the same table as the SQLite schema (see its
-- 0007_env_vars.sql for why it looks the way it does), in PostgreSQL's own types. `value`
-- holds only sealed values; upload-time variables in deployments.build_env are sealed by
-- the service from this version on, and older rows by `deploystack-server secrets rotate`.
CREATE TABLE env_vars (
    id         text COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    project    text COLLATE "C" NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    key        text COLLATE "C" NOT NULL,
    value      text        NOT NULL CHECK (value LIKE 'v1:%'),
    targets    text        NOT NULL,
    type       text        NOT NULL CHECK (type IN ('plain', 'encrypted', 'sensitive')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX env_vars_by_project ON env_vars (project, key);
