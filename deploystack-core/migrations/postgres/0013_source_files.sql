-- The source of a deployment uploaded as a manifest of content-addressed blobs (instead of
-- a zip): one row per file, kept for as long as the deployment is not deleted, so it can be
-- built again (a redeploy, a promote that rebuilds). The garbage collector never takes a blob
-- a row here names, hence the index on sha256.
CREATE TABLE source_files (
    deployment_id text COLLATE "C" NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    path          text COLLATE "C" NOT NULL,
    sha256        text COLLATE "C" NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          bigint      NOT NULL CHECK (size >= 0),
    mode          bigint      NOT NULL CHECK (mode >= 0),
    PRIMARY KEY (deployment_id, path)
);

CREATE INDEX source_files_by_sha256 ON source_files (sha256);
