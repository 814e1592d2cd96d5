//! Why an attempt stops before publishing, and how each reason ends it: the user's failures
//! end the deployment in `ERROR`, ours retry with backoff, a stop hands the job back.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Outcome, Pipeline};
use crate::archive::ArchiveError;
use crate::build::{BuildError, BuildLog};
use crate::events::{Event, emit_best_effort};
use crate::model::{DeploymentError, DeploymentId, DeploymentStatus};
use crate::queue::Delivery;
use crate::repository::RepositoryError;
use crate::storage::StorageError;

/// Why a build attempt stopped before publishing.
#[derive(Debug)]
pub(super) enum Failure {
    /// The user's problem: final.
    User { code: String, message: String },
    /// The worker is stopping.
    Stopped,
    /// The claim went to someone else.
    LeaseLost,
    /// The deployment was canceled or deleted.
    Canceled,
    /// Our problem: retry.
    Internal(String),
    /// Our problem, and a circuit breaker says the backend is failing: retry, but not before
    /// `retry_after`, when the breaker lets a call through again (sooner would only spend a
    /// delivery on a call refused at once).
    Unavailable {
        detail: String,
        retry_after: Duration,
    },
}

impl From<BuildError> for Failure {
    fn from(err: BuildError) -> Self {
        match err {
            BuildError::Failed { code, message } => Failure::User {
                code: code.into_owned(),
                message,
            },
            BuildError::Canceled => Failure::Stopped,
            other => Failure::Internal(other.to_string()),
        }
    }
}

impl From<ArchiveError> for Failure {
    fn from(err: ArchiveError) -> Self {
        if err.is_user_error() {
            Failure::User {
                code: err.code().to_owned(),
                message: err.to_string(),
            }
        } else if crate::services::disk::is_out_of_space(&err) {
            out_of_space(&err)
        } else {
            Failure::Internal(err.to_string())
        }
    }
}

impl From<StorageError> for Failure {
    fn from(err: StorageError) -> Self {
        if err.is_full() {
            return out_of_space(&err);
        }
        match err {
            StorageError::Open(open) => Failure::Unavailable {
                detail: open.to_string(),
                retry_after: open.retry_after,
            },
            other => Failure::Internal(other.to_string()),
        }
    }
}

/// A full disk ends the deployment at once: retrying fills the same disk again, and five
/// attempts ending in `internal_error` would hide the reason.
fn out_of_space(err: &dyn std::fmt::Display) -> Failure {
    user(
        "insufficient_storage",
        format!(
            "the server ran out of disk space while building this deployment ({err}); free some \
             space (delete old deployments) and deploy again"
        ),
    )
}

impl From<RepositoryError> for Failure {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::LeaseLost => Failure::LeaseLost,
            RepositoryError::Full(_) => out_of_space(&err),
            other => Failure::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        if crate::services::disk::is_out_of_space(&err) {
            return out_of_space(&err);
        }
        Failure::Internal(err.to_string())
    }
}

pub(super) fn user(code: &str, message: impl Into<String>) -> Failure {
    Failure::User {
        code: code.to_owned(),
        message: message.into(),
    }
}

pub(super) fn stop_if(cancel: &CancellationToken) -> Result<(), Failure> {
    if cancel.is_cancelled() {
        Err(Failure::Stopped)
    } else {
        Ok(())
    }
}

/// Exponential backoff with jitter: about 1 s, 2 s, 4 s … capped at 60 s, each plus up to
/// half again at random so retries of many jobs do not arrive together.
pub fn backoff(deliveries: u32) -> Duration {
    let base = Duration::from_secs(1u64 << deliveries.saturating_sub(1).min(6))
        .min(Duration::from_secs(60));
    let jitter = rand::random::<f64>() * 0.5;
    base + base.mul_f64(jitter)
}

impl Pipeline {
    pub(super) async fn handle_failure(
        &self,
        delivery: &Delivery,
        attempt: i64,
        failure: Failure,
        log: &BuildLog,
        started: Instant,
        preset: Option<String>,
    ) -> Outcome {
        let id = delivery.job.deployment_id;
        let repository = &self.services.repository;
        // Refused by an open breaker is our problem like any other, retried no sooner than the
        // breaker's cool-down ends.
        let not_before = match &failure {
            Failure::Unavailable { retry_after, .. } => *retry_after,
            _ => Duration::ZERO,
        };
        match failure {
            Failure::User { code, message } => {
                log.system(format!("error: {message}"));
                self.fail(delivery, attempt, code, message, log, started, preset)
                    .await
            }
            Failure::Canceled => self.canceled(delivery, log).await,
            Failure::LeaseLost if self.canceled_meanwhile(&id).await => {
                self.canceled(delivery, log).await
            }
            Failure::LeaseLost => {
                tracing::warn!(%id, attempt, "lease lost; another worker owns this deployment now");
                self.ack(delivery).await;
                Outcome::LeaseLost
            }
            Failure::Stopped => {
                log.system("worker stopping; the build was handed back to the queue");
                self.flush_log(&id, log).await;
                match repository.release_claim(&id, attempt).await {
                    Ok(()) => {
                        // A fresh job rather than a nack: being stopped is not a failed
                        // delivery, so it must not count towards dead-lettering.
                        match self.services.queue.enqueue(&delivery.job).await {
                            Ok(()) => self.ack(delivery).await,
                            Err(err) => {
                                tracing::warn!(%id, error = %err, "could not requeue; nacking instead");
                                self.nack(delivery, Duration::ZERO).await;
                            }
                        }
                        Outcome::Requeued
                    }
                    Err(err) => {
                        // Deleted meanwhile, or the lease was taken: nothing left to do here.
                        tracing::info!(%id, error = %err, "could not release the claim");
                        self.ack(delivery).await;
                        Outcome::LeaseLost
                    }
                }
            }
            Failure::Internal(detail) | Failure::Unavailable { detail, .. } => {
                tracing::error!(%id, attempt, deliveries = delivery.deliveries, error = %detail, "build failed on our side");
                if delivery.deliveries >= self.services.config.max_deliveries {
                    log.system("error: the platform failed to build this deployment repeatedly");
                    return self
                        .fail(
                            delivery,
                            attempt,
                            "internal_error".to_owned(),
                            format!(
                                "the platform could not build this deployment after {} attempts; the operator's logs have details",
                                delivery.deliveries
                            ),
                            log,
                            started,
                            preset,
                        )
                        .await;
                }
                log.system(
                    "a temporary problem on the platform interrupted the build; it will be retried",
                );
                self.flush_log(&id, log).await;
                if let Err(err) = repository.release_claim(&id, attempt).await {
                    tracing::info!(%id, error = %err, "could not release the claim");
                }
                self.nack(delivery, backoff(delivery.deliveries).max(not_before))
                    .await;
                Outcome::Retrying
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // One attempt's facts; a struct would only rename them.
    pub(super) async fn fail(
        &self,
        delivery: &Delivery,
        attempt: i64,
        code: String,
        message: String,
        log: &BuildLog,
        started: Instant,
        preset: Option<String>,
    ) -> Outcome {
        let id = delivery.job.deployment_id;
        self.flush_log(&id, log).await;
        let error = DeploymentError {
            code: code.clone(),
            message: message.clone(),
        };
        match self
            .services
            .repository
            .fail_deployment(&id, attempt, &error)
            .await
        {
            Ok(deployment) => {
                self.ack(delivery).await;
                self.remove_source(&deployment).await;
                emit_best_effort(
                    self.services.events.as_ref(),
                    Event::BuildFailed {
                        deployment_id: id,
                        attempt,
                        preset,
                        duration_ms: started.elapsed().as_millis() as u64,
                        code,
                        message,
                    },
                )
                .await;
                Outcome::Failed
            }
            Err(RepositoryError::LeaseLost) if self.canceled_meanwhile(&id).await => {
                self.canceled(delivery, log).await
            }
            Err(RepositoryError::LeaseLost) => {
                self.ack(delivery).await;
                Outcome::LeaseLost
            }
            Err(err) => {
                tracing::error!(%id, error = %err, "could not record the failure; retrying");
                self.nack(delivery, backoff(delivery.deliveries)).await;
                Outcome::Retrying
            }
        }
    }

    /// The end of an attempt whose deployment was canceled (or deleted): the cancel wrote the
    /// final status, so only the log gets a last line. No requeue, no `ERROR`.
    pub(super) async fn canceled(&self, delivery: &Delivery, log: &BuildLog) -> Outcome {
        let id = delivery.job.deployment_id;
        tracing::info!(%id, "build canceled");
        log.system("build canceled");
        self.flush_log(&id, log).await;
        self.ack(delivery).await;
        Outcome::Canceled
    }

    /// Whether the deployment is `CANCELED` now (canceled or deleted). A failed read says no:
    /// the attempt then ends the way it would have without the question.
    pub(super) async fn canceled_meanwhile(&self, id: &DeploymentId) -> bool {
        self.services
            .repository
            .get_deployment(id)
            .await
            .is_ok_and(|deployment| deployment.status == DeploymentStatus::Canceled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_refused_by_a_breaker_is_retried_after_its_cool_down() {
        let open = crate::breaker::BreakerOpen {
            breaker: "storage",
            retry_after: Duration::from_secs(12),
        };
        let failure = Failure::from(StorageError::Open(open));
        assert!(
            matches!(failure, Failure::Unavailable { retry_after, .. } if retry_after == Duration::from_secs(12)),
            "{failure:?}"
        );
        let down = Failure::from(StorageError::Unavailable("connection refused".into()));
        assert!(matches!(down, Failure::Internal(_)), "{down:?}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1500));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(50) <= Duration::from_secs(90));
    }
}
