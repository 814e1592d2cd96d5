//! Rate limits and the per-project queue cap, as a client of the real binary meets them: a
//! burst of uploads past the `deploys` limit is answered 429 with `Retry-After` and the
//! `RateLimit` headers, a client that waits that long gets through, reads and sites are not
//! held back by the deploys budget, tokens have budgets of their own; two servers sharing
//! PostgreSQL and Redis share one budget; and a project with `max_queued_per_project`
//! deployments waiting gets no more, nothing of the refused upload being stored.
//!
//! Limits are small here (a few uploads a minute) so a test needs few requests; every loop
//! is bounded in count, and waits are the server's own `Retry-After`.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::{Server, call, zip_of};

/// One upload's answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
    }

    /// `Retry-After`, which must be whole seconds, at least 1.
    fn retry_after(&self) -> Duration {
        let seconds: u64 = self
            .header("retry-after")
            .parse()
            .expect("Retry-After in whole seconds");
        assert!(seconds >= 1, "Retry-After {seconds}");
        Duration::from_secs(seconds)
    }
}

/// Upload a small site to `POST /api/v1/deployments` on `server`, with `token` (or none)
/// and the form fields `fields`.
async fn upload(server: &Server, token: Option<&str>, fields: &[(&str, &str)]) -> Answer {
    upload_to(server, "/api/v1/deployments", token, fields).await
}

/// [`upload`] to `path` (which may carry a query).
async fn upload_to(
    server: &Server,
    path: &str,
    token: Option<&str>,
    fields: &[(&str, &str)],
) -> Answer {
    let zip = zip_of(&[("index.html", b"<p>limited</p>".as_slice())]);
    let part = reqwest::multipart::Part::bytes(zip).file_name("site.zip");
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    let mut request = reqwest::Client::new()
        .post(server.url(path))
        .multipart(form.part("file", part));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("upload request");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// Check a 429 of the deploys class with a quota of `limit` a minute.
fn assert_rate_limited(answer: &Answer, limit: u32) {
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert_eq!(
        answer.body["error"]["code"], "rate_limited",
        "{}",
        answer.body
    );
    assert!(answer.retry_after() <= Duration::from_secs(60 / u64::from(limit) + 1));
    assert_eq!(
        answer.header("ratelimit-policy"),
        format!("\"deploys\";q={limit};w=60")
    );
    let left = answer.header("ratelimit");
    assert!(left.starts_with("\"deploys\";r=0;t="), "{left}");
}

/// Live deployments the server lists.
async fn listed(server: &Server) -> usize {
    let (status, page) = server.get_json("/api/v1/deployments?limit=100").await;
    assert_eq!(status, 200, "{page}");
    page["deployments"].as_array().expect("deployments").len()
}

/// Make a token with the deploy scope through the API (a local request needs none).
async fn deploy_token(server: &Server, name: &str) -> String {
    let body = json!({"name": name, "scopes": ["deploy", "read"]});
    let (status, made) = call(server, "POST", "/api/v1/tokens", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_burst_past_the_deploys_limit_is_told_when_to_retry_and_tokens_have_their_own_budget() {
    const LIMIT: u32 = 10;
    let server = Server::start_with(&[("DEPLOYSTACK_RATE_LIMIT_DEPLOYS_PER_MINUTE", "10")]).await;
    let (token_a, token_b) = (
        deploy_token(&server, "a").await,
        deploy_token(&server, "b").await,
    );

    // The whole quota at once, each answer saying what is left; then 429s.
    let mut accepted = Vec::new();
    for left in (0..LIMIT).rev() {
        let answer = upload(&server, None, &[]).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        assert_eq!(answer.header("ratelimit-policy"), "\"deploys\";q=10;w=60");
        let remaining = answer.header("ratelimit");
        assert!(
            remaining.starts_with(&format!("\"deploys\";r={left};t=")),
            "{remaining}"
        );
        accepted.push(answer.body["id"].as_str().expect("id").to_owned());
    }
    for _ in 0..2 {
        assert_rate_limited(&upload(&server, None, &[]).await, LIMIT);
    }
    assert_eq!(
        listed(&server).await,
        accepted.len(),
        "a refused upload was stored"
    );

    // Reads, sites and health checks are not held back by the deploys budget.
    let reads = server
        .client
        .get(server.url("/api/v1/deployments"))
        .send()
        .await
        .unwrap();
    assert_eq!(reads.status(), 200);
    let reads_left = reads.headers()["ratelimit"].to_str().unwrap();
    assert!(reads_left.starts_with("\"reads\";r="), "{reads_left}");
    let ready = server.wait_final(&accepted[0]).await;
    assert_eq!(ready["status"], "READY", "{ready}");
    let site = server.get(&format!("/{}/", accepted[0])).await;
    assert_eq!(site.status(), 200);
    assert!(
        site.headers().get("ratelimit").is_none(),
        "sites are not limited"
    );
    assert_eq!(server.get("/healthz").await.status(), 200);

    // Each token has a budget of its own, whatever the address already spent.
    for _ in 0..LIMIT {
        let answer = upload(&server, Some(&token_a), &[]).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    assert_rate_limited(&upload(&server, Some(&token_a), &[]).await, LIMIT);
    let other = upload(&server, Some(&token_b), &[]).await;
    assert_eq!(
        other.status, 202,
        "token b shares token a's budget: {}",
        other.body
    );

    // A client that waits as long as it is told gets through (once).
    let refused = upload(&server, None, &[]).await;
    assert_rate_limited(&refused, LIMIT);
    tokio::time::sleep(refused.retry_after()).await;
    let after = upload(&server, None, &[]).await;
    assert_eq!(after.status, 202, "after Retry-After: {}", after.body);
    assert_rate_limited(&upload(&server, None, &[]).await, LIMIT);

    // Operators see every refusal, by class.
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for line in [
        "deploystack_rate_limited_total{class=\"deploys\"} 5",
        "deploystack_rate_limited_total{class=\"reads\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_project_with_the_most_deployments_waiting_gets_no_more() {
    // No workers: every deployment stays QUEUED.
    let server = Server::start_with(&[
        ("DEPLOYSTACK_EMBEDDED_WORKERS", "0"),
        ("DEPLOYSTACK_MAX_QUEUED_PER_PROJECT", "3"),
    ])
    .await;
    let mut busy = Vec::new();
    for _ in 0..3 {
        let answer = upload(&server, None, &[("project", "busy")]).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        busy.push(answer.body["id"].as_str().expect("id").to_owned());
    }
    let sources = stored_sources(server.data_dir.path());
    let refused = upload(&server, None, &[("project", "busy")]).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "too_many_queued");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("busy already has 3 deployments waiting"),
        "{message}"
    );
    // Named in the query, the project is refused before the body is read.
    let by_query = upload_to(&server, "/api/v1/deployments?project=busy", None, &[]).await;
    assert_eq!(by_query.status, 429, "{}", by_query.body);
    assert_eq!(by_query.body["error"]["code"], "too_many_queued");
    assert_eq!(listed(&server).await, 3, "a refused upload was recorded");
    assert_eq!(
        stored_sources(server.data_dir.path()),
        sources,
        "its source was stored"
    );

    // Other projects, and uploads without a project, are not held back.
    assert_eq!(
        upload(&server, None, &[("project", "calm")]).await.status,
        202
    );
    assert_eq!(upload(&server, None, &[]).await.status, 202);
    // One fewer waiting: the project takes one more.
    let (status, canceled) = call(
        &server,
        "POST",
        &format!("/api/v1/deployments/{}/cancel", busy[0]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(
        upload(&server, None, &[("project", "busy")]).await.status,
        202
    );
}

/// How many uploaded sources the server's storage directory holds.
fn stored_sources(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("storage").join("sources"))
        .map(|entries| entries.flatten().count())
        .unwrap_or(0)
}

/// Two servers sharing PostgreSQL and Redis (the cluster shape; storage stays per server, as
/// nothing is built here) draw on one deploys budget.
///
/// GCRA lets a caller spend its whole quota at once and gives one place back every
/// `60 / limit` seconds, so a burst that takes `elapsed` gets `limit` places, plus one for
/// each whole interval it lasted: with 5 a minute (an interval of 12 s) a burst of a second
/// or two gets exactly 5. The check allows for the extra places a slow machine might earn.
#[cfg(all(feature = "postgres", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_redis_share_one_budget() {
    use deploystack_core::testing::env;

    use crate::support::CLUSTER_SECRET_KEY;

    const LIMIT: u32 = 5;
    let (Some(redis), Some(admin)) = (env::redis_url(), env::postgres_url()) else {
        return;
    };
    let database = env::fresh_postgres_database(&admin).await;
    let prefix = env::unique_name("ratelimits");
    let vars = [
        ("DEPLOYSTACK_DATABASE_URL", database.as_str()),
        ("DEPLOYSTACK_SECRET_KEY", CLUSTER_SECRET_KEY),
        ("DEPLOYSTACK_QUEUE_URL", redis.as_str()),
        ("DEPLOYSTACK_REDIS_PREFIX", prefix.as_str()),
        ("DEPLOYSTACK_RATE_LIMIT_DEPLOYS_PER_MINUTE", "5"),
    ];
    let a = Server::start_with(&vars).await;
    let b = Server::start_with(&vars).await;

    let started = Instant::now();
    let burst = (0..4 * LIMIT).map(|n| {
        let server = if n % 2 == 0 { &a } else { &b };
        async move { ((n % 2) as usize, upload(server, None, &[]).await) }
    });
    let answers = futures_util::future::join_all(burst).await;
    let elapsed = started.elapsed();

    let mut allowed = 0;
    let mut refused_by = [0, 0];
    for (server, answer) in &answers {
        match answer.status {
            202 => allowed += 1,
            429 => {
                assert_rate_limited(answer, LIMIT);
                refused_by[*server] += 1;
            }
            other => panic!("upload answered {other}: {}", answer.body),
        }
    }
    let earned = u32::try_from(elapsed.as_secs() / 12).unwrap_or(u32::MAX);
    assert!(
        allowed >= LIMIT && allowed <= LIMIT + earned,
        "{allowed} uploads allowed in {elapsed:?}; the budget is {LIMIT}, shared"
    );
    assert!(
        refused_by.iter().all(|&n| n > 0),
        "each server refused some: {refused_by:?}"
    );
    // Both servers read one repository: exactly the allowed uploads are there.
    assert_eq!(listed(&a).await, allowed as usize);
    env::drop_postgres_database(&admin, &database).await;
}
