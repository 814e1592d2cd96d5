//! Manifests and blobs on PostgreSQL: a deployment's files and their variants, and
//! the blob collection protocol.

use super::*;

/// `$1` hashes: variants recorded for files with these contents, one file's set per
/// content (the first by deployment and path).
const KNOWN_ENCODINGS: &str = "SELECT f.sha256 AS source, f.deployment_id, f.path, \
     e.encoding, e.sha256, e.size FROM files AS f JOIN file_encodings AS e \
     ON e.deployment_id = f.deployment_id AND e.path = f.path \
     WHERE f.sha256 = ANY($1::text[]) \
     ORDER BY f.sha256, f.deployment_id, f.path, e.encoding";

/// `$1` hashes locked by `LOCK_UNREFERENCED_BLOBS`. A new statement sees every manifest
/// committed before it, and none can be committed later: a publish must lock these rows
/// first.
const MARK_COLLECTING: &str = "UPDATE blobs AS b SET collecting_since = now() \
     WHERE b.sha256 = ANY($1::text[]) \
     AND NOT EXISTS (SELECT 1 FROM files AS f WHERE f.sha256 = b.sha256) \
     AND NOT EXISTS (SELECT 1 FROM file_encodings AS e WHERE e.sha256 = b.sha256) \
     AND NOT EXISTS (SELECT 1 FROM source_files AS s WHERE s.sha256 = b.sha256) \
     RETURNING b.sha256";

/// `$1` hashes.
const FORGET_BLOBS: &str =
    "DELETE FROM blobs WHERE collecting_since IS NOT NULL AND sha256 = ANY($1::text[])";

#[async_trait]
impl FileRepository for PostgresRepository {
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError> {
        let rows = sqlx::query(concat!(
            files_with_encodings!(),
            "WHERE f.deployment_id = $1 AND f.path = $2 ORDER BY e.encoding"
        ))
        .bind(id.to_string())
        .bind(path)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows::files(&rows)?.pop())
    }

    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError> {
        // `path` is COLLATE "C": byte order, the order Rust sorts strings in.
        let rows = sqlx::query(concat!(
            files_with_encodings!(),
            "WHERE f.deployment_id = $1 ORDER BY f.path, e.encoding"
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
             WHERE deployment_id = $1 ORDER BY path",
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
        let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(KNOWN_ENCODINGS)
            .bind(&hashes)
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
        let hashes: Vec<String> = blobs.iter().map(|blob| blob.sha256.to_string()).collect();
        let sizes = blobs
            .iter()
            .map(|blob| size_to_db(blob.size))
            .collect::<Result<Vec<_>, _>>()?;
        // A transaction so that a refusal refreshes none of the other blobs either.
        let mut tx = self.pool.begin().await.map_err(db)?;
        use_blobs(&mut tx, &hashes, &sizes).await?;
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
        // Two statements in one transaction: the first statement's snapshot predates
        // publishes that commit while it runs, so it could find a blob unreferenced that a
        // manifest committed a moment ago references. Once the rows are locked, the second
        // statement looks again with a fresh snapshot.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let candidates: Vec<String> = sqlx::query_scalar(LOCK_UNREFERENCED_BLOBS)
            .bind(unused_since)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = sqlx::query(MARK_COLLECTING)
            .bind(&candidates)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse::<ContentHash>(row, "sha256"))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }

    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        sqlx::query(FORGET_BLOBS)
            .bind(&hashes)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
