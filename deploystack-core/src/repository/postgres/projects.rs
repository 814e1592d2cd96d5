//! The projects aggregate on PostgreSQL: its SQL, and the production move `publish` shares.
//! A move reads production under `FOR UPDATE` of the project's row, so two moves queue and
//! the second sees the first's result: the history stays a chain. Timestamps are the
//! server's `now()`, as everywhere in this adapter.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{PostgresRepository, db};
use crate::model::{
    Deployment, DeploymentId, NewProject, Page, PageRequest, ProductionChange, ProductionReason,
    Project, ProjectName, ProjectUpdate, Retention, Target,
};
use crate::repository::rows::{self, Columns};
use crate::repository::{ProjectRepository, RepositoryError};

/// The columns of a project, as `rows::project` reads them.
macro_rules! project_columns {
    () => {
        "name, build_settings, retention, production_deployment, production_since, \
         production_pinned, protection_mode, protection_password, protection_bypass, \
         created_at, updated_at"
    };
}

/// `$1` name, `$2` settings, `$3` retention.
const INSERT: &str = concat!(
    "INSERT INTO projects (name, build_settings, retention, created_at, updated_at) \
     VALUES ($1, $2, $3, now(), now()) RETURNING ",
    project_columns!()
);

const SELECT: &str = concat!(
    "SELECT ",
    project_columns!(),
    " FROM projects WHERE name = $1"
);

/// `$1` name: the project, locked until the transaction ends.
const LOCK: &str = "SELECT name FROM projects WHERE name = $1 FOR UPDATE";

/// `$1` limit, `$2` the last name of the previous page (NULL: from the start).
const LIST: &str = concat!(
    "SELECT ",
    project_columns!(),
    " FROM projects WHERE $2::text IS NULL OR name > $2 ORDER BY name LIMIT $1"
);

/// `$1` name, `$2` settings or NULL, `$3` retention or NULL, `$4` protection mode or NULL
/// (keep protection), `$5` password hash, `$6` bypass hash (both taken with `$4`).
const UPDATE: &str = concat!(
    "UPDATE projects SET build_settings = COALESCE($2, build_settings), \
     retention = COALESCE($3, retention), \
     protection_mode = COALESCE($4::text, protection_mode), \
     protection_password = CASE WHEN $4::text IS NULL THEN protection_password ELSE $5::text END, \
     protection_bypass = CASE WHEN $4::text IS NULL THEN protection_bypass ELSE $6::text END, \
     updated_at = now() WHERE name = $1 RETURNING ",
    project_columns!()
);

/// `$1` name: the project's live deployments, locked (the lock an `UPDATE` takes) so no
/// claim slips in between the cancel of the running builds and the delete.
const LOCK_DEPLOYMENTS: &str = "SELECT id FROM deployments \
     WHERE project = $1 AND deleted_at IS NULL FOR NO KEY UPDATE";

/// `$1` name: the running builds of the project's live deployments end canceled.
const CANCEL_BUILDS: &str = "UPDATE builds SET finished_at = now(), outcome = 'canceled' \
     WHERE finished_at IS NULL AND deployment_id IN (SELECT id FROM deployments \
     WHERE project = $1 AND status = 'BUILDING' AND deleted_at IS NULL)";

/// `$1` name: as `delete_deployment`, for every live deployment of the project.
const DELETE_DEPLOYMENTS: &str = "UPDATE deployments SET \
     status = CASE WHEN status IN ('QUEUED', 'BUILDING') THEN 'CANCELED' ELSE status END, \
     updated_at = now(), deleted_at = now(), lease_owner = NULL, lease_expires_at = NULL \
     WHERE project = $1 AND deleted_at IS NULL RETURNING id";

const DROP_FILES: &str = "DELETE FROM files WHERE deployment_id IN \
     (SELECT id FROM deployments WHERE project = $1)";

const DROP_SOURCE_FILES: &str = "DELETE FROM source_files WHERE deployment_id IN \
     (SELECT id FROM deployments WHERE project = $1)";

/// `$1` name; the history goes with it (ON DELETE CASCADE).
const DELETE: &str = "DELETE FROM projects WHERE name = $1";

/// `$1` name: production now, and when the deployment in it was created; the project's row
/// stays locked until the transaction ends.
const CURRENT: &str = "SELECT p.production_deployment, p.production_pinned, \
     d.created_at AS production_created_at FROM projects AS p \
     LEFT JOIN deployments AS d ON d.id = p.production_deployment WHERE p.name = $1 \
     FOR UPDATE OF p";

/// `$1` name, `$2` deployment: whether it may be production (locked, so it cannot be
/// deleted before the move commits).
const ELIGIBLE: &str = "SELECT 1 FROM deployments WHERE id = $2 AND project = $1 \
     AND status = 'READY' AND deleted_at IS NULL FOR NO KEY UPDATE";

/// `$1` name, `$2` deployment, `$3` pinned.
const MOVE: &str = concat!(
    "UPDATE projects SET production_deployment = $2, production_since = now(), \
     production_pinned = $3, updated_at = now() WHERE name = $1 RETURNING ",
    project_columns!()
);

/// `$1` name, `$2` from, `$3` to, `$4` reason, `$5` actor.
const RECORD: &str = "INSERT INTO production_history \
     (project, from_deployment, to_deployment, at, reason, actor) VALUES ($1, $2, $3, now(), $4, $5)";

/// `$1` name, `$2` limit.
const HISTORY: &str = "SELECT from_deployment, to_deployment, at, reason, actor \
     FROM production_history WHERE project = $1 ORDER BY id DESC LIMIT $2";

/// `$1` name, `$2` previews to keep or NULL, `$3` maximum age in days or NULL.
const EXPIRED: &str = "SELECT id FROM (SELECT d.id, d.status, d.created_at, \
     ROW_NUMBER() OVER (ORDER BY d.created_at DESC, d.id DESC) AS newest \
     FROM deployments AS d WHERE d.project = $1 AND d.target = 'preview' \
     AND d.deleted_at IS NULL \
     AND d.id NOT IN (SELECT to_deployment FROM production_history WHERE project = $1)) AS p \
     WHERE status IN ('READY', 'ERROR', 'CANCELED') \
     AND (($2::bigint IS NOT NULL AND newest > $2) \
     OR ($3::bigint IS NOT NULL AND created_at < now() - $3 * interval '1 day')) \
     ORDER BY created_at, id";

#[async_trait]
impl ProjectRepository for PostgresRepository {
    async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError> {
        let row = sqlx::query(INSERT)
            .bind(new.name.as_str())
            .bind(rows::settings_to_json(&new.build_settings)?)
            .bind(rows::to_json(&new.retention, "the retention policy")?)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| rows::name_taken(db(e), &new.name))?;
        rows::project(&row)
    }

    async fn get_project(&self, name: &ProjectName) -> Result<Project, RepositoryError> {
        let row = sqlx::query(SELECT)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::project(&row)
    }

    async fn list_projects(&self, page: &PageRequest) -> Result<Page<Project>, RepositoryError> {
        let limit = rows::page_limit(page);
        let after = page
            .cursor
            .as_deref()
            .map(rows::decode_name_cursor)
            .transpose()?;
        let found = sqlx::query(LIST)
            .bind(i64::from(limit) + 1)
            .bind(after.as_ref().map(ProjectName::as_str))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let items = found.iter().map(rows::project).collect::<Result<_, _>>()?;
        Ok(rows::page(items, limit, |p: &Project| p.name.to_string()))
    }

    async fn update_project(
        &self,
        name: &ProjectName,
        update: &ProjectUpdate,
    ) -> Result<Project, RepositoryError> {
        let settings = update
            .build_settings
            .as_ref()
            .map(rows::settings_to_json)
            .transpose()?;
        let retention = update
            .retention
            .as_ref()
            .map(|r| rows::to_json(r, "the retention policy"))
            .transpose()?;
        let protection = update.protection.as_ref();
        let row = sqlx::query(UPDATE)
            .bind(name.as_str())
            .bind(settings)
            .bind(retention)
            .bind(protection.map(|p| p.mode.as_str()))
            .bind(protection.and_then(|p| p.password_hash.as_deref()))
            .bind(protection.and_then(|p| p.bypass_hash.as_deref()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::project(&row)
    }

    async fn delete_project(
        &self,
        name: &ProjectName,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(LOCK)
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        for statement in [LOCK_DEPLOYMENTS, CANCEL_BUILDS] {
            sqlx::query(statement)
                .bind(name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let deleted = sqlx::query(DELETE_DEPLOYMENTS)
            .bind(name.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse(row, "id"))
            .collect::<Result<Vec<DeploymentId>, _>>()?;
        for statement in [DROP_FILES, DROP_SOURCE_FILES, DELETE] {
            sqlx::query(statement)
                .bind(name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }

    async fn move_production(
        &self,
        name: &ProjectName,
        to: &DeploymentId,
        reason: ProductionReason,
        by: Option<String>,
    ) -> Result<Project, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let current = sqlx::query(CURRENT)
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let eligible = sqlx::query(ELIGIBLE)
            .bind(name.as_str())
            .bind(to.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .is_some();
        if !eligible {
            return Err(RepositoryError::Conflict(format!(
                "deployment {to} is not a READY deployment of project {name}"
            )));
        }
        let from = current.text("production_deployment")?;
        let project = move_to(&mut tx, name, from, to, reason, by.as_deref()).await?;
        tx.commit().await.map_err(db)?;
        Ok(project)
    }

    async fn expired_previews(
        &self,
        name: &ProjectName,
        retention: &Retention,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        sqlx::query(EXPIRED)
            .bind(name.as_str())
            .bind(retention.keep_previews.map(i64::from))
            .bind(retention.max_age_days.map(i64::from))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse(row, "id"))
            .collect()
    }

    async fn production_history(
        &self,
        name: &ProjectName,
        limit: u32,
    ) -> Result<Vec<ProductionChange>, RepositoryError> {
        let found = sqlx::query(HISTORY)
            .bind(name.as_str())
            .bind(i64::from(limit.clamp(1, rows::MAX_HISTORY)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        if found.is_empty() {
            // An empty history and an unknown project differ.
            self.get_project(name).await?;
        }
        found.iter().map(rows::production_change).collect()
    }
}

/// Inside `publish`'s transaction: a production deployment that just became READY takes
/// production of its project, unless production is pinned or holds a newer deployment.
pub(super) async fn publish_hook(
    conn: &mut PgConnection,
    deployment: &Deployment,
) -> Result<(), RepositoryError> {
    let (Target::Production, Some(project)) = (deployment.target, &deployment.project) else {
        return Ok(());
    };
    let Some(current) = sqlx::query(CURRENT)
        .bind(project.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
    else {
        return Ok(());
    };
    let pinned = current.flag("production_pinned")?.unwrap_or(false);
    let newer_in_place = current
        .time("production_created_at")?
        .is_some_and(|created| created > deployment.created_at);
    if pinned || newer_in_place {
        return Ok(());
    }
    let from = current.text("production_deployment")?;
    move_to(
        conn,
        project,
        from,
        &deployment.id,
        ProductionReason::Deploy,
        None,
    )
    .await?;
    Ok(())
}

/// Point production at `to` and append the history row.
async fn move_to(
    conn: &mut PgConnection,
    name: &ProjectName,
    from: Option<String>,
    to: &DeploymentId,
    reason: ProductionReason,
    by: Option<&str>,
) -> Result<Project, RepositoryError> {
    let row = sqlx::query(MOVE)
        .bind(name.as_str())
        .bind(to.to_string())
        .bind(reason.pins())
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::query(RECORD)
        .bind(name.as_str())
        .bind(from)
        .bind(to.to_string())
        .bind(reason.as_str())
        .bind(by)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    rows::project(&row)
}
