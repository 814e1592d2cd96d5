-- Custom domains: the same table as the SQLite schema (see its 0008_domains.sql for why it
-- looks the way it does), in PostgreSQL's own types.
CREATE TABLE domains (
    name            text COLLATE "C" NOT NULL PRIMARY KEY
                    CHECK (length(name) BETWEEN 1 AND 253),
    project         text COLLATE "C" NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    redirect        text COLLATE "C",
    redirect_status bigint  CHECK (redirect_status IN (301, 302, 307, 308)),
    token           text        NOT NULL,
    verified_at     timestamptz,
    check_attempts  bigint      NOT NULL DEFAULT 0,
    next_check_at   timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CHECK ((redirect IS NULL) = (redirect_status IS NULL))
);

CREATE INDEX domains_by_project ON domains (project, name);
CREATE INDEX domains_due ON domains (next_check_at) WHERE verified_at IS NULL;
