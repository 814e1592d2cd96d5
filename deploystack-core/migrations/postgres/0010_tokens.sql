-- API tokens (deploystack_core::repository::TokenRepository). Only the SHA-256 of a token's
-- secret is stored (`hash`, hex): the secret itself is shown once and never written down.
-- Revoking a token deletes its row.
CREATE TABLE api_tokens (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    name         text        NOT NULL,
    hash         text COLLATE "C" NOT NULL UNIQUE,
    -- JSON array of scope names (`["deploy"]`).
    scopes       text        NOT NULL,
    -- JSON array of project names, or NULL for every project.
    projects     text,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz
);
