//! Per-deployment routing against the real server: `vercel.json`, Netlify `_redirects` /
//! `_headers`, SPA fallbacks and custom 404 pages.
//!
//! The compatibility tables below are the ones in docs/serving.md ("Routing rules"): the
//! fixtures under `tests/e2e/fixtures/routing/` must give exactly these answers, by path and
//! by host.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, zip_of};

const VERCEL_JSON: &[u8] = include_bytes!("fixtures/routing/vercel/vercel.json");
const REDIRECTS: &[u8] = include_bytes!("fixtures/routing/netlify/_redirects");
const HEADERS: &[u8] = include_bytes!("fixtures/routing/netlify/_headers");

/// What a request must answer.
enum Expect {
    /// This status and body.
    Body(u16, &'static str),
    /// This redirect status and `Location`, relative to the site's root when it starts with
    /// `/` (path-based serving prefixes `/<id>`).
    Redirect(u16, &'static str),
}
use Expect::{Body, Redirect};

const VERCEL_TABLE: &[(&str, Expect)] = &[
    ("/", Body(200, "home")),
    ("/about", Body(200, "about page")),
    ("/about.html", Redirect(308, "/about")),
    ("/index.html", Redirect(308, "/")),
    ("/docs/", Redirect(308, "/docs")),
    ("/docs", Body(200, "docs index")),
    ("/docs/guide", Body(200, "guide")),
    ("/old-blog/hello", Redirect(308, "/blog/hello")),
    ("/temp", Redirect(307, "/about")),
    ("/docs-legacy/a/b", Redirect(301, "/docs/a/b")),
    ("/twitter", Redirect(308, "https://twitter.com/deploystack")),
    ("/blog/hello", Body(200, "hello post")),
    ("/blog/nope", Body(404, "blog not found")),
    ("/app/settings/profile", Body(200, "app shell")),
    ("/nothing/here", Body(404, "site not found")),
    ("/vercel.json", Body(404, "site not found")),
];

const NETLIFY_TABLE: &[(&str, Expect)] = &[
    ("/", Body(200, "spa shell")),
    ("/home", Redirect(301, "/")),
    ("/news/2024/a/b", Redirect(302, "/blog/2024/a/b")),
    ("/shadowed.html", Body(200, "shadowed file")),
    ("/forced.html", Redirect(301, "/index.html")),
    ("/gone", Body(404, "netlify not found")),
    ("/api/users", Body(200, "{\"api\":true}")),
    ("/any/deep/link", Body(200, "spa shell")),
    ("/_redirects", Body(200, "spa shell")),
];

fn vercel_site() -> Vec<u8> {
    zip_of(&[
        ("vercel.json", VERCEL_JSON),
        ("index.html", b"home"),
        ("about.html", b"about page"),
        ("docs/index.html", b"docs index"),
        ("docs/guide.html", b"guide"),
        ("posts/hello.html", b"hello post"),
        ("blog/404.html", b"blog not found"),
        ("app/index.html", b"app shell"),
        ("assets/app.js", b"console.log(1)"),
        ("404.html", b"site not found"),
    ])
}

fn netlify_site() -> Vec<u8> {
    zip_of(&[
        ("_redirects", REDIRECTS),
        ("_headers", HEADERS),
        ("index.html", b"spa shell"),
        ("shadowed.html", b"shadowed file"),
        ("forced.html", b"forced file"),
        ("api.json", b"{\"api\":true}"),
        ("404.html", b"netlify not found"),
    ])
}

/// One answer, seen by the test: status, `Location`, headers (lowercase names) and body.
struct Answer {
    status: u16,
    location: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `/<id><path>` on the platform host (path-based serving).
async fn by_path(server: &Server, id: &str, path: &str) -> Answer {
    let response = server.get(&format!("/{id}{path}")).await;
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let location = headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone());
    let body = response.text().await.unwrap();
    Answer {
        status,
        location,
        headers,
        body,
    }
}

/// GET `path` on the deployment's own host, `<id>.localhost` (host-based serving).
async fn by_host(server: &Server, id: &str, path: &str) -> Answer {
    let address = server.address();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {id}.localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let location = headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone());
    Answer {
        status,
        location,
        headers,
        body: body.to_owned(),
    }
}

/// Check every row of `table`, by path and by host.
async fn check_table(server: &Server, id: &str, table: &[(&str, Expect)]) {
    for (path, expect) in table {
        let answers = [
            ("path", by_path(server, id, path).await),
            ("host", by_host(server, id, path).await),
        ];
        for (mode, answer) in answers {
            match expect {
                Body(status, body) => {
                    assert_eq!(answer.status, *status, "{mode} {path}: {}", answer.body);
                    assert_eq!(answer.body, *body, "{mode} {path}");
                }
                Redirect(status, location) => {
                    assert_eq!(answer.status, *status, "{mode} {path}: {}", answer.body);
                    // A site path is relative to the site's root: `/<id>` when path-based.
                    let expected = if mode == "path" && location.starts_with('/') {
                        format!("/{id}{location}")
                    } else {
                        (*location).to_owned()
                    };
                    assert_eq!(
                        answer.location.as_deref(),
                        Some(expected.as_str()),
                        "{mode} {path}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn vercel_json_compatibility_table() {
    let server = Server::start().await;
    let id = server.deploy_ready(vercel_site()).await;
    check_table(&server, &id, VERCEL_TABLE).await;

    // Headers: every matching rule applies; the site's Cache-Control replaces the default.
    let asset = by_path(&server, &id, "/assets/app.js").await;
    assert_eq!(asset.status, 200);
    assert_eq!(asset.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let page = by_host(&server, &id, "/about").await;
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        page.header("cache-control"),
        Some("public, max-age=0, must-revalidate")
    );
    // The query string is carried along by redirects.
    let moved = by_path(&server, &id, "/about.html?x=1").await;
    assert_eq!(
        moved.location.as_deref(),
        Some(format!("/{id}/about?x=1").as_str())
    );
}

#[tokio::test]
async fn netlify_files_compatibility_table() {
    let server = Server::start().await;
    let id = server.deploy_ready(netlify_site()).await;
    check_table(&server, &id, NETLIFY_TABLE).await;

    let api = by_host(&server, &id, "/api.json").await;
    assert_eq!(api.header("cache-control"), Some("no-store"));
    assert_eq!(api.header("access-control-allow-origin"), Some("*"));
    assert_eq!(api.header("x-frame-options"), Some("DENY"));
    let index = by_path(&server, &id, "/").await;
    assert_eq!(index.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn trailing_slash_true_adds_slashes_except_to_files() {
    let server = Server::start().await;
    let id = server
        .deploy_ready(zip_of(&[
            ("vercel.json", br#"{"trailingSlash": true}"#),
            ("index.html", b"home"),
            ("docs/index.html", b"docs index"),
            ("app.js", b"js"),
        ]))
        .await;
    check_table(
        &server,
        &id,
        &[
            ("/docs", Redirect(308, "/docs/")),
            ("/docs/", Body(200, "docs index")),
            ("/app.js", Body(200, "js")),
            ("/app.js/", Redirect(308, "/app.js")),
        ],
    )
    .await;
}

#[tokio::test]
async fn spa_fallback_and_nearest_404_without_configuration() {
    let server = Server::start().await;
    let spa = server
        .deploy_ready(zip_of(&[("index.html", b"home"), ("200.html", b"spa")]))
        .await;
    check_table(
        &server,
        &spa,
        &[("/", Body(200, "home")), ("/deep/route", Body(200, "spa"))],
    )
    .await;

    let pages = server
        .deploy_ready(zip_of(&[
            ("index.html", b"home"),
            ("404.html", b"root 404"),
            ("a/404.html", b"a 404"),
            ("a/b/404.html", b"a/b 404"),
        ]))
        .await;
    check_table(
        &server,
        &pages,
        &[
            ("/a/b/missing", Body(404, "a/b 404")),
            ("/a/c/missing", Body(404, "a 404")),
            ("/z/missing", Body(404, "root 404")),
        ],
    )
    .await;
}

/// Deploy `files` and expect `ERROR` with `code`, the message containing `needle`.
async fn expect_refused(server: &Server, files: &[(&str, &[u8])], code: &str, needle: &str) {
    let answer = server.deploy(zip_of(files)).await;
    let id = answer["deployment_id"].as_str().unwrap().to_owned();
    let state = server.wait_final(&id).await;
    assert_eq!(state["status"], "ERROR", "{state}");
    assert_eq!(state["error"]["code"], code, "{state}");
    let message = state["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    // Never live: the site is not served.
    assert_eq!(server.get(&format!("/{id}/")).await.status(), 404);
}

#[tokio::test]
async fn invalid_configuration_fails_the_deployment_with_its_line_or_key() {
    let server = Server::start().await;
    expect_refused(
        &server,
        &[
            ("index.html", b"x"),
            ("_redirects", b"# rules\n/a /b 301\n/c /d 418\n"),
        ],
        "invalid_redirects",
        "_redirects line 3: status \"418\" is not supported",
    )
    .await;
    expect_refused(
        &server,
        &[
            ("index.html", b"x"),
            (
                "vercel.json",
                br#"{"redirects": [{"source": "/a", "destination": "/b"}, {"source": "a", "destination": "/b"}]}"#,
            ),
        ],
        "invalid_vercel_json",
        "redirects[1].source",
    )
    .await;
    expect_refused(
        &server,
        &[
            ("index.html", b"x"),
            (
                "vercel.json",
                br#"{"rewrites": [{"source": "/api/(.*)", "destination": "https://api.example.com/$1"}]}"#,
            ),
        ],
        "invalid_vercel_json",
        "rewrites to external URLs",
    )
    .await;
}

#[tokio::test]
async fn headers_that_break_isolation_are_refused() {
    let server = Server::start().await;
    expect_refused(
        &server,
        &[
            ("index.html", b"x"),
            (
                "vercel.json",
                br#"{"headers": [{"source": "/(.*)", "headers": [{"key": "Set-Cookie", "value": "session=1; Path=/"}]}]}"#,
            ),
        ],
        "invalid_vercel_json",
        "headers[0].headers[0]: the header Set-Cookie is not allowed",
    )
    .await;
    expect_refused(
        &server,
        &[
            ("index.html", b"x"),
            ("_headers", b"/*\n  X-Ok: 1\n  Service-Worker-Allowed: /\n"),
        ],
        "invalid_headers",
        "_headers line 3: the header Service-Worker-Allowed is not allowed",
    )
    .await;
}
