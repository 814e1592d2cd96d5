//! Custom domains on two `deploystack-server` nodes and a worker sharing PostgreSQL and
//! Redis: a domain verified through one node serves on the other within a second (the
//! cache's time to live is an hour, so only the invalidation explains it), and the worker's
//! maintenance loop verifies a pending domain in the background once its record appears.
//!
//! Needs `DATABASE_URL` and `REDIS_URL`; without them it skips, under `CI=true` it fails.

use std::time::{Duration, Instant};

use deploystack_core::testing::dns::DnsTestServer;
use deploystack_core::testing::env;
use serde_json::{Value, json};

use crate::support::{Answer, RawConnection, Server, Worker, worker_binary, zip_of};

async fn get_on(server: &Server, host: &str) -> Answer {
    let mut connection = RawConnection::open(server.address()).await;
    connection
        .send(&format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ))
        .await;
    connection.answer(false).await
}

async fn add(server: &Server, name: &str) -> Value {
    let response = server
        .client
        .post(server.url("/api/v1/projects/pair/domains"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn publish(dns: &DnsTestServer, domain: &Value) {
    let record = &domain["verification"];
    dns.set_txt(
        record["name"].as_str().unwrap(),
        &[record["value"].as_str().unwrap()],
    );
}

/// Poll `host` on `server` until it serves `marker`, for at most `within`.
async fn until_served(server: &Server, host: &str, marker: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let answer = get_on(server, host).await;
        if answer.status == 200 && answer.body == marker.as_bytes() {
            return;
        }
        assert_eq!(answer.status, 404, "{host}");
        assert!(
            start.elapsed() < within,
            "{host} was not served within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_verified_anywhere_serves_everywhere() {
    let (Some(admin), Some(redis)) = (env::postgres_url(), env::redis_url()) else {
        return;
    };
    let dns = DnsTestServer::start().await.unwrap();
    let dns_servers = dns.addr().to_string();
    let database = env::fresh_postgres_database(&admin).await;
    let prefix = env::unique_name("domains");
    let storage = tempfile::tempdir().unwrap();
    let storage_url = format!("file://{}", storage.path().display());
    let vars = [
        ("DEPLOYSTACK_DATABASE_URL", database.as_str()),
        ("DEPLOYSTACK_SECRET_KEY", crate::support::CLUSTER_SECRET_KEY),
        ("DEPLOYSTACK_QUEUE_URL", redis.as_str()),
        ("DEPLOYSTACK_CACHE_URL", redis.as_str()),
        ("DEPLOYSTACK_REDIS_PREFIX", prefix.as_str()),
        ("DEPLOYSTACK_STORAGE_URL", storage_url.as_str()),
        ("DEPLOYSTACK_CACHE_TTL_SECS", "3600"),
        ("DEPLOYSTACK_DNS_SERVERS", dns_servers.as_str()),
        ("DEPLOYSTACK_DOMAIN_RECHECK_SECS", "1"),
    ];
    let a = Server::start_with(&vars).await;
    let b = Server::start_with(&vars).await;
    let mut worker_vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    worker_vars.push(("DEPLOYSTACK_WORKERS".into(), "1".into()));
    let _worker = Worker::start(worker_binary(), "worker", &worker_vars).await;

    let id = a
        .upload_with(
            zip_of(&[("index.html", b"pair site")]),
            &[("project", "pair"), ("target", "production")],
        )
        .await;
    assert_eq!(a.wait_final(&id).await["status"], "READY");

    // On demand through node A; node B had cached the domain as not ready.
    let domain = add(&a, "pair.example.com").await;
    assert_eq!(get_on(&b, "pair.example.com").await.status, 404);
    publish(&dns, &domain);
    let verified = a
        .client
        .post(a.url("/api/v1/projects/pair/domains/pair.example.com/verify"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(verified["verified"], true, "{verified}");
    until_served(&b, "pair.example.com", "pair site", Duration::from_secs(1)).await;

    // In the background: only the worker runs the maintenance loop here.
    let domain = add(&b, "www.pair.example.com").await;
    assert_eq!(get_on(&a, "www.pair.example.com").await.status, 404);
    publish(&dns, &domain);
    until_served(
        &a,
        "www.pair.example.com",
        "pair site",
        Duration::from_secs(30),
    )
    .await;
}
