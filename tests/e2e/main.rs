//! End-to-end tests: each starts the real `deploystack-server` binary on port 0 with its own
//! temporary data directory and talks HTTP to it, as a user would.

mod deploy;
mod lifecycle;
mod support;
mod upload;
