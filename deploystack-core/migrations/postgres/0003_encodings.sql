-- Precompressed variants (brotli, gzip) of published files, made once at deploy time.
--
-- A table of their own rather than a column of `files`: the garbage collector must ask
-- "does any variant reference this blob?" as cheaply as it asks it of files, which needs
-- the index on sha256 below. Rows go with their file (and so with their deployment).
CREATE TABLE file_encodings (
    deployment_id text COLLATE "C" NOT NULL,
    path          text COLLATE "C" NOT NULL,
    encoding      text COLLATE "C" NOT NULL CHECK (encoding IN ('br', 'gzip')),
    sha256        text COLLATE "C" NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          bigint      NOT NULL CHECK (size >= 0),
    PRIMARY KEY (deployment_id, path, encoding),
    FOREIGN KEY (deployment_id, path) REFERENCES files (deployment_id, path) ON DELETE CASCADE
);

CREATE INDEX file_encodings_by_sha256 ON file_encodings (sha256);
