-- DeployStack on PostgreSQL, first schema. The same tables as the SQLite schema, in
-- PostgreSQL's own types.
--
-- Timestamps are timestamptz, written by the server's clock (now()), so every node of a
-- cluster agrees on lease expiry. They keep microseconds, which cursors round-trip exactly.
--
-- Identifiers, paths and hashes are text COLLATE "C": ordering and comparison are byte-wise,
-- the same on every server whatever its locale, and the same as Rust's string order (a
-- manifest listed by path comes back in the order the pipeline sorted it). Hashes stay
-- lowercase hex text rather than bytea: the same representation as the SQLite schema, the
-- storage keys (blobs/ab/abcdef…) and the logs, at the cost of 32 bytes a row.

CREATE TABLE deployments (
    id               text COLLATE "C" NOT NULL PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    project          text,
    target           text        NOT NULL CHECK (target IN ('preview', 'production')),
    status           text        NOT NULL
                     CHECK (status IN ('QUEUED', 'BUILDING', 'READY', 'ERROR', 'CANCELED')),
    source_key       text        NOT NULL,
    -- Fencing token: bumped by every claim.
    attempt          bigint      NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    error_code       text,
    error_message    text,
    file_count       bigint      NOT NULL DEFAULT 0,
    total_bytes      bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    ready_at         timestamptz,
    deleted_at       timestamptz
);

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
    deployment_id text COLLATE "C" NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    attempt       bigint      NOT NULL,
    worker        text        NOT NULL,
    strategy      text,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    -- NULL while running; 'lost' when a later attempt took over after the lease expired.
    outcome       text CHECK (outcome IN ('ready', 'error', 'released', 'lost', 'canceled')),
    PRIMARY KEY (deployment_id, attempt)
);

-- Build output; the identity column is the order lines were appended in, across attempts.
CREATE TABLE build_logs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id text COLLATE "C" NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    attempt       bigint      NOT NULL,
    at            timestamptz NOT NULL,
    stream        text        NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    message       text        NOT NULL
);

CREATE INDEX build_logs_by_deployment ON build_logs (deployment_id, id);

-- The manifest of published deployments: what the server resolves request paths against.
CREATE TABLE files (
    deployment_id text COLLATE "C" NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    path          text COLLATE "C" NOT NULL,
    sha256        text COLLATE "C" NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          bigint      NOT NULL CHECK (size >= 0),
    content_type  text        NOT NULL,
    PRIMARY KEY (deployment_id, path)
);

-- The garbage collector asks "does any file still reference this blob?".
CREATE INDEX files_by_sha256 ON files (sha256);

-- Content-addressed blobs known to the platform, for garbage collection.
CREATE TABLE blobs (
    sha256           text COLLATE "C" NOT NULL PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size             bigint      NOT NULL CHECK (size >= 0),
    last_used_at     timestamptz NOT NULL,
    -- Set while a collector is deleting the object; touches and publishes are refused
    -- meanwhile.
    collecting_since timestamptz
);

CREATE INDEX blobs_by_last_used ON blobs (last_used_at);
