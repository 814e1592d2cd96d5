//! Manifests and blobs on SQLite: a deployment's files and their variants, and
//! the blob collection protocol.

use super::*;

/// `?1` JSON array of hex hashes: variants recorded for files with these contents, one
/// file's set per content (the first by deployment and path).
const KNOWN_ENCODINGS: &str = "SELECT f.sha256 AS source, f.deployment_id, f.path, \
     e.encoding, e.sha256, e.size FROM files AS f JOIN file_encodings AS e \
     ON e.deployment_id = f.deployment_id AND e.path = f.path \
     WHERE f.sha256 IN (SELECT j.value FROM json_each(?1) AS j) \
     ORDER BY f.sha256, f.deployment_id, f.path, e.encoding";

/// `?1` unused since, `?2` limit, `?3` now.
const CLAIM_BLOBS: &str = "UPDATE blobs SET collecting_since = ?3 WHERE sha256 IN ( \
     SELECT b.sha256 FROM blobs AS b WHERE b.last_used_at < ?1 \
     AND (b.collecting_since IS NULL OR b.collecting_since < ?1) \
     AND NOT EXISTS (SELECT 1 FROM files AS f WHERE f.sha256 = b.sha256) \
     AND NOT EXISTS (SELECT 1 FROM file_encodings AS e WHERE e.sha256 = b.sha256) \
     AND NOT EXISTS (SELECT 1 FROM source_files AS s WHERE s.sha256 = b.sha256) \
     ORDER BY b.last_used_at LIMIT ?2) RETURNING sha256";

/// `?1` JSON array of hex hashes.
const FORGET_BLOBS: &str = "DELETE FROM blobs WHERE collecting_since IS NOT NULL \
     AND sha256 IN (SELECT j.value FROM json_each(?1) AS j)";

#[async_trait]
impl FileRepository for SqliteRepository {
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError> {
        let rows = sqlx::query(concat!(
            files_with_encodings!(),
            "WHERE f.deployment_id = ?1 AND f.path = ?2 ORDER BY e.encoding"
        ))
        .bind(id.to_string())
        .bind(path)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows::files(&rows)?.pop())
    }

    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError> {
        let rows = sqlx::query(concat!(
            files_with_encodings!(),
            "WHERE f.deployment_id = ?1 ORDER BY f.path, e.encoding"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::files(&rows)
    }

    async fn list_source_files(
        &self,
        id: &DeploymentId,
    ) -> Result<Vec<ManifestEntry>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT path, sha256, size, mode FROM source_files \
             WHERE deployment_id = ?1 ORDER BY path",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::source_file).collect()
    }

    async fn known_encodings(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError> {
        let mut known = HashMap::new();
        if hashes.is_empty() {
            return Ok(known);
        }
        let hashes = to_json(&hashes.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let rows = sqlx::query(KNOWN_ENCODINGS)
            .bind(hashes)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        // Several files may share a content; take the variants of the first one only, so
        // the set is one file's, never a mix.
        let mut chosen: HashMap<ContentHash, (String, String)> = HashMap::new();
        for row in &rows {
            let source: ContentHash = rows::parse(row, "source")?;
            let owner = (
                get::<String>(row, "deployment_id")?,
                get::<String>(row, "path")?,
            );
            if chosen.entry(source).or_insert_with(|| owner.clone()) != &owner {
                continue;
            }
            known
                .entry(source)
                .or_insert_with(Vec::new)
                .push(rows::variant(row, "sha256", "size")?);
        }
        Ok(known)
    }

    async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let rows = blob_rows_json(blobs.iter().map(|blob| (blob.sha256, blob.size)))?;
        let mut tx = self.begin().await?;
        use_blobs(&mut tx, &rows, now_ms()).await?;
        tx.commit().await.map_err(db)
    }

    async fn claim_unreferenced_blobs(
        &self,
        unused_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ContentHash>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A single statement: SQLite runs it atomically under the write lock.
        sqlx::query(CLAIM_BLOBS)
            .bind(to_ms(unused_since))
            .bind(i64::from(limit))
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse::<ContentHash>(row, "sha256"))
            .collect()
    }

    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let hashes = to_json(&hashes.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        sqlx::query(FORGET_BLOBS)
            .bind(hashes)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
