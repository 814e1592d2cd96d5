-- Custom domains (deploystack_core::repository::DomainRepository). A name belongs to one
-- project at most (the primary key), and goes with its project (ON DELETE CASCADE, in the
-- project delete's transaction).
--
-- `redirect` names another domain of the same project. It has no foreign key: whether the
-- redirects form a DAG is checked by the service over the whole list, and a dangling
-- redirect (a race between two requests) makes the domain wait, never serve elsewhere.
--
-- `next_check_at` (unix ms) is when a background re-check is due; the partial index keeps
-- "which pending domains are due" one short scan however many domains are verified.
CREATE TABLE domains (
    name            TEXT    NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 253),
    project         TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
    redirect        TEXT,
    redirect_status INTEGER CHECK (redirect_status IN (301, 302, 307, 308)),
    token           TEXT    NOT NULL,
    verified_at     INTEGER,
    check_attempts  INTEGER NOT NULL DEFAULT 0,
    next_check_at   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK ((redirect IS NULL) = (redirect_status IS NULL))
) STRICT;

CREATE INDEX domains_by_project ON domains (project, name);
CREATE INDEX domains_due ON domains (next_check_at) WHERE verified_at IS NULL;
