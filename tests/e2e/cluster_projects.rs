//! Two `deploystack-server` nodes on one PostgreSQL and one Redis: a production move made
//! through one node is served by the other within a second, because the move is an
//! invalidation sent to every node, not a time to live running out (the cache's time to live
//! is an hour here, so only the invalidation can explain the switch). The same holds for
//! turning protection on, and a login on one node opens the same host on the other.
//!
//! Storage is a local directory both nodes share (they run on one machine), so the test needs
//! only `DATABASE_URL` and `REDIS_URL`; without them it skips, under `CI=true` it fails.

use std::time::{Duration, Instant};

use deploystack_core::testing::env;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, Worker, worker_binary, zip_of};

/// The body `<project>.localhost` answers on `server`.
async fn served(server: &Server, project: &str) -> (u16, String) {
    let address = server.address();
    let port = address.rsplit(':').next().unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request =
        format!("GET / HTTP/1.1\r\nHost: {project}.localhost:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

/// A deployment of project `twin` whose index says `marker`, uploaded through `server`;
/// waits for READY.
async fn upload(server: &Server, target: &str, marker: &str) -> String {
    let zip = zip_of(&[("index.html", marker.as_bytes())]);
    let id = server
        .upload_with(zip, &[("project", "twin"), ("target", target)])
        .await;
    assert_eq!(server.wait_final(&id).await["status"], "READY");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promote_through_one_node_is_served_by_the_other_within_a_second() {
    let (Some(admin), Some(redis)) = (env::postgres_url(), env::redis_url()) else {
        return;
    };
    let database = env::fresh_postgres_database(&admin).await;
    let prefix = env::unique_name("projects");
    let storage = tempfile::tempdir().unwrap();
    let storage_url = format!("file://{}", storage.path().display());
    let vars = [
        ("DEPLOYSTACK_DATABASE_URL", database.as_str()),
        ("DEPLOYSTACK_SECRET_KEY", crate::support::CLUSTER_SECRET_KEY),
        ("DEPLOYSTACK_QUEUE_URL", redis.as_str()),
        ("DEPLOYSTACK_CACHE_URL", redis.as_str()),
        ("DEPLOYSTACK_REDIS_PREFIX", prefix.as_str()),
        ("DEPLOYSTACK_STORAGE_URL", storage_url.as_str()),
        // An hour: a switch within a second can only come from the invalidation.
        ("DEPLOYSTACK_CACHE_TTL_SECS", "3600"),
    ];
    let a = Server::start_with(&vars).await;
    let b = Server::start_with(&vars).await;
    // With a shared queue the servers build nothing themselves: one worker does.
    let mut worker_vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    worker_vars.push(("DEPLOYSTACK_WORKERS".into(), "1".into()));
    let _worker = Worker::start(worker_binary(), "worker", &worker_vars).await;

    let first = upload(&a, "production", "first").await;
    let second = upload(&a, "preview", "second").await;
    // Both nodes have read (and cached) the project with `first` in production.
    assert_eq!(served(&a, "twin").await, (200, "first".into()));
    assert_eq!(served(&b, "twin").await, (200, "first".into()));

    for (to, expected, reason) in [
        (&second, "second", "promote"),
        (&first, "first", "rollback"),
    ] {
        let response = a
            .client
            .post(a.url(&format!("/api/v1/projects/twin/{reason}")))
            .json(&json!({ "deployment_id": to }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let moved = Instant::now();
        loop {
            let (status, body) = served(&b, "twin").await;
            assert_eq!(status, 200, "{body}");
            if body == expected {
                break;
            }
            assert_eq!(
                body,
                if expected == "first" {
                    "second"
                } else {
                    "first"
                }
            );
            assert!(
                moved.elapsed() < Duration::from_secs(1),
                "the other node still served the old production a second after the {reason}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Protection turned on through one node protects the other at once (the same
    // invalidation), and a login on one node opens the same host on the other: every node
    // derives the cookie key from the cluster's secret key.
    let response = a
        .client
        .patch(a.url("/api/v1/projects/twin"))
        .json(&json!({"protection": {"mode": "all", "password": "cluster password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let changed = Instant::now();
    loop {
        let (status, body) = served(&b, "twin").await;
        if status == 401 {
            break;
        }
        assert_eq!((status, body.as_str()), (200, "first"));
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the other node still served a protected project a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, head, _) = raw(
        &a,
        "POST",
        "twin",
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 25\r\n",
        "password=cluster+password",
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .and_then(|value| value.split(';').next())
        .expect("a cookie")
        .to_owned();
    let (status, _, body) = raw(&b, "GET", "twin", &format!("Cookie: {cookie}\r\n"), "").await;
    assert_eq!((status, body.as_str()), (200, "first"));
}

/// `method` `/` (or the login path for `POST`) on `<project>.localhost` of `server`, with
/// extra header lines and a body: the status, the head and the body.
async fn raw(
    server: &Server,
    method: &str,
    project: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let address = server.address();
    let port = address.rsplit(':').next().unwrap();
    let path = if method == "POST" {
        "/_deploystack/login"
    } else {
        "/"
    };
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {project}.localhost:{port}\r\nConnection: close\r\n{headers}\r\n{body}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}
