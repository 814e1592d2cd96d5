//! The build worker pool: loops that reserve jobs from the queue and run each through the
//! [`pipeline`](super::pipeline), plus the maintenance loops every worker process runs — the
//! [`reconciler`](super::reconciler) (enqueue again what the queue lost), the blob
//! collector, the retention sweep and the background re-check of pending custom domains
//! ([`domains::recheck_due`](super::domains::recheck_due)).
//!
//! The `deploystack-worker` binary runs [`run`] against a shared queue;
//! `deploystack_http::serve` runs the same pool in-process when the queue only exists inside
//! it (the embedded shape).
//!
//! # Why in the core library?
//! Serving with in-process builds needs this pool, and it only ties ports and flows together.
//! In its own crate, every embedder that calls `deploystack_http::serve` compiled that crate
//! and what its binary needs (clap, the log setup); here it costs nothing extra.
//!
//! # Shutdown
//! When `shutdown` resolves, the pool stops reserving, gives running builds the configured
//! grace period to finish, then cancels them; a canceled build gives its claim back and nacks
//! its job, so another worker (or this one after a restart) builds it. Nothing is half
//! published: publishing is one fenced transaction.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Services;
use super::deployments::collect_garbage;
use super::pipeline::{Outcome, Pipeline};
use super::reconciler::reconcile;
use crate::repository::idempotency::IDEMPOTENCY_TTL;

/// How long one `reserve` call waits for a job before checking for shutdown again.
const RESERVE_WAIT: Duration = Duration::from_secs(5);
/// How often unreferenced blobs are collected.
const COLLECT_EVERY: Duration = Duration::from_secs(60);
/// How often previews past their project's age limit are deleted (a deploy applies the
/// policy at once; this catches projects nobody deploys to).
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Run `workers` build loops plus the maintenance loops until `shutdown` resolves, then drain
/// as described in the module docs. Returns when every build has finished or been handed back.
pub async fn run(services: Services, workers: usize, shutdown: impl Future<Output = ()>) {
    let stop_reserving = CancellationToken::new();
    let cancel_builds = CancellationToken::new();
    let process = format!(
        "{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut loops = JoinSet::new();
    for n in 0..workers {
        let name = format!("worker-{process}-{n}");
        let pipeline = Pipeline::new(services.clone(), name.clone());
        loops.spawn(build_loop(
            services.clone(),
            pipeline,
            name,
            stop_reserving.clone(),
            cancel_builds.clone(),
        ));
    }
    let maintenance = tokio::spawn(maintenance_loop(services.clone(), stop_reserving.clone()));
    tracing::info!(workers, "build workers started");

    shutdown.await;
    stop_reserving.cancel();
    let grace = services.config.shutdown_grace();
    tracing::info!(
        grace_secs = grace.as_secs(),
        "stopping workers; running builds may finish within the grace period"
    );
    let drained =
        tokio::time::timeout(grace, async { while loops.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("grace period over; handing running builds back to the queue");
        cancel_builds.cancel();
        while loops.join_next().await.is_some() {}
    }
    let _ = maintenance.await;
    tracing::info!("build workers stopped");
}

async fn build_loop(
    services: Services,
    pipeline: Pipeline,
    consumer: String,
    stop_reserving: CancellationToken,
    cancel_builds: CancellationToken,
) {
    let lease = services.config.lease();
    let mut failures: u32 = 0;
    while !stop_reserving.is_cancelled() {
        let reserved = tokio::select! {
            _ = stop_reserving.cancelled() => break,
            reserved = services.queue.reserve(&consumer, lease, RESERVE_WAIT) => reserved,
        };
        match reserved {
            Ok(Some(delivery)) => {
                failures = 0;
                let id = delivery.job.deployment_id;
                let outcome = pipeline.process(&delivery, &cancel_builds).await;
                match outcome {
                    Outcome::Ready | Outcome::Skipped => tracing::debug!(%id, ?outcome, "job done"),
                    _ => tracing::info!(%id, ?outcome, "job done"),
                }
            }
            Ok(None) => failures = 0,
            Err(err) => {
                // The queue is down: back off, but keep watching for shutdown.
                failures = failures.saturating_add(1);
                // While the queue's circuit breaker is open, ask again when its cool-down
                // ends (the probe that may close it) rather than after a backoff that keeps
                // growing through the outage and would idle the worker long after it.
                let pause = match &err {
                    crate::queue::QueueError::Open(open) => open.retry_after,
                    _ => super::pipeline::backoff(failures),
                };
                tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "cannot reserve a job");
                tokio::select! {
                    _ = stop_reserving.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Reconciles, collects garbage, purges expired idempotency keys, sweeps retention and
/// re-checks pending custom domains periodically. With an in-process queue the first
/// reconciliation takes every queued deployment (that queue starts empty after a restart); a
/// shared queue still holds them, so a worker joining a cluster does not enqueue them twice.
async fn maintenance_loop(services: Services, stop: CancellationToken) {
    let mut first = services.queue.is_in_process();
    let stalled_after = services.config.stalled_after();
    let mut reconcile_tick = tokio::time::interval(services.config.reconcile_every());
    let mut collect_tick = tokio::time::interval(COLLECT_EVERY);
    let mut retention_tick = tokio::time::interval(RETENTION_EVERY);
    let mut domains_tick = tokio::time::interval(services.config.domain_recheck_every());
    domains_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = reconcile_tick.tick() => {
                // At start, everything queued up to now (a second of slack covers clock
                // granularity); later, only what has waited a while.
                let older_than = if first {
                    OffsetDateTime::now_utc() + Duration::from_secs(1)
                } else {
                    OffsetDateTime::now_utc() - stalled_after
                };
                first = false;
                if let Err(err) = reconcile(&services, older_than, 500).await {
                    tracing::warn!(error = %err, "reconciliation failed");
                }
            }
            _ = domains_tick.tick() => {
                // Pending custom domains whose re-check is due, claimed so that several
                // processes never look the same domain up at once.
                if let Err(err) = super::domains::recheck_due(&services).await {
                    tracing::warn!(error = %err, "re-checking pending domains failed");
                }
            }
            _ = collect_tick.tick() => {
                if let Err(err) = collect_garbage(&services, 1000).await {
                    tracing::warn!(error = %err, "blob collection failed");
                }
                // Answers of idempotent requests are kept for a day.
                let expired = OffsetDateTime::now_utc() - IDEMPOTENCY_TTL;
                if let Err(err) = services.repository.purge_idempotency_keys(expired).await {
                    tracing::warn!(error = %err, "purging expired idempotency keys failed");
                }
            }
            _ = retention_tick.tick() => {
                if let Err(err) = super::projects::sweep_retention(&services).await {
                    tracing::warn!(error = %err, "the retention sweep failed");
                }
            }
        }
    }
}
