//! Integration tests of `deploystack-core`: the build pipeline, the reconciler and the blob
//! collector, run in-process against the real adapters (SQLite in memory, in-memory storage,
//! the in-memory queue). Each test checks what an operator would look at: the deployment's
//! status and error, its manifest, its build log, the events, and what storage holds.
//!
//! - `support`: services, zips, uploads and scripted build strategies the tests share.
//! - `pipeline`: one delivery through the pipeline, on every path it can take.
//! - `maintenance`: the reconciler and garbage collection.
//! - `domains`: custom-domain verification against a DNS server started on loopback.
//! - `cache`: the read cache over the repository, in one process and across nodes (Redis).
//! - `postgres` (feature `postgres`): the PostgreSQL repository on a real server, shared by
//!   several pools as a cluster shares it.
//! - `redis_queue` (feature `redis`): `RedisQueue` against a real Redis, restarts included.
//! - `s3_storage` (feature `s3`): `S3Storage` against a real S3-compatible server.

// Helpers outside `#[test]` functions are not "tests" to clippy's `allow-unwrap-in-tests`,
// and a failed setup step should fail the test loudly anyway.
#![allow(clippy::unwrap_used)]

mod cache;
mod domains;
mod maintenance;
mod manifest;
mod pipeline;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis_queue;
#[cfg(feature = "s3")]
mod s3_storage;
mod support;
