//! The cluster shape, end to end: several `deploystack-server` and worker processes against
//! PostgreSQL, Redis and an S3-compatible store, chosen only by configuration — and what
//! happens when workers crash, Redis restarts or a job is delivered twice.
//!
//! Every test gets its own database, Redis key prefix and bucket prefix, so they run in
//! parallel on the shared engines. The engines come from `DATABASE_URL`, `REDIS_URL` and
//! `S3_ENDPOINT`/`S3_BUCKET` (see `deploystack_core::testing::env`; `./scripts/test` starts
//! them): without them a test prints why it skips, and under `CI=true` it fails instead.
//!
//! The crash tests use `examples/slow_worker.rs`: the real worker plus a build strategy that
//! takes as long as `slow-build.txt` says, and an optional pause before each ack.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use deploystack_core::queue::{Job, Queue, RedisQueue};
use deploystack_core::testing::env;
use serde_json::Value;

use crate::support::{
    CLUSTER_SECRET_KEY, Server, Worker, group_alive, slow_worker_binary, worker_binary, zip_of,
};

/// The settings every process of one test's cluster shares.
struct Cluster {
    vars: Vec<(String, String)>,
    redis_url: String,
    prefix: String,
}

impl Cluster {
    /// A cluster on the shared test engines; `None` when they are not configured (locally).
    async fn new() -> Option<Cluster> {
        let redis_url = env::redis_url()?;
        Self::on_redis(redis_url).await
    }

    /// A cluster whose queue and cache use the Redis at `redis_url`.
    async fn on_redis(redis_url: String) -> Option<Cluster> {
        let admin = env::postgres_url()?;
        let s3 = env::s3()?;
        let database_url = env::fresh_postgres_database(&admin).await;
        let prefix = env::unique_name("cluster");
        let vars = [
            ("DEPLOYSTACK_DATABASE_URL", database_url),
            // Nodes of a cluster share one secret key (the embedded default is refused).
            ("DEPLOYSTACK_SECRET_KEY", CLUSTER_SECRET_KEY.to_owned()),
            ("DEPLOYSTACK_QUEUE_URL", redis_url.clone()),
            ("DEPLOYSTACK_CACHE_URL", redis_url.clone()),
            ("DEPLOYSTACK_REDIS_PREFIX", prefix.clone()),
            (
                "DEPLOYSTACK_STORAGE_URL",
                format!("s3://{}/{prefix}", s3.bucket),
            ),
            ("AWS_ENDPOINT_URL", s3.endpoint),
            ("AWS_ACCESS_KEY_ID", s3.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key),
            ("AWS_REGION", s3.region),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            // Find lost jobs within seconds, not the production minute.
            ("DEPLOYSTACK_RECONCILE_SECS", "1".to_owned()),
            ("DEPLOYSTACK_STALLED_AFTER_SECS", "3".to_owned()),
            ("DEPLOYSTACK_SHUTDOWN_GRACE_SECS", "1".to_owned()),
        ];
        Some(Cluster {
            vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            redis_url,
            prefix,
        })
    }

    /// The same cluster with one more setting.
    fn with(mut self, key: &str, value: &str) -> Cluster {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    fn vars_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars = self.vars.clone();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        vars
    }

    async fn server(&self) -> Server {
        let vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Server::start_with(&vars).await
    }

    /// The real `deploystack-worker` with `loops` build loops.
    async fn worker(&self, label: &str, loops: usize) -> Worker {
        let loops = loops.to_string();
        let vars = self.vars_with(&[("DEPLOYSTACK_WORKERS", &loops)]);
        Worker::start(worker_binary(), label, &vars).await
    }

    /// The slow example worker with one build loop and `extra` settings.
    async fn slow_worker(&self, label: &str, extra: &[(&str, &str)]) -> Worker {
        let mut vars = self.vars_with(&[("DEPLOYSTACK_WORKERS", "1")]);
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Worker::start(slow_worker_binary(), label, &vars).await
    }

    /// The cluster's queue, as the test's own client.
    async fn queue(&self) -> RedisQueue {
        RedisQueue::connect(&self.redis_url, &self.prefix, 5)
            .await
            .expect("connect to the cluster's queue")
    }

    /// Wait until the queue holds nothing waiting or in flight.
    async fn wait_queue_drained(&self, within: Duration) {
        let queue = self.queue().await;
        let deadline = Instant::now() + within;
        loop {
            let depth = queue.depth().await.expect("queue depth");
            if depth.waiting == 0 && depth.in_flight == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the queue still holds {depth:?} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A site with a nested page and an asset large enough for a multipart upload to S3.
fn site(tag: &str) -> Vec<(String, Vec<u8>)> {
    let mut big = Vec::with_capacity(9 * 1024 * 1024);
    let mut x: u32 = 0x9e37_79b9;
    while big.len() < 9 * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.extend_from_slice(&x.to_le_bytes());
    }
    vec![
        (
            "index.html".to_owned(),
            format!("<h1>{tag}</h1>").into_bytes(),
        ),
        (
            "docs/guide/index.html".to_owned(),
            b"<p>nested</p>".to_vec(),
        ),
        ("assets/app.js".to_owned(), b"console.log(1)".to_vec()),
        ("assets/blob.bin".to_owned(), big),
    ]
}

fn zip_site(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    zip_of(&refs)
}

/// A small site whose build takes `millis`.
fn slow_site(millis: u64, tag: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "index.html".to_owned(),
            format!("<h1>{tag}</h1>").into_bytes(),
        ),
        ("style.css".to_owned(), b"h1{color:red}".to_vec()),
        ("slow-build.txt".to_owned(), millis.to_string().into_bytes()),
    ]
}

fn deployment_id(answer: &Value) -> String {
    answer["deployment_id"]
        .as_str()
        .expect("deployment_id")
        .to_owned()
}

/// Every line of the deployment's build log.
async fn log_lines(server: &Server, id: &str) -> Vec<String> {
    let (status, logs) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs"))
        .await;
    assert_eq!(status, 200, "{logs}");
    logs["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// How many times the deployment was published, by its log.
async fn publishes(server: &Server, id: &str) -> usize {
    log_lines(server, id)
        .await
        .iter()
        .filter(|l| l.starts_with("published "))
        .count()
}

/// Every file of `files` is served by `server` exactly as uploaded.
async fn assert_served(server: &Server, id: &str, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let response = server.get(&format!("/{id}/{path}")).await;
        assert_eq!(response.status(), 200, "/{id}/{path}");
        let body = response.bytes().await.expect("body");
        assert!(
            body.as_ref() == bytes.as_slice(),
            "/{id}/{path} differs from the upload ({} bytes, expected {})",
            body.len(),
            bytes.len()
        );
    }
}

#[tokio::test]
async fn a_site_uploaded_through_one_server_is_served_identically_by_another() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let a = cluster.server().await;
    let b = cluster.server().await;
    let _w1 = cluster.worker("worker-1", 2).await;
    let _w2 = cluster.worker("worker-2", 2).await;

    let files = site("cluster");
    let id = a.deploy_ready(zip_site(&files)).await;
    assert_served(&b, &id, &files).await;
    assert_served(&a, &id, &files).await;
    let (status, body) = b.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "READY");
    assert_eq!(body["file_count"], files.len());

    // Both servers have served (and cached) it; a delete through one reaches the other.
    let response = b
        .client
        .delete(b.url(&format!("/api/v1/deployments/{id}")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = a.get(&format!("/{id}/")).await.status();
        if status == 410 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server A still answers {status} for a deployment deleted through server B"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_build_is_replaced_and_the_deployment_is_published_once() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let cluster = cluster.with("DEPLOYSTACK_LEASE_SECS", "3");
    let server = cluster.server().await;
    let doomed = cluster.slow_worker("doomed", &[]).await;

    let files = slow_site(4000, "survivor");
    let id = deployment_id(&server.deploy(zip_site(&files)).await);
    server
        .wait_for(&id, Duration::from_secs(30), "BUILDING", |d| {
            d["status"] == "BUILDING"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pgid = doomed.pid();
    doomed.kill().await;
    assert!(
        !group_alive(pgid),
        "a process of the killed worker outlived it"
    );

    let _rescuer = cluster.slow_worker("rescuer", &[]).await;
    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
    assert!(
        done["attempt"].as_i64().unwrap() >= 2,
        "the rescuer should have claimed a new attempt: {done}"
    );
    assert_eq!(publishes(&server, &id).await, 1, "published more than once");
    assert_eq!(done["file_count"], files.len(), "half a site was published");
    assert_served(&server, &id, &files).await;
}

#[tokio::test]
async fn a_worker_killed_after_publishing_but_before_acking_causes_no_second_publish() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let cluster = cluster.with("DEPLOYSTACK_LEASE_SECS", "3");
    let server = cluster.server().await;
    let stuck = cluster
        .slow_worker("stuck-in-ack", &[("SLOW_WORKER_ACK_PAUSE_SECS", "600")])
        .await;

    let files = slow_site(10, "published once");
    let id = server.deploy_ready(zip_site(&files)).await;
    let (_, before) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    // The worker now sits in its pause, between publish and ack.
    stuck.kill().await;

    let _next = cluster.worker("next", 1).await;
    // The unacked job comes back once its lease runs out; the next worker must find the
    // deployment final and only ack it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.wait_queue_drained(Duration::from_secs(30)).await;
    let (_, after) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(after["status"], "READY");
    assert_eq!(
        after["attempt"], 1,
        "the deployment was claimed again: {after}"
    );
    assert_eq!(after["ready_at"], before["ready_at"], "published again");
    assert_eq!(publishes(&server, &id).await, 1);
    assert_served(&server, &id, &files).await;
}

#[tokio::test]
async fn sigterm_during_a_build_hands_it_back_and_exits_zero() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let server = cluster.server().await;
    let leaving = cluster.slow_worker("leaving", &[]).await;

    let files = slow_site(5000, "handed back");
    let id = deployment_id(&server.deploy(zip_site(&files)).await);
    server
        .wait_for(&id, Duration::from_secs(30), "BUILDING", |d| {
            d["status"] == "BUILDING"
        })
        .await;
    let started = Instant::now();
    let status = leaving.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "the worker exited with {status}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the worker took {:?} to stop with a 1 s grace period",
        started.elapsed()
    );
    // Handed back at once, not left to a lease that has to run out.
    let (_, handed_back) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(handed_back["status"], "QUEUED", "{handed_back}");

    let _next = cluster.slow_worker("next", &[]).await;
    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
    assert_eq!(publishes(&server, &id).await, 1);
    assert_served(&server, &id, &files).await;
}

/// A Redis server of the test's own, on a free loopback port, that can be restarted.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Self::spawn(port);
        PrivateRedis { port, child }
    }

    fn spawn(port: u16) -> std::process::Child {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it (losing everything: no persistence) and start a new one on the same port.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_redis_restart_loses_no_accepted_deployment() {
    // The shared engines must be configured even though this test brings its own Redis.
    if env::redis_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start();
    let Some(cluster) = Cluster::on_redis(redis.url()).await else {
        return;
    };
    let server = cluster.server().await;
    let _w1 = cluster
        .slow_worker("w1", &[("DEPLOYSTACK_WORKERS", "2")])
        .await;
    let _w2 = cluster
        .slow_worker("w2", &[("DEPLOYSTACK_WORKERS", "2")])
        .await;

    let mut sites = Vec::new();
    for n in 0..6 {
        let files = slow_site(1500, &format!("before {n}"));
        let id = deployment_id(&server.deploy(zip_site(&files)).await);
        sites.push((id, files));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Everything Redis held — queued jobs, leases, the consumer group — is gone.
    redis.restart();
    for n in 0..3 {
        let files = slow_site(200, &format!("after {n}"));
        let id = deployment_id(&server.deploy(zip_site(&files)).await);
        sites.push((id, files));
    }
    for (id, files) in &sites {
        let done = server
            .wait_for(id, Duration::from_secs(60), "final", |d| {
                ["READY", "ERROR", "CANCELED"].contains(&d["status"].as_str().unwrap_or(""))
            })
            .await;
        assert_eq!(done["status"], "READY", "{done}");
        assert_eq!(publishes(&server, id).await, 1, "{id} published twice");
        assert_served(&server, id, files).await;
    }
}

#[tokio::test]
async fn a_job_delivered_several_times_is_built_once() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let server = cluster.server().await;
    let _w1 = cluster.slow_worker("w1", &[]).await;
    let _w2 = cluster.slow_worker("w2", &[]).await;

    let files = slow_site(2000, "once");
    let id = deployment_id(&server.deploy(zip_site(&files)).await);
    let queue = cluster.queue().await;
    let job = Job {
        deployment_id: id.parse().expect("a deployment id"),
    };
    for _ in 0..3 {
        queue.enqueue(&job).await.expect("enqueue a duplicate");
    }
    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
    cluster.wait_queue_drained(Duration::from_secs(30)).await;
    let (_, after) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(
        after["attempt"], 1,
        "more than one build was claimed: {after}"
    );
    let started = log_lines(&server, &id)
        .await
        .iter()
        .filter(|l| l.starts_with("build attempt"))
        .count();
    assert_eq!(started, 1, "more than one build ran");
    assert_eq!(publishes(&server, &id).await, 1);
}

#[tokio::test]
async fn two_hundred_concurrent_deployments_through_two_servers_are_each_ready_once() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    // 200 uploads from one address at once: far past the default deploys limit.
    let cluster = cluster.with("DEPLOYSTACK_RATE_LIMIT_DEPLOYS_PER_MINUTE", "0");
    let a = cluster.server().await;
    let b = cluster.server().await;
    let _w1 = cluster.worker("worker-1", 2).await;
    let _w2 = cluster.worker("worker-2", 2).await;

    let uploads = (0..200).map(|n| {
        let server = if n % 2 == 0 { &a } else { &b };
        let zip = zip_of(&[("index.html", format!("<p>site {n}</p>").as_bytes())]);
        async move { (n, deployment_id(&server.deploy(zip).await)) }
    });
    let accepted = futures_util::future::join_all(uploads).await;
    let ids: HashSet<&String> = accepted.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 200, "deployment ids were reused");

    let deadline = Instant::now() + Duration::from_secs(180);
    for (n, id) in &accepted {
        let left = deadline.saturating_duration_since(Instant::now());
        let done = a
            .wait_for(id, left, "final", |d| {
                ["READY", "ERROR", "CANCELED"].contains(&d["status"].as_str().unwrap_or(""))
            })
            .await;
        assert_eq!(done["status"], "READY", "{done}");
        assert_eq!(done["attempt"], 1, "built more than once: {done}");
        let body = b.get(&format!("/{id}/")).await.text().await.unwrap();
        assert_eq!(body, format!("<p>site {n}</p>"), "{id} serves another site");
    }

    // The list agrees: exactly these 200, each once.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/deployments?limit=100&cursor={c}"),
            None => "/api/v1/deployments?limit=100".to_owned(),
        };
        let (status, page) = b.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        for d in page["deployments"].as_array().unwrap() {
            assert_eq!(d["status"], "READY");
            listed.push(d["deployment_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed.len(), 200);
    let listed: HashSet<&String> = listed.iter().collect();
    assert_eq!(listed, ids);
    cluster.wait_queue_drained(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_running_build_is_canceled_within_seconds_and_never_published() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let server = cluster.server().await;
    let _worker = cluster.slow_worker("canceled", &[]).await;

    let files = slow_site(60_000, "never");
    let id = deployment_id(&server.deploy(zip_site(&files)).await);
    server
        .wait_for(&id, Duration::from_secs(30), "BUILDING", |d| {
            d["status"] == "BUILDING"
        })
        .await;
    let response = server
        .client
        .post(server.url(&format!("/api/v1/deployments/{id}/cancel")))
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), 200);
    let canceled: Value = response.json().await.unwrap();
    assert_eq!(canceled["status"], "CANCELED", "{canceled}");

    // The worker notices within about a second, stops the build and says so in the log.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log_lines(&server, &id)
        .await
        .iter()
        .any(|l| l == "build canceled")
    {
        assert!(
            Instant::now() < deadline,
            "the worker did not stop the canceled build within 5 s: {:?}",
            log_lines(&server, &id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.wait_queue_drained(Duration::from_secs(10)).await;
    let (_, after) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(after["status"], "CANCELED", "{after}");
    assert_eq!(after["error"], Value::Null, "{after}");
    assert_eq!(
        publishes(&server, &id).await,
        0,
        "a canceled build was published"
    );
    let response = server.get(&format!("/{id}/")).await;
    assert_eq!(response.status(), 404, "a canceled build is served");
}

#[tokio::test]
async fn a_followed_log_shows_lines_while_the_build_runs_and_ends_with_its_status() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let server = cluster.server().await;
    let _worker = cluster.slow_worker("followed", &[]).await;

    let files = slow_site(4000, "followed");
    let id = deployment_id(&server.deploy(zip_site(&files)).await);
    let mut stream = crate::build_api::RawStream::get(
        server.address(),
        &format!("/api/v1/deployments/{id}/logs?follow=true"),
    )
    .await;
    assert!(
        stream
            .read_until("slow build: sleeping", Duration::from_secs(30))
            .await,
        "the build's line never arrived: {}",
        stream.text
    );
    let (_, during) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(
        during["status"], "BUILDING",
        "the line arrived only after the build: {during}"
    );
    assert!(
        stream.read_to_end(Duration::from_secs(30)).await,
        "the stream did not end with the build: {}",
        stream.text
    );
    assert_eq!(
        stream.events("end"),
        [serde_json::json!({"status": "READY"})],
        "{}",
        stream.text
    );
    let streamed: Vec<String> = stream
        .events("log")
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        streamed,
        log_lines(&server, &id).await,
        "lines lost or repeated"
    );
}
