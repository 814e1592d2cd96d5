//! Deployments on PostgreSQL: create, claim, lease, publish, fail, cancel, delete, list.

use super::*;

/// `$1` id, `$2` project, `$3` target, `$4` source key, `$5` settings, `$6` variables.
const INSERT_DEPLOYMENT: &str = concat!(
    "INSERT INTO deployments (id, project, target, status, source_key, created_at, updated_at, \
     build_settings, build_env, created_by) VALUES ($1, $2, $3, 'QUEUED', $4, now(), now(), $5, $6, \
     $7) \
     RETURNING ",
    deployment_columns!()
);

const SELECT_DEPLOYMENT: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE id = $1"
);

const LIST_FIRST_PAGE: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $1"
);

const LIST_NEXT_PAGE: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE deleted_at IS NULL AND (created_at, id) < ($2, $3) \
     ORDER BY created_at DESC, id DESC LIMIT $1"
);

/// `$1` id, `$2` worker, `$3` lease. A concurrent claim waits on the row lock, then re-checks
/// this `WHERE` against the committed row and finds it taken.
const CLAIM: &str = concat!(
    "UPDATE deployments SET status = 'BUILDING', attempt = attempt + 1, lease_owner = $2, \
     lease_expires_at = now() + $3, updated_at = now() \
     WHERE id = $1 AND deleted_at IS NULL \
     AND (status = 'QUEUED' OR (status = 'BUILDING' AND lease_expires_at < now())) \
     RETURNING ",
    deployment_columns!()
);

/// `$1` id: the attempts a claim takes over from are over.
const ABANDON_BUILDS: &str = "UPDATE builds SET finished_at = now(), outcome = 'lost' \
     WHERE deployment_id = $1 AND finished_at IS NULL";

/// `$1` id, `$2` attempt, `$3` worker.
const START_BUILD: &str = "INSERT INTO builds (deployment_id, attempt, worker, started_at) \
     VALUES ($1, $2, $3, now())";

/// `$3` lease.
const RENEW_LEASE: &str = concat!(
    "UPDATE deployments SET lease_expires_at = now() + $3",
    fenced!()
);

const RELEASE_CLAIM: &str = concat!(
    "UPDATE deployments SET status = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = now()",
    fenced!()
);

/// `$3` error code, `$4` error message.
const FAIL: &str = concat!(
    "UPDATE deployments SET status = 'ERROR', error_code = $3, error_message = $4, \
     updated_at = now(), lease_owner = NULL, lease_expires_at = NULL",
    fenced!(),
    "RETURNING ",
    deployment_columns!()
);

/// `$1` id: the state `DELETE` changes, locked until the transaction ends.
const LOCK_FOR_DELETE: &str =
    "SELECT status, attempt FROM deployments WHERE id = $1 FOR NO KEY UPDATE";

/// `$1` id: the state a cancel changes, locked until the transaction ends.
const LOCK_FOR_CANCEL: &str =
    "SELECT status, attempt FROM deployments WHERE id = $1 FOR NO KEY UPDATE";

/// `$1` id: the compare-and-set of a cancel.
const CANCEL: &str = concat!(
    "UPDATE deployments SET status = 'CANCELED', updated_at = now(), lease_owner = NULL, \
     lease_expires_at = NULL \
     WHERE id = $1 AND deleted_at IS NULL AND status IN ('QUEUED', 'BUILDING') RETURNING ",
    deployment_columns!()
);

/// Live deployments of a project with a status (the index `deployments_by_project` narrows
/// the rows to the project's).
const COUNT_BY_PROJECT_AND_STATUS: &str = "SELECT COUNT(*) FROM deployments \
     WHERE project = $1 AND status = $2 AND deleted_at IS NULL";

/// `$1` older than, `$2` limit.
const STALLED: &str = "SELECT id FROM deployments WHERE deleted_at IS NULL \
     AND ((status = 'QUEUED' AND updated_at < $1) \
     OR (status = 'BUILDING' AND lease_expires_at < now())) \
     ORDER BY updated_at LIMIT $2";

/// A manifest as the columns `INSERT_FILES` binds, with the counts `PUBLISH` records.
struct Manifest {
    paths: Vec<String>,
    sha256: Vec<String>,
    sizes: Vec<i64>,
    content_types: Vec<String>,
    /// The variants, one entry per variant, as `INSERT_ENCODINGS` binds them.
    encoded_paths: Vec<String>,
    encodings: Vec<String>,
    encoded_sha256: Vec<String>,
    encoded_sizes: Vec<i64>,
    file_count: i64,
    total_bytes: i64,
}

impl Manifest {
    fn new(files: &[FileEntry]) -> Result<Self, RepositoryError> {
        let too_large = || RepositoryError::Conflict("the manifest is too large".into());
        let sizes = files
            .iter()
            .map(|file| size_to_db(file.size))
            .collect::<Result<Vec<_>, _>>()?;
        let total_bytes = sizes
            .iter()
            .try_fold(0i64, |sum, size| sum.checked_add(*size))
            .ok_or_else(too_large)?;
        let variants: Vec<(&FileEntry, &EncodedVariant)> = files
            .iter()
            .flat_map(|file| file.encodings.iter().map(move |v| (file, v)))
            .collect();
        Ok(Self {
            encoded_paths: variants.iter().map(|(f, _)| f.path.clone()).collect(),
            encodings: variants
                .iter()
                .map(|(_, v)| v.encoding.as_str().to_owned())
                .collect(),
            encoded_sha256: variants.iter().map(|(_, v)| v.sha256.to_string()).collect(),
            encoded_sizes: variants
                .iter()
                .map(|(_, v)| size_to_db(v.size))
                .collect::<Result<Vec<_>, _>>()?,
            paths: files.iter().map(|file| file.path.clone()).collect(),
            sha256: files.iter().map(|file| file.sha256.to_string()).collect(),
            content_types: files.iter().map(|file| file.content_type.clone()).collect(),
            file_count: i64::try_from(files.len()).map_err(|_| too_large())?,
            total_bytes,
            sizes,
        })
    }
}

#[async_trait]
impl DeploymentRepository for PostgresRepository {
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row = sqlx::query(INSERT_DEPLOYMENT)
            .bind(new.id.to_string())
            .bind(new.project.as_ref().map(|p| p.as_str().to_owned()))
            .bind(new.target.as_str())
            .bind(new.source_key.as_str())
            .bind(rows::settings_to_json(&new.settings)?)
            .bind(rows::env_to_json(&new.env)?)
            .bind(new.created_by.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if !new.source_files.is_empty() {
            let files = &new.source_files;
            let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
            let hashes: Vec<String> = files.iter().map(|f| f.digest.to_string()).collect();
            let sizes = files
                .iter()
                .map(|f| size_to_db(f.size))
                .collect::<Result<Vec<i64>, _>>()?;
            let modes: Vec<i64> = files.iter().map(|f| i64::from(f.mode)).collect();
            // The same protocol as a publish: the upsert locks the blobs' rows (refusing
            // those being collected) until the source rows are committed, and from then on
            // no collector can claim them.
            use_blobs(&mut tx, &hashes, &sizes).await?;
            sqlx::query(INSERT_SOURCE_FILES)
                .bind(new.id.to_string())
                .bind(&paths)
                .bind(&hashes)
                .bind(&sizes)
                .bind(&modes)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        rows::deployment(&row)
    }

    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let row = sqlx::query(SELECT_DEPLOYMENT)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::deployment(&row)
    }

    async fn list_deployments(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Deployment>, RepositoryError> {
        let limit = rows::page_limit(page);
        let fetch = i64::from(limit) + 1;
        let rows = match &page.cursor {
            None => {
                sqlx::query(LIST_FIRST_PAGE)
                    .bind(fetch)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(cursor) => {
                let (created_at, id) = decode_cursor(cursor)?;
                sqlx::query(LIST_NEXT_PAGE)
                    .bind(fetch)
                    .bind(created_at)
                    .bind(id.to_string())
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db)?;

        let items = rows
            .iter()
            .map(rows::deployment)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows::page(items, limit, encode_cursor))
    }

    async fn claim_deployment(
        &self,
        id: &DeploymentId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Some(row) = sqlx::query(CLAIM)
            .bind(&id)
            .bind(worker)
            .bind(interval(lease))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let deployment = rows::deployment(&row)?;
        sqlx::query(ABANDON_BUILDS)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(START_BUILD)
            .bind(&id)
            .bind(deployment.attempt)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(Claim {
            attempt: deployment.attempt,
            deployment,
        }))
    }

    async fn renew_lease(
        &self,
        id: &DeploymentId,
        attempt: i64,
        lease: Duration,
    ) -> Result<(), RepositoryError> {
        let id = id.to_string();
        // One statement: no transaction needed, and deployments are never removed, so the
        // follow-up question "does it exist?" cannot be answered wrongly by a race.
        let done = sqlx::query(RENEW_LEASE)
            .bind(&id)
            .bind(attempt)
            .bind(interval(lease))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(fenced_out(&self.pool, &id).await);
        }
        Ok(())
    }

    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query(RELEASE_CLAIM)
            .bind(&id)
            .bind(attempt)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(fenced_out(&mut *tx, &id).await);
        }
        finish_build(&mut tx, &id, attempt, "released", None).await?;
        tx.commit().await.map_err(db)
    }

    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError> {
        let manifest = Manifest::new(&build.files)?;
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The fence goes first: a stale attempt must not even look at the blobs. It also
        // holds the deployment's row lock until commit, so a takeover waits for this publish
        // and then finds the deployment READY.
        let Some(row) = sqlx::query(PUBLISH)
            .bind(&id)
            .bind(attempt)
            .bind(manifest.file_count)
            .bind(manifest.total_bytes)
            .bind(rows::routing_to_json(build.routing.as_ref())?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(fenced_out(&mut *tx, &id).await);
        };
        let deployment = rows::deployment(&row)?;
        // A blob a collector holds may already be gone from storage: referencing it would
        // publish a broken file. The upsert locks the blobs' rows until the files below are
        // committed, and once they are, no collector can claim those blobs.
        // Files and variants in one upsert, so its hash order is the one lock order.
        let blob_hashes: Vec<String> = manifest
            .sha256
            .iter()
            .chain(&manifest.encoded_sha256)
            .cloned()
            .collect();
        let blob_sizes: Vec<i64> = manifest
            .sizes
            .iter()
            .chain(&manifest.encoded_sizes)
            .copied()
            .collect();
        use_blobs(&mut tx, &blob_hashes, &blob_sizes).await?;
        sqlx::query(INSERT_FILES)
            .bind(&id)
            .bind(&manifest.paths)
            .bind(&manifest.sha256)
            .bind(&manifest.sizes)
            .bind(&manifest.content_types)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if !manifest.encoded_paths.is_empty() {
            sqlx::query(INSERT_ENCODINGS)
                .bind(&id)
                .bind(&manifest.encoded_paths)
                .bind(&manifest.encodings)
                .bind(&manifest.encoded_sha256)
                .bind(&manifest.encoded_sizes)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        finish_build(&mut tx, &id, attempt, "ready", Some(&build.strategy)).await?;
        insert_log_lines(&mut *tx, &deployment.id, &build.log).await?;
        // Production moves with the publish, never a moment after it.
        projects::publish_hook(&mut tx, &deployment).await?;
        tx.commit().await.map_err(db)?;
        Ok(deployment)
    }

    async fn fail_deployment(
        &self,
        id: &DeploymentId,
        attempt: i64,
        error: &DeploymentError,
    ) -> Result<Deployment, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Some(row) = sqlx::query(FAIL)
            .bind(&id)
            .bind(attempt)
            .bind(without_nul(&error.code))
            .bind(without_nul(&error.message))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(fenced_out(&mut *tx, &id).await);
        };
        let deployment = rows::deployment(&row)?;
        finish_build(&mut tx, &id, attempt, "error", None).await?;
        tx.commit().await.map_err(db)?;
        Ok(deployment)
    }

    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let before = sqlx::query(LOCK_FOR_DELETE)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let was_building = get::<String>(&before, "status")? == DeploymentStatus::Building.as_str();
        let row = sqlx::query(DELETE)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if was_building {
            let attempt = get::<i64>(&before, "attempt")?;
            finish_build(&mut tx, &id, attempt, "canceled", None).await?;
        }
        // A deleted deployment is never served nor built again: its files and its source
        // release their blobs to the collector.
        for statement in [
            "DELETE FROM files WHERE deployment_id = $1",
            "DELETE FROM source_files WHERE deployment_id = $1",
        ] {
            sqlx::query(statement)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        rows::deployment(&row)
    }

    async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locked first, like a delete, so no claim slips in between the read and the write.
        let before = sqlx::query(LOCK_FOR_CANCEL)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let Some(row) = sqlx::query(CANCEL)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            // Final already, or deleted (which made a live one CANCELED).
            return Err(RepositoryError::Final(rows::parse(&before, "status")?));
        };
        if get::<String>(&before, "status")? == DeploymentStatus::Building.as_str() {
            let attempt = get::<i64>(&before, "attempt")?;
            finish_build(&mut tx, &id, attempt, "canceled", None).await?;
        }
        tx.commit().await.map_err(db)?;
        rows::deployment(&row)
    }

    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        sqlx::query(STALLED)
            .bind(older_than)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse::<DeploymentId>(row, "id"))
            .collect()
    }

    async fn count_deployments(
        &self,
        project: &ProjectName,
        status: DeploymentStatus,
    ) -> Result<u64, RepositoryError> {
        let count: i64 = sqlx::query_scalar(COUNT_BY_PROJECT_AND_STATUS)
            .bind(project.as_str())
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
