//! [`TokenRepository`] on SQLite; see the migration `0010_tokens.sql`.

use std::time::Duration;

use async_trait::async_trait;

use super::{SqliteRepository, db, now_ms, to_ms};
use crate::model::{ApiToken, NewToken, TokenHash, TokenId};
use crate::repository::rows;
use crate::repository::{RepositoryError, TokenRepository};

/// The columns of a token, as `rows::token` reads them.
macro_rules! token_columns {
    () => {
        "id, name, hash, scopes, projects, created_at, expires_at, last_used_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO api_tokens (id, name, hash, scopes, projects, created_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING ",
    token_columns!()
);

const LIST: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM api_tokens ORDER BY created_at, id"
);

const FIND: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM api_tokens WHERE hash = ?1"
);

/// `?1` id, `?2` now, `?3` now less the granularity.
const TOUCH: &str = "UPDATE api_tokens SET last_used_at = ?2 \
     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)";

#[async_trait]
impl TokenRepository for SqliteRepository {
    async fn create_token(&self, new: &NewToken) -> Result<ApiToken, RepositoryError> {
        let row = sqlx::query(INSERT)
            .bind(new.id.to_string())
            .bind(&new.name)
            .bind(new.hash.to_string())
            .bind(rows::to_json(&new.scopes, "scopes")?)
            .bind(
                new.projects
                    .as_ref()
                    .map(|projects| rows::to_json(projects, "projects"))
                    .transpose()?,
            )
            .bind(now_ms())
            .bind(new.expires_at.map(to_ms))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        rows::token(&row)
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, RepositoryError> {
        let found = sqlx::query(LIST).fetch_all(&self.pool).await.map_err(db)?;
        found.iter().map(rows::token).collect()
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<ApiToken, RepositoryError> {
        let row = sqlx::query(FIND)
            .bind(hash.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::token(&row)
    }

    async fn revoke_token(&self, id: &TokenId) -> Result<(), RepositoryError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::NotFound);
        }
        Ok(())
    }

    async fn touch_token(
        &self,
        id: &TokenId,
        granularity: Duration,
    ) -> Result<(), RepositoryError> {
        let now = now_ms();
        let window = i64::try_from(granularity.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(TOUCH)
            .bind(id.to_string())
            .bind(now)
            .bind(now.saturating_sub(window))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
