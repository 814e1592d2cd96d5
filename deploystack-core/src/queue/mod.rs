//! The `Queue` port: at-least-once delivery of build jobs, with leases.
//!
//! # Contract
//! - `enqueue` is durable as far as the adapter is (memory: until the process exits).
//! - `reserve` hands a job to one consumer under a lease. Until the lease runs out (extend it
//!   with `heartbeat`) no other consumer gets it; after that it is delivered again. Every
//!   delivery counts; a job delivered more than `max_deliveries` times is moved to the
//!   dead-letter list instead of being delivered again.
//! - `ack` removes the job for good. `nack` puts it back, visible again after `retry_after`.
//! - `heartbeat`, `ack` and `nack` with a delivery whose lease was lost (it expired and the
//!   job went to someone else) fail with `LeaseLost`.
//! - Jobs are hints, not state: the repository is the source of truth, and the pipeline's
//!   claim there makes duplicate deliveries harmless.
//!
//! Adapters, each passing `crate::testing::queue::run_all`:
//! - [`MemoryQueue`] (always built): the default; only within one process.
//! - `RedisQueue` (feature `redis`): Redis Streams and a consumer group, shared by every node
//!   of a cluster; leases are kept by Redis's clock, so nodes need not agree on the time.
//!
//! `Arc<Q>` and `Box<Q>` are queues too (`forward`), so a decorator can wrap what
//! [`Services`](crate::Services) holds.

mod forward;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::DeploymentId;

pub use memory::MemoryQueue;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisQueue;

/// What can go wrong with the queue, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The delivery's lease ran out and the job may be with another consumer.
    #[error("the lease on this delivery was lost")]
    LeaseLost,
    /// The queue cannot be reached; worth retrying.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// A stored job could not be decoded.
    #[error("corrupt job: {0}")]
    Corrupt(String),
    /// The queue's settings cannot work (a malformed URL, say); retrying will not help.
    #[error("queue misconfigured: {0}")]
    Misconfigured(String),
    /// The queue has been failing and its circuit breaker refused the call without trying:
    /// retry after `retry_after` (see [`crate::breaker`]).
    #[error("queue unavailable: {0}")]
    Open(crate::breaker::BreakerOpen),
}

/// A unit of work: build this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The deployment to build.
    pub deployment_id: DeploymentId,
}

/// One delivery of a job to one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies this delivery to `heartbeat`, `ack` and `nack`.
    pub delivery_id: String,
    /// The job.
    pub job: Job,
    /// How many times this job has been delivered, this time included (1 on first delivery).
    pub deliveries: u32,
}

/// A job that was delivered too often and will not be delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The job.
    pub job: Job,
    /// How many times it was delivered.
    pub deliveries: u32,
}

/// How much work the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueDepth {
    /// Jobs waiting to be delivered, delayed ones included.
    pub waiting: u64,
    /// Jobs delivered and not yet acked.
    pub in_flight: u64,
    /// Jobs in the dead-letter list.
    pub dead: u64,
}

/// At-least-once job delivery with leases. See the module docs for the contract.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Add a job.
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;

    /// Wait up to `wait` for a job and lease it to `consumer` for `lease`.
    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError>;

    /// Extend the lease of a delivery to `lease` from now.
    async fn heartbeat(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError>;

    /// The job is done: remove it.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// The job could not be done now: deliver it again after `retry_after` (or dead-letter it
    /// if it has been delivered `max_deliveries` times).
    async fn nack(&self, delivery: &Delivery, retry_after: Duration) -> Result<(), QueueError>;

    /// How much work is waiting, running and dead.
    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Up to `limit` dead-lettered jobs, oldest first.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError>;

    /// Whether this queue only works inside one process (the server then runs workers itself).
    fn is_in_process(&self) -> bool {
        false
    }

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), QueueError>;
}
