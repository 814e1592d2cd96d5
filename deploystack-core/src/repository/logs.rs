//! The build-log aggregate of the [`Repository`](super::Repository) port.
//!
//! # Contract
//! Log lines get a sequence number when stored, increasing in append order across every
//! deployment, so `logs_after` lets a follower read only what is new.

use async_trait::async_trait;

use super::RepositoryError;
use crate::model::{DeploymentId, LogLine, StoredLogLine};

/// Build logs: appended in order, read whole or after a sequence number.
#[async_trait]
pub trait LogRepository: Send + Sync {
    /// Append lines to the build log of `id`.
    async fn append_log(&self, id: &DeploymentId, lines: &[LogLine])
    -> Result<(), RepositoryError>;

    /// The whole build log of `id`, every attempt, in order.
    async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError>;

    /// Up to `limit` lines of the log of `id` stored after the line numbered `after` (0: from
    /// the start), in order, with their sequence numbers. A follower passes the last `seq` it
    /// received to get only new lines; an unknown deployment simply has none.
    async fn logs_after(
        &self,
        id: &DeploymentId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredLogLine>, RepositoryError>;
}
