//! [`BreakerQueue`]: a [`Queue`] whose calls go through a [`Breaker`], with bounded retries
//! of the operations that may be repeated.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Breaker, RetryPolicy};
use crate::queue::{DeadLetter, Delivery, Job, Queue, QueueDepth, QueueError};

/// A queue decorator that fails fast with [`QueueError::Open`] while its breaker is open.
/// Only [`QueueError::Unavailable`] counts as a failure; a lost lease is the queue answering.
///
/// With [`with_retry`](Self::with_retry), an unavailable queue is tried again, within the
/// policy's bounds, for the operations that are safe to repeat: `enqueue` (a duplicate job is
/// harmless, the pipeline's claim drops it), `heartbeat` (it sets the lease, it does not add
/// to it), `depth` and `dead_letters`. `reserve`, `ack` and `nack` are not repeated here: a
/// repeated `ack` or `nack` whose first attempt did reach the queue would answer `LeaseLost`
/// for a delivery it settled, and the worker loop already retries `reserve` with its own
/// backoff. `ping` is never retried: `/readyz` wants the answer now.
#[derive(Debug)]
pub struct BreakerQueue<Q> {
    inner: Q,
    breaker: Arc<Breaker>,
    retry: RetryPolicy,
}

impl<Q: Queue> BreakerQueue<Q> {
    /// `inner`, guarded by `breaker`, each call tried once.
    pub fn new(inner: Q, breaker: Arc<Breaker>) -> Self {
        Self {
            inner,
            breaker,
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
        }
    }

    /// The same, retrying the operations that may be repeated under `retry`.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The breaker guarding it.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

fn is_failure(err: &QueueError) -> bool {
    matches!(err, QueueError::Unavailable(_))
}

#[async_trait]
impl<Q: Queue> Queue for BreakerQueue<Q> {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let attempts = self.retry.run(is_failure, || self.inner.enqueue(job));
        self.breaker
            .call(is_failure, QueueError::Open, attempts)
            .await
    }

    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        self.breaker
            .call(
                is_failure,
                QueueError::Open,
                self.inner.reserve(consumer, lease, wait),
            )
            .await
    }

    async fn heartbeat(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError> {
        let attempts = self
            .retry
            .run(is_failure, || self.inner.heartbeat(delivery, lease));
        self.breaker
            .call(is_failure, QueueError::Open, attempts)
            .await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.breaker
            .call(is_failure, QueueError::Open, self.inner.ack(delivery))
            .await
    }

    async fn nack(&self, delivery: &Delivery, retry_after: Duration) -> Result<(), QueueError> {
        self.breaker
            .call(
                is_failure,
                QueueError::Open,
                self.inner.nack(delivery, retry_after),
            )
            .await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let attempts = self.retry.run(is_failure, || self.inner.depth());
        self.breaker
            .call(is_failure, QueueError::Open, attempts)
            .await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        let attempts = self
            .retry
            .run(is_failure, || self.inner.dead_letters(limit));
        self.breaker
            .call(is_failure, QueueError::Open, attempts)
            .await
    }

    fn is_in_process(&self) -> bool {
        self.inner.is_in_process()
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.breaker
            .call(is_failure, QueueError::Open, self.inner.ping())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::breaker::{BreakerSettings, BreakerState};
    use crate::model::DeploymentId;
    use crate::queue::MemoryQueue;

    fn breaker() -> Arc<Breaker> {
        Arc::new(Breaker::new(
            "queue",
            BreakerSettings {
                failure_percent: 50,
                min_calls: 2,
                window: Duration::from_secs(60),
                cooldown: Duration::from_secs(60),
            },
        ))
    }

    #[cfg(feature = "testing")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_guarded_queue_passes_the_queue_suite() {
        use crate::testing::queue::MAX_DELIVERIES;
        crate::testing::queue::run_all(|| async {
            let queue = BreakerQueue::new(MemoryQueue::new(MAX_DELIVERIES), breaker())
                .with_retry(RetryPolicy::default());
            Arc::new(queue) as Arc<dyn Queue>
        })
        .await;
    }

    /// A queue that is down for its first `down` calls, counting every call.
    struct Flaky {
        down: u32,
        calls: AtomicU32,
    }

    #[async_trait]
    impl Queue for Flaky {
        async fn enqueue(&self, _: &Job) -> Result<(), QueueError> {
            if self.calls.fetch_add(1, Ordering::Relaxed) < self.down {
                Err(QueueError::Unavailable("connection refused".into()))
            } else {
                Ok(())
            }
        }
        async fn reserve(
            &self,
            _: &str,
            _: Duration,
            _: Duration,
        ) -> Result<Option<Delivery>, QueueError> {
            Ok(None)
        }
        async fn heartbeat(&self, _: &Delivery, _: Duration) -> Result<(), QueueError> {
            Err(QueueError::LeaseLost)
        }
        async fn ack(&self, _: &Delivery) -> Result<(), QueueError> {
            Ok(())
        }
        async fn nack(&self, _: &Delivery, _: Duration) -> Result<(), QueueError> {
            Ok(())
        }
        async fn depth(&self) -> Result<QueueDepth, QueueError> {
            Ok(QueueDepth::default())
        }
        async fn dead_letters(&self, _: u32) -> Result<Vec<DeadLetter>, QueueError> {
            Ok(Vec::new())
        }
        async fn ping(&self) -> Result<(), QueueError> {
            Ok(())
        }
    }

    fn job() -> Job {
        Job {
            deployment_id: DeploymentId::random(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_blip_is_retried_and_an_outage_opens_the_breaker() {
        let blip = BreakerQueue::new(
            Flaky {
                down: 1,
                calls: AtomicU32::new(0),
            },
            breaker(),
        )
        .with_retry(RetryPolicy::default());
        blip.enqueue(&job()).await.unwrap();
        assert_eq!(blip.inner.calls.load(Ordering::Relaxed), 2);
        assert_eq!(blip.breaker().state(), BreakerState::Closed);

        let outage = BreakerQueue::new(
            Flaky {
                down: u32::MAX,
                calls: AtomicU32::new(0),
            },
            breaker(),
        )
        .with_retry(RetryPolicy::default());
        for _ in 0..2 {
            let err = outage.enqueue(&job()).await.unwrap_err();
            assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
        }
        let tried = outage.inner.calls.load(Ordering::Relaxed);
        assert!(tried <= 2 * RetryPolicy::default().max_attempts, "{tried}");
        let Err(QueueError::Open(open)) = outage.enqueue(&job()).await else {
            panic!("an open breaker let an enqueue through");
        };
        assert_eq!(open.breaker, "queue");
        assert_eq!(
            outage.inner.calls.load(Ordering::Relaxed),
            tried,
            "it touched the queue"
        );
    }
}
