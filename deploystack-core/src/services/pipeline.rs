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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::archive::{self, ArchiveError};
use crate::build::{BuildContext, BuildError, BuildLog, SourceTree, sensitive_values};
use crate::events::{Event, emit_best_effort};
use crate::model::{
    BlobRef, ContentHash, Deployment, DeploymentError, DeploymentId, DeploymentStatus,
    EncodedVariant, FileEntry, LogLine, LogStream,
};
use crate::queue::Delivery;
use crate::repository::{PublishedBuild, RepositoryError};
use crate::routing::{self, RoutingConfig};
use crate::services::Services;
use crate::services::compression::{self, LocalVariant};
use crate::storage::{StorageError, download_to_file};

/// How often a running build's log is stored and its status checked for a cancel.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(1);

/// How many blobs are uploaded at once.
const UPLOAD_CONCURRENCY: usize = 8;

/// How many files are compressed at once: compression is CPU-bound, so one per core (at
/// least two, so a slow large file does not hold up the small ones).
fn compression_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

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

/// Why a build attempt stopped before publishing.
#[derive(Debug)]
enum Failure {
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
}

impl From<BuildError> for Failure {
    fn from(err: BuildError) -> Self {
        match err {
            BuildError::Failed { code, message } => Failure::User {
                code: code.to_owned(),
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
        } else {
            Failure::Internal(err.to_string())
        }
    }
}

impl From<StorageError> for Failure {
    fn from(err: StorageError) -> Self {
        Failure::Internal(err.to_string())
    }
}

impl From<RepositoryError> for Failure {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::LeaseLost => Failure::LeaseLost,
            other => Failure::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::Internal(err.to_string())
    }
}

fn user(code: &str, message: impl Into<String>) -> Failure {
    Failure::User {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// A file of the build output, ready to be stored and published.
#[derive(Debug)]
struct OutputFile {
    entry: FileEntry,
    local: PathBuf,
}

/// What `precompress` did.
#[derive(Debug, Default)]
struct Precompressed {
    /// Distinct contents that qualified for compression.
    files: usize,
    /// Variants taken over from earlier deployments.
    reused: usize,
    /// Variants compressed now, still to be stored.
    made: Vec<LocalVariant>,
}

/// What a successful build hands to `publish`.
#[derive(Debug)]
struct Built {
    strategy: String,
    /// How long the strategy's build took, in milliseconds.
    build_ms: u64,
    files: Vec<FileEntry>,
    routing: Option<RoutingConfig>,
    new_blobs: u64,
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

/// Why the heartbeat stopped a build, read by `process` once the build returns.
#[derive(Debug, Default)]
struct Stopped {
    /// Another attempt holds the deployment.
    lease_lost: AtomicBool,
    /// The deployment was canceled or deleted.
    canceled: AtomicBool,
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
        let scratch = tempfile::Builder::new()
            .prefix("deploystack-build-")
            .tempdir();
        let result = match &scratch {
            Err(err) => Err(Failure::Internal(err.to_string())),
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

    async fn build(
        &self,
        deployment: &Deployment,
        attempt: i64,
        log: &BuildLog,
        cancel: &CancellationToken,
        scratch: &Path,
        preset: &OnceLock<String>,
    ) -> Result<Built, Failure> {
        let services = &self.services;
        let archive_path = scratch.join("source.zip");
        match download_to_file(
            services.storage.as_ref(),
            &deployment.source_key,
            &archive_path,
        )
        .await
        {
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => {
                return Err(user(
                    "source_missing",
                    "the uploaded source of this deployment is gone; upload it again",
                ));
            }
            Err(err) => return Err(err.into()),
        }
        stop_if(cancel)?;

        let source_dir = scratch.join("source");
        std::fs::create_dir(&source_dir)?;
        let limits = services.config.archive_limits();
        let phase = Instant::now();
        let (archive_for_task, dir_for_task) = (archive_path.clone(), source_dir.clone());
        let extracted = tokio::task::spawn_blocking(move || {
            archive::extract(&archive_for_task, &dir_for_task, &limits)
        })
        .await
        .map_err(|err| Failure::Internal(err.to_string()))??;
        let _ = std::fs::remove_file(&archive_path);
        log.system(format!(
            "extracted {} files ({} bytes) in {} ms",
            extracted.files,
            extracted.bytes,
            phase.elapsed().as_millis()
        ));
        stop_if(cancel)?;

        let work_dir = scratch.join("work");
        std::fs::create_dir(&work_dir)?;
        let mut ctx = BuildContext {
            source: SourceTree::new(&source_dir),
            work_dir,
            log: log.clone(),
            cancel: cancel.clone(),
            settings: deployment.settings.clone(),
            env: deployment.env.clone(),
            project: deployment.project.clone(),
        };
        ctx.log.mask(sensitive_values(&ctx.env));
        let selection = services
            .strategies
            .select(&ctx.source, &ctx.settings)
            .await?;
        ctx.source = selection.source;
        let (strategy, detection) = (selection.strategy, selection.detection);
        log.system(format!(
            "preset: {} ({})",
            detection.strategy, detection.reason
        ));
        let _ = preset.set(strategy.name().to_owned());
        let waited = OffsetDateTime::now_utc() - deployment.created_at;
        emit_best_effort(
            services.events.as_ref(),
            Event::BuildStarted {
                deployment_id: deployment.id,
                attempt,
                preset: strategy.name().to_owned(),
                waited_ms: u64::try_from(waited.whole_milliseconds()).unwrap_or(0),
            },
        )
        .await;
        let phase = Instant::now();
        let output = strategy.build(&ctx).await?;
        stop_if(cancel)?;
        let build_ms = phase.elapsed().as_millis() as u64;
        log.system(format!("build finished in {build_ms} ms"));

        let output_dir = confine_output(&output.dir, &[&source_dir, &ctx.work_dir])?;
        let phase = Instant::now();
        let limits = OutputLimits {
            max_files: services.config.build_output_max_files,
            max_bytes: services.config.build_output_max_bytes,
        };
        let (mut files, routing) = tokio::task::spawn_blocking(move || {
            let files = collect_output(&output_dir, &limits)?;
            read_routing(files)
        })
        .await
        .map_err(|err| Failure::Internal(err.to_string()))??;
        for line in &routing.notes {
            log.system(line.clone());
        }
        let routing = routing.config;
        if files.is_empty() {
            return Err(user(
                "empty_output",
                "the build produced no files to publish",
            ));
        }
        let total: u64 = files.iter().map(|f| f.entry.size).sum();
        log.system(format!(
            "checked and hashed {} files ({total} bytes) in {} ms",
            files.len(),
            phase.elapsed().as_millis()
        ));

        let phase = Instant::now();
        let variants_dir = scratch.join("variants");
        std::fs::create_dir(&variants_dir)?;
        let precompressed = self.precompress(&mut files, &variants_dir, cancel).await?;
        log.system(format!(
            "precompressed {} text files: made {} variants, reused {} from earlier deployments, in {} ms",
            precompressed.files,
            precompressed.made.len(),
            precompressed.reused,
            phase.elapsed().as_millis()
        ));

        let phase = Instant::now();
        let blobs: Vec<(BlobRef, PathBuf)> = files
            .iter()
            .map(|f| {
                let blob = BlobRef {
                    sha256: f.entry.sha256,
                    size: f.entry.size,
                };
                (blob, f.local.clone())
            })
            .chain(precompressed.made.into_iter().map(|v| {
                let blob = BlobRef {
                    sha256: v.variant.sha256,
                    size: v.variant.size,
                };
                (blob, v.local)
            }))
            .collect();
        let new_blobs = self.store_blobs(&blobs, cancel).await?;
        log.system(format!(
            "stored {new_blobs} new blobs in {} ms (the rest were already stored)",
            phase.elapsed().as_millis()
        ));
        Ok(Built {
            strategy: strategy.name().to_owned(),
            build_ms,
            files: files.into_iter().map(|f| f.entry).collect(),
            routing,
            new_blobs,
        })
    }

    /// Give every compressible file of the output its brotli and gzip variants: reused from
    /// an earlier deployment of the same content when their blobs still exist, compressed
    /// otherwise (once per content, on the blocking pool, a few files at a time).
    async fn precompress(
        &self,
        files: &mut [OutputFile],
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Precompressed, Failure> {
        let mut sources: Vec<(ContentHash, u64, PathBuf)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for file in files.iter() {
            if compression::wants_variants(&file.entry.content_type, file.entry.size)
                && seen.insert(file.entry.sha256)
            {
                sources.push((file.entry.sha256, file.entry.size, file.local.clone()));
            }
        }
        if sources.is_empty() {
            return Ok(Precompressed::default());
        }
        let hashes: Vec<ContentHash> = sources.iter().map(|(hash, ..)| *hash).collect();
        let known = self.services.repository.known_encodings(&hashes).await?;
        let reusable = self.reusable_variants(known, cancel).await?;

        let mut chosen: std::collections::HashMap<ContentHash, Vec<EncodedVariant>> =
            reusable.clone();
        let work: Vec<_> = sources
            .iter()
            .filter(|(hash, ..)| !reusable.contains_key(hash))
            .map(|(hash, size, local)| {
                let (hash, size, local) = (*hash, *size, local.clone());
                let out_dir = out_dir.to_path_buf();
                let cancel = cancel.clone();
                async move {
                    stop_if(&cancel)?;
                    let variants = tokio::task::spawn_blocking(move || {
                        compression::compress_file(&local, &hash, size, &out_dir)
                    })
                    .await
                    .map_err(|err| Failure::Internal(err.to_string()))??;
                    Ok::<_, Failure>((hash, variants))
                }
            })
            .collect();
        let compressed: Vec<(ContentHash, Vec<LocalVariant>)> = futures_util::stream::iter(work)
            .buffer_unordered(compression_concurrency())
            .try_collect()
            .await?;
        let mut made = Vec::new();
        for (hash, variants) in compressed {
            chosen.insert(hash, variants.iter().map(|v| v.variant).collect());
            made.extend(variants);
        }
        for file in files.iter_mut() {
            if let Some(variants) = chosen.get(&file.entry.sha256) {
                file.entry.encodings.clone_from(variants);
            }
        }
        Ok(Precompressed {
            files: sources.len(),
            reused: reusable.values().map(Vec::len).sum(),
            made,
        })
    }

    /// The known variants whose blobs are all still stored, touched first so the collector
    /// spares them until this build publishes (the same protocol as `store_blobs`). A content
    /// with any variant missing is compressed again rather than published half-served.
    async fn reusable_variants(
        &self,
        known: std::collections::HashMap<ContentHash, Vec<EncodedVariant>>,
        cancel: &CancellationToken,
    ) -> Result<std::collections::HashMap<ContentHash, Vec<EncodedVariant>>, Failure> {
        let refs: Vec<BlobRef> = known
            .values()
            .flatten()
            .map(|v| BlobRef {
                sha256: v.sha256,
                size: v.size,
            })
            .collect();
        if refs.is_empty() {
            return Ok(known);
        }
        self.services.repository.touch_blobs(&refs).await?;
        let checks: Vec<_> = known
            .into_iter()
            .map(|(hash, variants)| {
                let storage = Arc::clone(&self.services.storage);
                let cancel = cancel.clone();
                async move {
                    for variant in &variants {
                        stop_if(&cancel)?;
                        if storage.head(&variant.sha256.blob_key()).await?.is_none() {
                            return Ok::<_, Failure>(None);
                        }
                    }
                    Ok(Some((hash, variants)))
                }
            })
            .collect();
        let found: Vec<_> = futures_util::stream::iter(checks)
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Store every blob the output needs that storage lacks; returns how many were written.
    async fn store_blobs(
        &self,
        blobs: &[(BlobRef, PathBuf)],
        cancel: &CancellationToken,
    ) -> Result<u64, Failure> {
        let mut unique: Vec<&(BlobRef, PathBuf)> = Vec::with_capacity(blobs.len());
        let mut seen = std::collections::HashSet::new();
        for blob in blobs {
            if seen.insert(blob.0.sha256) {
                unique.push(blob);
            }
        }
        let refs: Vec<BlobRef> = unique.iter().map(|(blob, _)| *blob).collect();
        // Touch first: from now on the collector spares these blobs for its grace period,
        // so one that exists now still exists when the manifest is published.
        self.services.repository.touch_blobs(&refs).await?;
        // Owned values only: the futures run concurrently and must not borrow across awaits.
        let uploads: Vec<_> = unique
            .into_iter()
            .map(|(blob, local)| {
                let storage = Arc::clone(&self.services.storage);
                let cancel = cancel.clone();
                let key = blob.sha256.blob_key();
                let local = local.clone();
                async move {
                    stop_if(&cancel)?;
                    if storage.head(&key).await?.is_some() {
                        return Ok::<bool, Failure>(false);
                    }
                    storage.put_file(&key, &local).await?;
                    Ok(true)
                }
            })
            .collect();
        let written: Vec<bool> = futures_util::stream::iter(uploads)
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(written.into_iter().filter(|w| *w).count() as u64)
    }

    async fn publish(
        &self,
        delivery: &Delivery,
        attempt: i64,
        built: Built,
        log: &BuildLog,
        started: Instant,
    ) -> Outcome {
        let id = delivery.job.deployment_id;
        let files = built.files.len() as u64;
        let bytes: u64 = built.files.iter().map(|f| f.size).sum();
        let new_blobs = built.new_blobs;
        let build_ms = built.build_ms;
        // Every line so far is stored first; the line saying what was published is stored
        // by the publish itself, in its transaction, so a READY deployment's log is complete
        // and a fenced-out publish leaves no such line.
        self.flush_log(&id, log).await;
        let published = LogLine {
            attempt,
            at: OffsetDateTime::now_utc(),
            stream: LogStream::System,
            message: format!(
                "published {files} files ({bytes} bytes, {new_blobs} new blobs), {} ms after the claim",
                started.elapsed().as_millis()
            ),
        };
        let build = PublishedBuild {
            strategy: built.strategy,
            files: built.files,
            routing: built.routing,
            log: vec![published],
        };
        match self.services.repository.publish(&id, attempt, &build).await {
            Ok(deployment) => {
                // The log of a published deployment is stored before the ack, so a crash
                // between the two loses no line of it.
                self.flush_log(&id, log).await;
                self.ack(delivery).await;
                self.remove_source(&deployment).await;
                let events = self.services.events.as_ref();
                emit_best_effort(
                    events,
                    Event::BuildCompleted {
                        deployment_id: id,
                        attempt,
                        preset: build.strategy.clone(),
                        duration_ms: started.elapsed().as_millis() as u64,
                        build_ms,
                        files,
                        bytes,
                        new_blobs,
                    },
                )
                .await;
                emit_best_effort(events, Event::DeploymentReady { deployment_id: id }).await;
                Outcome::Ready
            }
            Err(err) => {
                let preset = Some(build.strategy);
                self.handle_failure(delivery, attempt, err.into(), log, started, preset)
                    .await
            }
        }
    }

    async fn handle_failure(
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
            Failure::Internal(detail) => {
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
                self.nack(delivery, backoff(delivery.deliveries)).await;
                Outcome::Retrying
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // One attempt's facts; a struct would only rename them.
    async fn fail(
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
    async fn canceled(&self, delivery: &Delivery, log: &BuildLog) -> Outcome {
        let id = delivery.job.deployment_id;
        tracing::info!(%id, "build canceled");
        log.system("build canceled");
        self.flush_log(&id, log).await;
        self.ack(delivery).await;
        Outcome::Canceled
    }

    /// Whether the deployment is `CANCELED` now (canceled or deleted). A failed read says no:
    /// the attempt then ends the way it would have without the question.
    async fn canceled_meanwhile(&self, id: &DeploymentId) -> bool {
        self.services
            .repository
            .get_deployment(id)
            .await
            .is_ok_and(|deployment| deployment.status == DeploymentStatus::Canceled)
    }

    async fn remove_source(&self, deployment: &Deployment) {
        if let Err(err) = self.services.storage.delete(&deployment.source_key).await {
            tracing::warn!(id = %deployment.id, error = %err, "could not remove the build source");
        }
    }

    async fn flush_log(&self, id: &DeploymentId, log: &BuildLog) {
        let live = LiveLog {
            log: log.clone(),
            flushing: Arc::clone(&self.flushing),
        };
        flush_log(&self.services, id, &live).await;
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

/// A build's log and the lock its flushes take turns on.
struct LiveLog {
    log: BuildLog,
    flushing: Arc<tokio::sync::Mutex<()>>,
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
async fn heartbeat(
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

fn stop_if(cancel: &CancellationToken) -> Result<(), Failure> {
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

/// The output folder, resolved, if it lies inside one of `allowed` (the source and work
/// folders). Resolving first matters: `read_dir` follows a link, so an output folder that is
/// itself a link (or sits under one) would otherwise publish whatever it points at.
fn confine_output(dir: &Path, allowed: &[&Path]) -> Result<PathBuf, Failure> {
    let resolved = std::fs::canonicalize(dir).map_err(|_| {
        user(
            "output_missing",
            "the build did not produce its output folder",
        )
    })?;
    let inside = allowed
        .iter()
        .any(|root| std::fs::canonicalize(root).is_ok_and(|root| resolved.starts_with(root)));
    if !inside {
        return Err(user(
            "unsafe_output",
            "the build output folder is a symbolic link to outside the build; only folders inside the build are published",
        ));
    }
    if !resolved.is_dir() {
        return Err(user("output_missing", "the build output is not a folder"));
    }
    Ok(resolved)
}

/// How much a build may publish (`build_output_max_files`, `build_output_max_bytes`).
#[derive(Debug, Clone, Copy)]
struct OutputLimits {
    max_files: usize,
    max_bytes: u64,
}

/// Walk the build output: every entry must be a regular file or a folder. Symbolic links,
/// hard links, devices, sockets and pipes are refused: output is hostile data, and a link
/// would let it publish files from outside its folder. Past the limits the walk stops with
/// `output_too_large` before hashing more.
fn collect_output(root: &Path, limits: &OutputLimits) -> Result<Vec<OutputFile>, Failure> {
    use std::os::unix::fs::MetadataExt;

    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let local = entry.path();
            let relative = local
                .strip_prefix(root)
                .map_err(|err| Failure::Internal(err.to_string()))?;
            let Some(path) = relative.to_str().map(str::to_owned) else {
                return Err(user(
                    "invalid_output",
                    format!("the build output has a file name that is not UTF-8: {relative:?}"),
                ));
            };
            let meta = std::fs::symlink_metadata(&local)?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                return Err(user(
                    "unsafe_output",
                    format!(
                        "the build output contains a symbolic link: {path:?}; only regular files and folders are published"
                    ),
                ));
            } else if kind.is_dir() {
                folders.push(local);
            } else if kind.is_file() {
                if meta.nlink() > 1 {
                    return Err(user(
                        "unsafe_output",
                        format!(
                            "the build output contains a hard link: {path:?}; only regular files and folders are published"
                        ),
                    ));
                }
                total = total.saturating_add(meta.len());
                if files.len() >= limits.max_files || total > limits.max_bytes {
                    return Err(user(
                        "output_too_large",
                        format!(
                            "the build output is larger than allowed (at most {} files and {} bytes)",
                            limits.max_files, limits.max_bytes
                        ),
                    ));
                }
                let sha256 = hash_file(&local)?;
                files.push(OutputFile {
                    entry: FileEntry {
                        content_type: content_type_for(&path),
                        path,
                        sha256,
                        size: meta.len(),
                        encodings: Vec::new(),
                    },
                    local,
                });
            } else {
                return Err(user(
                    "unsafe_output",
                    format!(
                        "the build output contains a special file (device, socket or pipe): {path:?}"
                    ),
                ));
            }
        }
    }
    files.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok(files)
}

/// The routing configuration of a build output and what the build log should say about it.
struct RoutingFiles {
    config: Option<RoutingConfig>,
    notes: Vec<String>,
}

/// Compile the routing files at the root of the output (see [`routing::CONFIG_FILES`]) and take
/// them out of the manifest: like Vercel and Netlify, we never serve them. An invalid file is
/// the user's error, so the deployment ends in `ERROR` before anything is stored or published.
fn read_routing(files: Vec<OutputFile>) -> Result<(Vec<OutputFile>, RoutingFiles), Failure> {
    let (config_files, files): (Vec<OutputFile>, Vec<OutputFile>) = files
        .into_iter()
        .partition(|f| routing::CONFIG_FILES.contains(&f.entry.path.as_str()));
    let mut read_error = None;
    let mut notes = Vec::new();
    let config = RoutingConfig::from_files(
        |name| {
            let file = config_files.iter().find(|f| f.entry.path == name)?;
            // One byte past the limit is enough for the parser to refuse the file, so an
            // oversized one is never read into memory whole.
            let limit = routing::MAX_CONFIG_BYTES as u64 + 1;
            let mut bytes = Vec::new();
            let read = std::fs::File::open(&file.local).and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, limit), &mut bytes)
            });
            match read {
                Ok(_) => Some(bytes),
                Err(err) => {
                    read_error = Some(err);
                    None
                }
            }
        },
        |note| notes.push(note),
    );
    if let Some(err) = read_error {
        return Err(err.into());
    }
    let config = config.map_err(|err| user(err.code(), err.to_string()))?;
    Ok((files, RoutingFiles { config, notes }))
}

fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(ContentHash::from_bytes(hasher.finalize().into()))
}

/// The `Content-Type` a file is served with, from its extension; text gets `charset=utf-8`
/// and anything unknown is `application/octet-stream` (never sniffed).
pub fn content_type_for(path: &str) -> String {
    let Some(mime) = mime_guess::from_path(path).first() else {
        return "application/octet-stream".to_owned();
    };
    let essence = mime.essence_str();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
        );
    if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_exact_and_text_is_utf8() {
        assert_eq!(content_type_for("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_for("a/site.css"), "text/css; charset=utf-8");
        assert_eq!(content_type_for("logo.png"), "image/png");
        assert_eq!(
            content_type_for("data.bin.unknownext"),
            "application/octet-stream"
        );
        assert_eq!(content_type_for("noext"), "application/octet-stream");
        assert!(content_type_for("app.js").ends_with("javascript; charset=utf-8"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1500));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(50) <= Duration::from_secs(90));
    }

    const LIMITS: OutputLimits = OutputLimits {
        max_files: 100,
        max_bytes: 1 << 20,
    };

    #[test]
    fn output_past_the_file_or_byte_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            std::fs::write(dir.path().join(format!("{i}.txt")), "12345").unwrap();
        }
        assert_eq!(collect_output(dir.path(), &LIMITS).unwrap().len(), 3);
        for limits in [
            OutputLimits {
                max_files: 2,
                ..LIMITS
            },
            OutputLimits {
                max_bytes: 14,
                ..LIMITS
            },
        ] {
            match collect_output(dir.path(), &limits) {
                Err(Failure::User { code, .. }) => assert_eq!(code, "output_too_large"),
                other => panic!("expected output_too_large, got {other:?}"),
            }
        }
    }

    #[test]
    fn output_with_links_or_special_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/ok.txt"), "fine").unwrap();
        let files = collect_output(dir.path(), &LIMITS).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].entry.path, "sub/ok.txt");
        assert_eq!(files[0].entry.sha256, ContentHash::of(b"fine"));

        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("leak")).unwrap();
        match collect_output(dir.path(), &LIMITS) {
            Err(Failure::User { code, message }) => {
                assert_eq!(code, "unsafe_output");
                assert!(message.contains("symbolic link"), "{message}");
            }
            other => panic!("expected unsafe_output, got {other:?}"),
        }
        std::fs::remove_file(dir.path().join("leak")).unwrap();

        std::fs::hard_link(dir.path().join("sub/ok.txt"), dir.path().join("twin")).unwrap();
        assert!(matches!(
            collect_output(dir.path(), &LIMITS),
            Err(Failure::User { code, .. }) if code == "unsafe_output"
        ));
        std::fs::remove_file(dir.path().join("twin")).unwrap();

        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        match collect_output(dir.path(), &LIMITS) {
            Err(Failure::User { code, message }) => {
                assert_eq!(code, "unsafe_output");
                assert!(message.contains("special file"), "{message}");
            }
            other => panic!("expected unsafe_output, got {other:?}"),
        }
    }
}
