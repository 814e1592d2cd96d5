//! Source patterns and destination templates of routing rules.
//!
//! Both formats compile to the same [`Pattern`]: a list of literal text and captures matched
//! against the whole request path (decoded, with its leading `/`).
//!
//! - Vercel (path-to-regexp syntax): `:name` (one segment), `:name?` (an optional segment),
//!   `:name*` / `:name+` (zero / one or more segments), `:name(.*)` and bare `(.*)` / `(.+)`
//!   groups (any text, `/` included). A `/` right before an optional capture belongs to it,
//!   so `/blog/:path*` matches `/blog` as well as `/blog/a/b`, as in path-to-regexp.
//! - Netlify: `*` (the splat, any text, named `splat`) and `:name` (one segment).
//!
//! # Why a hand-written matcher instead of regular expressions?
//! Vercel accepts any regular expression inside `( )`, but the groups real configurations use
//! are `(.*)` and `(.+)`. Supporting exactly those keeps the compiled model plain data (it is
//! stored as JSON with the deployment and matched without compiling anything per request) and
//! keeps matching cheap: at most [`MAX_WIDE_CAPTURES`] captures may span `/`, which bounds the
//! backtracking to a few passes over a path. Anything else is refused at deploy time, so a
//! rule never silently means something else than it does on Vercel.

use serde::{Deserialize, Serialize};

/// Most captures of one pattern that may span several segments (`(.*)`, `:p*`, `*`): each one
/// multiplies the worst-case matching work by the path length.
pub const MAX_WIDE_CAPTURES: usize = 2;

/// What a capture matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// One non-empty segment (no `/`).
    Segment,
    /// One or more segments joined by `/`.
    Segments,
    /// Any text, `/` included, possibly empty.
    Any,
    /// Any non-empty text, `/` included.
    AnyNonEmpty,
}

impl Class {
    fn wide(self) -> bool {
        !matches!(self, Class::Segment)
    }
}

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Token {
    /// Text that must appear as is (case-sensitive).
    Literal(String),
    /// A capture.
    Capture {
        /// `:name`; `None` for a bare `( )` group, reachable only as `$n`.
        name: Option<String>,
        /// What it matches.
        class: Class,
        /// Whether it may match nothing together with the `/` before it (`:p?`, `:p*`).
        optional: bool,
    },
}

/// A compiled source pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pattern {
    /// The pieces, in order.
    pub tokens: Vec<Token>,
    /// Netlify ignores a trailing `/` when matching (`/about` also matches `/about/`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loose_trailing_slash: bool,
}

/// What a pattern captured: `(name, value)` in the order of the pattern; `$n` is the n-th.
pub type Captures = Vec<(Option<String>, String)>;

/// Why a pattern or destination was refused; the caller adds where it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The text is not a pattern we support; the message says why.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> PatternError {
    PatternError::Invalid(message.into())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Push a capture; an optional one takes the `/` that ends the literal before it.
fn push_capture(tokens: &mut Vec<Token>, name: Option<String>, class: Class, optional: bool) {
    if optional
        && let Some(Token::Literal(text)) = tokens.last_mut()
        && text.ends_with('/')
    {
        text.pop();
        if text.is_empty() {
            tokens.pop();
        }
    }
    tokens.push(Token::Capture {
        name,
        class,
        optional,
    });
}

fn push_literal(tokens: &mut Vec<Token>, c: char) {
    match tokens.last_mut() {
        Some(Token::Literal(text)) => text.push(c),
        _ => tokens.push(Token::Literal(c.to_string())),
    }
}

fn check_source_start(source: &str) -> Result<(), PatternError> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return Err(invalid(
            "host-matching sources (full URLs) are not supported; use a path starting with /",
        ));
    }
    if !source.starts_with('/') {
        return Err(invalid("a source must start with /"));
    }
    Ok(())
}

fn check_wide(tokens: &[Token]) -> Result<(), PatternError> {
    let wide = tokens
        .iter()
        .filter(|t| matches!(t, Token::Capture { class, .. } if class.wide()))
        .count();
    if wide > MAX_WIDE_CAPTURES {
        return Err(invalid(format!(
            "at most {MAX_WIDE_CAPTURES} captures spanning several segments ((.*), :name*, :name+, *) are supported in one source"
        )));
    }
    Ok(())
}

impl Pattern {
    /// Compile a Vercel `source` (path-to-regexp syntax, the subset in the module docs).
    pub fn vercel(source: &str) -> Result<Pattern, PatternError> {
        check_source_start(source)?;
        let mut tokens = Vec::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                ':' => {
                    let mut name = String::new();
                    while let Some(&n) = chars.peek().filter(|n| is_name_char(**n)) {
                        name.push(n);
                        chars.next();
                    }
                    if name.is_empty() {
                        return Err(invalid("a ':' must be followed by a parameter name"));
                    }
                    let (class, optional) = match chars.peek() {
                        Some('?') => (Class::Segment, true),
                        Some('*') => (Class::Segments, true),
                        Some('+') => (Class::Segments, false),
                        Some('(') => {
                            chars.next();
                            let class = group(&mut chars)?;
                            push_capture(&mut tokens, Some(name), class, false);
                            continue;
                        }
                        _ => (Class::Segment, false),
                    };
                    if class != Class::Segment || optional {
                        chars.next();
                    }
                    push_capture(&mut tokens, Some(name), class, optional);
                }
                '(' => {
                    let class = group(&mut chars)?;
                    push_capture(&mut tokens, None, class, false);
                }
                '*' | '+' | '?' | ')' | '{' | '}' | '\\' | '[' | ']' | '|' | '^' | '$' => {
                    return Err(invalid(format!(
                        "'{c}' is not supported here: use :name, :name*, :name+, :name? or a (.*) group"
                    )));
                }
                _ => push_literal(&mut tokens, c),
            }
        }
        check_wide(&tokens)?;
        Ok(Pattern {
            tokens,
            loose_trailing_slash: false,
        })
    }

    /// Compile a Netlify `from` path: `*` is the splat, `:name` one segment.
    pub fn netlify(source: &str) -> Result<Pattern, PatternError> {
        check_source_start(source)?;
        let mut tokens = Vec::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => push_capture(&mut tokens, Some("splat".to_owned()), Class::Any, false),
                ':' if chars.peek().is_some_and(|n| is_name_char(*n)) => {
                    let mut name = String::new();
                    while let Some(&n) = chars.peek().filter(|n| is_name_char(**n)) {
                        name.push(n);
                        chars.next();
                    }
                    push_capture(&mut tokens, Some(name), Class::Segment, false);
                }
                _ => push_literal(&mut tokens, c),
            }
        }
        check_wide(&tokens)?;
        Ok(Pattern {
            tokens,
            loose_trailing_slash: true,
        })
    }

    /// The names of its captures, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().filter_map(|t| match t {
            Token::Capture { name, .. } => name.as_deref(),
            Token::Literal(_) => None,
        })
    }

    /// How many captures it has (`$1`…`$n`).
    pub fn capture_count(&self) -> usize {
        self.tokens
            .iter()
            .filter(|t| matches!(t, Token::Capture { .. }))
            .count()
    }

    /// Match the whole `path` (decoded, starting with `/`); the captures on success.
    pub fn matches(&self, path: &str) -> Option<Captures> {
        let mut captures = Vec::new();
        if match_from(&self.tokens, path, &mut captures) {
            return Some(captures);
        }
        if self.loose_trailing_slash {
            let other = match path.strip_suffix('/') {
                Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
                Some(_) => return None,
                None => format!("{path}/"),
            };
            captures.clear();
            if match_from(&self.tokens, &other, &mut captures) {
                return Some(captures);
            }
        }
        None
    }
}

/// The rest of a `( )` group after its `(`: only `.*` and `.+` are supported.
fn group(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Class, PatternError> {
    let mut inner = String::new();
    for c in chars.by_ref() {
        if c == ')' {
            return match inner.as_str() {
                ".*" => Ok(Class::Any),
                ".+" => Ok(Class::AnyNonEmpty),
                _ => Err(invalid(format!(
                    "the regular expression ({inner}) is not supported; only (.*) and (.+) are"
                ))),
            };
        }
        inner.push(c);
    }
    Err(invalid("unclosed '(' group"))
}

/// Backtracking match of `tokens` against all of `rest`, pushing captures as it goes.
fn match_from(tokens: &[Token], rest: &str, captures: &mut Captures) -> bool {
    let Some((first, others)) = tokens.split_first() else {
        return rest.is_empty();
    };
    match first {
        Token::Literal(text) => match rest.strip_prefix(text.as_str()) {
            Some(after) => match_from(others, after, captures),
            None => false,
        },
        Token::Capture {
            name,
            class,
            optional,
        } => {
            // An optional capture owns the `/` in front of its value; longest first, as
            // path-to-regexp's greedy groups do, then nothing at all.
            let body = if *optional {
                rest.strip_prefix('/')
            } else {
                Some(rest)
            };
            if let Some(body) = body {
                let ends = body.char_indices().map(|(i, c)| i + c.len_utf8()).rev();
                for end in ends {
                    let value = &body[..end];
                    let fits = match class {
                        Class::Segment => !value.contains('/'),
                        Class::Segments => {
                            !value.starts_with('/')
                                && !value.ends_with('/')
                                && !value.contains("//")
                        }
                        Class::Any | Class::AnyNonEmpty => true,
                    };
                    if fits && try_capture(name, value, others, &body[end..], captures) {
                        return true;
                    }
                }
                if *class == Class::Any && try_capture(name, "", others, body, captures) {
                    return true;
                }
            }
            *optional && try_capture(name, "", others, rest, captures)
        }
    }
}

/// Record `value` for a capture and match the rest; undo the record if that fails.
fn try_capture(
    name: &Option<String>,
    value: &str,
    others: &[Token],
    rest: &str,
    captures: &mut Captures,
) -> bool {
    let mark = captures.len();
    captures.push((name.clone(), value.to_owned()));
    if match_from(others, rest, captures) {
        return true;
    }
    captures.truncate(mark);
    false
}

/// One piece of a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// The value of the capture `:name`; `slash` when a `/` written before it is dropped
    /// together with an empty value (`/blog/:path*` with nothing captured is `/blog`).
    Named {
        /// The capture's name.
        name: String,
        /// See above.
        slash: bool,
    },
    /// `$n`: the n-th capture, from 1.
    Index(usize),
}

/// A compiled destination: a path starting with `/` or an absolute `http(s)://` URL, with
/// captures substituted in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The pieces, in order.
    pub parts: Vec<Part>,
    /// Whether it is an absolute URL (another site) rather than a path of this one.
    pub external: bool,
}

impl Destination {
    /// Compile `destination` for `source`. With `strict` (Vercel), a `:name` or `$n` the
    /// source does not capture is an error; without it (Netlify) `:name` stays text.
    pub fn parse(
        destination: &str,
        source: &Pattern,
        strict: bool,
    ) -> Result<Destination, PatternError> {
        let external = destination.starts_with("https://") || destination.starts_with("http://");
        if !external && !destination.starts_with('/') {
            return Err(invalid(
                "a destination must be a path starting with / or an http(s):// URL",
            ));
        }
        if destination.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid(
                "a destination must not contain spaces or control characters",
            ));
        }
        let names: Vec<&str> = source.names().collect();
        let mut parts: Vec<Part> = Vec::new();
        let mut chars = destination.char_indices().peekable();
        let mut literal = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                ':' if chars
                    .peek()
                    .is_some_and(|(_, n)| n.is_ascii_alphabetic() || *n == '_') =>
                {
                    let mut name = String::new();
                    while let Some(&(_, n)) = chars.peek().filter(|(_, n)| is_name_char(*n)) {
                        name.push(n);
                        chars.next();
                    }
                    if !names.contains(&name.as_str()) {
                        if strict {
                            return Err(invalid(format!(
                                "the destination uses :{name}, which the source does not capture"
                            )));
                        }
                        literal.push(':');
                        literal.push_str(&name);
                        continue;
                    }
                    // path-to-regexp modifiers written after a parameter in a destination;
                    // a `?` followed by more text starts the query instead.
                    if let Some(&(at, m)) = chars.peek() {
                        let tail = &destination[at + 1..];
                        if matches!(m, '*' | '+')
                            || (m == '?' && (tail.is_empty() || tail.starts_with('/')))
                        {
                            chars.next();
                        }
                    }
                    let slash = literal.ends_with('/');
                    if slash {
                        literal.pop();
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Named { name, slash });
                }
                '$' if chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => {
                    let mut digits = String::new();
                    while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                        digits.push(d);
                        chars.next();
                    }
                    let index: usize = digits
                        .parse()
                        .map_err(|_| invalid(format!("${digits} is not a capture number")))?;
                    if index == 0 || index > source.capture_count() {
                        if strict {
                            return Err(invalid(format!(
                                "the destination uses ${index}, but the source has {} capture(s)",
                                source.capture_count()
                            )));
                        }
                        literal.push('$');
                        literal.push_str(&digits);
                        continue;
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Index(index));
                }
                _ => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Destination { parts, external })
    }

    /// The destination with `captures` substituted; `encode` percent-encodes captured values
    /// (for a `Location` header), otherwise they are inserted decoded (for a manifest path).
    pub fn expand(&self, captures: &Captures, encode: bool) -> String {
        let mut out = String::new();
        let push = |out: &mut String, value: &str| {
            if encode {
                percent_encode_into(out, value);
            } else {
                out.push_str(value);
            }
        };
        for part in &self.parts {
            match part {
                // Literal text was checked for spaces and controls at deploy time; only
                // non-ASCII letters still need encoding to fit a header.
                Part::Literal(text) if encode && !text.is_ascii() => {
                    for c in text.chars() {
                        if c.is_ascii() {
                            out.push(c);
                        } else {
                            percent_encode_into(&mut out, c.encode_utf8(&mut [0; 4]));
                        }
                    }
                }
                Part::Literal(text) => out.push_str(text),
                Part::Named { name, slash } => {
                    let value = captures
                        .iter()
                        .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                        .map(|(_, v)| v.as_str())
                        .unwrap_or_default();
                    if *slash && !value.is_empty() {
                        out.push('/');
                    }
                    push(&mut out, value);
                }
                Part::Index(index) => {
                    let value = captures
                        .get(index - 1)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or_default();
                    push(&mut out, value);
                }
            }
        }
        if self.external {
            return out;
        }
        // A path of this site, never `//host/…`, which a browser would read as another host
        // (a captured value may start with `/`).
        let path = out.trim_start_matches('/');
        format!("/{path}")
    }
}

/// Percent-encode what may not appear raw in a URL path (keeping `/`), so a captured value
/// decoded from the request can go back into a `Location` header.
fn percent_encode_into(out: &mut String, value: &str) {
    for byte in value.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn caps(pattern: &Pattern, path: &str) -> Option<Vec<String>> {
        pattern
            .matches(path)
            .map(|c| c.into_iter().map(|(_, v)| v).collect())
    }

    #[test]
    fn vercel_params_segments_and_groups() {
        let p = Pattern::vercel("/blog/:slug").unwrap();
        assert_eq!(caps(&p, "/blog/hello"), Some(vec!["hello".into()]));
        assert_eq!(caps(&p, "/blog/a/b"), None);
        assert_eq!(caps(&p, "/blog/"), None);
        assert_eq!(caps(&p, "/Blog/hello"), None, "case-sensitive");

        let p = Pattern::vercel("/docs/:path*").unwrap();
        assert_eq!(caps(&p, "/docs"), Some(vec!["".into()]));
        assert_eq!(caps(&p, "/docs/a/b"), Some(vec!["a/b".into()]));
        assert_eq!(caps(&p, "/docsx"), None);

        let p = Pattern::vercel("/docs/:path+").unwrap();
        assert_eq!(caps(&p, "/docs"), None);
        assert_eq!(caps(&p, "/docs/a/b"), Some(vec!["a/b".into()]));

        let p = Pattern::vercel("/old/(.*)").unwrap();
        assert_eq!(caps(&p, "/old/x/y.html"), Some(vec!["x/y.html".into()]));
        assert_eq!(caps(&p, "/old/"), Some(vec!["".into()]));

        let p = Pattern::vercel("/:lang/:rest(.*)").unwrap();
        assert_eq!(caps(&p, "/en/a/b"), Some(vec!["en".into(), "a/b".into()]));
        let p = Pattern::vercel("/p/:id?").unwrap();
        assert_eq!(caps(&p, "/p"), Some(vec!["".into()]));
        assert_eq!(caps(&p, "/p/7"), Some(vec!["7".into()]));
    }

    #[test]
    fn vercel_refuses_what_it_cannot_mean() {
        for (source, needle) in [
            ("blog", "start with /"),
            ("https://x.com/a", "full URLs"),
            ("/a/:id(\\d+)", "not supported"),
            ("/a/*", "'*' is not supported"),
            ("/a/:", "parameter name"),
            ("/a/(.*", "unclosed"),
            ("/(.*)/(.*)/(.*)", "at most 2"),
        ] {
            let err = Pattern::vercel(source).unwrap_err().to_string();
            assert!(err.contains(needle), "{source}: {err}");
        }
    }

    #[test]
    fn netlify_splats_and_placeholders() {
        let p = Pattern::netlify("/news/:year/*").unwrap();
        assert_eq!(
            caps(&p, "/news/2024/a/b"),
            Some(vec!["2024".into(), "a/b".into()])
        );
        let p = Pattern::netlify("/about").unwrap();
        assert!(p.matches("/about/").is_some(), "trailing slash is ignored");
        let p = Pattern::netlify("/*").unwrap();
        assert!(p.matches("/").is_some());
        assert!(p.matches("/x/y").is_some());
    }

    #[test]
    fn destinations_substitute_names_and_numbers() {
        let source = Pattern::vercel("/blog/:slug/(.*)").unwrap();
        let dest = Destination::parse("/posts/:slug?from=$2", &source, true).unwrap();
        let captures = source.matches("/blog/hi/x y").unwrap();
        assert_eq!(dest.expand(&captures, true), "/posts/hi?from=x%20y");
        assert_eq!(dest.expand(&captures, false), "/posts/hi?from=x y");

        let source = Pattern::vercel("/docs/:path*").unwrap();
        let dest = Destination::parse("/guide/:path*", &source, true).unwrap();
        assert_eq!(
            dest.expand(&source.matches("/docs").unwrap(), true),
            "/guide"
        );
        assert_eq!(
            dest.expand(&source.matches("/docs/a/b").unwrap(), true),
            "/guide/a/b"
        );

        assert!(Destination::parse("/x/:nope", &source, true).is_err());
        assert!(Destination::parse("/x/$3", &source, true).is_err());
        assert!(Destination::parse("relative", &source, true).is_err());
        let unicode = Destination::parse("/café", &source, true).unwrap();
        assert_eq!(unicode.expand(&Vec::new(), true), "/caf%C3%A9");
        assert_eq!(unicode.expand(&Vec::new(), false), "/café");
        let splat = Pattern::netlify("/a*").unwrap();
        let dest = Destination::parse("/:splat", &splat, false).unwrap();
        assert_eq!(
            dest.expand(&splat.matches("/a//evil.com").unwrap(), true),
            "/evil.com"
        );
        let external = Destination::parse("https://example.com:8443/a", &source, true).unwrap();
        assert!(external.external);
        assert_eq!(
            external.expand(&Vec::new(), true),
            "https://example.com:8443/a"
        );
    }

    proptest! {
        #[test]
        fn a_literal_source_matches_only_itself(path in "/[a-z/]{0,12}", other in "/[a-z/]{0,12}") {
            let p = Pattern::vercel(&path).unwrap();
            prop_assert!(p.matches(&path).is_some());
            prop_assert_eq!(p.matches(&other).is_some(), other == path);
        }

        #[test]
        fn a_splat_captures_exactly_the_rest(prefix in "/[a-z]{1,6}/", rest in "[a-z/.]{0,16}") {
            let p = Pattern::netlify(&format!("{prefix}*")).unwrap();
            let captures = p.matches(&format!("{prefix}{rest}")).unwrap();
            prop_assert_eq!(&captures[0].1, &rest);
        }

        #[test]
        fn segment_captures_never_contain_a_slash(path in "/[a-z/]{0,16}") {
            let p = Pattern::vercel("/:a/:b").unwrap();
            if let Some(captures) = p.matches(&path) {
                for (_, value) in captures {
                    prop_assert!(!value.contains('/') && !value.is_empty());
                }
            }
        }
    }
}
