//! Circuit breakers, end to end: a server on S3 and Redis of the test's own, which the test
//! stops and starts again. While S3 is gone uploads fail fast with 503 and `Retry-After` and
//! warm sites are still served; while Redis is gone the queue's breaker opens and uploads are
//! still accepted; once the backend is back, the breaker closes by itself and everything
//! works again.
//!
//! moto (`MOTO_SERVER`, exported by `scripts/with-services`) and `redis-server` are started
//! on free loopback ports for each test, so stopping them disturbs no other test. The
//! breakers cool down for a second, so each test takes seconds. Every wait is a bounded poll
//! of `/readyz`, never a guessed sleep.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deploystack_core::testing::env;
use serde_json::Value;

use crate::support::{Server, required_tool, zip_of};

/// The bucket in each test's own moto.
const BUCKET: &str = "breakers";

/// A server process of the test's own (moto, redis-server) on a fixed loopback port, which
/// can be stopped and started again on the same port. Killed when dropped.
struct Backend {
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl Backend {
    fn start(program: &Path, args: impl Fn(u16) -> Vec<String>) -> Backend {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut backend = Backend {
            program: program.to_owned(),
            args: args(port),
            port,
            child: None,
        };
        backend.resume();
        backend
    }

    /// Start the process again on its port, and wait until it accepts connections.
    fn resume(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", self.program.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {} within 30 s",
                self.program.display(),
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the process (everything it held is gone: both run without persistence).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto and redis-server of this test, and a server on them (SQLite for the repository, so
/// only the two backends under test are remote).
struct Stack {
    moto: Backend,
    redis: Backend,
    server: Server,
}

impl Stack {
    /// `None` (after saying why) when moto or redis-server is missing outside CI.
    async fn start() -> Option<Stack> {
        let moto = env::required("MOTO_SERVER", "moto (scripts/with-services installs it)")?;
        let redis = required_tool("redis-server", "a Redis server of the test's own")?;
        let moto = Backend::start(Path::new(&moto), |port| {
            ["-H", "127.0.0.1", "-p", &port.to_string()]
                .map(str::to_owned)
                .to_vec()
        });
        create_bucket(&moto).await;
        let redis = Backend::start(&redis, |port| {
            [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(str::to_owned)
            .to_vec()
        });
        let storage = format!("s3://{BUCKET}/site");
        let s3 = moto.url("http");
        let queue = redis.url("redis");
        let server = Server::start_with(&[
            ("DEPLOYSTACK_STORAGE_URL", &storage),
            ("AWS_ENDPOINT_URL", &s3),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("DEPLOYSTACK_QUEUE_URL", &queue),
            ("DEPLOYSTACK_CACHE_URL", &queue),
            ("DEPLOYSTACK_EMBEDDED_WORKERS", "1"),
            // Open after two calls of which half failed; let a probe through after 2 s.
            ("DEPLOYSTACK_BREAKER_MIN_CALLS", "2"),
            ("DEPLOYSTACK_BREAKER_FAILURE_THRESHOLD", "50"),
            ("DEPLOYSTACK_BREAKER_COOLDOWN_SECS", "2"),
            ("DEPLOYSTACK_RETRY_MAX_ATTEMPTS", "2"),
            ("DEPLOYSTACK_RETRY_MAX_SECS", "2"),
            // Find the deployments whose enqueue failed within seconds.
            ("DEPLOYSTACK_RECONCILE_SECS", "1"),
            ("DEPLOYSTACK_STALLED_AFTER_SECS", "1"),
            ("DEPLOYSTACK_SHUTDOWN_GRACE_SECS", "1"),
        ])
        .await;
        Some(Stack {
            moto,
            redis,
            server,
        })
    }

    /// `/readyz`: its status and its checks.
    async fn readiness(&self) -> (u16, Value) {
        let (status, body) = self.server.get_json("/readyz").await;
        (status, body["checks"].clone())
    }

    /// Poll `/readyz` until breaker `name` is `state` (and, for `closed`, the server is ready
    /// again), for at most 30 s; returns the last answer's status.
    async fn wait_breaker(&self, name: &str, state: &str) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, checks) = self.readiness().await;
            let ready = state != "closed" || status == 200;
            if checks[format!("breaker:{name}")] == state && ready {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "breaker:{name} did not become {state} within 30 s: {status} {checks}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn upload(&self, body: &str) -> reqwest::Response {
        self.server
            .upload_to("/deploy", zip_of(&[("index.html", body.as_bytes())]))
            .await
    }
}

/// Create the bucket in a (fresh) moto: moto keeps everything in memory, so a restarted
/// one has none.
async fn create_bucket(moto: &Backend) {
    let response = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.url("http")))
        .send()
        .await
        .expect("create the bucket");
    assert!(
        response.status().is_success(),
        "creating the bucket answered {}",
        response.status()
    );
}

/// A site with a page and an asset, deployed and read once, so both are warm.
async fn warm_site(server: &Server) -> (String, Vec<u8>) {
    let page = b"<h1>still here</h1>".to_vec();
    let id = server
        .deploy_ready(zip_of(&[
            ("index.html", &page),
            ("app.js", b"console.log('warm')"),
        ]))
        .await;
    for path in ["", "app.js"] {
        let response = server.get(&format!("/{id}/{path}")).await;
        assert_eq!(response.status(), 200, "/{id}/{path}");
    }
    (id, page)
}

/// The warm page answers, with its bytes.
async fn assert_served(server: &Server, id: &str, page: &[u8]) {
    let response = server.get(&format!("/{id}/")).await;
    assert_eq!(
        response.status(),
        200,
        "the warm page of {id} is not served"
    );
    assert_eq!(response.bytes().await.unwrap(), page);
    let asset = server.get(&format!("/{id}/app.js")).await;
    assert_eq!(asset.status(), 200, "the warm asset of {id} is not served");
}

#[tokio::test]
async fn with_s3_down_uploads_fail_fast_warm_sites_stay_up_and_the_breaker_closes_again() {
    let Some(mut stack) = Stack::start().await else {
        return;
    };
    let (ready, checks) = stack.readiness().await;
    assert_eq!(ready, 200, "{checks}");
    assert_eq!(checks["breaker:storage"], "closed", "{checks}");
    let (id, page) = warm_site(&stack.server).await;

    stack.moto.stop();
    // The first uploads wait for their (bounded) retries and fail; once the breaker opens,
    // the next ones are refused at once with the rest of its cool-down.
    let mut refused = None;
    for attempt in 0..20 {
        let response = stack.upload(&format!("during the outage {attempt}")).await;
        assert_eq!(response.status(), 503, "upload {attempt} with S3 down");
        if let Some(retry_after) = response.headers().get("retry-after") {
            let retry_after: u64 = retry_after.to_str().unwrap().parse().unwrap();
            let body: Value = response.json().await.unwrap();
            refused = Some((retry_after, body));
            break;
        }
    }
    let (retry_after, body) = refused.expect("no upload was refused with Retry-After");
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let (status, checks) = stack.readiness().await;
    assert_eq!(status, 503, "{checks}");
    assert_eq!(checks["breaker:storage"], "open", "{checks}");
    let metrics = stack.server.get("/metrics").await.text().await.unwrap();
    // Open, or half-open if its cool-down ended since `/readyz` probed it.
    let open = "deploystack_breaker_state{breaker=\"storage\",state=\"open\"} 1";
    let half_open = "deploystack_breaker_state{breaker=\"storage\",state=\"half_open\"} 1";
    assert!(
        metrics.lines().any(|l| l == open || l == half_open),
        "the storage breaker is not open on /metrics: {metrics}"
    );
    for counter in [
        "deploystack_breaker_transitions_total{breaker=\"storage\",to=\"open\"}",
        "deploystack_breaker_refused_total{breaker=\"storage\"}",
    ] {
        let counted = metrics
            .lines()
            .any(|l| l.starts_with(&format!("{counter} ")) && !l.ends_with(" 0"));
        assert!(counted, "{counter} is not counted in {metrics}");
    }

    // The warm site needs no storage call.
    assert_served(&stack.server, &id, &page).await;

    stack.moto.resume();
    create_bucket(&stack.moto).await;
    let status = stack.wait_breaker("storage", "closed").await;
    assert_eq!(status, 200);
    let response = stack.upload("after the outage").await;
    assert_eq!(response.status(), 202, "upload after S3 came back");
    let answer: Value = response.json().await.unwrap();
    let id = answer["deployment_id"].as_str().unwrap();
    let done = stack.server.wait_final(id).await;
    assert_eq!(done["status"], "READY", "{done}");
}

#[tokio::test]
async fn with_redis_down_the_queue_breaker_opens_and_closes_again_when_it_is_back() {
    let Some(mut stack) = Stack::start().await else {
        return;
    };
    let (ready, checks) = stack.readiness().await;
    assert_eq!(ready, 200, "{checks}");
    for breaker in ["breaker:queue", "breaker:cache"] {
        assert_eq!(checks[breaker], "closed", "{checks}");
    }
    let (id, page) = warm_site(&stack.server).await;

    stack.redis.stop();
    // The worker's reserves and this upload's enqueue fail; the breaker opens and `/readyz`
    // says so at once.
    let response = stack.upload("while redis is down").await;
    assert_eq!(
        response.status(),
        202,
        "an upload is accepted without the queue: the reconciler enqueues it later"
    );
    let queued: Value = response.json().await.unwrap();
    let queued = queued["deployment_id"].as_str().unwrap().to_owned();
    let status = stack.wait_breaker("queue", "open").await;
    assert_eq!(status, 503, "readyz while the queue's breaker is open");
    let metrics = stack.server.get("/metrics").await.text().await.unwrap();
    let open = "deploystack_breaker_state{breaker=\"queue\",state=\"open\"} 1";
    let half_open = "deploystack_breaker_state{breaker=\"queue\",state=\"half_open\"} 1";
    assert!(
        metrics.lines().any(|l| l == open || l == half_open),
        "the queue's breaker is not open on /metrics: {metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "deploystack_queue_up 0"),
        "{metrics}"
    );
    assert_served(&stack.server, &id, &page).await;

    stack.redis.resume();
    let status = stack.wait_breaker("queue", "closed").await;
    assert_eq!(status, 200);
    // The upload accepted during the outage is built once the reconciler enqueues it.
    let done = stack
        .server
        .wait_final_within(&queued, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "READY", "{done}");
    let after = stack
        .server
        .deploy_ready(zip_of(&[("index.html", b"after redis came back")]))
        .await;
    assert_served_page(&stack.server, &after).await;
}

async fn assert_served_page(server: &Server, id: &str) {
    let response = server.get(&format!("/{id}/")).await;
    assert_eq!(response.status(), 200);
}
