//! Content-addressed uploads through the HTTP API: ask which files are missing, send only
//! those, create the deployment from a manifest. Bad blobs and bad manifests are refused
//! with their reason and store nothing.

use serde_json::{Value, json};
use sha2::Digest;

use crate::support::{Server, call};

/// The test servers collect unreferenced blobs at once (`DEPLOYSTACK_BLOB_GRACE_SECS=0`, see
/// `support`); a client needs the grace period between sending blobs and naming them.
const GRACE: (&str, &str) = ("DEPLOYSTACK_BLOB_GRACE_SECS", "300");

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `PUT /api/v1/files/{digest}` with `bytes`; the status and the JSON answer.
async fn put_blob(server: &Server, digest: &str, bytes: &[u8]) -> (u16, Value) {
    let response = server
        .client
        .put(server.url(&format!("/api/v1/files/{digest}")))
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT blob");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The digests among `files` the server asks for.
async fn missing(server: &Server, files: &[(&str, &[u8])]) -> Vec<String> {
    let digests: Vec<String> = files.iter().map(|(_, bytes)| sha256(bytes)).collect();
    let (status, body) = call(
        server,
        "POST",
        "/api/v1/files/missing",
        Some(json!({ "digests": digests })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["missing"]
        .as_array()
        .expect("a list of missing digests")
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

fn manifest(files: &[(&str, &[u8])], project: &str) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|(path, bytes)| {
            json!({ "path": path, "digest": sha256(bytes), "size": bytes.len(), "mode": 0o100644 })
        })
        .collect();
    json!({ "files": files, "project": project })
}

/// The whole client flow: ask, send what is missing, create; returns how many were sent and
/// the deployment's id once `READY`.
async fn deploy(server: &Server, files: &[(&str, &[u8])], project: &str) -> (usize, String) {
    let wanted = missing(server, files).await;
    let mut sent = 0;
    for digest in &wanted {
        let (_, bytes) = files
            .iter()
            .find(|(_, bytes)| sha256(bytes) == *digest)
            .expect("a digest that was asked about");
        let (status, body) = put_blob(server, digest, bytes).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["created"], true);
        sent += 1;
    }
    let (status, body) = call(
        server,
        "POST",
        "/api/v1/deployments",
        Some(manifest(files, project)),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id).await["status"], "READY");
    (sent, id)
}

async fn deployment_count(server: &Server) -> usize {
    let (_, list) = server.get_json("/api/v1/deployments").await;
    list["deployments"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_redeploy_sends_only_the_files_that_changed() {
    let server = Server::start_with(&[GRACE]).await;
    let first: Vec<(&str, &[u8])> = vec![
        ("index.html", b"<h1>Home</h1>"),
        ("about/index.html", b"<h1>About</h1>"),
        ("css/site.css", b"body{margin:0}"),
        ("copy.css", b"body{margin:0}"),
    ];
    let (sent, id) = deploy(&server, &first, "digests").await;
    assert_eq!(sent, 3, "identical files are sent once");
    let page = server.get(&format!("/{id}/about/")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), "<h1>About</h1>");

    let mut second = first.clone();
    second[1] = ("about/index.html", b"<h1>About us</h1>");
    let (sent, id) = deploy(&server, &second, "digests").await;
    assert_eq!(sent, 1, "only the changed file is sent");
    let page = server.get(&format!("/{id}/about/")).await;
    assert_eq!(page.text().await.unwrap(), "<h1>About us</h1>");

    let (sent, _) = deploy(&server, &second, "digests").await;
    assert_eq!(sent, 0, "nothing changed, nothing sent");
    let (_, log) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(log["project"], "digests");
}

#[tokio::test]
async fn a_blob_that_is_not_what_it_claims_or_too_large_is_refused_and_not_stored() {
    let server = Server::start_with(&[GRACE, ("DEPLOYSTACK_ARCHIVE_MAX_FILE_BYTES", "1000")]).await;
    let claimed = sha256(b"the real bytes");
    let (status, body) = put_blob(&server, &claimed, b"other bytes").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "digest_mismatch");
    assert_eq!(
        missing(&server, &[("a", b"the real bytes")]).await,
        vec![claimed.clone()],
        "a refused blob was stored"
    );

    let big = vec![b'x'; 1001];
    let (status, body) = put_blob(&server, &sha256(&big), &big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");

    let (status, body) = put_blob(&server, "not-a-digest", b"x").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_digest"))
    );

    // Without Content-Length (a chunked body), the size cannot be checked first.
    let stream =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))]);
    let response = server
        .client
        .put(server.url(&format!("/api/v1/files/{}", sha256(b"x"))))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 411);

    let blobs = std::fs::read_dir(server.data_dir.path().join("storage/blobs"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "a refused blob reached storage");
}

#[tokio::test]
async fn a_bad_manifest_is_refused_with_its_reason_and_nothing_is_recorded() {
    let server = Server::start_with(&[GRACE]).await;
    let good: &[u8] = b"<h1>ok</h1>";
    let (status, _) = put_blob(&server, &sha256(good), good).await;
    assert_eq!(status, 200);

    for (files, says) in [
        (vec![("../../etc/passwd", good)], "\"../../etc/passwd\""),
        (
            vec![("index.html", good), ("index.html", good)],
            "index.html",
        ),
        (vec![("/abs.html", good)], "abs.html"),
        (vec![("a", good), ("a/b.html", good)], "a"),
    ] {
        let (status, body) = call(
            &server,
            "POST",
            "/api/v1/deployments",
            Some(manifest(&files, "bad")),
        )
        .await;
        assert_eq!(status, 400, "{files:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_manifest", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }

    let never: &[u8] = b"never uploaded";
    let (status, body) = call(
        &server,
        "POST",
        "/api/v1/deployments",
        Some(manifest(
            &[("index.html", good), ("gone.html", never)],
            "bad",
        )),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "missing_blobs");
    assert_eq!(body["error"]["missing"], json!([sha256(never)]));

    let (status, body) = call(
        &server,
        "POST",
        "/api/v1/deployments",
        Some(json!({ "files": "nope" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_manifest"))
    );
    assert_eq!(
        deployment_count(&server).await,
        0,
        "a refused manifest was recorded"
    );
    let (status, _) = server.get_json("/api/v1/projects/bad").await;
    assert_eq!(status, 404, "a refused manifest created its project");
}

/// `POST /api/v1/files` with one multipart part per blob, each named by its digest.
async fn put_batch(server: &Server, parts: &[(&str, &[u8])]) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in parts {
        form = form.part(
            (*name).to_owned(),
            reqwest::multipart::Part::bytes(bytes.to_vec()),
        );
    }
    let response = server
        .client
        .post(server.url("/api/v1/files"))
        .multipart(form)
        .send()
        .await
        .expect("POST batch");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_batch_of_blobs_is_stored_whole_or_not_at_all() {
    let server = Server::start_with(&[GRACE]).await;
    let (one, two): (&[u8], &[u8]) = (b"<h1>one</h1>", b"<h1>two</h1>");
    let (a, b) = (sha256(one), sha256(two));
    let (status, body) = put_batch(&server, &[(&a, one), (&b, b"<h1>not two</h1>")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "digest_mismatch");
    assert_eq!(
        missing(&server, &[("1", one), ("2", two)]).await,
        vec![a.clone(), b.clone()],
        "part of a refused batch was stored"
    );

    let (status, body) = put_batch(&server, &[(&a, one), (&b, two)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files"][0]["digest"], a.as_str());
    assert_eq!(body["files"][1]["created"], true);
    assert!(missing(&server, &[("1", one), ("2", two)]).await.is_empty());
    let (status, body) = call(
        &server,
        "POST",
        "/api/v1/deployments",
        Some(manifest(&[("index.html", one), ("two.html", two)], "batch")),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id).await["status"], "READY");

    let (status, body) = put_batch(&server, &[("not-a-digest", one)]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_digest"))
    );
}
