//! Byte ranges (RFC 9110 §14): what a `Range` header asks of a file of a given size.
//!
//! The syntax is parsed by `http-range-header`, which is strict (no signs, no stray
//! whitespace, bounded digits); the meaning is decided here, because RFC 9110 separates what
//! that crate folds into one error: a *malformed* header is ignored (200 with the whole file),
//! while a well-formed one that selects nothing is answered 416.
//!
//! # Why one range only?
//! Multi-range requests are what "Apache Killer" (CVE-2011-3192) abused: `bytes=0-,0-,…` made
//! the server assemble a multipart body far larger than the file. RFC 9110 lets a server
//! ignore `Range` altogether, and no browser needs several ranges of a static file (media
//! players and resumed downloads ask for one). So a header with more than one range is
//! ignored and the whole file is sent, once — the cheapest answer there is, and never larger
//! than the file.

use std::ops::Range;

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};

/// What to do with a request's `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ByteRange {
    /// Send the whole file with 200: no header, a malformed one, or several ranges.
    Whole,
    /// Send these bytes (end exclusive, never empty, within the file) with 206.
    Part(Range<u64>),
    /// 416: a well-formed single range that selects no byte of the file.
    Unsatisfiable,
}

/// Evaluate `header` (the `Range` value) against a file of `size` bytes.
pub(super) fn evaluate(header: &str, size: u64) -> ByteRange {
    let parsed = match http_range_header::parse_range_header(header) {
        Ok(parsed) => parsed,
        // `bytes=-0` is well-formed and selects nothing; with other ranges beside it the
        // header is a multi-range one, which is ignored.
        Err(RangeUnsatisfiableError::ZeroSuffix) if !header.contains(',') => {
            return ByteRange::Unsatisfiable;
        }
        Err(_) => return ByteRange::Whole,
    };
    let [single] = parsed.ranges.as_slice() else {
        return ByteRange::Whole;
    };
    match (single.start, single.end) {
        // `a-b` with b < a is not a valid range-spec: ignore the header.
        (StartPosition::Index(first), EndPosition::Index(last)) if last < first => ByteRange::Whole,
        (StartPosition::Index(first), _) if first >= size => ByteRange::Unsatisfiable,
        (StartPosition::Index(first), EndPosition::Index(last)) => {
            ByteRange::Part(first..last.saturating_add(1).min(size))
        }
        (StartPosition::Index(first), EndPosition::LastByte) => ByteRange::Part(first..size),
        // A suffix longer than the file selects all of it; an empty file has no last bytes.
        (StartPosition::FromLast(_), _) if size == 0 => ByteRange::Unsatisfiable,
        (StartPosition::FromLast(length), _) => ByteRange::Part(size - length.min(size)..size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_ranges_select_the_right_bytes() {
        assert_eq!(evaluate("bytes=0-9", 100), ByteRange::Part(0..10));
        assert_eq!(evaluate("bytes=90-200", 100), ByteRange::Part(90..100));
        assert_eq!(evaluate("bytes=95-", 100), ByteRange::Part(95..100));
        assert_eq!(evaluate("bytes=-10", 100), ByteRange::Part(90..100));
        assert_eq!(evaluate("bytes=-500", 100), ByteRange::Part(0..100));
        assert_eq!(evaluate("bytes=99-99", 100), ByteRange::Part(99..100));
        assert_eq!(
            evaluate(&format!("bytes=0-{}", u64::MAX), 100),
            ByteRange::Part(0..100)
        );
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(evaluate("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(evaluate("bytes=100-200", 100), ByteRange::Unsatisfiable);
        assert_eq!(evaluate("bytes=-0", 100), ByteRange::Unsatisfiable);
        assert_eq!(evaluate("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(evaluate("bytes=-5", 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn malformed_and_multiple_ranges_get_the_whole_file() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=-",
            "bytes=+1-2",
            "bytes=0-1 ",
            "bytes=0-1,2-3",
            "bytes=0-,0-,0-,0-,0-",
            "bytes=0-1,-0",
        ] {
            assert_eq!(evaluate(header, 100), ByteRange::Whole, "{header:?}");
        }
    }

    proptest! {
        #[test]
        fn a_part_is_never_empty_nor_outside_the_file(header in "bytes=[0-9,-]{0,12}", size in 0u64..64) {
            if let ByteRange::Part(range) = evaluate(&header, size) {
                prop_assert!(range.start < range.end);
                prop_assert!(range.end <= size);
            }
        }
    }
}
