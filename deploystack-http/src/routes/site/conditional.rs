//! Conditional requests (RFC 9110 §13): `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` and `If-Range`, evaluated against one served representation.
//!
//! Pure functions over the request headers, so every rule is unit-tested without a server.
//! The evaluation order is the RFC's (§13.2.2): the entity-tag condition of a pair always wins
//! over its date counterpart, which is only looked at when the tag header is absent — tags
//! are exact (content hashes), dates have one-second resolution.
//!
//! Every served file has a *strong* validator: its ETag is the sha256 of its bytes, and its
//! `Last-Modified` is when its deployment became ready, after which it never changes. So the
//! date is a strong validator too and may be used for `If-Range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, header};
use time::OffsetDateTime;

/// What the preconditions of a GET or HEAD request say to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Precondition {
    /// Serve the representation (possibly a range of it).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a state-changing client's expectation does not hold.
    Failed,
}

/// The validators of the representation being served.
#[derive(Debug, Clone, Copy)]
pub(super) struct Validators<'a> {
    /// The strong entity tag, quotes included.
    pub etag: &'a str,
    /// Last modification time, truncated to whole seconds (HTTP dates have no more).
    pub last_modified: Option<SystemTime>,
}

/// Truncate to whole seconds, as `Last-Modified` will carry it; `None` before 1970.
pub(super) fn http_time(at: OffsetDateTime) -> Option<SystemTime> {
    let seconds = u64::try_from(at.unix_timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Evaluate the preconditions of a GET or HEAD request (RFC 9110 §13.2.2, steps 1–4).
pub(super) fn evaluate(request: &HeaderMap, validators: Validators<'_>) -> Precondition {
    if let Some(tags) = tag_list(request, header::IF_MATCH) {
        // Strong comparison: a weak tag never matches, `*` matches any existing file.
        if !tags.matches(validators.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) = (
        date(request, header::IF_UNMODIFIED_SINCE),
        validators.last_modified,
    ) && modified > since
    {
        return Precondition::Failed;
    }
    if let Some(tags) = tag_list(request, header::IF_NONE_MATCH) {
        // Weak comparison, so a cache holding a weakly tagged copy is still told it is fresh.
        if tags.matches(validators.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) = (
        date(request, header::IF_MODIFIED_SINCE),
        validators.last_modified,
    ) && modified <= since
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): true without the
/// header; with it, only when it names the current representation exactly — a strong tag
/// equal to ours, or a date equal to `Last-Modified`. Anything else means "send it all".
pub(super) fn if_range_allows(request: &HeaderMap, validators: Validators<'_>) -> bool {
    let Some(value) = single(request, header::IF_RANGE) else {
        // Absent, or repeated (then it is not one valid value, so no range is safe).
        return !request.contains_key(header::IF_RANGE);
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        // A weak tag is never good enough to splice bytes together.
        return value == validators.etag;
    }
    match (httpdate::parse_http_date(value), validators.last_modified) {
        (Ok(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// The value of a header that must appear once; `None` when absent, repeated or not text.
fn single(request: &HeaderMap, name: HeaderName) -> Option<&str> {
    let mut values = request.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// An HTTP-date header; invalid or repeated values are ignored, as RFC 9110 requires.
fn date(request: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    single(request, name).and_then(|value| httpdate::parse_http_date(value.trim()).ok())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, PartialEq, Eq)]
enum TagList<'h> {
    /// `*`: any current representation.
    Any,
    /// The listed tags, each with whether it was weak; opaque parts keep their quotes.
    Tags(Vec<(bool, &'h str)>),
}

impl TagList<'_> {
    fn matches(&self, etag: &str, comparison: Comparison) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags
                .iter()
                .any(|&(weak, tag)| tag == etag && (comparison == Comparison::Weak || !weak)),
        }
    }
}

/// Every value of the header `name` as one list (a list may be split over several lines).
/// `None` when the header is absent; a malformed value matches nothing rather than
/// everything, so a garbled `If-Match` fails safe and a garbled `If-None-Match` sends the body.
fn tag_list(request: &HeaderMap, name: HeaderName) -> Option<TagList<'_>> {
    let mut values = request.get_all(name).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else {
            return Some(TagList::Tags(Vec::new()));
        };
        if value.trim() == "*" {
            return Some(TagList::Any);
        }
        match parse_tags(value) {
            Some(more) => tags.extend(more),
            None => return Some(TagList::Tags(Vec::new())),
        }
    }
    Some(TagList::Tags(tags))
}

/// Parse `#entity-tag` (RFC 9110 §8.8.3): `[W/]"opaque"` separated by commas. A comma inside
/// quotes is part of the tag, which is why this is not a plain `split(',')`.
fn parse_tags(value: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, quoted) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = quoted.strip_prefix('"')?;
        let close = body.find('"')?;
        // Keep the quotes: our ETag is compared with them.
        let (tag, after) = quoted.split_at(close + 2);
        tags.push((weak, tag));
        rest = after.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ETAG: &str = "\"abc\"";

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn validators() -> Validators<'static> {
        Validators {
            etag: ETAG,
            last_modified: Some(at(1_700_000_000)),
        }
    }

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn date_text(seconds: u64) -> String {
        httpdate::fmt_http_date(at(seconds))
    }

    #[test]
    fn entity_tag_lists_parse_with_commas_inside_quotes() {
        assert_eq!(
            parse_tags("\"a\", W/\"b\" ,\"c,d\""),
            Some(vec![(false, "\"a\""), (true, "\"b\""), (false, "\"c,d\"")])
        );
        assert_eq!(parse_tags(""), Some(vec![]));
        assert_eq!(parse_tags("abc"), None);
        assert_eq!(parse_tags("\"abc"), None);
        assert_eq!(parse_tags("\"a\" \"b\""), None);
    }

    #[test]
    fn if_none_match_uses_weak_comparison_lists_and_star() {
        let v = validators();
        assert_eq!(evaluate(&HeaderMap::new(), v), Precondition::Proceed);
        for value in ["\"abc\"", "\"x\", W/\"abc\"", "*", "\"x\",\"abc\""] {
            let h = headers(&[(header::IF_NONE_MATCH, value)]);
            assert_eq!(evaluate(&h, v), Precondition::NotModified, "{value}");
        }
        for value in ["\"abcd\"", "\"x\"", "abc", "W/abc"] {
            let h = headers(&[(header::IF_NONE_MATCH, value)]);
            assert_eq!(evaluate(&h, v), Precondition::Proceed, "{value}");
        }
        // A list split over two header lines is one list.
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_NONE_MATCH, "\"abc\""),
        ]);
        assert_eq!(evaluate(&h, v), Precondition::NotModified);
    }

    #[test]
    fn if_match_uses_strong_comparison() {
        let v = validators();
        for value in ["\"abc\"", "*", "\"x\", \"abc\""] {
            let h = headers(&[(header::IF_MATCH, value)]);
            assert_eq!(evaluate(&h, v), Precondition::Proceed, "{value}");
        }
        for value in ["W/\"abc\"", "\"x\"", "garbage"] {
            let h = headers(&[(header::IF_MATCH, value)]);
            assert_eq!(evaluate(&h, v), Precondition::Failed, "{value}");
        }
    }

    #[test]
    fn dates_apply_only_without_their_tag_counterpart() {
        let v = validators();
        let before = date_text(1_600_000_000);
        let same = date_text(1_700_000_000);
        let after = date_text(1_800_000_000);
        let h = headers(&[(header::IF_MODIFIED_SINCE, &same)]);
        assert_eq!(evaluate(&h, v), Precondition::NotModified);
        let h = headers(&[(header::IF_MODIFIED_SINCE, &after)]);
        assert_eq!(evaluate(&h, v), Precondition::NotModified);
        let h = headers(&[(header::IF_MODIFIED_SINCE, &before)]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "not a date")]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // If-None-Match wins, in both directions.
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_MODIFIED_SINCE, &after),
        ]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);

        let h = headers(&[(header::IF_UNMODIFIED_SINCE, &before)]);
        assert_eq!(evaluate(&h, v), Precondition::Failed);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, &same)]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        let h = headers(&[
            (header::IF_MATCH, ETAG),
            (header::IF_UNMODIFIED_SINCE, &before),
        ]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // If-Match fails before If-None-Match is looked at.
        let h = headers(&[(header::IF_MATCH, "\"x\""), (header::IF_NONE_MATCH, ETAG)]);
        assert_eq!(evaluate(&h, v), Precondition::Failed);
    }

    #[test]
    fn if_range_needs_an_exact_strong_validator() {
        let v = validators();
        assert!(if_range_allows(&HeaderMap::new(), v));
        assert!(if_range_allows(&headers(&[(header::IF_RANGE, ETAG)]), v));
        assert!(if_range_allows(
            &headers(&[(header::IF_RANGE, &date_text(1_700_000_000))]),
            v
        ));
        for value in [
            "W/\"abc\"".to_owned(),
            "\"x\"".to_owned(),
            date_text(1_700_000_001),
            "garbage".to_owned(),
        ] {
            assert!(
                !if_range_allows(&headers(&[(header::IF_RANGE, &value)]), v),
                "{value}"
            );
        }
    }
}
