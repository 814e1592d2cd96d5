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
//! - [`cache`]: a decorator over the repository that caches the serving path's reads, in
//!   process and optionally in Redis, with invalidation across nodes; and one over storage
//!   that keeps small content-addressed blobs in memory (`CachedStorage`).
//! - [`archive`]: uploaded zips validated from their central directory, then extracted without
//!   trusting them (the threat model is in the module's docs).
//! - [`routing`]: per-deployment routing — `vercel.json` and Netlify `_redirects` /
//!   `_headers` compiled at deploy time into one model, and its pure evaluation at serve time.
//! - [`services`]: the flows that tie ports together — ingest, the build pipeline (with
//!   deploy-time precompression), serving resolution, garbage collection — and [`Services`], the one place that picks adapters.
//! - [`secrets`]: environment-variable values sealed at rest under a platform key (a keyring
//!   with rotation, the key file and its rules), and the masker that keeps them out of logs.
//! - [`domains`]: custom domain names (validated, IDNA-normalised), their redirect graph
//!   (cycles refused, applied in topological order) and DNS TXT verification with re-checks.
//! - [`config`]: settings, with defaults, a TOML file and `DEPLOYSTACK_*` variables.
//! - `testing` (feature `testing`): the conformance suites every adapter must pass.
//!
//! ## Feature flags
//! - `mock`: mockall mocks of every port (`MockRepository`, `MockStorage`, `MockQueue`,
//!   `MockBuildStrategy`, `MockEventSink`).
//! - `testing`: the conformance suites.
//! - `postgres`: `PostgresRepository`, the repository a cluster shares (PostgreSQL).
//! - `redis`: `RedisQueue`, the job queue a cluster's nodes share (Redis Streams).
//! - `s3`: `S3Storage`, storage in any S3-compatible bucket (`s3://<bucket>/<prefix>`).
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

pub mod archive;
pub mod build;
pub mod cache;
pub mod config;
pub mod domains;
pub mod events;
pub mod model;
pub mod queue;
pub mod repository;
pub mod routing;
pub mod secrets;
pub mod services;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::Config;
pub use services::Services;
