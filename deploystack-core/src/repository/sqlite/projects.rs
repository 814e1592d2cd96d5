//! The projects aggregate on SQLite: its SQL, and the production move `publish` shares.
//! Every write runs in a `BEGIN IMMEDIATE` transaction, so reading production and moving it
//! happen under the one write lock and the history stays a chain.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::{SqliteRepository, db, now_ms};
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

/// `?1` name, `?2` settings, `?3` retention, `?4` now.
const INSERT: &str = concat!(
    "INSERT INTO projects (name, build_settings, retention, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?4) RETURNING ",
    project_columns!()
);

const SELECT: &str = concat!(
    "SELECT ",
    project_columns!(),
    " FROM projects WHERE name = ?1"
);

/// `?1` limit, `?2` the last name of the previous page (NULL: from the start).
const LIST: &str = concat!(
    "SELECT ",
    project_columns!(),
    " FROM projects WHERE ?2 IS NULL OR name > ?2 ORDER BY name LIMIT ?1"
);

/// `?1` name, `?2` settings or NULL, `?3` retention or NULL, `?4` now, `?5` protection mode
/// or NULL (keep protection), `?6` password hash, `?7` bypass hash (both taken with `?5`).
const UPDATE: &str = concat!(
    "UPDATE projects SET build_settings = COALESCE(?2, build_settings), \
     retention = COALESCE(?3, retention), \
     protection_mode = COALESCE(?5, protection_mode), \
     protection_password = CASE WHEN ?5 IS NULL THEN protection_password ELSE ?6 END, \
     protection_bypass = CASE WHEN ?5 IS NULL THEN protection_bypass ELSE ?7 END, \
     updated_at = ?4 WHERE name = ?1 RETURNING ",
    project_columns!()
);

/// `?1` name, `?2` now: the running builds of the project's live deployments end canceled.
const CANCEL_BUILDS: &str = "UPDATE builds SET finished_at = ?2, outcome = 'canceled' \
     WHERE finished_at IS NULL AND deployment_id IN (SELECT id FROM deployments \
     WHERE project = ?1 AND status = 'BUILDING' AND deleted_at IS NULL)";

/// `?1` name, `?2` now: as `delete_deployment`, for every live deployment of the project.
const DELETE_DEPLOYMENTS: &str = "UPDATE deployments SET \
     status = CASE WHEN status IN ('QUEUED', 'BUILDING') THEN 'CANCELED' ELSE status END, \
     updated_at = ?2, deleted_at = ?2, lease_owner = NULL, lease_expires_at = NULL \
     WHERE project = ?1 AND deleted_at IS NULL RETURNING id";

const DROP_FILES: &str = "DELETE FROM files WHERE deployment_id IN \
     (SELECT id FROM deployments WHERE project = ?1)";

const DROP_SOURCE_FILES: &str = "DELETE FROM source_files WHERE deployment_id IN \
     (SELECT id FROM deployments WHERE project = ?1)";

/// `?1` name; the history goes with it (ON DELETE CASCADE).
const DELETE: &str = "DELETE FROM projects WHERE name = ?1";

/// `?1` name: production now, and when the deployment in it was created.
const CURRENT: &str = "SELECT p.production_deployment, p.production_pinned, \
     d.created_at AS production_created_at FROM projects AS p \
     LEFT JOIN deployments AS d ON d.id = p.production_deployment WHERE p.name = ?1";

/// `?1` name, `?2` deployment: whether it may be production.
const ELIGIBLE: &str = "SELECT 1 FROM deployments WHERE id = ?2 AND project = ?1 \
     AND status = 'READY' AND deleted_at IS NULL";

/// `?1` name, `?2` deployment, `?3` now, `?4` pinned.
const MOVE: &str = concat!(
    "UPDATE projects SET production_deployment = ?2, production_since = ?3, \
     production_pinned = ?4, updated_at = ?3 WHERE name = ?1 RETURNING ",
    project_columns!()
);

/// `?1` name, `?2` from, `?3` to, `?4` now, `?5` reason, `?6` actor.
const RECORD: &str = "INSERT INTO production_history \
     (project, from_deployment, to_deployment, at, reason, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// `?1` name, `?2` limit.
const HISTORY: &str = "SELECT from_deployment, to_deployment, at, reason, actor \
     FROM production_history WHERE project = ?1 ORDER BY id DESC LIMIT ?2";

/// `?1` name, `?2` previews to keep or NULL, `?3` cutoff (unix ms) or NULL.
const EXPIRED: &str = "SELECT id FROM (SELECT d.id, d.status, d.created_at, \
     ROW_NUMBER() OVER (ORDER BY d.created_at DESC, d.id DESC) AS newest \
     FROM deployments AS d WHERE d.project = ?1 AND d.target = 'preview' \
     AND d.deleted_at IS NULL \
     AND d.id NOT IN (SELECT to_deployment FROM production_history WHERE project = ?1)) \
     WHERE status IN ('READY', 'ERROR', 'CANCELED') \
     AND ((?2 IS NOT NULL AND newest > ?2) OR (?3 IS NOT NULL AND created_at < ?3)) \
     ORDER BY created_at, id";

#[async_trait]
impl ProjectRepository for SqliteRepository {
    async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError> {
        let row = sqlx::query(INSERT)
            .bind(new.name.as_str())
            .bind(rows::settings_to_json(&new.build_settings)?)
            .bind(rows::to_json(&new.retention, "the retention policy")?)
            .bind(now_ms())
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
            .bind(now_ms())
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
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(SELECT)
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        sqlx::query(CANCEL_BUILDS)
            .bind(name.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let deleted = sqlx::query(DELETE_DEPLOYMENTS)
            .bind(name.as_str())
            .bind(now)
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
        let mut tx = self.begin().await?;
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
        let cutoff = retention
            .max_age_days
            .map(|days| now_ms().saturating_sub(i64::from(days) * 86_400_000));
        sqlx::query(EXPIRED)
            .bind(name.as_str())
            .bind(retention.keep_previews.map(i64::from))
            .bind(cutoff)
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
    conn: &mut SqliteConnection,
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
    let pinned = current.int("production_pinned")?.unwrap_or(0) != 0;
    let newer_in_place = current
        .int("production_created_at")?
        .is_some_and(|created| created > super::to_ms(deployment.created_at));
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
    conn: &mut SqliteConnection,
    name: &ProjectName,
    from: Option<String>,
    to: &DeploymentId,
    reason: ProductionReason,
    by: Option<&str>,
) -> Result<Project, RepositoryError> {
    let now = now_ms();
    let row = sqlx::query(MOVE)
        .bind(name.as_str())
        .bind(to.to_string())
        .bind(now)
        .bind(i64::from(reason.pins()))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::query(RECORD)
        .bind(name.as_str())
        .bind(from)
        .bind(to.to_string())
        .bind(now)
        .bind(reason.as_str())
        .bind(by)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    rows::project(&row)
}
