//! End-to-end tests: each starts the real `deploystack-server` binary (or an example built on
//! the same libraries, such as `examples/markdown_site.rs`) on port 0 with its own temporary
//! data directory and talks HTTP to it, as a user would. `builds` runs real npm builds and
//! loads their pages in Debian's headless Chromium.

// A failed step in a test helper should stop the test with its panic message.
#![allow(clippy::unwrap_used)]

mod api_errors;
mod binaries;
// Needs the S3 and Redis adapters (`--all-features` in the test command).
#[cfg(all(feature = "redis", feature = "s3"))]
mod breakers;
mod browser;
mod build_api;
mod builds;
mod cli;
// The cluster shape needs every engine compiled in (`--all-features` in the test command).
#[cfg(all(feature = "postgres", feature = "redis", feature = "s3"))]
mod cluster;
#[cfg(all(feature = "postgres", feature = "redis"))]
mod cluster_domains;
#[cfg(all(feature = "postgres", feature = "redis"))]
mod cluster_projects;
mod compression;
mod custom_strategy;
mod deploy;
mod desired;
mod domains;
mod env;
mod faults;
mod file_uploads;
mod hardening;
mod hosts;
mod idempotency;
mod keepalive;
mod lifecycle;
mod local_peer;
mod metrics;
mod openapi;
mod projects;
mod protection;
mod rate_limits;
mod routing;
mod security_headers;
mod serving;
mod support;
mod tokens;
mod upload;
mod vercel_cli;
