//! Deployments on SQLite: create, claim, lease, publish, fail, cancel, delete, list.

use super::*;

const INSERT_DEPLOYMENT: &str = concat!(
    "INSERT INTO deployments (id, project, target, status, source_key, created_at, updated_at, \
     build_settings, build_env, created_by) VALUES (?1, ?2, ?3, 'QUEUED', ?4, ?5, ?5, ?6, ?7, ?8) \
     RETURNING ",
    deployment_columns!()
);

const SELECT_DEPLOYMENT: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE id = ?1"
);

const LIST_FIRST_PAGE: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT ?1"
);

const LIST_NEXT_PAGE: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE deleted_at IS NULL AND (created_at, id) < (?2, ?3) \
     ORDER BY created_at DESC, id DESC LIMIT ?1"
);

/// `?1` id, `?2` worker, `?3` lease expiry, `?4` now.
const CLAIM: &str = concat!(
    "UPDATE deployments SET status = 'BUILDING', attempt = attempt + 1, lease_owner = ?2, \
     lease_expires_at = ?3, updated_at = ?4 \
     WHERE id = ?1 AND deleted_at IS NULL \
     AND (status = 'QUEUED' OR (status = 'BUILDING' AND lease_expires_at < ?4)) \
     RETURNING ",
    deployment_columns!()
);

/// `?1` id, `?2` now: the attempts a claim takes over from are over.
const ABANDON_BUILDS: &str = "UPDATE builds SET finished_at = ?2, outcome = 'lost' \
     WHERE deployment_id = ?1 AND finished_at IS NULL";

/// `?1` id, `?2` attempt, `?3` worker, `?4` now.
const START_BUILD: &str = "INSERT INTO builds (deployment_id, attempt, worker, started_at) \
     VALUES (?1, ?2, ?3, ?4)";

/// `?3` lease expiry.
const RENEW_LEASE: &str = concat!("UPDATE deployments SET lease_expires_at = ?3", fenced!());

/// `?3` now.
const RELEASE_CLAIM: &str = concat!(
    "UPDATE deployments SET status = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = ?3",
    fenced!()
);

/// `?3` file count, `?4` total bytes, `?5` now.
const PUBLISH: &str = concat!(
    "UPDATE deployments SET status = 'READY', file_count = ?3, total_bytes = ?4, ready_at = ?5, \
     updated_at = ?5, lease_owner = NULL, lease_expires_at = NULL, routing = ?6",
    fenced!(),
    "RETURNING ",
    deployment_columns!()
);

/// `?3` error code, `?4` error message, `?5` now.
const FAIL: &str = concat!(
    "UPDATE deployments SET status = 'ERROR', error_code = ?3, error_message = ?4, \
     updated_at = ?5, lease_owner = NULL, lease_expires_at = NULL",
    fenced!(),
    "RETURNING ",
    deployment_columns!()
);

/// `?1` id, `?2` now: the compare-and-set of a cancel.
const CANCEL: &str = concat!(
    "UPDATE deployments SET status = 'CANCELED', updated_at = ?2, lease_owner = NULL, \
     lease_expires_at = NULL \
     WHERE id = ?1 AND deleted_at IS NULL AND status IN ('QUEUED', 'BUILDING') RETURNING ",
    deployment_columns!()
);

/// Live deployments of a project with a status (the index `deployments_by_project` narrows
/// the rows to the project's).
const COUNT_BY_PROJECT_AND_STATUS: &str = "SELECT COUNT(*) FROM deployments \
     WHERE project = ?1 AND status = ?2 AND deleted_at IS NULL";

/// `?1` older than, `?2` now, `?3` limit.
const STALLED: &str = "SELECT id FROM deployments WHERE deleted_at IS NULL \
     AND ((status = 'QUEUED' AND updated_at < ?1) \
     OR (status = 'BUILDING' AND lease_expires_at < ?2)) \
     ORDER BY updated_at LIMIT ?3";

#[async_trait]
impl DeploymentRepository for SqliteRepository {
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query(INSERT_DEPLOYMENT)
            .bind(new.id.to_string())
            .bind(new.project.as_ref().map(|p| p.as_str().to_owned()))
            .bind(new.target.as_str())
            .bind(new.source_key.as_str())
            .bind(now)
            .bind(rows::settings_to_json(&new.settings)?)
            .bind(rows::env_to_json(&new.env)?)
            .bind(new.created_by.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if !new.source_files.is_empty() {
            // The same protocol as a publish: a blob being collected may already be gone,
            // and once these rows are committed no collector can claim their blobs.
            let blobs = blob_rows_json(new.source_files.iter().map(|f| (f.digest, f.size)))?;
            use_blobs(&mut tx, &blobs, now).await?;
            sqlx::query(INSERT_SOURCE_FILES)
                .bind(new.id.to_string())
                .bind(source_files_json(&new.source_files)?)
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
        let now = now_ms();
        let id = id.to_string();
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query(CLAIM)
            .bind(&id)
            .bind(worker)
            .bind(expiry(now, lease))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let deployment = rows::deployment(&row)?;
        sqlx::query(ABANDON_BUILDS)
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(START_BUILD)
            .bind(&id)
            .bind(deployment.attempt)
            .bind(worker)
            .bind(now)
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
        let mut tx = self.begin().await?;
        let done = sqlx::query(RENEW_LEASE)
            .bind(&id)
            .bind(attempt)
            .bind(expiry(now_ms(), lease))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(fenced_out(&mut tx, &id).await);
        }
        tx.commit().await.map_err(db)
    }

    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError> {
        let now = now_ms();
        let id = id.to_string();
        let mut tx = self.begin().await?;
        let done = sqlx::query(RELEASE_CLAIM)
            .bind(&id)
            .bind(attempt)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(fenced_out(&mut tx, &id).await);
        }
        finish_build(&mut tx, &id, attempt, now, "released", None).await?;
        tx.commit().await.map_err(db)
    }

    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError> {
        let manifest = build
            .files
            .iter()
            .map(ManifestRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        let file_count = i64::try_from(manifest.len())
            .map_err(|_| RepositoryError::Conflict("the manifest is too large".into()))?;
        let total_bytes = manifest
            .iter()
            .try_fold(0i64, |sum, file| sum.checked_add(file.size))
            .ok_or_else(|| RepositoryError::Conflict("the manifest is too large".into()))?;
        let encodings = build
            .files
            .iter()
            .flat_map(|file| {
                file.encodings
                    .iter()
                    .map(move |v| EncodingRow::new(file, v))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Every blob the manifest references, variants included, for the collector's table.
        let blobs = to_json(
            &manifest
                .iter()
                .map(|file| BlobRow {
                    sha256: file.sha256.clone(),
                    size: file.size,
                })
                .chain(encodings.iter().map(|variant| BlobRow {
                    sha256: variant.sha256.clone(),
                    size: variant.size,
                }))
                .collect::<Vec<_>>(),
        )?;
        let manifest = to_json(&manifest)?;
        let encodings = to_json(&encodings)?;

        let now = now_ms();
        let id = id.to_string();
        let mut tx = self.begin().await?;
        // The fence goes first: a stale attempt must not even look at the blobs.
        let Some(row) = sqlx::query(PUBLISH)
            .bind(&id)
            .bind(attempt)
            .bind(file_count)
            .bind(total_bytes)
            .bind(now)
            .bind(rows::routing_to_json(build.routing.as_ref())?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(fenced_out(&mut tx, &id).await);
        };
        let deployment = rows::deployment(&row)?;
        // A blob a collector holds may already be gone from storage: referencing it would
        // publish a broken file. Once the files below are committed no collector can claim
        // their blobs, so this check closes the race.
        use_blobs(&mut tx, &blobs, now).await?;
        sqlx::query(INSERT_FILES)
            .bind(&id)
            .bind(&manifest)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(INSERT_ENCODINGS)
            .bind(&id)
            .bind(&encodings)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        finish_build(&mut tx, &id, attempt, now, "ready", Some(&build.strategy)).await?;
        insert_log_lines(&mut tx, &id, &build.log).await?;
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
        let now = now_ms();
        let id = id.to_string();
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query(FAIL)
            .bind(&id)
            .bind(attempt)
            .bind(error.code.as_str())
            .bind(error.message.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(fenced_out(&mut tx, &id).await);
        };
        let deployment = rows::deployment(&row)?;
        finish_build(&mut tx, &id, attempt, now, "error", None).await?;
        tx.commit().await.map_err(db)?;
        Ok(deployment)
    }

    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let now = now_ms();
        let id = id.to_string();
        let mut tx = self.begin().await?;
        let before = sqlx::query("SELECT status, attempt FROM deployments WHERE id = ?1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let was_building = get::<String>(&before, "status")? == DeploymentStatus::Building.as_str();
        let row = sqlx::query(DELETE)
            .bind(&id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if was_building {
            let attempt = get::<i64>(&before, "attempt")?;
            finish_build(&mut tx, &id, attempt, now, "canceled", None).await?;
        }
        // A deleted deployment is never served nor built again: its files and its source
        // release their blobs to the collector.
        for statement in [
            "DELETE FROM files WHERE deployment_id = ?1",
            "DELETE FROM source_files WHERE deployment_id = ?1",
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
        let now = now_ms();
        let id = id.to_string();
        let mut tx = self.begin().await?;
        let before =
            sqlx::query("SELECT status, attempt, deleted_at FROM deployments WHERE id = ?1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .ok_or(RepositoryError::NotFound)?;
        let Some(row) = sqlx::query(CANCEL)
            .bind(&id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            // Final already, or deleted (which made a live one CANCELED).
            return Err(RepositoryError::Final(rows::parse(&before, "status")?));
        };
        if get::<String>(&before, "status")? == DeploymentStatus::Building.as_str() {
            let attempt = get::<i64>(&before, "attempt")?;
            finish_build(&mut tx, &id, attempt, now, "canceled", None).await?;
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
            .bind(to_ms(older_than))
            .bind(now_ms())
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
