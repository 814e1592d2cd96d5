//! Build logs on SQLite.

use super::*;

/// `?1` id, `?2` after, `?3` limit.
const LOGS_AFTER: &str = "SELECT id, attempt, at, stream, message FROM build_logs \
     WHERE deployment_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

#[async_trait]
impl LogRepository for SqliteRepository {
    async fn append_log(
        &self,
        id: &DeploymentId,
        lines: &[LogLine],
    ) -> Result<(), RepositoryError> {
        if lines.is_empty() {
            return Ok(());
        }
        let id = id.to_string();
        let mut tx = self.begin().await?;
        insert_log_lines(&mut tx, &id, lines).await?;
        tx.commit().await.map_err(db)
    }

    async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT attempt, at, stream, message FROM build_logs \
             WHERE deployment_id = ?1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::log_line).collect()
    }

    async fn logs_after(
        &self,
        id: &DeploymentId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredLogLine>, RepositoryError> {
        let rows = sqlx::query(LOGS_AFTER)
            .bind(id.to_string())
            .bind(after)
            .bind(i64::from(limit.clamp(1, crate::repository::MAX_LOG_BATCH)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::stored_log_line).collect()
    }
}
