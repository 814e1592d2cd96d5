//! Request paths: decoded exactly once, and refused rather than normalised when they hold
//! anything a clean URL never contains — dot segments, encoded slashes, backslashes, NUL and
//! control characters, invalid UTF-8, empty segments — so no two spellings reach the same file
//! and no trick reaches another one.

/// Longest request path accepted, in bytes (before decoding).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("the request path is too long")]
    TooLong,
    /// The path is not a clean URL path; the message says what is wrong with it.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Decode the part of a request path after `/<deployment-id>/` (still percent-encoded, without
/// the query) into a manifest path. `""` is the site root; a trailing `/` names a folder.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if raw.is_empty() {
        return Ok(String::new());
    }
    let (body, folder) = match raw.strip_suffix('/') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let mut decoded = String::with_capacity(raw.len());
    for (i, segment) in body.split('/').enumerate() {
        if i > 0 {
            decoded.push('/');
        }
        decoded.push_str(&decode_segment(segment)?);
    }
    if folder {
        decoded.push('/');
    }
    Ok(decoded)
}

fn decode_segment(segment: &str) -> Result<String, PathError> {
    if segment.is_empty() {
        return Err(PathError::Invalid("empty path segment (\"//\")"));
    }
    let raw = segment.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::Invalid("malformed percent-encoding"))?;
            bytes.push(hex);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    // Strict UTF-8 also refuses overlong encodings such as %c0%ae for '.'.
    let text =
        String::from_utf8(bytes).map_err(|_| PathError::Invalid("the path is not valid UTF-8"))?;
    if text == "." || text == ".." {
        return Err(PathError::Invalid("dot segments are not allowed"));
    }
    if text.contains('/') {
        return Err(PathError::Invalid("encoded slashes are not allowed"));
    }
    if text.contains('\\') {
        return Err(PathError::Invalid("backslashes are not allowed"));
    }
    if text.chars().any(char::is_control) {
        return Err(PathError::Invalid(
            "control characters (NUL included) are not allowed",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clean_paths_decode_once() {
        assert_eq!(normalize_path("").unwrap(), "");
        assert_eq!(normalize_path("a/b.css").unwrap(), "a/b.css");
        assert_eq!(normalize_path("docs/").unwrap(), "docs/");
        assert_eq!(
            normalize_path("hello%20world.txt").unwrap(),
            "hello world.txt"
        );
        assert_eq!(normalize_path("%25252e").unwrap(), "%252e");
        assert_eq!(normalize_path("caf%C3%A9.html").unwrap(), "café.html");
    }

    #[test]
    fn tricks_are_refused() {
        for raw in [
            "..",
            "a/../b",
            ".",
            "a/./b",
            "%2e%2e/x",
            "%2E%2E",
            "a%2fb",
            "a%2Fb",
            "..%2f..%2fetc%2fpasswd",
            "a\\b",
            "a%5cb",
            "a%00b",
            "a%0ab",
            "%c0%ae%c0%ae/x",
            "%ff",
            "a//b",
            "/abs",
            "%",
            "%zz",
            "%2",
        ] {
            assert!(normalize_path(raw).is_err(), "{raw:?} was accepted");
        }
        assert_eq!(
            normalize_path(&"a".repeat(MAX_PATH_BYTES + 1)),
            Err(PathError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn accepted_paths_never_climb_or_hide_separators(raw in "[a-z0-9%./\\\\]{0,24}") {
            if let Ok(path) = normalize_path(&raw) {
                let body = path.strip_suffix('/').unwrap_or(&path);
                if !body.is_empty() {
                    for segment in body.split('/') {
                        prop_assert!(!segment.is_empty());
                        prop_assert!(segment != "." && segment != "..");
                        prop_assert!(!segment.contains('\\'));
                    }
                }
            }
        }
    }
}
