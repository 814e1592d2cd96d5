//! The `Repository` port: the source of truth for deployments, builds, logs, files and blobs.
//!
//! # Contract
//! - Every method is atomic: it either happens entirely or not at all.
//! - `claim_deployment` is a compare-and-set that bumps `attempt`; the returned attempt is a
//!   fencing token. `renew_lease`, `release_claim`, `publish` and `fail_deployment` only act
//!   when the token is still the current one, so a stale or zombie worker changes nothing.
//! - `publish` writes the whole file manifest and flips the status to `READY` in one
//!   transaction: a deployment is never visible half-published.
//! - `cancel_deployment` ends a `QUEUED` or `BUILDING` deployment in `CANCELED` and clears
//!   its lease in one compare-and-set, so the canceled attempt is fenced out like a stale one:
//!   its worker can publish or fail nothing afterwards.
//! - Log lines get a sequence number when stored, increasing in append order across every
//!   deployment, so `logs_after` lets a follower read only what is new.
//! - Timestamps are the repository's own clock, so every node agrees on lease expiry.
//!
//! Adapters: `SqliteRepository` (feature `sqlite`, on by default: one process, one file) and
//! `PostgresRepository` (feature `postgres`: the cluster's shared database). Each embeds its
//! own migration set, and every adapter passes `crate::testing::repository::run_all`.
//! `Arc<R>` and `Box<R>` are repositories too (`forward`), so a decorator can wrap what
//! [`Services`](crate::Services) holds.

mod forward;
pub mod idempotency;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    BlobRef, ContentHash, Deployment, DeploymentError, DeploymentId, DeploymentStatus,
    EncodedVariant, FileEntry, LogLine, NewDeployment, Page, PageRequest, StoredLogLine,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::model::{BuildSettings, EnvVar};

pub use idempotency::{IdempotencyKeys, Reservation, StoredAnswer};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresRepository;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteRepository;

/// What can go wrong talking to the repository, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// The thing asked for does not exist (or was deleted, for operations on live rows).
    #[error("not found")]
    NotFound,
    /// The row exists but is not in a state that allows this (e.g. the id is taken, or the
    /// deployment is not `BUILDING` any more).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller's fencing token is no longer the current attempt: another worker took over
    /// or the deployment was deleted. The caller must stop and publish nothing.
    #[error("the lease on this deployment was lost")]
    LeaseLost,
    /// The deployment already has a final status (shown here; deleted ones count as final):
    /// a cancel has nothing left to stop.
    #[error("the deployment is already {0}")]
    Final(DeploymentStatus),
    /// A blob is being garbage-collected right now; retry the build a little later.
    #[error("blob {0} is being garbage-collected")]
    BlobBusy(ContentHash),
    /// The database could not be reached or failed; worth retrying.
    #[error("repository unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be understood (a bug or a manual edit).
    #[error("corrupt data in repository: {0}")]
    Corrupt(String),
    /// The database's disk is full: retrying will not help until space is freed.
    #[error("the repository's disk is full: {0}")]
    Full(String),
}

/// A successful claim: the caller now holds `attempt` until `lease_expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The deployment as it is after the claim (status `BUILDING`).
    pub deployment: Deployment,
    /// The fencing token to pass to every later call.
    pub attempt: i64,
}

/// The build summary a successful publish records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedBuild {
    /// Name of the strategy that built it (`static`, …).
    pub strategy: String,
    /// The file manifest.
    pub files: Vec<FileEntry>,
    /// The compiled routing configuration, stored with the deployment (`None`: none).
    pub routing: Option<crate::routing::RoutingConfig>,
    /// Log lines stored in the same transaction as the status change (the line saying what
    /// was published), so the log of a deployment is complete the moment it reads `READY`,
    /// and a publish that is fenced out leaves no such line behind.
    pub log: Vec<LogLine>,
}

/// The source of truth. See the module docs for the contract.
#[async_trait]
pub trait Repository: IdempotencyKeys + Send + Sync + 'static {
    /// Insert a new `QUEUED` deployment. `Conflict` if the id exists.
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError>;

    /// One deployment, deleted ones included (check `deleted_at`). `NotFound` if unknown.
    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

    /// Live (not deleted) deployments, newest first.
    async fn list_deployments(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Deployment>, RepositoryError>;

    /// Compare-and-set: if the deployment is `QUEUED`, or `BUILDING` with an expired lease,
    /// and not deleted, make it `BUILDING` under `worker`, bump `attempt`, set the lease and
    /// record a build row for the new attempt. `None` when there is nothing to claim (a
    /// duplicate or stale delivery, a final or deleted deployment, a live lease elsewhere).
    async fn claim_deployment(
        &self,
        id: &DeploymentId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, RepositoryError>;

    /// Extend the lease of `attempt`. `LeaseLost` if it is no longer the current attempt or
    /// the deployment left `BUILDING`.
    async fn renew_lease(
        &self,
        id: &DeploymentId,
        attempt: i64,
        lease: Duration,
    ) -> Result<(), RepositoryError>;

    /// Give the claim back: `BUILDING` → `QUEUED`, lease cleared, so the next delivery can
    /// claim it at once (used on shutdown). `LeaseLost` if `attempt` is stale.
    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError>;

    /// In one transaction fenced by `attempt`: write the manifest, the counts, finish the
    /// build row and set `READY`. `LeaseLost` if `attempt` is stale or the deployment is no
    /// longer `BUILDING` (deleted, canceled), in which case nothing is written.
    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError>;

    /// Fenced by `attempt`: set `ERROR` with `error` and finish the build row.
    async fn fail_deployment(
        &self,
        id: &DeploymentId,
        attempt: i64,
        error: &DeploymentError,
    ) -> Result<Deployment, RepositoryError>;

    /// Mark deleted (queued or building ones become `CANCELED`) and drop its file manifest,
    /// so it stops being served at once. Idempotent; returns the deployment as it now is.
    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

    /// Cancel a deployment that is `QUEUED` or `BUILDING` and not deleted: status `CANCELED`,
    /// lease cleared, the running attempt's build row finished as canceled. The attempt stays
    /// as it is but no longer passes the fence (`renew_lease`, `publish`, … answer
    /// `LeaseLost`), and nothing claims a canceled deployment. Returns the deployment as it
    /// now is. `NotFound` if unknown; [`RepositoryError::Final`] with the status it has if it
    /// is final already, or deleted.
    async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

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

    /// The manifest entry for `path` of a deployment, if there is one.
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError>;

    /// The whole manifest of a deployment, ordered by path.
    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError>;

    /// The precompressed variants some live manifest already records for files with each of
    /// `hashes` as content, so a redeploy of the same content reuses them instead of
    /// compressing again. Hashes no manifest has variants for are absent from the map. The
    /// answer is a hint: callers still `touch_blobs` the variants and check storage for them
    /// before publishing them.
    async fn known_encodings(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError>;

    /// Record that these blobs are about to be referenced (insert or refresh their
    /// `last_used_at`). Call it before checking storage for them: the garbage collector spares
    /// blobs used within its grace period. `BlobBusy` if one is being collected right now.
    async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError>;

    /// Claim up to `limit` blobs for collection: no file and no file's precompressed variant
    /// references them, and they were last used before `unused_since`. They are marked so `touch_blobs` refuses them until
    /// `forget_blobs` removes the rows (after the caller deleted the objects). Claims older
    /// than `unused_since` are handed out again, so a crashed collector is retried.
    async fn claim_unreferenced_blobs(
        &self,
        unused_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ContentHash>, RepositoryError>;

    /// Remove the rows of blobs claimed by `claim_unreferenced_blobs`.
    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError>;

    /// Deployments stuck in `QUEUED` since before `older_than`, or `BUILDING` with an expired
    /// lease: what a reconciler re-enqueues so nothing accepted is lost.
    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError>;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

// The mock of the whole port: `automock` cannot mock a trait together with its supertraits,
// so the methods are listed again here (the compiler checks them against the traits).
#[cfg(feature = "mock")]
mockall::mock! {
    /// A mock [`Repository`], with every method of every part of the port.
    pub Repository {}

    #[async_trait]
    impl Repository for Repository {
        async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError>;

        async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

        async fn list_deployments(
            &self,
            page: &PageRequest,
        ) -> Result<Page<Deployment>, RepositoryError>;

        async fn claim_deployment(
            &self,
            id: &DeploymentId,
            worker: &str,
            lease: Duration,
        ) -> Result<Option<Claim>, RepositoryError>;

        async fn renew_lease(
            &self,
            id: &DeploymentId,
            attempt: i64,
            lease: Duration,
        ) -> Result<(), RepositoryError>;

        async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError>;

        async fn publish(
            &self,
            id: &DeploymentId,
            attempt: i64,
            build: &PublishedBuild,
        ) -> Result<Deployment, RepositoryError>;

        async fn fail_deployment(
            &self,
            id: &DeploymentId,
            attempt: i64,
            error: &DeploymentError,
        ) -> Result<Deployment, RepositoryError>;

        async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

        async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

        async fn append_log(&self, id: &DeploymentId, lines: &[LogLine])
        -> Result<(), RepositoryError>;

        async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError>;

        async fn logs_after(
            &self,
            id: &DeploymentId,
            after: i64,
            limit: u32,
        ) -> Result<Vec<StoredLogLine>, RepositoryError>;

        async fn find_file(
            &self,
            id: &DeploymentId,
            path: &str,
        ) -> Result<Option<FileEntry>, RepositoryError>;

        async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError>;

        async fn known_encodings(
            &self,
            hashes: &[ContentHash],
        ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError>;

        async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError>;

        async fn claim_unreferenced_blobs(
            &self,
            unused_since: OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<ContentHash>, RepositoryError>;

        async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError>;

        async fn stalled_deployments(
            &self,
            older_than: OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<DeploymentId>, RepositoryError>;

        async fn ping(&self) -> Result<(), RepositoryError>;
    }

    #[async_trait]
    impl IdempotencyKeys for Repository {
        async fn reserve_idempotency_key(
            &self,
            scope: &str,
            key: &str,
            lock: Duration,
            ttl: Duration,
        ) -> Result<Reservation, RepositoryError>;
        async fn complete_idempotency_key(
            &self,
            scope: &str,
            key: &str,
            token: &str,
            fingerprint: &ContentHash,
            answer: &StoredAnswer,
        ) -> Result<(), RepositoryError>;
        async fn release_idempotency_key(
            &self,
            scope: &str,
            key: &str,
            token: &str,
        ) -> Result<(), RepositoryError>;
        async fn purge_idempotency_keys(
            &self,
            before: OffsetDateTime,
        ) -> Result<u64, RepositoryError>;
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The `routing` column's text: the compiled configuration as JSON, or NULL.
fn routing_to_json(
    routing: Option<&crate::routing::RoutingConfig>,
) -> Result<Option<String>, RepositoryError> {
    routing
        .map(|config| {
            serde_json::to_string(config).map_err(|e| {
                RepositoryError::Unavailable(format!(
                    "could not encode the routing configuration: {e}"
                ))
            })
        })
        .transpose()
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The routing configuration back from the `routing` column.
fn routing_from_json(
    text: Option<String>,
) -> Result<Option<std::sync::Arc<crate::routing::RoutingConfig>>, RepositoryError> {
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|e| RepositoryError::Corrupt(format!("column routing: {e}")))
    })
    .transpose()
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The `build_settings` column's text.
fn settings_to_json(settings: &BuildSettings) -> Result<String, RepositoryError> {
    serde_json::to_string(settings).map_err(|e| {
        RepositoryError::Unavailable(format!("could not encode the build settings: {e}"))
    })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The build settings back from the `build_settings` column.
fn settings_from_json(text: &str) -> Result<BuildSettings, RepositoryError> {
    serde_json::from_str(text)
        .map_err(|e| RepositoryError::Corrupt(format!("column build_settings: {e}")))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The `build_env` column's text: every variable, values included.
fn env_to_json(env: &[EnvVar]) -> Result<String, RepositoryError> {
    serde_json::to_string(env).map_err(|e| {
        RepositoryError::Unavailable(format!("could not encode the environment variables: {e}"))
    })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The variables back from the `build_env` column.
fn env_from_json(text: &str) -> Result<Vec<EnvVar>, RepositoryError> {
    serde_json::from_str(text)
        .map_err(|e| RepositoryError::Corrupt(format!("column build_env: {e}")))
}

/// Most lines `logs_after` returns at once, whatever the caller asks.
pub const MAX_LOG_BATCH: u32 = 10_000;
