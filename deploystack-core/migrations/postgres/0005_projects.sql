-- Projects: the same tables as the SQLite schema (see its 0005_projects.sql for why they
-- look the way they do), in PostgreSQL's own types.
CREATE TABLE projects (
    name                  text COLLATE "C" NOT NULL PRIMARY KEY
                          CHECK (length(name) BETWEEN 1 AND 63),
    build_settings        text        NOT NULL DEFAULT '{}',
    retention             text        NOT NULL DEFAULT '{}',
    production_deployment text COLLATE "C",
    production_since      timestamptz,
    production_pinned     boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);

CREATE TABLE production_history (
    id              bigserial   PRIMARY KEY,
    project         text COLLATE "C" NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    from_deployment text COLLATE "C",
    to_deployment   text COLLATE "C" NOT NULL,
    at              timestamptz NOT NULL,
    reason          text        NOT NULL CHECK (reason IN ('deploy', 'promote', 'rollback'))
);

CREATE INDEX production_history_by_project ON production_history (project, id);

CREATE INDEX deployments_by_project ON deployments (project, created_at) WHERE project IS NOT NULL;
