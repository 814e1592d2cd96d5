//! Upload a site, wait for it, and check every byte and header a browser relies on.

use crate::support::{Server, raw_get, zip_of};

fn nested_site() -> Vec<(&'static str, Vec<u8>)> {
    let mut binary = Vec::new();
    for i in 0..70_000u32 {
        binary.extend_from_slice(&i.to_le_bytes());
    }
    vec![
        ("index.html", b"<!doctype html><h1>Home</h1>".to_vec()),
        ("css/site.css", b"body { color: #333 }".to_vec()),
        ("js/app.js", b"console.log('hi');".to_vec()),
        ("docs/index.html", b"<h1>Docs</h1>".to_vec()),
        ("docs/guide/intro.html", b"<h1>Intro</h1>".to_vec()),
        ("a/b/c/deep.txt", b"deep".to_vec()),
        ("img/data.bin", binary),
        ("same-as-css.txt", b"body { color: #333 }".to_vec()),
        ("unknown.weird-ext", b"?".to_vec()),
        ("space name.html", b"<p>spaced</p>".to_vec()),
    ]
}

fn zip_from(files: &[(&'static str, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    zip_of(&refs)
}

#[tokio::test]
async fn an_uploaded_site_is_served_byte_for_byte() {
    let server = Server::start().await;
    let files = nested_site();
    let answer = server.deploy(zip_from(&files)).await;

    let id = answer["deployment_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(answer["url"], server.url(&format!("/{id}/")));
    assert_eq!(answer["status"], "QUEUED");
    for internal in ["source_key", "lease_owner", "lease_expires_at"] {
        assert!(answer.get(internal).is_none(), "the API shows {internal}");
    }
    assert_eq!(
        answer["status_url"],
        server.url(&format!("/api/v1/deployments/{id}"))
    );

    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
    assert_eq!(done["file_count"], files.len());
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(done["total_bytes"], total);
    assert!(done["ready_at"].is_string());

    for (path, bytes) in &files {
        let url = server.url(&format!("/{id}/{}", path.replace(' ', "%20")));
        let response = server.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["cache-control"],
            "public, max-age=0, must-revalidate"
        );
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], &bytes[..], "{path} differs");
    }

    let content_type = |path: &str| {
        let client = server.client.clone();
        let url = server.url(&format!("/{id}/{path}"));
        async move {
            let response = client.get(url).send().await.unwrap();
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(content_type("index.html").await, "text/html; charset=utf-8");
    assert_eq!(
        content_type("css/site.css").await,
        "text/css; charset=utf-8"
    );
    assert_eq!(
        content_type("img/data.bin").await,
        "application/octet-stream"
    );
    assert_eq!(
        content_type("unknown.weird-ext").await,
        "application/octet-stream"
    );
}

#[tokio::test]
async fn folders_serve_their_index_and_redirects_are_relative() {
    let server = Server::start().await;
    let id = server.deploy_ready(zip_from(&nested_site())).await;

    let root = server.get(&format!("/{id}/")).await;
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "<!doctype html><h1>Home</h1>");

    let docs = server.get(&format!("/{id}/docs/")).await;
    assert_eq!(docs.text().await.unwrap(), "<h1>Docs</h1>");

    let bare = server.get(&format!("/{id}")).await;
    assert_eq!(bare.status(), 301);
    assert_eq!(bare.headers()["location"], format!("{id}/"));

    let folder = server.get(&format!("/{id}/docs?x=1")).await;
    assert_eq!(folder.status(), 301);
    assert_eq!(folder.headers()["location"], "./docs/?x=1");

    let head = server
        .client
        .head(server.url(&format!("/{id}/css/site.css")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "20");
    assert!(head.headers().contains_key("etag"));
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let server = Server::start().await;
    let id = server.deploy_ready(zip_from(&nested_site())).await;
    let url = server.url(&format!("/{id}/css/site.css"));
    let first = server.client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();

    let again = server
        .client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());

    let other = server
        .client
        .get(&url)
        .header("if-none-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    // Same bytes, same ETag, whatever the path.
    let twin = server.get(&format!("/{id}/same-as-css.txt")).await;
    assert_eq!(twin.headers()["etag"], etag);
}

#[tokio::test]
async fn missing_files_get_the_sites_own_404_page_or_a_plain_one() {
    let server = Server::start().await;
    let plain = server
        .deploy_ready(zip_of(&[("index.html", b"home")]))
        .await;
    let custom = server
        .deploy_ready(zip_of(&[
            ("index.html", b"home"),
            ("404.html", b"<h1>Lost?</h1>"),
        ]))
        .await;

    let response = server.get(&format!("/{plain}/nope.html")).await;
    assert_eq!(response.status(), 404);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("no file at this path")
    );

    let response = server.get(&format!("/{custom}/nope/deeper")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), "<h1>Lost?</h1>");

    let unknown = "0123456789abcdef0123456789abcdef";
    let response = server.get(&format!("/{unknown}/")).await;
    assert_eq!(response.status(), 404);
    let response = server.get("/not-an-id/").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn traversal_and_encoding_tricks_never_leak_a_byte() {
    let server = Server::start().await;
    // A secret next to the data directory, and one inside it, that no request may reach.
    std::fs::write(server.data_dir.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let id = server
        .deploy_ready(zip_of(&[
            ("index.html", b"home"),
            ("sub/page.html", b"page"),
        ]))
        .await;
    let address = server.address().to_owned();

    for path in [
        format!("/{id}/../secret.txt"),
        format!("/{id}/sub/../../secret.txt"),
        format!("/{id}/%2e%2e/secret.txt"),
        format!("/{id}/%2E%2E%2Fsecret.txt"),
        format!("/{id}/sub%2f..%2f..%2fsecret.txt"),
        format!("/{id}/..%5c..%5csecret.txt"),
        format!("/{id}/sub\\..\\index.html"),
        format!("/{id}/%c0%ae%c0%ae/secret.txt"),
        format!("/{id}/index.html%00.png"),
        format!("/{id}/%ff%fe"),
        format!("/{id}/./index.html"),
        format!("/{id}//etc/passwd"),
        format!("/{id}/deploystack.db"),
        format!("/{id}/storage/"),
        "/../../etc/passwd".to_owned(),
        format!("/{id}/%252e%252e/secret.txt"),
    ] {
        let (status, body) = raw_get(&address, &path).await;
        assert!(status == 400 || status == 404, "{path} answered {status}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("TOP-SECRET") && !text.contains("root:"),
            "{path} leaked: {text}"
        );
    }
    // The honest path still works.
    let (status, body) = raw_get(&address, &format!("/{id}/sub/page.html")).await;
    assert_eq!((status, body), (200, b"page".to_vec()));
}

#[tokio::test]
async fn a_zip_with_one_top_level_folder_is_served_from_inside_it() {
    let server = Server::start().await;
    let id = server
        .deploy_ready(zip_of(&[
            ("my-site-main/", b""),
            ("my-site-main/index.html", b"inside"),
            ("my-site-main/css/a.css", b"a{}"),
            ("__MACOSX/my-site-main/._index.html", b"junk"),
        ]))
        .await;
    let root = server.get(&format!("/{id}/")).await;
    assert_eq!(root.text().await.unwrap(), "inside");
    let css = server.get(&format!("/{id}/css/a.css")).await;
    assert_eq!(css.status(), 200);
    let prefixed = server.get(&format!("/{id}/my-site-main/index.html")).await;
    assert_eq!(prefixed.status(), 404);
}

#[tokio::test]
async fn a_deployment_that_is_not_ready_is_not_served() {
    // No build workers: the deployment stays QUEUED.
    let server = Server::start_with(&[("DEPLOYSTACK_EMBEDDED_WORKERS", "0")]).await;
    let answer = server.deploy(zip_of(&[("index.html", b"later")])).await;
    let id = answer["deployment_id"].as_str().unwrap();
    let response = server.get(&format!("/{id}/")).await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("still being built"));
    let (_, status) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(status["status"], "QUEUED");
}

/// A zip whose only entry is deflated and whose headers claim 10 bytes while the data
/// inflates to 4,096: it passes the central-directory checks and fails while extracting.
fn zip_with_understated_size() -> Vec<u8> {
    let mut zip = zip_of(&[("index.html", &[b'a'; 4096])]);
    let patch = |zip: &mut Vec<u8>, signature: [u8; 4], offset: usize| {
        let at = zip
            .windows(4)
            .position(|w| w == signature)
            .expect("header signature");
        zip[at + offset..at + offset + 4].copy_from_slice(&10u32.to_le_bytes());
    };
    patch(&mut zip, [0x50, 0x4b, 0x03, 0x04], 22); // local header: uncompressed size
    patch(&mut zip, [0x50, 0x4b, 0x01, 0x02], 24); // central directory: uncompressed size
    zip
}

#[tokio::test]
async fn a_failed_build_ends_in_error_with_its_reason_and_is_not_served() {
    let server = Server::start().await;
    let answer = server.deploy(zip_with_understated_size()).await;
    let id = answer["deployment_id"].as_str().unwrap();
    let done = server.wait_final(id).await;
    assert_eq!(done["status"], "ERROR", "{done}");
    assert_eq!(done["error"]["code"], "archive_size_mismatch", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("index.html")
    );

    let response = server.get(&format!("/{id}/")).await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("failed to build"));

    let (_, logs) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs"))
        .await;
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap().starts_with("error:")),
        "{logs}"
    );
    // Nothing was extracted into storage.
    let blobs = server.data_dir.path().join("storage/blobs");
    assert!(!blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none());
}
