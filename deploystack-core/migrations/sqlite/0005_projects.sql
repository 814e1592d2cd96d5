-- Projects: a stable name, the build settings its deployments inherit, its retention policy
-- (both JSON text, read whole, like a deployment's build settings), and its production
-- pointer. `production_deployment` has no foreign key: a deployment row is never removed
-- while its project exists (deleting marks it), and deleting a project removes the pointer
-- with the row.
CREATE TABLE projects (
    name                  TEXT    NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    build_settings        TEXT    NOT NULL DEFAULT '{}',
    retention             TEXT    NOT NULL DEFAULT '{}',
    production_deployment TEXT    CHECK (length(production_deployment) = 32),
    production_since      INTEGER,
    production_pinned     INTEGER NOT NULL DEFAULT 0 CHECK (production_pinned IN (0, 1)),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
) STRICT;

-- Every assignment of production, in order (the AUTOINCREMENT id). A rollback reads it to
-- find the previous production; operators read it after an incident.
CREATE TABLE production_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project         TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    from_deployment TEXT,
    to_deployment   TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    reason          TEXT    NOT NULL CHECK (reason IN ('deploy', 'promote', 'rollback'))
) STRICT;

CREATE INDEX production_history_by_project ON production_history (project, id);

-- A project's deployments: deleting a project marks them all, retention lists its previews.
CREATE INDEX deployments_by_project ON deployments (project, created_at) WHERE project IS NOT NULL;
