//! Keeping the claim while a build runs: the heartbeat renews the lease, stores the live log
//! and watches for a cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::build::BuildLog;
use crate::model::{DeploymentId, DeploymentStatus};
use crate::queue::Delivery;
use crate::repository::RepositoryError;
use crate::services::Services;

/// How often a running build's log is stored and its status checked for a cancel.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the heartbeat stopped a build, read by `process` once the build returns.
#[derive(Debug, Default)]
pub(super) struct Stopped {
    /// Another attempt holds the deployment.
    pub(super) lease_lost: AtomicBool,
    /// The deployment was canceled or deleted.
    pub(super) canceled: AtomicBool,
}

/// A build's log and the lock its flushes take turns on.
pub(super) struct LiveLog {
    pub(super) log: BuildLog,
    pub(super) flushing: Arc<tokio::sync::Mutex<()>>,
}

async fn flush_log(services: &Services, id: &DeploymentId, live: &LiveLog) {
    // Drained under the lock too, so lines are stored in the order they were drained.
    let _turn = live.flushing.lock().await;
    let lines = live.log.drain();
    if lines.is_empty() {
        return;
    }
    if let Err(err) = services.repository.append_log(id, &lines).await {
        tracing::warn!(%id, error = %err, lines = lines.len(), "could not store build log lines");
    }
}

/// While the build runs: stores log lines as they come and watches for a cancel every
/// [`LIVE_INTERVAL`], and keeps the claim alive every third of the lease. A canceled
/// deployment, or a lease that is gone (someone else owns it now), fires the build's
/// cancellation and says why in `stopped`.
pub(super) async fn heartbeat(
    services: Services,
    delivery: Delivery,
    attempt: i64,
    log: LiveLog,
    cancel: CancellationToken,
    stopped: Arc<Stopped>,
    stop: CancellationToken,
) {
    let id = delivery.job.deployment_id;
    let lease = services.config.lease();
    let renew_every = (lease / 3).max(Duration::from_millis(100));
    let tick = renew_every.min(LIVE_INTERVAL);
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        flush_log(&services, &id, &log).await;
        let lost = match services.repository.get_deployment(&id).await {
            Ok(deployment) if deployment.status == DeploymentStatus::Canceled => {
                stopped.canceled.store(true, Ordering::SeqCst);
                true
            }
            Ok(deployment) => deployment.attempt != attempt,
            Err(RepositoryError::NotFound) => true,
            Err(err) => {
                tracing::debug!(%id, error = %err, "could not check for a cancel; will retry");
                false
            }
        };
        if lost {
            if !stopped.canceled.load(Ordering::SeqCst) {
                stopped.lease_lost.store(true, Ordering::SeqCst);
            }
            cancel.cancel();
            return;
        }
        if renewed.elapsed() + tick / 2 < renew_every {
            continue;
        }
        renewed = Instant::now();
        match services.repository.renew_lease(&id, attempt, lease).await {
            Ok(()) => {}
            Err(RepositoryError::LeaseLost | RepositoryError::NotFound) => {
                // A cancel between the status read and the renewal also ends up here.
                let canceled = services
                    .repository
                    .get_deployment(&id)
                    .await
                    .is_ok_and(|d| d.status == DeploymentStatus::Canceled);
                if canceled {
                    stopped.canceled.store(true, Ordering::SeqCst);
                } else {
                    stopped.lease_lost.store(true, Ordering::SeqCst);
                }
                cancel.cancel();
                return;
            }
            Err(err) => tracing::warn!(%id, error = %err, "lease renewal failed; will retry"),
        }
        if let Err(err) = services.queue.heartbeat(&delivery, lease).await {
            tracing::debug!(%id, error = %err, "queue heartbeat failed");
        }
    }
}

impl Pipeline {
    pub(super) async fn flush_log(&self, id: &DeploymentId, log: &BuildLog) {
        let live = LiveLog {
            log: log.clone(),
            flushing: Arc::clone(&self.flushing),
        };
        flush_log(&self.services, id, &live).await;
    }
}
