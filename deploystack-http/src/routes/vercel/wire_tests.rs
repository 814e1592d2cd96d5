//! The wire rules of the module docs, checked through the whole application (host dispatch,
//! auth, rate limits, the router) over in-memory services. The `vercel` CLI itself runs
//! against the real server in the end-to-end test `tests/e2e/vercel_cli.rs`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use deploystack_core::Services;
use deploystack_core::config::{AuthMode, Config};
use deploystack_core::model::{DeploymentId, NewDeployment, NewProject, Scope, Target};
use deploystack_core::services::hosts::ProjectHostResolver;
use deploystack_core::services::projects;
use deploystack_core::services::tokens::{self, TokenRequest};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::dispatch::App;
use crate::state::AppState;

struct Harness {
    app: App,
    services: Services,
    token: String,
}

async fn harness() -> Harness {
    harness_with(Config::default()).await
}

async fn harness_with(config: Config) -> Harness {
    let services = Services::in_memory(config).await.unwrap();
    let (_, secret) = tokens::create(
        services.repository.as_ref(),
        TokenRequest {
            name: "ci".into(),
            scopes: vec![Scope::Admin],
            projects: None,
            expires_in: None,
        },
    )
    .await
    .unwrap();
    let state =
        AppState::new(services.clone(), "http://localhost:8000").with_auth(AuthMode::Required);
    let hosts = ProjectHostResolver::new(
        services.config.base_domain().unwrap(),
        Arc::clone(&services.repository),
    )
    .with_platform_host(Some("localhost"));
    Harness {
        app: App::new(state, Arc::new(hosts)),
        services,
        token: secret.expose().to_owned(),
    }
}

impl Harness {
    /// `method path` on `host` with the token, a body and its content type.
    async fn send_on(
        &self,
        host: &str,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        self.app.handle(request.body(body).unwrap()).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        json_of(
            self.send_on("localhost:8000", method, path, body, &[])
                .await,
        )
        .await
    }
}

/// The status and the JSON body, checking the answer says it is JSON.
async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        content_type,
        "application/json",
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(<sha1::Sha1 as sha1::Digest>::digest(data))
}

#[tokio::test]
async fn a_deployment_of_unknown_files_asks_for_them_by_sha1() {
    let h = harness().await;
    let (a, b) = (sha1_hex(b"<h1>a</h1>"), sha1_hex(b"<h1>b</h1>"));
    let body = json!({
        "name": "site",
        "files": [
            {"file": "index.html", "sha": a, "size": 10, "mode": 33188},
            {"file": "copy.html", "sha": a, "size": 10, "mode": 33188},
            {"file": "b.html", "sha": b, "size": 10, "mode": 33188},
        ],
        "projectSettings": {"framework": null},
        "version": 2,
    });
    let (status, answer) = h
        .send(
            "POST",
            "/v13/deployments?skipAutoDetectionConfirmation=1&teamId=team_deploystack",
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "missing_files");
    let mut missing: Vec<String> =
        serde_json::from_value(answer["error"]["missing"].clone()).unwrap();
    missing.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(missing, expected, "each unknown SHA-1 once");
}

#[tokio::test]
async fn a_file_whose_sha1_is_not_the_one_named_is_refused_and_nothing_is_stored() {
    let h = harness().await;
    let wrong = sha1_hex(b"something else");
    let response = h
        .send_on(
            "localhost:8000",
            "POST",
            "/v2/files",
            Some(("application/octet-stream", b"hello".to_vec())),
            &[("x-now-digest", &wrong), ("x-now-size", "5")],
        )
        .await;
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_digest");
    assert!(h.services.storage.list("vercel/").await.unwrap().is_empty());
    assert!(h.services.storage.list("blobs/").await.unwrap().is_empty());
    // A header that is no SHA-1 at all is refused the same way.
    let response = h
        .send_on(
            "localhost:8000",
            "POST",
            "/v2/files",
            Some(("application/octet-stream", b"hello".to_vec())),
            &[("x-now-digest", "not-a-digest")],
        )
        .await;
    assert_eq!(json_of(response).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_file_is_stored_with_exactly_200_and_then_counts_as_uploaded() {
    let h = harness().await;
    let bytes = b"<h1>hello</h1>".to_vec();
    let sha1 = sha1_hex(&bytes);
    // `x-vercel-digest`, the REST docs' name, is read too.
    let response = h
        .send_on(
            "localhost:8000",
            "POST",
            "/v2/files?teamId=team_deploystack",
            Some(("application/octet-stream", bytes.clone())),
            &[("x-vercel-digest", &sha1), ("x-now-size", "14")],
        )
        .await;
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let record = h
        .services
        .storage
        .get(&format!("vercel/sha1/{sha1}"))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    assert_eq!(record, sha256.as_bytes());
    let body = json!({
        "name": "site",
        "files": [{"file": "index.html", "sha": sha1, "size": 14, "mode": 33188}],
    });
    let (status, answer) = h.send("POST", "/v13/deployments", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["projectId"], "site");
    assert_eq!(answer["readyState"], "QUEUED");
    assert_eq!(answer["aliasAssigned"], false);
    assert_eq!(answer["ownerId"], "team_deploystack");
    assert!(answer.get("team").is_none());
    let id = answer["id"].as_str().unwrap();
    assert_eq!(answer["url"], format!("{id}.localhost"));
}

#[tokio::test]
async fn bad_tokens_are_403_here_and_still_401_on_our_api() {
    let mut h = harness().await;
    h.token = "ds_0000000000000000000000000000000000000000000000000000000000000000".into();
    let (status, answer) = h.send("GET", "/v2/user", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_token");
    let (status, _) = h.send("GET", "/v13/deployments/x.localhost", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.send("GET", "/api/v1/deployments", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_caller_is_a_user_of_the_one_team() {
    let h = harness().await;
    let (status, answer) = h.send("GET", "/v2/user", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["user"]["username"], "ci");
    assert_eq!(answer["user"]["version"], "northstar");
    assert_eq!(answer["user"]["defaultTeamId"], "team_deploystack");
    let (status, answer) = h.send("GET", "/v1/teams", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["teams"][0]["id"], "team_deploystack");
    let (status, answer) = h
        .send(
            "GET",
            "/teams/team_deploystack?teamId=team_deploystack",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["slug"], "deploystack");
}

#[tokio::test]
async fn unknown_projects_and_deployments_are_404_never_400() {
    let h = harness().await;
    for path in [
        "/v9/projects/https%3A%2F%2Fapp-abc.example",
        "/v9/projects/nope",
        "/v13/deployments/nope.localhost",
        "/v13/deployments/https%3A%2F%2Fnope.example",
        &format!("/v13/deployments/{}", DeploymentId::random()),
        &format!("/v13/deployments/{}.localhost", DeploymentId::random()),
        "/v10/projects/nope/env",
        "/v4/domains/nope.example",
        "/v7/nothing/here",
    ] {
        let (status, answer) = h.send("GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{path}: {answer}");
    }
    let (status, _) = h
        .send(
            "DELETE",
            &format!("/now/deployments/{}?hard=0", DeploymentId::random()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A queued deployment of project `site`, straight in the repository.
async fn queued_deployment(services: &Services) -> DeploymentId {
    projects::get_or_create(services, &"site".parse().unwrap(), None)
        .await
        .unwrap();
    let id = DeploymentId::random();
    services
        .repository
        .create_deployment(&NewDeployment {
            id,
            project: Some("site".parse().unwrap()),
            target: Target::Preview,
            source_key: format!("sources/{id}.zip"),
            settings: Default::default(),
            env: Vec::new(),
            created_by: None,
            source_files: Vec::new(),
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_deployment_is_found_by_id_and_by_host_and_listed_by_project() {
    let h = harness().await;
    let id = queued_deployment(&h.services).await;
    for key in [
        id.to_string(),
        format!("{id}.localhost"),
        format!("{id}.localhost:8000"),
    ] {
        let (status, answer) = h
            .send("GET", &format!("/v13/deployments/{key}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{key}: {answer}");
        assert_eq!(answer["id"], id.to_string());
        assert_eq!(answer["target"], Value::Null);
    }
    let (status, answer) = h
        .send(
            "GET",
            "/v6/deployments?limit=20&projectId=site&teamId=team_deploystack",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["deployments"][0]["uid"], id.to_string());
    assert_eq!(answer["pagination"]["next"], Value::Null);
}

#[tokio::test]
async fn the_routes_answer_only_on_the_platform_host() {
    let h = harness().await;
    let id = queued_deployment(&h.services).await;
    for host in [
        format!("{id}.localhost:8000"),
        "site.localhost:8000".to_owned(),
    ] {
        let response = h.send_on(&host, "GET", "/v2/user", None, &[]).await;
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{host}");
        assert!(!content_type.contains("json"), "{host}: {content_type}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("northstar"),
            "{host}"
        );
    }
    let (status, _) = h.send("GET", "/v2/user", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn doubled_slashes_are_tolerated() {
    let h = harness().await;
    let (status, answer) = h.send("GET", "//v2/user", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["user"]["version"], "northstar");
}

#[tokio::test]
async fn json_bodies_are_read_whatever_their_content_type() {
    let h = harness().await;
    projects::create(
        &h.services,
        NewProject {
            name: "site".parse().unwrap(),
            build_settings: Default::default(),
            retention: Default::default(),
        },
        None,
    )
    .await
    .unwrap();
    let body = br#"{"target":"PRODUCTION","domain":"www.example.com"}"#.to_vec();
    let response = h
        .send_on(
            "localhost:8000",
            "POST",
            "/projects/site/alias",
            Some(("text/plain;charset=UTF-8", body.clone())),
            &[],
        )
        .await;
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer[0]["domain"], "www.example.com");
    // Again: the same project already has it, which is no error.
    let response = h
        .send_on(
            "localhost:8000",
            "POST",
            "/projects/site/alias",
            Some(("text/plain", body)),
            &[],
        )
        .await;
    assert_eq!(json_of(response).await.0, StatusCode::OK);
    let (status, answer) = h.send("GET", "/v5/domains?limit=20", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["domains"][0]["name"], "www.example.com");
    assert!(answer["domains"][0]["creator"]["username"].is_string());
    let (status, answer) = h
        .send("GET", "/v4/domains/www.example.com/config", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["misconfigured"], false);
}

/// The body of an answer as text, read to its end.
async fn text_of(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_build_log_closes_at_once_without_follow_and_at_the_end_of_the_build_with_it() {
    use deploystack_core::model::{LogLine, LogStream};
    let h = harness().await;
    let id = queued_deployment(&h.services).await;
    h.services
        .repository
        .append_log(
            &id,
            &[LogLine {
                attempt: 1,
                at: time::OffsetDateTime::now_utc(),
                stream: LogStream::Stdout,
                message: "installing".into(),
            }],
        )
        .await
        .unwrap();
    let events = format!("/v3/now/deployments/{id}/events?direction=forward&follow=&format=lines");
    let response = h.send_on("localhost:8000", "GET", &events, None, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-ndjson"
    );
    // `follow=` empty: what there is, then the end, although the build has not ended.
    let text = tokio::time::timeout(std::time::Duration::from_secs(5), text_of(response))
        .await
        .expect("the stream closes at once without follow");
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["text"], "installing");
    assert_eq!(line["type"], "stdout");
    assert!(line["created"].is_i64());

    // `follow=1`: open while the build runs…
    let followed =
        format!("/v3/now/deployments/{id}/events?direction=forward&follow=1&format=lines");
    let response = h
        .send_on("localhost:8000", "GET", &followed, None, &[])
        .await;
    let reading = tokio::spawn(text_of(response));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !reading.is_finished(),
        "the followed stream stays open while the build runs"
    );
    // … and closed once it has ended.
    deploystack_core::services::deployments::cancel(&h.services, &id, None)
        .await
        .unwrap();
    let text = tokio::time::timeout(std::time::Duration::from_secs(15), reading)
        .await
        .expect("the followed stream closes once the build has ended")
        .unwrap();
    assert!(text.contains("installing"), "{text}");
}

#[tokio::test]
async fn the_api_rate_limits_hold_here_too() {
    let h = harness_with(Config {
        rate_limit_reads_per_minute: 2,
        ..Config::default()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(h.send("GET", "/v2/user", None).await.0, StatusCode::OK);
    }
    let (status, answer) = h.send("GET", "/v1/teams", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["code"], "rate_limited");
}
