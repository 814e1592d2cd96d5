//! HTTP semantics of served files against the real server: conditional requests, byte
//! ranges, `HEAD`, `OPTIONS` and 405. (The plain `If-None-Match` round trip lives in
//! `deploy.rs`; these are the rest of RFC 9110.)

use std::time::{Duration, SystemTime};

use reqwest::{Method, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, noise, zip_of};

/// Bigger than one storage chunk (8 MiB) and than one range piece (1 MiB), and
/// incompressible, so ranges cross every internal boundary.
const BIG_LEN: usize = 9 * 1024 * 1024 + 123;

struct Site {
    server: Server,
    id: String,
    big: Vec<u8>,
    /// `Last-Modified` of every file: when the deployment became ready.
    ready_at: SystemTime,
}

impl Site {
    async fn start() -> Site {
        let server = Server::start().await;
        let big = noise(BIG_LEN);
        let id = server
            .deploy_ready(zip_of(&[
                ("index.html", b"<h1>Home</h1>".as_slice()),
                ("small.txt", b"0123456789".as_slice()),
                ("big.bin", big.as_slice()),
            ]))
            .await;
        let (_, body) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
        let ready_at = time::OffsetDateTime::parse(
            body["ready_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let ready_at =
            SystemTime::UNIX_EPOCH + Duration::from_secs(ready_at.unix_timestamp() as u64);
        Site {
            server,
            id,
            big,
            ready_at,
        }
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .server
            .client
            .request(method, self.server.url(&format!("/{}/{path}", self.id)));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request(Method::GET, path, headers).await
    }
}

fn header<'r>(response: &'r Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
        .to_str()
        .unwrap()
}

fn date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

const DAY: Duration = Duration::from_secs(86_400);

/// A 304 carries the validators and caching fields of the 200, and no body.
async fn assert_not_modified(response: Response, etag: &str, last_modified: &str) {
    assert_eq!(response.status(), 304);
    assert_eq!(header(&response, "etag"), etag);
    assert_eq!(header(&response, "last-modified"), last_modified);
    assert_eq!(
        header(&response, "cache-control"),
        "public, max-age=0, must-revalidate"
    );
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn conditional_requests_follow_rfc_9110() {
    let site = Site::start().await;
    let full = site.get("small.txt", &[]).await;
    assert_eq!(full.status(), 200);
    let etag = header(&full, "etag").to_owned();
    let last_modified = header(&full, "last-modified").to_owned();
    assert_eq!(last_modified, date(site.ready_at));
    assert_eq!(header(&full, "accept-ranges"), "bytes");
    assert_eq!(header(&full, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&full, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&full, "cache-control"),
        "public, max-age=0, must-revalidate"
    );
    // No file has a second encoding yet, so nothing varies.
    assert!(full.headers().get("vary").is_none());

    // If-None-Match: lists, weak comparison, `*`, on GET and HEAD.
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", {etag}");
    for value in [list.as_str(), weak.as_str(), "*"] {
        let response = site.get("small.txt", &[("if-none-match", value)]).await;
        assert_not_modified(response, &etag, &last_modified).await;
    }
    let head = site
        .request(Method::HEAD, "small.txt", &[("if-none-match", &etag)])
        .await;
    assert_not_modified(head, &etag, &last_modified).await;

    // If-Match: strong comparison; `*` matches an existing file.
    for value in [etag.as_str(), "*", list.as_str()] {
        let response = site.get("small.txt", &[("if-match", value)]).await;
        assert_eq!(response.status(), 200, "If-Match: {value}");
    }
    for value in ["\"nope\"", weak.as_str()] {
        let response = site.get("small.txt", &[("if-match", value)]).await;
        assert_eq!(response.status(), 412, "If-Match: {value}");
        assert_eq!(header(&response, "etag"), etag);
    }

    // If-Modified-Since: not modified at or after Last-Modified.
    let before = date(site.ready_at - DAY);
    let after = date(site.ready_at + DAY);
    for value in [last_modified.as_str(), after.as_str()] {
        let response = site.get("small.txt", &[("if-modified-since", value)]).await;
        assert_not_modified(response, &etag, &last_modified).await;
    }
    let response = site
        .get("small.txt", &[("if-modified-since", &before)])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"0123456789");
    let response = site
        .get("small.txt", &[("if-modified-since", "yesterday")])
        .await;
    assert_eq!(response.status(), 200);

    // If-Unmodified-Since: fails when the file changed after the date.
    let response = site
        .get("small.txt", &[("if-unmodified-since", &before)])
        .await;
    assert_eq!(response.status(), 412);
    for value in [last_modified.as_str(), after.as_str()] {
        let response = site
            .get("small.txt", &[("if-unmodified-since", value)])
            .await;
        assert_eq!(response.status(), 200);
    }

    // The tag of a pair wins over its date, in both directions.
    let response = site
        .get(
            "small.txt",
            &[("if-none-match", "\"nope\""), ("if-modified-since", &after)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = site
        .get(
            "small.txt",
            &[("if-none-match", &etag), ("if-modified-since", &before)],
        )
        .await;
    assert_eq!(response.status(), 304);
    let response = site
        .get(
            "small.txt",
            &[("if-match", &etag), ("if-unmodified-since", &before)],
        )
        .await;
    assert_eq!(response.status(), 200);

    // A site's own 404 page is not subject to conditions.
    let response = site.get("missing", &[("if-none-match", "*")]).await;
    assert_eq!(response.status(), 404);
}

async fn assert_part(response: Response, expected: &[u8], start: usize, total: usize) {
    assert_eq!(response.status(), 206);
    let end = start + expected.len() - 1;
    assert_eq!(
        header(&response, "content-range"),
        format!("bytes {start}-{end}/{total}")
    );
    assert_eq!(
        header(&response, "content-length"),
        expected.len().to_string()
    );
    assert!(response.headers().contains_key("etag"));
    assert!(response.headers().contains_key("last-modified"));
    assert_eq!(
        header(&response, "content-type"),
        "application/octet-stream"
    );
    let body = response.bytes().await.unwrap();
    assert!(body.as_ref() == expected, "wrong bytes for {start}-{end}");
}

#[tokio::test]
async fn single_byte_ranges_are_served_exactly() {
    let site = Site::start().await;
    let big = &site.big;
    let len = big.len();

    let first = site.get("big.bin", &[("range", "bytes=0-99")]).await;
    assert_part(first, &big[..100], 0, len).await;
    let suffix = site.get("big.bin", &[("range", "bytes=-100")]).await;
    assert_part(suffix, &big[len - 100..], len - 100, len).await;
    let open = format!("bytes={}-", len - 10);
    let tail = site.get("big.bin", &[("range", &open)]).await;
    assert_part(tail, &big[len - 10..], len - 10, len).await;
    // Across the 8 MiB storage chunk and several 1 MiB range pieces.
    let (start, end) = (5 * 1024 * 1024 + 7, 8 * 1024 * 1024 + 4099);
    let across = format!("bytes={start}-{end}");
    let response = site.get("big.bin", &[("range", &across)]).await;
    assert_part(response, &big[start..=end], start, len).await;
    let all = site.get("big.bin", &[("range", "bytes=0-")]).await;
    assert_part(all, big, 0, len).await;
    // An end past the file is clipped; a suffix longer than the file is all of it.
    let small = site.get("small.txt", &[("range", "bytes=5-500")]).await;
    assert_eq!(small.status(), 206);
    assert_eq!(header(&small, "content-range"), "bytes 5-9/10");
    assert_eq!(small.bytes().await.unwrap().as_ref(), b"56789");
    let small = site.get("small.txt", &[("range", "bytes=-500")]).await;
    assert_eq!(header(&small, "content-range"), "bytes 0-9/10");

    // Nothing of the file selected: 416 with the length.
    for value in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
        let response = site.get("small.txt", &[("range", value)]).await;
        assert_eq!(response.status(), 416, "Range: {value}");
        assert_eq!(header(&response, "content-range"), "bytes */10");
    }

    // Malformed headers and several ranges are ignored: the whole file, once.
    let many = format!("bytes={}", vec!["0-"; 50].join(","));
    for value in [
        "bytes=abc",
        "bytes=5-2",
        "pages=1-2",
        "bytes=0-1,4-5",
        many.as_str(),
    ] {
        let response = site.get("small.txt", &[("range", value)]).await;
        assert_eq!(response.status(), 200, "Range: {value}");
        assert!(response.headers().get("content-range").is_none());
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"0123456789");
    }

    // If-Range: the exact strong tag or date lets the range through, anything else gets 200.
    let etag = header(&site.get("small.txt", &[]).await, "etag").to_owned();
    let weak = format!("W/{etag}");
    let exact = date(site.ready_at);
    let older = date(site.ready_at - DAY);
    for (if_range, status) in [
        (etag.as_str(), 206),
        (exact.as_str(), 206),
        ("\"nope\"", 200),
        (weak.as_str(), 200),
        (older.as_str(), 200),
    ] {
        let response = site
            .get(
                "small.txt",
                &[("range", "bytes=0-1"), ("if-range", if_range)],
            )
            .await;
        assert_eq!(response.status(), status, "If-Range: {if_range}");
    }

    // Preconditions come before ranges.
    let response = site
        .get(
            "small.txt",
            &[("range", "bytes=0-1"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(response.status(), 304);
    let response = site
        .get(
            "small.txt",
            &[("range", "bytes=0-1"), ("if-match", "\"nope\"")],
        )
        .await;
    assert_eq!(response.status(), 412);

    // HEAD: range handling is defined for GET only, so HEAD describes the whole file.
    let head = site
        .request(Method::HEAD, "big.bin", &[("range", "bytes=0-99")])
        .await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), len.to_string());
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert!(head.headers().get("content-range").is_none());
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn options_and_405_name_the_allowed_methods() {
    let site = Site::start().await;
    for path in ["small.txt", "missing", ""] {
        let response = site.request(Method::OPTIONS, path, &[]).await;
        assert_eq!(response.status(), 204, "OPTIONS /{path}");
        assert_eq!(header(&response, "allow"), "GET, HEAD, OPTIONS");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let response = site.request(method.clone(), "small.txt", &[]).await;
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(header(&response, "allow"), "GET, HEAD, OPTIONS");
    }

    // `OPTIONS *` asks about the server as a whole; clients cannot send it, so go raw.
    let mut stream = tokio::net::TcpStream::connect(site.server.address())
        .await
        .unwrap();
    let request = format!(
        "OPTIONS * HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        site.server.address()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("allow: get, head, options"),
        "{answer}"
    );
}
