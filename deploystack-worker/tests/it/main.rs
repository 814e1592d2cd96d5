//! Integration tests of the worker pool: `deploystack_worker::run` against real services on
//! in-memory adapters, driven through uploads and a shutdown signal the test controls.
//!
//! - `support`: services, uploads, a pool handle and scripted build strategies.
//! - `pool`: building queued work, draining on shutdown, reconciling at start.

// Helpers outside `#[test]` functions are not "tests" to clippy's `allow-unwrap-in-tests`,
// and a failed setup step should fail the test loudly anyway.
#![allow(clippy::unwrap_used)]

mod pool;
mod project_events;
mod support;
