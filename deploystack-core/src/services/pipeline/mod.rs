//! The build pipeline: what a worker does with one delivery of a job.
//!
//! claim (compare-and-set, bumps the attempt) → heartbeat while working → download and safely
//! extract the source → pick a strategy and build → walk the output, rejecting links and
//! special files → hash every file → precompress text assets (brotli, gzip; see
//! [`compression`](crate::services::compression)) → store missing blobs → publish the manifest and flip to
//! `READY` in one transaction fenced by the attempt → ack → emit.
//!
//! Failures are sorted by who can fix them: the user's (a bad archive, a failing build, unsafe
//! output) end the deployment in `ERROR` with a code, a message and the log; ours (storage or
//! database trouble) give the claim back and retry with exponential backoff and jitter, and
//! end in `ERROR` only on the last allowed delivery. A stop request (shutdown) gives the claim
//! back at once so another worker, or this one after a restart, builds it.
//!
//! # Live logs and cancel
//! While a build runs, its heartbeat task wakes every [`LIVE_INTERVAL`] (or more often with a
//! short lease): it stores the log lines written since the last wake, so followers of the log
//! see them within about a second, and reads the deployment's status. A `CANCELED` status (a
//! user's cancel or a delete) fires the build's cancellation token at once — the sandbox then
//! kills the build's process group — and the attempt ends recording nothing more than the
//! `build canceled` log line: the cancel already wrote the final status. Reading the status
//! every second costs one indexed read per running build; the lease itself is renewed (a
//! write) only every third of the lease.
//!
//! # Layout
//! This file is the flow: [`Pipeline::process`] claims, runs the steps and ends the attempt.
//! Each step has its own file: `lease.rs` (heartbeat, live log, cancel), `build.rs` (fetch
//! and extract the source, run a strategy), `output.rs` (walk and check the output, read its
//! routing files), `precompress.rs` (brotli and gzip variants), `publish.rs` (store blobs,
//! publish the manifest and flip to `READY`), `failure.rs` (how each kind of failure ends
//! the attempt), `source.rs` (sources given as a manifest of blobs: a static site is
//! published straight from it, anything else laid out for its build).

mod build;
mod failure;
mod lease;
mod output;
mod precompress;
mod publish;
mod source;

pub use failure::backoff;
pub use lease::LIVE_INTERVAL;
pub use output::content_type_for;

use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::build::BuildLog;
use crate::model::{Deployment, is_manifest_source};
use crate::queue::Delivery;
use crate::services::Services;

use failure::{Failure, user};
use lease::{LiveLog, Stopped, heartbeat};
use publish::Built;

/// How many blobs are uploaded at once.
const UPLOAD_CONCURRENCY: usize = 8;

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Published: the deployment is `READY`.
    Ready,
    /// Ended in `ERROR` (the user's problem, or ours after the last retry).
    Failed,
    /// Nothing to claim: a duplicate or stale delivery, or a final or deleted deployment.
    Skipped,
    /// Given back because the worker is stopping; it will be built again.
    Requeued,
    /// Our side failed; the job comes back after a backoff.
    Retrying,
    /// Another worker holds the deployment now; this one published nothing.
    LeaseLost,
    /// The deployment was canceled (or deleted) while this attempt ran; it published nothing
    /// and recorded nothing but its log.
    Canceled,
}

/// Runs deliveries through the pipeline on behalf of one worker.
#[derive(Debug, Clone)]
pub struct Pipeline {
    services: Services,
    /// Recorded as the lease owner, so operators can see who builds what.
    worker_id: String,
    /// Held while log lines are drained and stored: the heartbeat and the pipeline both store
    /// lines, and two appends running at once could commit in the wrong order.
    flushing: Arc<tokio::sync::Mutex<()>>,
}

impl Pipeline {
    /// A pipeline for the worker named `worker_id`.
    pub fn new(services: Services, worker_id: impl Into<String>) -> Self {
        Self {
            services,
            worker_id: worker_id.into(),
            flushing: Arc::default(),
        }
    }

    /// Process one delivery to the end: claim, build, publish or fail, ack or nack. `stop`
    /// asks the build to give its job back (shutdown); it never publishes half a site.
    pub async fn process(&self, delivery: &Delivery, stop: &CancellationToken) -> Outcome {
        let id = delivery.job.deployment_id;
        let lease = self.services.config.lease();
        let claim = match self
            .services
            .repository
            .claim_deployment(&id, &self.worker_id, lease)
            .await
        {
            Ok(Some(claim)) => claim,
            Ok(None) => {
                tracing::debug!(%id, "nothing to claim (duplicate, stale or final); acking");
                self.ack(delivery).await;
                return Outcome::Skipped;
            }
            Err(err) => {
                tracing::warn!(%id, error = %err, "claim failed; retrying later");
                self.nack(delivery, backoff(delivery.deliveries)).await;
                return Outcome::Retrying;
            }
        };
        let attempt = claim.attempt;
        let log = BuildLog::new(attempt);
        let cancel = stop.child_token();
        let stopped = Arc::new(Stopped::default());
        let heartbeat_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat(
            self.services.clone(),
            delivery.clone(),
            attempt,
            LiveLog {
                log: log.clone(),
                flushing: Arc::clone(&self.flushing),
            },
            cancel.clone(),
            Arc::clone(&stopped),
            heartbeat_stop.clone(),
        ));
        let preset = OnceLock::new();

        let started = Instant::now();
        log.system(format!(
            "build attempt {attempt} started by worker {}",
            self.worker_id
        ));
        let timeout = self.services.config.build_timeout();
        // Under the data directory when the services came from the configuration, so a
        // crash leaves nothing behind that the next start does not sweep.
        let scratch = self.services.scratch.folder("build-");
        let result = match &scratch {
            Err(err) => Err(Failure::from(std::io::Error::new(
                err.kind(),
                err.to_string(),
            ))),
            Ok(scratch) => match tokio::time::timeout(
                timeout,
                self.build(
                    &claim.deployment,
                    attempt,
                    &log,
                    &cancel,
                    scratch.path(),
                    &preset,
                ),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(user(
                    "build_timeout",
                    format!(
                        "the build did not finish within {} seconds",
                        timeout.as_secs()
                    ),
                )),
            },
        };
        // Removing thousands of files blocks; keep it off the async threads.
        if let Ok(scratch) = scratch {
            let _ = tokio::task::spawn_blocking(move || drop(scratch)).await;
        }
        // A build that failed may have failed because of a cancel the heartbeat has not
        // seen yet (a killed command, a source removed by the cancel): ask once.
        if result.is_err()
            && !stopped.canceled.load(Ordering::SeqCst)
            && self.canceled_meanwhile(&id).await
        {
            stopped.canceled.store(true, Ordering::SeqCst);
        }
        let result = if stopped.canceled.load(Ordering::SeqCst) {
            Err(Failure::Canceled)
        } else {
            match result {
                Err(Failure::Stopped) if stopped.lease_lost.load(Ordering::SeqCst) => {
                    Err(Failure::LeaseLost)
                }
                other => other,
            }
        };

        // Publish (or fail) while the heartbeat still holds the lease, then stop it.
        let preset = preset.get().cloned();
        let outcome = match result {
            Ok(built) => self.publish(delivery, attempt, built, &log, started).await,
            Err(failure) => {
                self.handle_failure(delivery, attempt, failure, &log, started, preset)
                    .await
            }
        };
        heartbeat_stop.cancel();
        let _ = heartbeat.await;
        self.flush_log(&id, &log).await;
        outcome
    }

    /// The steps of one attempt, in order; each checks for a stop between phases.
    async fn build(
        &self,
        deployment: &Deployment,
        attempt: i64,
        log: &BuildLog,
        cancel: &CancellationToken,
        scratch: &Path,
        preset: &OnceLock<String>,
    ) -> Result<Built, Failure> {
        let manifest = if is_manifest_source(&deployment.source_key) {
            Some(self.source_files(deployment).await?)
        } else {
            None
        };
        let source_dir = scratch.join("source");
        if let Some(files) = &manifest
            && let Some(direct) = self
                .publish_directly(
                    deployment,
                    attempt,
                    files,
                    scratch,
                    &source_dir,
                    log,
                    cancel,
                )
                .await?
        {
            let _ = preset.set("static".to_owned());
            let mut files = direct.files;
            let made = self
                .precompress_output(&mut files, scratch, log, cancel)
                .await?;
            let new_blobs = self.store_output(&files, true, made, log, cancel).await?;
            return Ok(Built {
                strategy: "static".to_owned(),
                build_ms: 0,
                files: files.into_iter().map(|f| f.entry).collect(),
                routing: direct.routing,
                new_blobs,
            });
        }
        let ran = self
            .run_build(
                deployment,
                manifest.as_deref(),
                attempt,
                log,
                cancel,
                scratch,
                preset,
            )
            .await?;
        let (mut files, routing) = self.check_output(&ran, log).await?;
        let made = self
            .precompress_output(&mut files, scratch, log, cancel)
            .await?;
        let new_blobs = self.store_output(&files, false, made, log, cancel).await?;
        Ok(Built {
            strategy: ran.strategy,
            build_ms: ran.build_ms,
            files: files.into_iter().map(|f| f.entry).collect(),
            routing,
            new_blobs,
        })
    }

    async fn remove_source(&self, deployment: &Deployment) {
        // A manifest source is kept with its deployment (it can be built again) and has no
        // object of its own.
        if is_manifest_source(&deployment.source_key) {
            return;
        }
        if let Err(err) = self.services.storage.delete(&deployment.source_key).await {
            tracing::warn!(id = %deployment.id, error = %err, "could not remove the build source");
        }
    }

    async fn ack(&self, delivery: &Delivery) {
        if let Err(err) = self.services.queue.ack(delivery).await {
            tracing::warn!(id = %delivery.job.deployment_id, error = %err, "ack failed; a redelivery will find nothing to claim");
        }
    }

    async fn nack(&self, delivery: &Delivery, retry_after: Duration) {
        if let Err(err) = self.services.queue.nack(delivery, retry_after).await {
            tracing::warn!(id = %delivery.job.deployment_id, error = %err, "nack failed; the lease will expire and the job come back");
        }
    }
}
