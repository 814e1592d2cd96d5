//! The `vercel.json` subset we accept: `cleanUrls`, `trailingSlash`, `redirects`, `rewrites`
//! and `headers`.
//!
//! The file is read as a JSON value and walked by hand rather than deserialized into structs,
//! so every error can name its key path (`redirects[2].source`) the way a user finds it in
//! the file. Keys of `vercel.json` that do not concern routing (`buildCommand`, `framework`,
//! `$schema`, …) are ignored; routing features we do not implement (`routes`, `has` /
//! `missing` conditions, rewrites to other hosts) are errors, because ignoring them would
//! serve the site differently from what its author wrote.

use serde_json::{Map, Value};

use super::pattern::{Destination, Pattern};
use super::{
    Action, Format, HeaderRule, MAX_RULES, RoutingConfig, RoutingError, Rule, check_header,
};

fn err(message: impl Into<String>) -> RoutingError {
    RoutingError::VercelJson(message.into())
}

/// Compile the text of a `vercel.json`.
pub(super) fn parse(text: &str) -> Result<RoutingConfig, RoutingError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(format!(
            "line {} column {}: not valid JSON ({})",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))
    })?;
    let Value::Object(root) = value else {
        return Err(err("the top level must be an object"));
    };
    for unsupported in ["routes", "functions", "middleware"] {
        if root.contains_key(unsupported) {
            return Err(err(format!(
                "{unsupported}: not supported by DeployStack (use redirects, rewrites and headers)"
            )));
        }
    }
    let clean_urls = optional_bool(&root, "cleanUrls")?.unwrap_or(false);
    let trailing_slash = optional_bool(&root, "trailingSlash")?;
    let mut rules = Vec::new();
    for (i, item) in list(&root, "redirects")?.iter().enumerate() {
        rules.push(redirect(&format!("redirects[{i}]"), item)?);
    }
    for (i, item) in list(&root, "rewrites")?.iter().enumerate() {
        rules.push(rewrite(&format!("rewrites[{i}]"), item)?);
    }
    let mut headers = Vec::new();
    for (i, item) in list(&root, "headers")?.iter().enumerate() {
        headers.push(header_rule(&format!("headers[{i}]"), item)?);
    }
    if rules.len() + headers.len() > MAX_RULES {
        return Err(err(format!(
            "more than {MAX_RULES} redirects, rewrites and header rules"
        )));
    }
    Ok(RoutingConfig {
        format: Format::Vercel,
        clean_urls,
        trailing_slash,
        rules,
        headers,
    })
}

/// serde_json appends " at line L column C", which the message already leads with.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

fn optional_bool(root: &Map<String, Value>, key: &str) -> Result<Option<bool>, RoutingError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(err(format!("{key}: must be true or false"))),
    }
}

fn list<'a>(root: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], RoutingError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(err(format!("{key}: must be a list"))),
    }
}

fn object<'a>(at: &str, item: &'a Value) -> Result<&'a Map<String, Value>, RoutingError> {
    let Value::Object(map) = item else {
        return Err(err(format!("{at}: must be an object")));
    };
    for condition in ["has", "missing"] {
        if map.contains_key(condition) {
            return Err(err(format!(
                "{at}.{condition}: conditions are not supported by DeployStack"
            )));
        }
    }
    Ok(map)
}

fn string<'a>(at: &str, map: &'a Map<String, Value>, key: &str) -> Result<&'a str, RoutingError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(err(format!("{at}.{key}: must be a string"))),
        None => Err(err(format!("{at}.{key}: missing"))),
    }
}

fn source(at: &str, map: &Map<String, Value>) -> Result<Pattern, RoutingError> {
    let text = string(at, map, "source")?;
    Pattern::vercel(text).map_err(|e| err(format!("{at}.source: {e}")))
}

fn redirect(at: &str, item: &Value) -> Result<Rule, RoutingError> {
    let map = object(at, item)?;
    let source = source(at, map)?;
    let destination = Destination::parse(string(at, map, "destination")?, &source, true)
        .map_err(|e| err(format!("{at}.destination: {e}")))?;
    let permanent = match map.get("permanent") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(err(format!("{at}.permanent: must be true or false"))),
    };
    let status = match map.get("statusCode") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(code @ (301 | 302 | 303 | 307 | 308)) => Some(code as u16),
            _ => {
                return Err(err(format!(
                    "{at}.statusCode: must be 301, 302, 303, 307 or 308"
                )));
            }
        },
        Some(_) => return Err(err(format!("{at}.statusCode: must be a number"))),
    };
    if status.is_some() && permanent.is_some() {
        return Err(err(format!(
            "{at}: set either permanent or statusCode, not both"
        )));
    }
    // Vercel's default is permanent.
    let status = status.unwrap_or(if permanent.unwrap_or(true) { 308 } else { 307 });
    Ok(Rule {
        source,
        destination,
        action: Action::Redirect(status),
        force: true,
    })
}

fn rewrite(at: &str, item: &Value) -> Result<Rule, RoutingError> {
    let map = object(at, item)?;
    let source = source(at, map)?;
    let destination = Destination::parse(string(at, map, "destination")?, &source, true)
        .map_err(|e| err(format!("{at}.destination: {e}")))?;
    if destination.external {
        return Err(err(format!(
            "{at}.destination: rewrites to external URLs (proxying) are not supported; use a redirect or a path of this site"
        )));
    }
    Ok(Rule {
        source,
        destination,
        action: Action::Rewrite,
        // Vercel checks the filesystem before rewrites.
        force: false,
    })
}

fn header_rule(at: &str, item: &Value) -> Result<HeaderRule, RoutingError> {
    let map = object(at, item)?;
    let source = source(at, map)?;
    let Some(Value::Array(list)) = map.get("headers") else {
        return Err(err(format!(
            "{at}.headers: must be a list of {{key, value}}"
        )));
    };
    let mut headers = Vec::with_capacity(list.len());
    for (j, pair) in list.iter().enumerate() {
        let here = format!("{at}.headers[{j}]");
        let Value::Object(pair) = pair else {
            return Err(err(format!("{here}: must be an object with key and value")));
        };
        let key = string(&here, pair, "key")?;
        let value = string(&here, pair, "value")?;
        let name = check_header(key, value).map_err(|e| err(format!("{here}: {e}")))?;
        headers.push((name, value.to_owned()));
    }
    Ok(HeaderRule { source, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_compiles() {
        let config = parse(
            r#"{
              "$schema": "https://openapi.vercel.sh/vercel.json",
              "cleanUrls": true,
              "trailingSlash": false,
              "redirects": [
                {"source": "/a", "destination": "/b"},
                {"source": "/c", "destination": "/d", "permanent": false},
                {"source": "/e", "destination": "https://example.com/", "statusCode": 301}
              ],
              "rewrites": [{"source": "/app/:path*", "destination": "/app/index.html"}],
              "headers": [{"source": "/(.*)", "headers": [{"key": "Cache-Control", "value": "no-cache"}]}]
            }"#,
        )
        .unwrap();
        assert!(config.clean_urls);
        assert_eq!(config.trailing_slash, Some(false));
        let actions: Vec<Action> = config.rules.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            vec![
                Action::Redirect(308),
                Action::Redirect(307),
                Action::Redirect(301),
                Action::Rewrite
            ]
        );
        assert_eq!(
            config.headers[0].headers,
            vec![("cache-control".to_owned(), "no-cache".to_owned())]
        );
    }

    #[test]
    fn every_error_names_its_key() {
        for (text, needle) in [
            ("{", "line 1 column 1: not valid JSON"),
            ("{\n  \"redirects\": [1,]\n}", "line 2"),
            ("[]", "top level must be an object"),
            (
                r#"{"cleanUrls": "yes"}"#,
                "cleanUrls: must be true or false",
            ),
            (r#"{"routes": []}"#, "routes: not supported"),
            (r#"{"redirects": {}}"#, "redirects: must be a list"),
            (
                r#"{"redirects": [{"source": "/a", "destination": "/b"}, {"source": "/a", "destination": "/b"}, {"source": "a", "destination": "/b"}]}"#,
                "redirects[2].source: a source must start with /",
            ),
            (
                r#"{"redirects": [{"source": "/a"}]}"#,
                "redirects[0].destination: missing",
            ),
            (
                r#"{"redirects": [{"source": "/a", "destination": "/b", "statusCode": 200}]}"#,
                "redirects[0].statusCode: must be 301",
            ),
            (
                r#"{"redirects": [{"source": "/a/:x", "destination": "/b/:y"}]}"#,
                "redirects[0].destination: the destination uses :y",
            ),
            (
                r#"{"redirects": [{"source": "/a", "destination": "/b", "has": []}]}"#,
                "redirects[0].has: conditions are not supported",
            ),
            (
                r#"{"rewrites": [{"source": "/api/(.*)", "destination": "https://api.example.com/$1"}]}"#,
                "rewrites[0].destination: rewrites to external URLs (proxying) are not supported",
            ),
            (
                r#"{"headers": [{"source": "/(.*)", "headers": [{"key": "Set-Cookie", "value": "a=b"}]}]}"#,
                "headers[0].headers[0]: the header Set-Cookie is not allowed",
            ),
            (
                r#"{"headers": [{"source": "/", "headers": [{"key": "X", "value": "a"}, {"key": "Service-Worker-Allowed", "value": "/"}]}]}"#,
                "headers[0].headers[1]: the header Service-Worker-Allowed is not allowed",
            ),
            (
                r#"{"headers": [{"source": "/", "headers": [{"key": "Transfer-Encoding", "value": "chunked"}]}]}"#,
                "hop-by-hop",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code(), "invalid_vercel_json");
            let message = error.to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }
}
