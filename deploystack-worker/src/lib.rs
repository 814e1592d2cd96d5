//! # deploystack-worker
//!
//! The `deploystack-worker` binary: build workers that reserve jobs from a shared queue.
//!
//! The pool itself — build loops, the reconciler and the blob collector, and how they drain
//! on shutdown — is [`deploystack_core::services::workers`], so `deploystack_http::serve` can
//! run it in-process without this crate and its binary's dependencies. [`run`] is that
//! pool, re-exported for code written against this crate.

#![warn(missing_docs)]

pub use deploystack_core::services::workers::run;
