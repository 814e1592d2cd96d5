-- DeployStack on SQLite, first schema.
--
-- Timestamps are INTEGER unix milliseconds (UTC): they compare and index as plain numbers and
-- round-trip exactly, which lease expiry and cursor pagination rely on. Tables are STRICT so a
-- wrongly typed write fails instead of being stored as something else.

CREATE TABLE deployments (
    id               TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    project          TEXT,
    target           TEXT    NOT NULL CHECK (target IN ('preview', 'production')),
    status           TEXT    NOT NULL
                     CHECK (status IN ('QUEUED', 'BUILDING', 'READY', 'ERROR', 'CANCELED')),
    source_key       TEXT    NOT NULL,
    -- Fencing token: bumped by every claim.
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    error_code       TEXT,
    error_message    TEXT,
    file_count       INTEGER NOT NULL DEFAULT 0,
    total_bytes      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    ready_at         INTEGER,
    deleted_at       INTEGER
) STRICT;

-- Listing: live deployments, newest first, keyset-paginated on (created_at, id).
CREATE INDEX deployments_live_newest
    ON deployments (created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- The reconciler: QUEUED for too long ...
CREATE INDEX deployments_live_by_status_updated
    ON deployments (status, updated_at) WHERE deleted_at IS NULL;
-- ... or BUILDING with an expired lease.
CREATE INDEX deployments_live_by_status_lease
    ON deployments (status, lease_expires_at) WHERE deleted_at IS NULL;

-- One row per claim of a deployment.
CREATE TABLE builds (
    deployment_id TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    worker        TEXT    NOT NULL,
    strategy      TEXT,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    -- NULL while running; 'lost' when a later attempt took over after the lease expired.
    outcome       TEXT CHECK (outcome IN ('ready', 'error', 'released', 'lost', 'canceled')),
    PRIMARY KEY (deployment_id, attempt)
) STRICT, WITHOUT ROWID;

-- Build output; the AUTOINCREMENT id is the order lines were appended in, across attempts.
CREATE TABLE build_logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    stream        TEXT    NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    message       TEXT    NOT NULL
) STRICT;

CREATE INDEX build_logs_by_deployment ON build_logs (deployment_id, id);

-- The manifest of published deployments: what the server resolves request paths against.
CREATE TABLE files (
    deployment_id TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    path          TEXT    NOT NULL,
    sha256        TEXT    NOT NULL CHECK (length(sha256) = 64),
    size          INTEGER NOT NULL CHECK (size >= 0),
    content_type  TEXT    NOT NULL,
    PRIMARY KEY (deployment_id, path)
) STRICT, WITHOUT ROWID;

-- The garbage collector asks "does any file still reference this blob?".
CREATE INDEX files_by_sha256 ON files (sha256);

-- Content-addressed blobs known to the platform, for garbage collection.
CREATE TABLE blobs (
    sha256           TEXT    NOT NULL PRIMARY KEY CHECK (length(sha256) = 64),
    size             INTEGER NOT NULL CHECK (size >= 0),
    last_used_at     INTEGER NOT NULL,
    -- Set while a collector is deleting the object; touches are refused meanwhile.
    collecting_since INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX blobs_by_last_used ON blobs (last_used_at);
