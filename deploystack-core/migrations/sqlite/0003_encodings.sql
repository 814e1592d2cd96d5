-- Precompressed variants (brotli, gzip) of published files, made once at deploy time.
--
-- A table of their own rather than a column of `files`: the garbage collector must ask
-- "does any variant reference this blob?" as cheaply as it asks it of files, which needs
-- the index on sha256 below. Rows go with their file (and so with their deployment).
CREATE TABLE file_encodings (
    deployment_id TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    encoding      TEXT    NOT NULL CHECK (encoding IN ('br', 'gzip')),
    sha256        TEXT    NOT NULL CHECK (length(sha256) = 64),
    size          INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY (deployment_id, path, encoding),
    FOREIGN KEY (deployment_id, path) REFERENCES files (deployment_id, path) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX file_encodings_by_sha256 ON file_encodings (sha256);
