//! Precompressed variants against the real server: text is compressed once at deploy time
//! and served by `Accept-Encoding` negotiation; compressed formats and tiny files never are.

use std::io::Read;

use reqwest::Response;
use reqwest::header::{
    ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, IF_NONE_MATCH, RANGE, VARY,
};

use crate::support::{Server, noise, zip_of};

/// About 20 KB of text that compresses the way real assets do (repetitive, not trivially).
fn text(kind: &str) -> Vec<u8> {
    (0..400)
        .flat_map(|i| format!("/* {kind} */ .item-{i} {{ margin: {}px; }}\n", i % 17).into_bytes())
        .collect()
}

/// Text that compresses extremely well but is stored as a binary type: proves the decision
/// is by type, not by how well the bytes happen to shrink.
fn compressible_binary() -> Vec<u8> {
    vec![b'a'; 20_000]
}

struct Site {
    server: Server,
    id: String,
    client: reqwest::Client,
}

impl Site {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .client
            .get(self.server.url(&format!("/{}/{path}", self.id)));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("app.js", text("js")),
        ("site.css", text("css")),
        ("index.html", text("html")),
        ("logo.png", compressible_binary()),
        ("font.woff2", compressible_binary()),
        ("bundle.zip", noise(20_000)),
        ("tiny.js", b"console.log('hi')".to_vec()),
    ]
}

async fn deploy(server: &Server) -> String {
    let files = files();
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    server.deploy_ready(zip_of(&entries)).await
}

async fn log_lines(server: &Server, id: &str) -> Vec<String> {
    let (_, logs) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs"))
        .await;
    logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_owned))
        .collect()
}

fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        None => out.extend_from_slice(body),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<&str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn text_is_served_precompressed_by_negotiation() {
    let server = Server::start().await;
    let id = deploy(&server).await;
    let site = Site {
        server,
        id,
        client: reqwest::Client::new(),
    };
    for (path, original) in files().into_iter().take(3) {
        let mut etags = Vec::new();
        for (accept, expected) in [
            (Some("br, gzip"), Some("br")),
            (Some("gzip"), Some("gzip")),
            (Some("gzip, deflate, br;q=0"), Some("gzip")),
            (None, None),
            (Some("identity"), None),
        ] {
            let headers: Vec<(&str, &str)> = accept
                .map(|a| vec![(ACCEPT_ENCODING.as_str(), a)])
                .unwrap_or_default();
            let response = site.get(path, &headers).await;
            assert_eq!(response.status(), 200, "{path} {accept:?}");
            assert_eq!(
                header(&response, CONTENT_ENCODING),
                expected,
                "{path} {accept:?}"
            );
            assert_eq!(
                header(&response, VARY),
                Some("accept-encoding"),
                "{path} {accept:?}"
            );
            let etag = header(&response, ETAG).unwrap().to_owned();
            let length: usize = header(&response, CONTENT_LENGTH).unwrap().parse().unwrap();
            let body = response.bytes().await.unwrap();
            assert_eq!(body.len(), length);
            if expected.is_some() {
                assert!(body.len() < original.len() / 2, "{path} barely shrank");
            }
            assert_eq!(decode(expected, &body), original, "{path} {accept:?}");
            etags.push((expected, etag));
        }
        // One strong ETag per representation, the same for the same representation.
        let br = &etags[0].1;
        let gzip = &etags[1].1;
        let identity = &etags[3].1;
        assert!(
            br != gzip && gzip != identity && br != identity,
            "{etags:?}"
        );
        assert_eq!(&etags[2].1, gzip);
        assert_eq!(&etags[4].1, identity);

        // The br ETag only matches the br representation.
        let response = site
            .get(
                path,
                &[
                    (ACCEPT_ENCODING.as_str(), "br"),
                    (IF_NONE_MATCH.as_str(), br),
                ],
            )
            .await;
        assert_eq!(response.status(), 304, "{path}");
        assert_eq!(header(&response, VARY), Some("accept-encoding"));
        assert_eq!(header(&response, ETAG), Some(br.as_str()));
        let response = site
            .get(
                path,
                &[
                    (ACCEPT_ENCODING.as_str(), "gzip"),
                    (IF_NONE_MATCH.as_str(), br),
                ],
            )
            .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, CONTENT_ENCODING), Some("gzip"));
        let response = site.get(path, &[(IF_NONE_MATCH.as_str(), br)]).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, CONTENT_ENCODING), None);
    }

    // A range of a compressed response counts the compressed bytes (RFC 9110 §14.1.2).
    let whole = site
        .get("app.js", &[(ACCEPT_ENCODING.as_str(), "br")])
        .await
        .bytes()
        .await
        .unwrap();
    let response = site
        .get(
            "app.js",
            &[
                (ACCEPT_ENCODING.as_str(), "br"),
                (RANGE.as_str(), "bytes=0-99"),
            ],
        )
        .await;
    assert_eq!(response.status(), 206);
    assert_eq!(header(&response, CONTENT_ENCODING), Some("br"));
    let total = whole.len();
    assert_eq!(
        header(&response, reqwest::header::CONTENT_RANGE),
        Some(format!("bytes 0-99/{total}").as_str())
    );
    assert_eq!(response.bytes().await.unwrap(), whole.slice(0..100));
    // Past the end of the brotli bytes (though not of the original): 416, sized in br bytes.
    let response = site
        .get(
            "app.js",
            &[
                (ACCEPT_ENCODING.as_str(), "br"),
                (RANGE.as_str(), &format!("bytes={total}-")),
            ],
        )
        .await;
    assert_eq!(response.status(), 416);
    assert_eq!(header(&response, VARY), Some("accept-encoding"));
    assert_eq!(
        header(&response, reqwest::header::CONTENT_RANGE),
        Some(format!("bytes */{total}").as_str())
    );
    site.server.terminate().await;
}

#[tokio::test]
async fn compressed_types_and_tiny_files_are_never_encoded() {
    let server = Server::start().await;
    let id = deploy(&server).await;
    let site = Site {
        server,
        id,
        client: reqwest::Client::new(),
    };
    for path in ["logo.png", "font.woff2", "bundle.zip", "tiny.js"] {
        let response = site
            .get(path, &[(ACCEPT_ENCODING.as_str(), "br, gzip, *")])
            .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, CONTENT_ENCODING), None, "{path}");
        assert_eq!(header(&response, VARY), None, "{path} does not vary");
        let expected = files().into_iter().find(|(p, _)| *p == path).unwrap().1;
        assert_eq!(response.bytes().await.unwrap(), expected, "{path}");
    }
    site.server.terminate().await;
}

#[tokio::test]
async fn a_redeploy_reuses_the_variants_and_the_log_says_what_was_done() {
    let server = Server::start().await;
    let first = deploy(&server).await;
    let lines = log_lines(&server, &first).await;
    let made = lines
        .iter()
        .find(|l| l.starts_with("precompressed "))
        .unwrap_or_else(|| panic!("no precompression line: {lines:?}"));
    // app.js, site.css, index.html: two variants each.
    assert!(made.contains("made 6 variants"), "{made}");
    assert!(made.contains(" ms"), "{made}");

    let second = deploy(&server).await;
    assert_ne!(first, second);
    let lines = log_lines(&server, &second).await;
    let reused = lines
        .iter()
        .find(|l| l.starts_with("precompressed "))
        .unwrap_or_else(|| panic!("no precompression line: {lines:?}"));
    assert!(
        reused.contains("made 0 variants") && reused.contains("reused 6"),
        "{reused}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("stored 0 new blobs")),
        "{lines:?}"
    );
    // And the second deployment serves them.
    let response = reqwest::Client::new()
        .get(server.url(&format!("/{second}/app.js")))
        .header(ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, CONTENT_ENCODING), Some("br"));
    let body = response.bytes().await.unwrap();
    assert_eq!(decode(Some("br"), &body), text("js"));
    server.terminate().await;
}
