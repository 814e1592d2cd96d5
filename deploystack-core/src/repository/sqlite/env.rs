//! The environment-variables aggregate on SQLite. Writes run in `BEGIN IMMEDIATE`
//! transactions, so the check "no two variables of a key share a target" and the write
//! happen under the one write lock.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::{SqliteRepository, db, now_ms};
use crate::model::{EnvVarId, EnvVarUpdate, NewEnvVar, ProjectName, ResealReport, SealedEnvVar};
use crate::repository::rows;
use crate::repository::{EnvRepository, RepositoryError};
use crate::secrets::Keyring;

/// The columns of a variable, as `rows::env_var` reads them.
macro_rules! env_columns {
    () => {
        "id, project, key, value, targets, type, created_at, updated_at"
    };
}

const PROJECT_EXISTS: &str = "SELECT 1 FROM projects WHERE name = ?1";

/// `?1` project, `?2` key, `?3` the variable itself (excluded; any text when creating).
const SAME_KEY: &str = "SELECT targets FROM env_vars WHERE project = ?1 AND key = ?2 AND id <> ?3";

/// `?1` id, `?2` project, `?3` key, `?4` value, `?5` targets, `?6` type, `?7` now.
const INSERT: &str = concat!(
    "INSERT INTO env_vars (id, project, key, value, targets, type, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING ",
    env_columns!()
);

const LIST: &str = concat!(
    "SELECT ",
    env_columns!(),
    " FROM env_vars WHERE project = ?1 ORDER BY key, created_at, id"
);

const SELECT: &str = concat!(
    "SELECT ",
    env_columns!(),
    " FROM env_vars WHERE project = ?1 AND id = ?2"
);

/// `?1` project, `?2` id, `?3` value or NULL, `?4` targets or NULL, `?5` type or NULL, `?6` now.
const UPDATE: &str = concat!(
    "UPDATE env_vars SET value = COALESCE(?3, value), targets = COALESCE(?4, targets), \
     type = COALESCE(?5, type), updated_at = ?6 WHERE project = ?1 AND id = ?2 RETURNING ",
    env_columns!()
);

const DELETE: &str = "DELETE FROM env_vars WHERE project = ?1 AND id = ?2";

const ALL_VALUES: &str = "SELECT id, value FROM env_vars ORDER BY id";

/// `?1` id, `?2` new value, `?3` the value read.
const RESEAL: &str = "UPDATE env_vars SET value = ?2 WHERE id = ?1 AND value = ?3";

const ALL_BUILD_ENV: &str =
    "SELECT id, build_env FROM deployments WHERE build_env <> '[]' ORDER BY id";

/// `?1` id, `?2` new text, `?3` the text read.
const RESEAL_BUILD_ENV: &str =
    "UPDATE deployments SET build_env = ?2 WHERE id = ?1 AND build_env = ?3";

/// `NotFound` unless the project exists.
async fn project_exists(
    conn: &mut SqliteConnection,
    project: &ProjectName,
) -> Result<(), RepositoryError> {
    sqlx::query(PROJECT_EXISTS)
        .bind(project.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
        .map(|_| ())
        .ok_or(RepositoryError::NotFound)
}

/// `Conflict` when another variable of `key` has one of `targets`.
async fn targets_free(
    conn: &mut SqliteConnection,
    project: &ProjectName,
    key: &str,
    id: &EnvVarId,
    targets: &[crate::model::EnvTarget],
) -> Result<(), RepositoryError> {
    let others = sqlx::query(SAME_KEY)
        .bind(project.as_str())
        .bind(key)
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    rows::check_targets_free(key, targets, &others)
}

#[async_trait]
impl EnvRepository for SqliteRepository {
    async fn create_env_var(
        &self,
        project: &ProjectName,
        new: &NewEnvVar,
    ) -> Result<SealedEnvVar, RepositoryError> {
        let mut tx = self.begin().await?;
        project_exists(&mut tx, project).await?;
        targets_free(&mut tx, project, &new.key, &new.id, &new.targets).await?;
        let row = sqlx::query(INSERT)
            .bind(new.id.to_string())
            .bind(project.as_str())
            .bind(&new.key)
            .bind(&new.sealed_value)
            .bind(rows::targets_to_json(&new.targets)?)
            .bind(new.kind.as_str())
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let created = rows::env_var(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(created)
    }

    async fn list_env_vars(
        &self,
        project: &ProjectName,
    ) -> Result<Vec<SealedEnvVar>, RepositoryError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let found = sqlx::query(LIST)
            .bind(project.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        if found.is_empty() {
            // No variables and no project differ.
            project_exists(&mut conn, project).await?;
        }
        found.iter().map(rows::env_var).collect()
    }

    async fn get_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
    ) -> Result<SealedEnvVar, RepositoryError> {
        let row = sqlx::query(SELECT)
            .bind(project.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::env_var(&row)
    }

    async fn update_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
        update: &EnvVarUpdate,
    ) -> Result<SealedEnvVar, RepositoryError> {
        let mut tx = self.begin().await?;
        let current = sqlx::query(SELECT)
            .bind(project.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        if let Some(targets) = &update.targets {
            let key = rows::text(&current, "key")?;
            targets_free(&mut tx, project, &key, id, targets).await?;
        }
        let row = sqlx::query(UPDATE)
            .bind(project.as_str())
            .bind(id.to_string())
            .bind(update.sealed_value.as_deref())
            .bind(
                update
                    .targets
                    .as_deref()
                    .map(rows::targets_to_json)
                    .transpose()?,
            )
            .bind(update.kind.map(|kind| kind.as_str()))
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let updated = rows::env_var(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(updated)
    }

    async fn delete_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
    ) -> Result<(), RepositoryError> {
        let deleted = sqlx::query(DELETE)
            .bind(project.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        if deleted == 0 {
            return Err(RepositoryError::NotFound);
        }
        Ok(())
    }

    async fn reseal_all(&self, keyring: &Keyring) -> Result<ResealReport, RepositoryError> {
        let mut report = ResealReport::default();
        let values = sqlx::query(ALL_VALUES)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for row in &values {
            let (id, sealed) = (rows::text(row, "id")?, rows::text(row, "value")?);
            let Some(resealed) =
                rows::reseal_env_value(keyring, &id, &sealed, &mut report.env_vars)
            else {
                continue;
            };
            let written = sqlx::query(RESEAL)
                .bind(&id)
                .bind(resealed)
                .bind(&sealed)
                .execute(&self.pool)
                .await
                .map_err(db)?
                .rows_affected();
            rows::count_written(&mut report.env_vars, written, 1);
        }
        let deployments = sqlx::query(ALL_BUILD_ENV)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        for row in &deployments {
            let (id, text) = (rows::text(row, "id")?, rows::text(row, "build_env")?);
            let mut pending = 0;
            let Some(resealed) =
                rows::reseal_build_env(keyring, &id, &text, &mut report.build_env, &mut pending)?
            else {
                continue;
            };
            let written = sqlx::query(RESEAL_BUILD_ENV)
                .bind(&id)
                .bind(resealed)
                .bind(&text)
                .execute(&self.pool)
                .await
                .map_err(db)?
                .rows_affected();
            rows::count_written(&mut report.build_env, written, pending);
        }
        Ok(report)
    }
}
