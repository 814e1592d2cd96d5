//! Netlify's `_redirects` and `_headers` files.
//!
//! `_redirects`: one rule per line, `from to [status][!]`; the first matching rule wins, the
//! default status is 301, `200` is a rewrite and `404` serves `to` as a not-found page; `!`
//! forces a rule over an existing file. Query-parameter matching (`id=:id`) and conditions
//! (`Country=…`, `Role=…`) are refused with the line, as are proxies (a `200` to another host)
//! and host-matching `from` URLs: silently dropping them would route differently than the file
//! says.
//!
//! `_headers`: a path pattern on its own line, then its headers indented below it as
//! `Name: value`. `#` starts a comment line in both files.

use super::pattern::{Destination, Pattern};
use super::{Action, HeaderRule, MAX_RULES, RoutingError, Rule, check_header};

fn redirects_error(line: usize, message: impl Into<String>) -> RoutingError {
    RoutingError::Redirects {
        line,
        message: message.into(),
    }
}

fn headers_error(line: usize, message: impl Into<String>) -> RoutingError {
    RoutingError::Headers {
        line,
        message: message.into(),
    }
}

/// Compile the text of a `_redirects` file.
pub(super) fn parse_redirects(text: &str) -> Result<Vec<Rule>, RoutingError> {
    let mut rules = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(field) = fields
            .iter()
            .skip(1)
            .find(|f| f.contains('=') && !f.starts_with('/') && !f.starts_with("http"))
        {
            return Err(redirects_error(
                number,
                format!(
                    "{field:?}: query-parameter matching and conditions (Country, Language, Role, Cookie) are not supported"
                ),
            ));
        }
        let (from, to, status) = match fields.as_slice() {
            [from, to] => (*from, *to, None),
            [from, to, status] => (*from, *to, Some(*status)),
            [_] => {
                return Err(redirects_error(
                    number,
                    "expected \"from to [status]\", found only one field",
                ));
            }
            _ => {
                return Err(redirects_error(
                    number,
                    "expected \"from to [status]\", found more fields",
                ));
            }
        };
        let (action, force) = match status {
            None => (Action::Redirect(301), false),
            Some(status) => {
                let (code, force) = match status.strip_suffix('!') {
                    Some(code) => (code, true),
                    None => (status, false),
                };
                let action = match code {
                    "301" | "302" | "303" | "307" | "308" => {
                        Action::Redirect(code.parse().map_err(|_| {
                            redirects_error(number, format!("{code:?} is not a status"))
                        })?)
                    }
                    "200" => Action::Rewrite,
                    "404" => Action::NotFound,
                    _ => {
                        return Err(redirects_error(
                            number,
                            format!(
                                "status {status:?} is not supported; use 301, 302, 303, 307, 308, 200 (rewrite) or 404, optionally with ! to force"
                            ),
                        ));
                    }
                };
                (action, force)
            }
        };
        let source = Pattern::netlify(from)
            .map_err(|e| redirects_error(number, format!("{from:?}: {e}")))?;
        let destination = Destination::parse(to, &source, false)
            .map_err(|e| redirects_error(number, format!("{to:?}: {e}")))?;
        if destination.external && !matches!(action, Action::Redirect(_)) {
            return Err(redirects_error(
                number,
                format!(
                    "{to:?}: rewrites to other hosts (proxying) are not supported; use a redirect status"
                ),
            ));
        }
        rules.push(Rule {
            source,
            destination,
            action,
            force,
        });
        if rules.len() > MAX_RULES {
            return Err(redirects_error(
                number,
                format!("more than {MAX_RULES} rules"),
            ));
        }
    }
    Ok(rules)
}

/// Compile the text of a `_headers` file.
pub(super) fn parse_headers(text: &str) -> Result<Vec<HeaderRule>, RoutingError> {
    let mut rules: Vec<HeaderRule> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if !indented {
            let source = Pattern::netlify(line)
                .map_err(|e| headers_error(number, format!("{line:?}: {e}")))?;
            rules.push(HeaderRule {
                source,
                headers: Vec::new(),
            });
            if rules.len() > MAX_RULES {
                return Err(headers_error(
                    number,
                    format!("more than {MAX_RULES} rules"),
                ));
            }
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            return Err(headers_error(
                number,
                "a header line must come after a path line (paths start at the beginning of a line)",
            ));
        };
        if line.starts_with('!') {
            return Err(headers_error(
                number,
                "detaching headers with \"! Name\" is not supported",
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(headers_error(number, "expected \"Name: value\""));
        };
        let name = check_header(name.trim(), value.trim()).map_err(|e| headers_error(number, e))?;
        rule.headers.push((name, value.trim().to_owned()));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_parse_with_statuses_and_force() {
        let rules = parse_redirects(
            "# comment\n\n/old /new\n/a /b 302\n/c /d 308!\n/app/* /index.html 200\n/gone /404.html 404\n/ext https://example.com/:splat 301\n",
        )
        .unwrap();
        let summary: Vec<(Action, bool)> = rules.iter().map(|r| (r.action, r.force)).collect();
        assert_eq!(
            summary,
            vec![
                (Action::Redirect(301), false),
                (Action::Redirect(302), false),
                (Action::Redirect(308), true),
                (Action::Rewrite, false),
                (Action::NotFound, false),
                (Action::Redirect(301), false),
            ]
        );
    }

    #[test]
    fn redirect_errors_name_the_line() {
        for (text, line, needle) in [
            ("/a /b\n/only\n", 2, "only one field"),
            ("\n\n/a /b 301 extra", 3, "more fields"),
            ("/a /b 418", 1, "status \"418\" is not supported"),
            ("/a /b 302 Country=us", 1, "conditions"),
            ("/store id=:id /blog/:id 301", 1, "query-parameter"),
            ("/a b", 1, "must be a path starting with /"),
            ("a /b", 1, "must start with /"),
            ("/api/* https://api.example.com/:splat 200", 1, "proxying"),
            ("https://x.com/* /b 301", 1, "full URLs"),
        ] {
            match parse_redirects(text) {
                Err(RoutingError::Redirects { line: got, message }) => {
                    assert_eq!(got, line, "{text}");
                    assert!(message.contains(needle), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn headers_parse_blocks() {
        let rules = parse_headers(
            "/*\n  X-Frame-Options: DENY\n  Cache-Control: no-cache\n# c\n/assets/*\n\tCache-Control: public, max-age=31536000, immutable\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].headers.len(), 2);
        assert_eq!(
            rules[1].headers[0],
            (
                "cache-control".to_owned(),
                "public, max-age=31536000, immutable".to_owned()
            )
        );
    }

    #[test]
    fn header_errors_name_the_line() {
        for (text, line, needle) in [
            ("  X-A: 1", 1, "must come after a path line"),
            ("/*\n  X-A 1", 2, "expected \"Name: value\""),
            ("/*\n  Set-Cookie: a=b", 2, "Set-Cookie is not allowed"),
            (
                "/*\n  X-A: 1\n  Content-Length: 5",
                3,
                "Content-Length is not allowed",
            ),
            ("/*\n  ! X-A", 2, "not supported"),
            ("/*\n  Bad Name: 1", 2, "not a valid header name"),
            ("nope\n  X-A: 1", 1, "must start with /"),
        ] {
            match parse_headers(text) {
                Err(RoutingError::Headers { line: got, message }) => {
                    assert_eq!(got, line, "{text}");
                    assert!(message.contains(needle), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
