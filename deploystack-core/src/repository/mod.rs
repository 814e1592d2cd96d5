//! The `Repository` port: the source of truth for deployments, builds, logs, files, blobs,
//! projects and their domains, and API tokens.
//!
//! # Layout: one trait per aggregate
//! [`Repository`] is the one port callers hold (`Arc<dyn Repository>`); it is the sum of one
//! trait per aggregate, each in its own file with its own contract:
//! [`DeploymentRepository`] (`deployments.rs`: life cycle, claims, leases, fencing),
//! [`LogRepository`] (`logs.rs`), [`FileRepository`] (`files.rs`: manifests and blobs),
//! [`ProjectRepository`] (`projects.rs`: projects, production and its history),
//! [`DomainRepository`] (`domains.rs`: custom domains, their verification and re-checks),
//! [`EnvRepository`] (`env.rs`: projects' environment variables, sealed, and key rotation),
//! [`IdempotencyKeys`] (`idempotency.rs`: the kept answers of retried requests),
//! [`TokenRepository`] (`tokens.rs`: API tokens, by the hash of their secret).
//! Methods of every aggregate are callable on `dyn Repository` without importing anything;
//! code holding a concrete adapter imports [`prelude`]. The SQL adapters share their row
//! mapping, paging and error mapping (`rows.rs`); only their SQL text differs.
//!
//! # Contract
//! - Every method is atomic: it either happens entirely or not at all.
//! - Each aggregate's trait documents what else a caller may rely on.
//! - Timestamps are the repository's own clock, so every node agrees on lease expiry.
//!
//! Adapters: `SqliteRepository` (feature `sqlite`, on by default: one process, one file) and
//! `PostgresRepository` (feature `postgres`: the cluster's shared database). Each embeds its
//! own migration set, and every adapter passes `crate::testing::repository::run_all`.
//! `Arc<R>` and `Box<R>` are repositories too (`forward`), so a decorator can wrap what
//! [`Services`](crate::Services) holds.

mod deployments;
mod domains;
mod env;
mod files;
mod forward;
pub mod idempotency;
mod logs;
#[cfg(feature = "mock")]
mod mock;
#[cfg(feature = "postgres")]
mod postgres;
mod projects;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tokens;

use async_trait::async_trait;

use crate::model::{ContentHash, Deployment, DeploymentStatus, FileEntry, LogLine};

pub use deployments::DeploymentRepository;
pub use domains::DomainRepository;
pub use env::{EnvRepository, MAX_PROJECT_ENV_VARS};
pub use files::FileRepository;
pub use idempotency::{IdempotencyKeys, Reservation, StoredAnswer};
pub use logs::LogRepository;
#[cfg(feature = "mock")]
pub use mock::MockRepository;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresRepository;
pub use projects::ProjectRepository;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteRepository;
#[cfg(feature = "sqlite")]
pub(crate) use sqlite::is_in_memory as is_sqlite_in_memory;
pub use tokens::TokenRepository;

/// Every trait of the port, for callers that hold a concrete adapter rather than
/// `dyn Repository` (whose methods need no import): `use deploystack_core::repository::prelude::*;`.
pub mod prelude {
    pub use super::{
        DeploymentRepository, DomainRepository, EnvRepository, FileRepository, IdempotencyKeys,
        LogRepository, ProjectRepository, Repository, TokenRepository,
    };
}

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

/// The source of truth: one port over every aggregate. See the module docs for the contract.
///
/// Callers hold it as `Arc<dyn Repository>` and call any aggregate's methods on it; adapters
/// implement each aggregate's trait and this one.
#[async_trait]
pub trait Repository:
    DeploymentRepository
    + LogRepository
    + FileRepository
    + ProjectRepository
    + DomainRepository
    + EnvRepository
    + IdempotencyKeys
    + TokenRepository
    + Send
    + Sync
    + 'static
{
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

/// Most lines `logs_after` returns at once, whatever the caller asks.
pub const MAX_LOG_BATCH: u32 = 10_000;
