//! Repository conformance suite (being written).
