//! # deploystack-core
//!
//! The library behind DeployStack, a self-hostable deployment platform: upload a site, it is
//! built, stored immutably and served at its own URL. The HTTP server and the worker are thin
//! binaries over this crate; you can embed it, plug in your own build strategy or storage, and
//! unit-test against mocked ports.
//!
//! ## Layout
//! - [`model`]: plain data — deployments, files, ids.
//! - Ports, one folder each (`mod.rs` holds the trait, its error and contract; one file per
//!   adapter): [`repository`] (source of truth), [`storage`] (blobs and sources), [`queue`]
//!   (job delivery with leases), [`build`] (build strategies and their registry), [`events`]
//!   (domain events).
//! - [`ratelimit`]: how many requests of each class (deploys, API writes, API reads) a caller
//!   may make per minute — GCRA in memory (governor) or shared by a cluster through Redis.
//! - [`cache`]: a decorator over the repository that caches the serving path's reads, in
//!   process and optionally in Redis, with invalidation across nodes; and one over storage
//!   that keeps small content-addressed blobs in memory (`CachedStorage`).
//! - [`breaker`]: circuit breakers as decorators over storage and the queue (and around the
//!   read cache's Redis layer), so an outage of S3 or Redis fails calls at once instead of
//!   making each wait for its timeouts; and the one bounded retry policy with jitter.
//! - [`archive`]: uploaded zips validated from their central directory, then extracted without
//!   trusting them (the threat model is in the module's docs).
//! - [`routing`]: per-deployment routing — `vercel.json` and Netlify `_redirects` /
//!   `_headers` compiled at deploy time into one model, and its pure evaluation at serve time.
//! - [`services`]: the flows that tie ports together — ingest, the build pipeline (with
//!   deploy-time precompression), serving resolution, garbage collection, projects and
//!   their custom domains (verification, background re-checks, hosts) — and [`Services`],
//!   the one place that picks adapters.
//!   [`services::workers`] is the build worker pool both binaries run.
//! - [`secrets`]: environment-variable values sealed at rest under a platform key (a keyring
//!   with rotation, the key file and its rules), and the masker that keeps them out of logs.
//! - [`domains`]: custom domain names (validated, IDNA-normalised), their redirect graph
//!   (cycles refused, applied in topological order) and DNS TXT verification with re-checks.
//! - [`config`]: settings, with defaults, a TOML file and `DEPLOYSTACK_*` variables.
//! - `testing` (feature `testing`): the conformance suites every adapter must pass, and
//!   fixtures that make test values in one line.
//! - [`embedding`]: the guide for using this crate from your own: a build strategy of your
//!   own served over HTTP, unit tests against mocked ports, a storage decorator checked by
//!   the conformance suite.
//!
//! ## Feature flags
//! Every feature is also described beside its definition in `Cargo.toml`.
//! - `sqlite` (default): `SqliteRepository` and `Services::in_memory`; the default
//!   `DEPLOYSTACK_DATABASE_URL` is a SQLite file. Turn it off (`default-features = false`)
//!   when you bring your own repository: no SQLite is compiled, and a `sqlite://` URL given
//!   to [`Services::from_config`] fails with "rebuild with `--features sqlite`".
//! - `postgres`: `PostgresRepository`, the repository a cluster shares (PostgreSQL).
//! - `redis`: `RedisQueue`, the job queue a cluster's nodes share (Redis Streams), the
//!   shared layer of the read cache, and `RedisRateLimiter`, the rate limits they share.
//! - `s3`: `S3Storage`, storage in any S3-compatible bucket (`s3://<bucket>/<prefix>`).
//! - `mock`: mockall mocks of every port (`MockRepository`, `MockStorage`, `MockQueue`,
//!   `MockBuildStrategy`, `MockEventSink`, `MockRateLimiter`), and mockall itself as `deploystack_core::mockall`.
//! - `testing`: the conformance suites and test fixtures (`deploystack_core::testing`).
//! - `cli`: what the binaries share — command-line flags, log setup, the shutdown signal.
//!
//! The engines' features only add adapters: a URL naming an engine that was not compiled in
//! is a startup error that names the feature, never "unknown engine".
//!
//! ## Re-exported crates
//! Every crate that appears in this crate's public signatures, or that you need to implement
//! a port or feed a mock, is re-exported here, so your `Cargo.toml` needs `deploystack-core`
//! (and `deploystack-http` to serve) and never has to guess a version that matches ours:
//! [`async_trait`](macro@async_trait) (the attribute the ports are declared with), [`bytes`] (object data),
//! [`futures`] (`futures-util`: the streams of [`storage::ObjectStream`]), [`object_store`]
//! ([`storage::ObjectStoreStorage::from_store`]), [`time`] (timestamps), [`tokio`] and
//! [`tokio_util`] (the runtime, and the cancellation token of a build), and with the `mock`
//! feature `mockall` (predicates and sequences for the mocks' expectations).
//!
//! `#[deploystack_core::async_trait]` works as it is. Tokio's macros need to be told where
//! tokio is: `#[tokio::main(crate = "deploystack_core::tokio")]`, and the same for
//! `#[tokio::test]`. The mocks need no mockall of your own — their expectations, predicates
//! (`deploystack_core::mockall::predicate::eq`) and sequences all work through the
//! re-export. Only `#[automock]` on a trait of your own needs a `mockall` dependency of your
//! own, of the same version as `deploystack_core::mockall` (0.15): its expansion names the
//! `::mockall` crate by absolute path, which a re-export cannot stand in for.
//!
//! ## Why ports and adapters?
//! The same flows run in one process on SQLite, a local directory and an in-memory queue, or
//! across many nodes on shared engines. Keeping each dependency behind a small trait makes the
//! switch a matter of configuration, and lets the flows be tested against mocks.
//!
//! ## Why is the repository the source of truth?
//! Queues lose messages and deliver some twice. Every build claims its deployment in the
//! repository with a compare-and-set that bumps an attempt number, and only the holder of the
//! current attempt may publish, so a duplicate or zombie delivery publishes nothing.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml) and marks what needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod archive;
pub mod breaker;
pub mod build;
pub mod cache;
pub mod config;
pub mod domains;
pub mod embedding;
pub mod events;
pub mod model;
pub mod queue;
pub mod ratelimit;
pub mod repository;
pub mod routing;
pub mod secrets;
pub mod services;
pub mod storage;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use config::Config;
pub use services::Services;

/// The attribute every port is declared with; put it on your `impl` of a port.
pub use async_trait::async_trait;
/// Object data ([`Bytes`](bytes::Bytes)), as [`storage::Storage`] takes and returns it.
pub use bytes;
/// `futures-util`: the stream types and combinators of [`storage::ObjectStream`].
pub use futures_util as futures;
/// The object store under [`storage::ObjectStoreStorage`], the same version.
pub use object_store;
/// Timestamps of the model and the repository.
pub use time;
/// The runtime everything runs on; `#[tokio::main(crate = "deploystack_core::tokio")]`.
pub use tokio;
/// [`CancellationToken`](tokio_util::sync::CancellationToken), which stops a build.
pub use tokio_util;

/// mockall, the same version the mocks are made with: predicates (`mockall::predicate::eq`)
/// and sequences for their expectations.
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use mockall;
