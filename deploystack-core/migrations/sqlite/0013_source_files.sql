-- The source of a deployment uploaded as a manifest of content-addressed blobs (instead of
-- a zip): one row per file, kept for as long as the deployment is not deleted, so it can be
-- built again (a redeploy, a promote that rebuilds). The garbage collector never takes a blob
-- a row here names, hence the index on sha256.
CREATE TABLE source_files (
    deployment_id TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    path          TEXT    NOT NULL,
    sha256        TEXT    NOT NULL CHECK (length(sha256) = 64),
    size          INTEGER NOT NULL CHECK (size >= 0),
    mode          INTEGER NOT NULL CHECK (mode >= 0),
    PRIMARY KEY (deployment_id, path)
) STRICT, WITHOUT ROWID;

CREATE INDEX source_files_by_sha256 ON source_files (sha256);
