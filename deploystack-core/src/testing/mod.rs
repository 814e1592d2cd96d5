//! Conformance suites: what every adapter of a port must do, as async functions an adapter's
//! tests call with a fresh instance. One suite per port, so a new backend (Postgres, Redis,
//! S3, your own) proves itself by passing the same checks as the defaults.

pub mod build;
pub mod dns;
pub mod env;
pub mod events;
pub mod fixtures;
pub mod idempotency;
pub mod queue;
pub mod ratelimit;
pub mod repository;
pub mod storage;
