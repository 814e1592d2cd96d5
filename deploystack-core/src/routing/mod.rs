//! Per-deployment routing: `vercel.json`, Netlify `_redirects` / `_headers`, SPA fallbacks
//! and custom 404 pages.
//!
//! Configuration is read from the build output once, at deploy time ([`RoutingConfig::from_files`]),
//! and compiled into one model, whichever format it came from. A file that does not parse
//! fails the deployment before it goes live, with an error naming the line (Netlify files) or
//! the key path (`redirects[2].source`). The compiled model is stored with the deployment as
//! JSON, so serving never parses a configuration file.
//!
//! At serve time, [`route`] applies it in Vercel's order:
//! 1. canonical redirects: `cleanUrls` (`/a.html` → `/a`) and `trailingSlash`;
//! 2. the rules, in order — redirects, and rewrites. A rule that is not *forced* is shadowed
//!    by a real file at the request path (Netlify without `!`; every `vercel.json` rewrite,
//!    since Vercel checks the filesystem before rewrites). `vercel.json` redirects are forced
//!    and come first, so this one loop is exactly Vercel's "redirects, filesystem, rewrites";
//! 3. the real file (`index.html` of a folder, `a.html` for `/a` with `cleanUrls`);
//! 4. with no rules at all, a root `200.html` answers every missing path (surge.sh's SPA
//!    convention);
//! 5. the nearest `404.html` up the tree, with status 404.
//!
//! Headers are chosen separately, from the request path: every matching header rule applies,
//! a later rule replacing a header an earlier one set.
//!
//! # Why is evaluation generic over the file lookup?
//! [`route`] does no I/O of its own: it asks `lookup` whether a manifest path exists, so it
//! is tested against a set of paths, and served against the repository (whose answers the
//! read cache keeps per path, so a warm site pays no database round trip per rule).

mod netlify;
mod pattern;
mod vercel;

use std::future::Future;

use serde::{Deserialize, Serialize};

pub use pattern::{Captures, Class, Destination, Part, Pattern, PatternError, Token};

/// The files read from the root of a build output, in the order they take precedence.
///
/// If `vercel.json` exists it alone configures routing and the Netlify files are ignored (the
/// build log says so). None of them is ever served: Vercel does not serve `vercel.json`, and
/// Netlify does not serve `_redirects` or `_headers`.
pub const CONFIG_FILES: [&str; 3] = ["vercel.json", "_redirects", "_headers"];

/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 512 * 1024;

/// Most rules (redirects, rewrites and header rules together) one deployment may have: each
/// request walks the list, so it is bounded like every other per-request cost.
pub const MAX_RULES: usize = 2048;

/// Why a routing configuration was refused. The message says where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// `vercel.json` is not valid JSON or not a configuration we support.
    #[error("vercel.json: {0}")]
    VercelJson(String),
    /// A line of `_redirects` is invalid.
    #[error("_redirects line {line}: {message}")]
    Redirects {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A line of `_headers` is invalid.
    #[error("_headers line {line}: {message}")]
    Headers {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A file is too large or not UTF-8.
    #[error("{file}: {message}")]
    File {
        /// Which file.
        file: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl RoutingError {
    /// The deployment error code: `invalid_vercel_json`, `invalid_redirects` or
    /// `invalid_headers`.
    pub fn code(&self) -> &'static str {
        match self {
            RoutingError::VercelJson(_) => "invalid_vercel_json",
            RoutingError::File {
                file: "vercel.json",
                ..
            } => "invalid_vercel_json",
            RoutingError::Redirects { .. } => "invalid_redirects",
            RoutingError::File {
                file: "_redirects", ..
            } => "invalid_redirects",
            RoutingError::Headers { .. } | RoutingError::File { .. } => "invalid_headers",
        }
    }
}

/// Which format a configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `vercel.json`.
    Vercel,
    /// `_redirects` and/or `_headers`.
    Netlify,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Answer with this redirect status (301, 302, 303, 307 or 308) and a `Location`.
    Redirect(u16),
    /// Serve the destination's file with 200, keeping the URL.
    Rewrite,
    /// Serve the destination's file with 404 (Netlify's `404` status).
    NotFound,
}

/// One redirect or rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Which request paths it applies to.
    pub source: Pattern,
    /// Where it sends them.
    pub destination: Destination,
    /// What it does.
    pub action: Action,
    /// Whether it applies even when a real file exists at the request path.
    pub force: bool,
}

/// Headers added to the responses for the paths a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRule {
    /// Which request paths it applies to.
    pub source: Pattern,
    /// `(name, value)` pairs; names are lowercase.
    pub headers: Vec<(String, String)>,
}

/// The compiled routing configuration of one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingConfig {
    /// Where it came from.
    pub format: Format,
    /// `cleanUrls`: `/a.html` redirects to `/a`, which serves `a.html`.
    #[serde(default)]
    pub clean_urls: bool,
    /// `trailingSlash`: `Some(true)` adds one to every path without an extension,
    /// `Some(false)` removes it; `None` leaves paths alone.
    #[serde(default)]
    pub trailing_slash: Option<bool>,
    /// Redirects and rewrites, in evaluation order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Header rules, in order.
    #[serde(default)]
    pub headers: Vec<HeaderRule>,
}

impl RoutingConfig {
    /// Compile the configuration files found at the root of a build output: `read(name)`
    /// gives the contents of one of [`CONFIG_FILES`], or `None` if it does not exist. `Ok(None)`
    /// when there is none; `note` receives lines for the build log.
    pub fn from_files(
        mut read: impl FnMut(&'static str) -> Option<Vec<u8>>,
        mut note: impl FnMut(String),
    ) -> Result<Option<RoutingConfig>, RoutingError> {
        let text = |file: &'static str, bytes: Vec<u8>| {
            if bytes.len() > MAX_CONFIG_BYTES {
                return Err(RoutingError::File {
                    file,
                    message: format!("larger than the {MAX_CONFIG_BYTES} bytes allowed"),
                });
            }
            String::from_utf8(bytes).map_err(|_| RoutingError::File {
                file,
                message: "not valid UTF-8".to_owned(),
            })
        };
        if let Some(bytes) = read("vercel.json") {
            let config = vercel::parse(&text("vercel.json", bytes)?)?;
            for ignored in ["_redirects", "_headers"] {
                if read(ignored).is_some() {
                    note(format!(
                        "routing: {ignored} is ignored because vercel.json configures routing"
                    ));
                }
            }
            note(format!(
                "routing: vercel.json compiled ({} redirects/rewrites, {} header rules)",
                config.rules.len(),
                config.headers.len()
            ));
            return Ok(Some(config));
        }
        let redirects = read("_redirects")
            .map(|b| text("_redirects", b))
            .transpose()?;
        let headers = read("_headers").map(|b| text("_headers", b)).transpose()?;
        if redirects.is_none() && headers.is_none() {
            return Ok(None);
        }
        let config = RoutingConfig {
            format: Format::Netlify,
            clean_urls: false,
            trailing_slash: None,
            rules: match &redirects {
                Some(text) => netlify::parse_redirects(text)?,
                None => Vec::new(),
            },
            headers: match &headers {
                Some(text) => netlify::parse_headers(text)?,
                None => Vec::new(),
            },
        };
        note(format!(
            "routing: _redirects/_headers compiled ({} redirects/rewrites, {} header rules)",
            config.rules.len(),
            config.headers.len()
        ));
        Ok(Some(config))
    }

    /// Every header that applies to `path` (decoded, starting with `/`), later rules
    /// replacing what earlier ones set.
    pub fn headers_for(&self, path: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for rule in &self.headers {
            if rule.source.matches(path).is_none() {
                continue;
            }
            for (name, value) in &rule.headers {
                match out.iter_mut().find(|(n, _)| n == name) {
                    Some(existing) => existing.1.clone_from(value),
                    None => out.push((name.clone(), value.clone())),
                }
            }
        }
        out
    }
}

/// Headers a tenant may not set, lowercase, with the reason given to the user.
///
/// `Set-Cookie` and `Service-Worker-Allowed` would let one site act on others sharing its
/// origin (path-based serving) or on the platform; the hop-by-hop headers and the framing
/// headers (`Content-Length`, `-Encoding`, `-Range`) describe the connection or the bytes on
/// the wire, which the server alone knows — a wrong one corrupts the response.
const FORBIDDEN_HEADERS: [(&str, &str); 13] = [
    (
        "set-cookie",
        "sites cannot set cookies through configuration",
    ),
    (
        "service-worker-allowed",
        "it could widen a service worker's scope beyond the site",
    ),
    ("connection", "it is a hop-by-hop header"),
    ("keep-alive", "it is a hop-by-hop header"),
    ("proxy-connection", "it is a hop-by-hop header"),
    ("transfer-encoding", "it is a hop-by-hop header"),
    ("te", "it is a hop-by-hop header"),
    ("trailer", "it is a hop-by-hop header"),
    ("upgrade", "it is a hop-by-hop header"),
    ("proxy-authenticate", "it is a hop-by-hop header"),
    (
        "content-length",
        "the server sets it from the bytes it sends",
    ),
    (
        "content-encoding",
        "the server sets it from the bytes it sends",
    ),
    (
        "content-range",
        "the server sets it from the bytes it sends",
    ),
];

/// Check one tenant header; the lowercase name on success, the reason otherwise.
pub fn check_header(name: &str, value: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    let lower = name.to_ascii_lowercase();
    if let Some((_, why)) = FORBIDDEN_HEADERS.iter().find(|(n, _)| *n == lower) {
        return Err(format!("the header {name} is not allowed: {why}"));
    }
    if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
        return Err(format!(
            "the value of {name} must be printable ASCII (no control characters)"
        ));
    }
    Ok(lower)
}

/// What a request path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<F> {
    /// Answer with a redirect. `location` is a path of the site (starting with `/`, relative
    /// to the site's root) or an absolute URL.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// Where to.
        location: String,
    },
    /// The path names a folder without its trailing slash, and the configuration does not
    /// say what to do: redirect relatively to the same path plus `/`.
    AddTrailingSlash,
    /// Serve this file with this status: 200, or 404 for a custom not-found page.
    File {
        /// The file.
        file: F,
        /// 200 or 404.
        status: u16,
    },
    /// Nothing to serve and no `404.html`: the platform's 404.
    NotFound,
}

/// A [`Route`] and the headers the configuration adds to its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<F> {
    /// What to answer.
    pub route: Route<F>,
    /// `(lowercase name, value)` to set on the response, replacing the defaults.
    pub headers: Vec<(String, String)>,
}

/// Most folders walked up from a missing path looking for a `404.html` (the root's is always
/// tried too), so a deep hostile path costs a bounded number of lookups.
const MAX_404_DEPTH: usize = 8;

/// Resolve `path` — normalized as `services::serving::normalize_path` returns it: no leading
/// `/`, `""` for the root, a trailing `/` for a folder — under `config` (`None` when the
/// deployment has no routing files). `lookup(manifest_path)` says whether the deployment has
/// that file.
pub async fn route<F, E, L, Fut>(
    config: Option<&RoutingConfig>,
    path: &str,
    mut lookup: L,
) -> Result<Routed<F>, E>
where
    L: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Option<F>, E>>,
{
    let url = format!("/{path}");
    let headers = config.map(|c| c.headers_for(&url)).unwrap_or_default();
    let done = |route: Route<F>| {
        Ok(Routed {
            route,
            headers: headers.clone(),
        })
    };
    let (clean_urls, trailing_slash) =
        config.map_or((false, None), |c| (c.clean_urls, c.trailing_slash));

    if let Some(location) = canonical(&url, clean_urls, trailing_slash) {
        return done(Route::Redirect {
            status: 308,
            location,
        });
    }

    // The filesystem answer for the request path, asked at most once.
    let mut here: Option<Found<F>> = None;
    let rules = config.map(|c| c.rules.as_slice()).unwrap_or_default();
    for rule in rules {
        let Some(captures) = rule.source.matches(&url) else {
            continue;
        };
        if !rule.force {
            if here.is_none() {
                here = Some(filesystem(path, clean_urls, trailing_slash, &mut lookup).await?);
            }
            if !matches!(here, Some(Found::Nothing)) {
                // A real file shadows rules that are not forced; a later forced one may apply.
                continue;
            }
        }
        match rule.action {
            Action::Redirect(status) => {
                return done(Route::Redirect {
                    status,
                    location: rule.destination.expand(&captures, true),
                });
            }
            Action::Rewrite | Action::NotFound => {
                let target = rule.destination.expand(&captures, false);
                let status = if rule.action == Action::Rewrite {
                    200
                } else {
                    404
                };
                return match rewrite_target(&target) {
                    Some(target) => {
                        match filesystem(&target, clean_urls, trailing_slash, &mut lookup).await? {
                            Found::File(file) => done(Route::File { file, status }),
                            _ => done(not_found(path, &mut lookup).await?),
                        }
                    }
                    None => done(not_found(path, &mut lookup).await?),
                };
            }
        }
    }

    let here = match here {
        Some(found) => found,
        None => filesystem(path, clean_urls, trailing_slash, &mut lookup).await?,
    };
    match here {
        Found::File(file) => done(Route::File { file, status: 200 }),
        Found::Folder => done(Route::AddTrailingSlash),
        Found::Nothing => {
            if rules.is_empty()
                && let Some(file) = lookup("200.html".to_owned()).await?
            {
                return done(Route::File { file, status: 200 });
            }
            done(not_found(path, &mut lookup).await?)
        }
    }
}

/// What the deployment's files hold at a path.
enum Found<F> {
    File(F),
    /// A folder asked for without its trailing slash.
    Folder,
    Nothing,
}

/// The file a (normalized) path names: itself, its folder's `index.html`, or with
/// `cleanUrls` `<path>.html`.
async fn filesystem<F, E, L, Fut>(
    path: &str,
    clean_urls: bool,
    trailing_slash: Option<bool>,
    lookup: &mut L,
) -> Result<Found<F>, E>
where
    L: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Option<F>, E>>,
{
    if path.is_empty() || path.ends_with('/') {
        if let Some(file) = lookup(format!("{path}index.html")).await? {
            return Ok(Found::File(file));
        }
        if clean_urls
            && let Some(body) = path.strip_suffix('/')
            && !body.is_empty()
            && let Some(file) = lookup(format!("{body}.html")).await?
        {
            return Ok(Found::File(file));
        }
        return Ok(Found::Nothing);
    }
    if let Some(file) = lookup(path.to_owned()).await? {
        return Ok(Found::File(file));
    }
    if clean_urls && let Some(file) = lookup(format!("{path}.html")).await? {
        return Ok(Found::File(file));
    }
    if let Some(file) = lookup(format!("{path}/index.html")).await? {
        // With `trailingSlash: false` the folder is served at its slash-less URL.
        return Ok(if trailing_slash == Some(false) {
            Found::File(file)
        } else {
            Found::Folder
        });
    }
    Ok(Found::Nothing)
}

/// The nearest `404.html` up the tree from `path`, served with 404.
async fn not_found<F, E, L, Fut>(path: &str, lookup: &mut L) -> Result<Route<F>, E>
where
    L: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Option<F>, E>>,
{
    // The folder the path is in (a folder path is its own folder).
    let mut folder = match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    };
    let mut depth = 0;
    while !folder.is_empty() && depth < MAX_404_DEPTH {
        if let Some(file) = lookup(format!("{folder}/404.html")).await? {
            return Ok(Route::File { file, status: 404 });
        }
        folder = folder.rfind('/').map_or("", |i| &folder[..i]);
        depth += 1;
    }
    Ok(match lookup("404.html".to_owned()).await? {
        Some(file) => Route::File { file, status: 404 },
        None => Route::NotFound,
    })
}

/// A rewrite destination as a normalized manifest path, or `None` if it cannot name a file
/// (the query is dropped: files do not have one).
fn rewrite_target(target: &str) -> Option<String> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = path.strip_prefix('/')?;
    let body = path.strip_suffix('/').unwrap_or(path);
    if !body.is_empty()
        && body
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    Some(path.to_owned())
}

/// The redirect `cleanUrls` / `trailingSlash` ask for, if any (`url` starts with `/`).
fn canonical(url: &str, clean_urls: bool, trailing_slash: Option<bool>) -> Option<String> {
    if clean_urls {
        let stripped = url
            .strip_suffix("/index.html")
            .or_else(|| url.strip_suffix("/index"))
            .map(|folder| format!("{folder}/"))
            .or_else(|| url.strip_suffix(".html").map(str::to_owned));
        if let Some(mut target) = stripped {
            if target.len() > 1 && target.ends_with('/') && trailing_slash != Some(true) {
                target.pop();
            } else if trailing_slash == Some(true) && !target.ends_with('/') {
                target.push('/');
            }
            return Some(target);
        }
    }
    match trailing_slash {
        Some(true) => {
            if url.starts_with("/.well-known/") {
                return None;
            }
            match url.strip_suffix('/') {
                Some(body) if !body.is_empty() => {
                    let last = body.rsplit('/').next().unwrap_or_default();
                    last.contains('.').then(|| body.to_owned())
                }
                Some(_) => None,
                None => {
                    let last = url.rsplit('/').next().unwrap_or_default();
                    (!last.contains('.')).then(|| format!("{url}/"))
                }
            }
        }
        Some(false) => url
            .strip_suffix('/')
            .filter(|body| !body.is_empty())
            .map(str::to_owned),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::convert::Infallible;

    fn resolve(config: Option<&RoutingConfig>, files: &[&str], path: &str) -> Routed<String> {
        let files: BTreeSet<String> = files.iter().map(|f| (*f).to_owned()).collect();
        let lookup = |p: String| {
            let found = files.contains(&p).then_some(p);
            async move { Ok::<_, Infallible>(found) }
        };
        let fut = route(config, path, lookup);
        match futures_util::FutureExt::now_or_never(fut) {
            Some(Ok(routed)) => routed,
            _ => panic!("route did not finish at once"),
        }
    }

    fn file(name: &str, status: u16) -> Route<String> {
        Route::File {
            file: name.to_owned(),
            status,
        }
    }

    fn redirect(status: u16, location: &str) -> Route<String> {
        Route::Redirect {
            status,
            location: location.to_owned(),
        }
    }

    #[test]
    fn without_configuration_files_folders_and_nearest_404() {
        let files = [
            "index.html",
            "docs/index.html",
            "a/404.html",
            "a/b/404.html",
            "404.html",
        ];
        assert_eq!(resolve(None, &files, "").route, file("index.html", 200));
        assert_eq!(resolve(None, &files, "docs").route, Route::AddTrailingSlash);
        assert_eq!(
            resolve(None, &files, "a/b/missing").route,
            file("a/b/404.html", 404)
        );
        assert_eq!(
            resolve(None, &files, "a/c/missing").route,
            file("a/404.html", 404)
        );
        assert_eq!(resolve(None, &files, "x/y").route, file("404.html", 404));
        assert_eq!(resolve(None, &["index.html"], "x").route, Route::NotFound);
        assert_eq!(
            resolve(None, &["index.html", "200.html"], "app/route").route,
            file("200.html", 200)
        );
    }

    #[test]
    fn vercel_order_clean_urls_redirects_files_rewrites() {
        let config = vercel::parse(
            r#"{
                "cleanUrls": true,
                "redirects": [{"source": "/old/:slug", "destination": "/new/:slug"},
                              {"source": "/about", "destination": "/never", "permanent": false}],
                "rewrites": [{"source": "/about", "destination": "/never.html"},
                             {"source": "/(.*)", "destination": "/index.html"}],
                "headers": [{"source": "/(.*)", "headers": [{"key": "X-A", "value": "1"}]},
                            {"source": "/about", "headers": [{"key": "x-a", "value": "2"}]}]
            }"#,
        )
        .unwrap();
        let files = ["index.html", "about.html"];
        let c = Some(&config);
        assert_eq!(
            resolve(c, &files, "about.html").route,
            redirect(308, "/about")
        );
        assert_eq!(resolve(c, &files, "index.html").route, redirect(308, "/"));
        assert_eq!(resolve(c, &files, "old/x").route, redirect(308, "/new/x"));
        // Redirects come before the filesystem.
        assert_eq!(resolve(c, &files, "about").route, redirect(307, "/never"));
        // The filesystem comes before rewrites.
        assert_eq!(resolve(c, &files, "").route, file("index.html", 200));
        assert_eq!(resolve(c, &files, "app/x").route, file("index.html", 200));
        assert_eq!(
            resolve(c, &files, "about").headers,
            vec![("x-a".to_owned(), "2".to_owned())]
        );
    }

    #[test]
    fn trailing_slash_both_ways() {
        let mut config = vercel::parse(r#"{"trailingSlash": true}"#).unwrap();
        let files = ["docs/index.html", "a.js"];
        assert_eq!(
            resolve(Some(&config), &files, "docs").route,
            redirect(308, "/docs/")
        );
        assert_eq!(
            resolve(Some(&config), &files, "a.js").route,
            file("a.js", 200)
        );
        assert_eq!(
            resolve(Some(&config), &files, "a.js/").route,
            redirect(308, "/a.js")
        );
        config.trailing_slash = Some(false);
        assert_eq!(
            resolve(Some(&config), &files, "docs/").route,
            redirect(308, "/docs")
        );
        assert_eq!(
            resolve(Some(&config), &files, "docs").route,
            file("docs/index.html", 200)
        );
    }

    #[test]
    fn the_compiled_model_round_trips_through_json() {
        // The repository stores it as JSON and the Redis cache serializes it with the record.
        let config = RoutingConfig::from_files(
            |name| match name {
                "_redirects" => Some(b"/a/:x/* /b/:x/:splat 302!\n/* /index.html 200\n".to_vec()),
                "_headers" => Some(b"/*\n  X-Frame-Options: DENY\n".to_vec()),
                _ => None,
            },
            |_| {},
        )
        .unwrap()
        .unwrap();
        let text = serde_json::to_string(&config).unwrap();
        let back: RoutingConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn vercel_json_wins_over_netlify_files() {
        let mut notes = Vec::new();
        let config = RoutingConfig::from_files(
            |name| match name {
                "vercel.json" => Some(br#"{"cleanUrls": true}"#.to_vec()),
                "_redirects" => Some(b"not even valid".to_vec()),
                _ => None,
            },
            |note| notes.push(note),
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.format, Format::Vercel);
        assert!(
            notes.iter().any(|n| n.contains("_redirects is ignored")),
            "{notes:?}"
        );
        let none = RoutingConfig::from_files(|_| None, |_| {}).unwrap();
        assert_eq!(none, None);
        let big = RoutingConfig::from_files(
            |name| (name == "_headers").then(|| vec![b'#'; MAX_CONFIG_BYTES + 1]),
            |_| {},
        );
        assert_eq!(big.unwrap_err().code(), "invalid_headers");
    }

    #[test]
    fn netlify_shadowing_and_force() {
        let rules = netlify::parse_redirects(
            "/a.html /b.html 301\n/c.html /b.html 301!\n/* /index.html 200\n",
        )
        .unwrap();
        let config = RoutingConfig {
            format: Format::Netlify,
            clean_urls: false,
            trailing_slash: None,
            rules,
            headers: Vec::new(),
        };
        let files = ["index.html", "a.html", "c.html"];
        let c = Some(&config);
        assert_eq!(resolve(c, &files, "a.html").route, file("a.html", 200));
        assert_eq!(resolve(c, &files, "c.html").route, redirect(301, "/b.html"));
        assert_eq!(
            resolve(c, &files, "deep/link").route,
            file("index.html", 200)
        );
    }
}
