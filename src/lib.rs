//! Workspace umbrella: see the member crates.
