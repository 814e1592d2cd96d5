//! Faults found by probing a running server, each held by a test: stalled upload bodies, a
//! full disk, temporary files left by a crash. (Deleted blobs holding disk space are tested
//! in `lifecycle.rs`.)

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Server, zip_of};

/// Start an upload whose body stops after its first bytes, as a stalled client does.
async fn stalled_upload(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /deploy HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary=X\r\nContent-Length: 100000\r\n\r\n--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\nPK"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// The status and JSON body of the answer on `stream`, read until the server closes it.
async fn answer(stream: &mut TcpStream, within: Duration) -> (u16, Value) {
    let mut raw = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut raw))
        .await
        .expect("no answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn stalled_uploads_get_408_and_never_take_every_connection() {
    let server = Server::start_with(&[
        ("DEPLOYSTACK_MAX_CONNECTIONS", "8"),
        ("DEPLOYSTACK_BODY_READ_TIMEOUT_SECS", "2"),
    ])
    .await;
    let address = server.address().to_owned();
    // Four uploads (half the connections) are received; they stall.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled_upload(&address).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fifth is refused at once rather than holding a connection too.
    let mut refused = stalled_upload(&address).await;
    let (status, body) = answer(&mut refused, Duration::from_secs(5)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_uploads");
    // Meanwhile health checks and the API are answered.
    let started = Instant::now();
    let (status, _) = server.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The stalled ones are answered 408 once their body has been silent for two seconds.
    for stream in &mut held {
        let (status, body) = answer(stream, Duration::from_secs(10)).await;
        assert_eq!(status, 408, "{body}");
        assert_eq!(body["error"]["code"], "body_timeout");
    }
    // And uploads work again.
    server
        .deploy_ready(zip_of(&[("index.html", b"back".as_slice())]))
        .await;
}

#[tokio::test]
async fn a_disk_under_the_floor_refuses_uploads_with_507_and_is_not_ready() {
    // A floor no disk meets: the server sees its disk as nearly full.
    let server =
        Server::start_with(&[("DEPLOYSTACK_MIN_FREE_DISK_BYTES", "18000000000000000000")]).await;
    let response = server
        .upload_to("/deploy", zip_of(&[("index.html", b"hi".as_slice())]))
        .await;
    assert_eq!(response.status(), 507);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_storage");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("min_free_disk_bytes"), "{message}");
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["disk"], "low");
    assert!(ready["message"].as_str().unwrap().contains("nearly full"));
    // Nothing was recorded.
    let (_, list) = server.get_json("/api/v1/deployments").await;
    assert_eq!(list["deployments"].as_array().unwrap().len(), 0);

    // Blob uploads are refused alike, ours and the `vercel` CLI's, and store nothing.
    let bytes = b"hi".to_vec();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let blob = server
        .client
        .put(server.url(&format!("/api/v1/files/{digest}")))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let vercel = server
        .client
        .post(server.url("/v2/files"))
        .header("x-now-digest", "c22b5f9178342609428d6f51b2c5af4c0bde6a42")
        .header("x-now-size", "2")
        .body(bytes)
        .send()
        .await
        .unwrap();
    for (route, response) in [("PUT /api/v1/files", blob), ("POST /v2/files", vercel)] {
        assert_eq!(response.status(), 507, "{route}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "insufficient_storage", "{route}");
    }
    let missing: Value = server
        .client
        .post(server.url("/api/v1/files/missing"))
        .json(&serde_json::json!({ "digests": [digest] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(missing["missing"], serde_json::json!([digest]));
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn temporary_files_live_in_the_data_directory_and_a_crash_s_are_swept_at_start() {
    let server = Server::start().await;
    let tmp = server.data_dir.path().join("tmp");
    // An upload in progress has its spool under the data directory.
    let _stalled = stalled_upload(server.address()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_under(&tmp).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no spool under {}",
            tmp.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A crash leaves it there…
    let data_dir = server.kill().await;
    assert!(!files_under(&data_dir.path().join("tmp")).is_empty());
    // …and the next start removes it.
    let server = Server::start_in(data_dir, &[], &[]).await;
    assert_eq!(files_under(&tmp), Vec::<std::path::PathBuf>::new());
    server
        .deploy_ready(zip_of(&[("index.html", b"after".as_slice())]))
        .await;
}
