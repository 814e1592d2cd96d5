//! The reconciler: the repository is the source of truth and the queue only a delivery hint,
//! so deployments that sit in `QUEUED` too long, or in `BUILDING` with an expired lease, are
//! enqueued again. This is what makes a lost enqueue, a queue restart or a crashed worker
//! harmless: the claim's compare-and-set makes the extra deliveries cheap no-ops.

use time::OffsetDateTime;

use crate::queue::Job;
use crate::services::Services;

/// Why a reconciliation pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] crate::repository::RepositoryError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// Enqueue again up to `limit` deployments queued since before `older_than`, or building
/// under an expired lease. Returns how many were enqueued.
pub async fn reconcile(
    services: &Services,
    older_than: OffsetDateTime,
    limit: u32,
) -> Result<usize, ReconcileError> {
    let stalled = services
        .repository
        .stalled_deployments(older_than, limit)
        .await?;
    for deployment_id in &stalled {
        services
            .queue
            .enqueue(&Job {
                deployment_id: *deployment_id,
            })
            .await?;
    }
    if !stalled.is_empty() {
        tracing::info!(count = stalled.len(), "re-enqueued stalled deployments");
    }
    Ok(stalled.len())
}
