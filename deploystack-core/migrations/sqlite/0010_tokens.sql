-- API tokens (deploystack_core::repository::TokenRepository). Only the SHA-256 of a token's
-- secret is stored (`hash`, hex): the secret itself is shown once and never written down.
-- Revoking a token deletes its row.
CREATE TABLE api_tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    -- JSON array of scope names (`["deploy"]`).
    scopes       TEXT    NOT NULL,
    -- JSON array of project names, or NULL for every project.
    projects     TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER
) STRICT;
