//! Queue conformance suite (being written).
