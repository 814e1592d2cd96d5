//! A `deploystack-worker` assembled from the libraries, with two additions the crash tests
//! need and that show how to extend a worker from your own code:
//!
//! - a [`BuildStrategy`] of its own, registered before the built-in ones: a site holding
//!   `slow-build.txt` (a number of milliseconds) takes that long to build, then is published
//!   as it is — a stand-in for a real, slow framework build;
//! - a decorator over the [`Queue`] port: with `SLOW_WORKER_ACK_PAUSE_SECS=N` every `ack`
//!   waits N seconds first (and says so on stderr), which opens the window between "published"
//!   and "acked" that a crash test kills the worker in.
//!
//! Everything else is the real worker: the same configuration (`DEPLOYSTACK_*` variables),
//! `Services::from_config`, and `deploystack_worker::run` until SIGTERM.
//!
//! ```text
//! DEPLOYSTACK_QUEUE_URL=redis://127.0.0.1:6379 cargo run --example slow_worker --features redis
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploystack_core::Services;
use deploystack_core::build::{
    BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
};
use deploystack_core::queue::{DeadLetter, Delivery, Job, Queue, QueueDepth, QueueError};

/// The marker file: its content is how many milliseconds the build takes.
const MARKER: &str = "slow-build.txt";

/// Builds take as long as the marker says, then publish the source as it is.
struct SlowStrategy;

#[async_trait]
impl BuildStrategy for SlowStrategy {
    fn name(&self) -> &str {
        "slow"
    }

    async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        Ok(source.has_file(MARKER).then(|| Detection {
            strategy: "slow".to_owned(),
            reason: format!("{MARKER} asks for a slow build"),
        }))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        let text = tokio::fs::read_to_string(ctx.source.root().join(MARKER)).await?;
        let millis: u64 = text.trim().parse().map_err(|_| BuildError::Failed {
            code: "bad_marker".into(),
            message: format!("{MARKER} must hold a number of milliseconds, not {text:?}"),
        })?;
        ctx.log.system(format!("slow build: sleeping {millis} ms"));
        tokio::select! {
            _ = ctx.cancel.cancelled() => Err(BuildError::Canceled),
            _ = tokio::time::sleep(Duration::from_millis(millis)) => Ok(BuildOutput {
                dir: ctx.source.root().to_path_buf(),
            }),
        }
    }
}

/// Waits before every ack; everything else goes straight to the real queue.
struct PauseBeforeAck {
    inner: Arc<dyn Queue>,
    pause: Duration,
}

#[async_trait]
impl Queue for PauseBeforeAck {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.inner.enqueue(job).await
    }

    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        self.inner.reserve(consumer, lease, wait).await
    }

    async fn heartbeat(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError> {
        self.inner.heartbeat(delivery, lease).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        eprintln!(
            "slow_worker: pausing {} s before acking {}",
            self.pause.as_secs(),
            delivery.job.deployment_id
        );
        tokio::time::sleep(self.pause).await;
        self.inner.ack(delivery).await
    }

    async fn nack(&self, delivery: &Delivery, retry_after: Duration) -> Result<(), QueueError> {
        self.inner.nack(delivery, retry_after).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(limit).await
    }

    fn is_in_process(&self) -> bool {
        self.inner.is_in_process()
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.inner.ping().await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    deploystack_core::config::cli::init_tracing();
    let config = deploystack_core::config::cli::load()?;
    let workers = std::env::var("DEPLOYSTACK_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut services = Services::from_config(config)
        .await?
        .with_strategy(Arc::new(SlowStrategy));
    if services.queue.is_in_process() {
        return Err("set DEPLOYSTACK_QUEUE_URL to a shared queue (redis://…)".into());
    }
    if let Some(secs) = std::env::var("SLOW_WORKER_ACK_PAUSE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        services.queue = Arc::new(PauseBeforeAck {
            inner: services.queue.clone(),
            pause: Duration::from_secs(secs),
        });
    }
    deploystack_worker::run(
        services,
        workers,
        deploystack_core::config::cli::shutdown_signal(),
    )
    .await;
    Ok(())
}
