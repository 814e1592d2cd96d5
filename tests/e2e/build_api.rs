//! The API around a build: settings and environment variables given at upload, cancel, and
//! the build log followed live as server-sent events.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, zip_of};

/// Upload `zip` to `path` with extra text form fields.
async fn upload_with(
    server: &Server,
    path: &str,
    fields: &[(&str, &str)],
    zip: Vec<u8>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    let part = reqwest::multipart::Part::bytes(zip).file_name("site.zip");
    server
        .client
        .post(server.url(path))
        .multipart(form.part("file", part))
        .send()
        .await
        .expect("upload request")
}

fn site() -> Vec<u8> {
    zip_of(&[("index.html", b"<h1>options</h1>")])
}

fn id_of(answer: &Value) -> String {
    answer["deployment_id"]
        .as_str()
        .expect("deployment_id")
        .to_owned()
}

#[tokio::test]
async fn settings_and_variables_round_trip_and_sensitive_values_are_never_shown() {
    let server = Server::start().await;
    let response = upload_with(
        &server,
        "/api/v1/deployments?framework=static&env=FROM_QUERY=q%3D1&install_command=ignored",
        &[
            ("build_command", "npm run build -- --mode staging"),
            ("output_directory", "dist"),
            ("root_directory", "apps/web"),
            ("install_command", "npm ci"),
            ("env", "API_URL=https://api.example.com/?a=b"),
            ("env", "EMPTY="),
            ("sensitive_env", "TOKEN=super-secret-value"),
        ],
        site(),
    )
    .await;
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    let expected_settings = serde_json::json!({
        "framework": "static",
        "root_directory": "apps/web",
        "install_command": "npm ci",
        "build_command": "npm run build -- --mode staging",
        "output_directory": "dist",
    });
    let expected_env = serde_json::json!([
        {"name": "FROM_QUERY", "sensitive": false, "value": "q=1"},
        {"name": "API_URL", "sensitive": false, "value": "https://api.example.com/?a=b"},
        {"name": "EMPTY", "sensitive": false, "value": ""},
        {"name": "TOKEN", "sensitive": true},
    ]);
    assert_eq!(answer["build_settings"], expected_settings, "{answer}");
    assert_eq!(answer["env"], expected_env, "{answer}");

    let id = id_of(&answer);
    let done = server.wait_final(&id).await;
    assert_eq!(done["build_settings"], expected_settings, "{done}");
    assert_eq!(done["env"], expected_env, "{done}");
    let (_, listed) = server.get_json("/api/v1/deployments").await;
    let (_, logs) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs"))
        .await;
    for body in [&answer, &done, &listed, &logs] {
        assert!(
            !body.to_string().contains("super-secret-value"),
            "a sensitive value was shown: {body}"
        );
    }

    // No options: empty settings and no variables, not missing fields.
    let plain = server.deploy(site()).await;
    assert_eq!(plain["build_settings"], serde_json::json!({}));
    assert_eq!(plain["env"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_settings_and_variables_are_refused_with_400() {
    let server = Server::start_with(&[("DEPLOYSTACK_EMBEDDED_WORKERS", "0")]).await;
    let long_setting = "x".repeat(1025);
    let long_value = format!("BIG={}", "v".repeat(64 * 1024 + 1));
    let long_name = format!("{}=v", "N".repeat(257));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("build_command", long_setting.as_str())],
            "invalid_build_settings",
        ),
        (
            vec![("install_command", "npm ci\nrm -rf /")],
            "invalid_build_settings",
        ),
        (vec![("framework", "vite\0")], "invalid_build_settings"),
        (vec![("root_directory", "/etc")], "invalid_build_settings"),
        (
            vec![("root_directory", "apps/../..")],
            "invalid_build_settings",
        ),
        (
            vec![("output_directory", "../outside")],
            "invalid_build_settings",
        ),
        (vec![("env", "NO_EQUALS_SIGN")], "invalid_env"),
        (vec![("env", "1STARTS_WITH_DIGIT=x")], "invalid_env"),
        (vec![("env", "HAS-DASH=x")], "invalid_env"),
        (vec![("env", "=no name")], "invalid_env"),
        (vec![("env", long_name.as_str())], "invalid_env"),
        (vec![("env", long_value.as_str())], "invalid_env"),
        (vec![("env", "PATH=/evil")], "invalid_env"),
        (vec![("sensitive_env", "HOME=/tmp")], "invalid_env"),
        (vec![("env", "DEPLOYSTACK_DATABASE_URL=x")], "invalid_env"),
        (
            vec![("env", "TWICE=1"), ("sensitive_env", "TWICE=2")],
            "invalid_env",
        ),
    ];
    for (fields, code) in &cases {
        let response = upload_with(&server, "/api/v1/deployments", fields, site()).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{fields:?}: {body}");
        assert_eq!(body["error"]["code"], *code, "{fields:?}: {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(
            !body.to_string().contains("vvvvvvvv"),
            "a refused value was echoed back"
        );
    }
    // The same rules for query parameters.
    let response = server.upload_to("/deploy?env=PATH%3D%2Fx", site()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_env");
    let response = server
        .upload_to("/deploy?output_directory=..%2F..", site())
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_build_settings");

    // At most 100 variables.
    let many: Vec<String> = (0..101).map(|i| format!("V{i}=x")).collect();
    let fields: Vec<(&str, &str)> = many.iter().map(|v| ("env", v.as_str())).collect();
    let response = upload_with(&server, "/api/v1/deployments", &fields, site()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_env", "{body}");
    let fields: Vec<(&str, &str)> = fields[..100].to_vec();
    let response = upload_with(&server, "/api/v1/deployments", &fields, site()).await;
    assert_eq!(response.status(), 202, "100 variables are allowed");

    // Nothing refused was recorded.
    let (_, listed) = server.get_json("/api/v1/deployments?limit=100").await;
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

async fn cancel(server: &Server, id: &str) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(&format!("/api/v1/deployments/{id}/cancel")))
        .send()
        .await
        .expect("cancel request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_queued_deployment_is_canceled_and_never_built() {
    // No worker: the deployment stays QUEUED until canceled.
    let vars = [
        ("DEPLOYSTACK_EMBEDDED_WORKERS", "0"),
        ("DEPLOYSTACK_RECONCILE_SECS", "1"),
        ("DEPLOYSTACK_STALLED_AFTER_SECS", "1"),
    ];
    let server = Server::start_with(&vars).await;
    let id = id_of(&server.deploy(site()).await);
    let (status, body) = cancel(&server, &id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CANCELED");
    assert_eq!(body["deployment_id"], id.as_str());
    let (status, body) = cancel(&server, &id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "deployment_final");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CANCELED"),
        "{body}"
    );

    // With workers, and a reconciler that re-enqueues whatever looks stalled every second,
    // the canceled deployment is still never built.
    let (_, data_dir) = server.terminate().await;
    let server = Server::start_in(
        data_dir,
        &[
            ("DEPLOYSTACK_RECONCILE_SECS", "1"),
            ("DEPLOYSTACK_STALLED_AFTER_SECS", "1"),
        ],
        &[],
    )
    .await;
    server.deploy_ready(site()).await;
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        let (status, body) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["status"], "CANCELED",
            "a canceled deployment changed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = server.get(&format!("/{id}/")).await;
    assert_eq!(response.status(), 404, "a canceled deployment is served");
}

#[tokio::test]
async fn cancel_answers_409_404_410_and_400_as_json() {
    let server = Server::start().await;
    let ready = server.deploy_ready(site()).await;
    let (status, body) = cancel(&server, &ready).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "deployment_final");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("READY"),
        "{body}"
    );
    let (_, after) = server
        .get_json(&format!("/api/v1/deployments/{ready}"))
        .await;
    assert_eq!(after["status"], "READY", "a refused cancel changed it");

    let (status, body) = cancel(&server, "0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "deployment_not_found");

    let (status, body) = cancel(&server, "not-an-id").await;
    assert_eq!(status, 400, "{body}");

    let deleted = server.deploy_ready(site()).await;
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/deployments/{deleted}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = cancel(&server, &deleted).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "deployment_deleted");
}

/// A raw `GET path` whose answer is read as it comes, for server-sent events.
pub struct RawStream {
    stream: tokio::net::TcpStream,
    /// Everything received so far, headers included.
    pub text: String,
}

impl RawStream {
    pub async fn get(address: &str, path: &str) -> RawStream {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        RawStream {
            stream,
            text: String::new(),
        }
    }

    /// Read until `text` contains `needle` or the stream closes; false on timeout or close
    /// without it.
    pub async fn read_until(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 16 * 1024];
        while !self.text.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
                Ok(Ok(n)) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        true
    }

    /// Read to the end of the answer (the server closes it); false if it stays open longer
    /// than `within`.
    pub async fn read_to_end(&mut self, within: Duration) -> bool {
        let mut rest = Vec::new();
        let done = tokio::time::timeout(within, self.stream.read_to_end(&mut rest)).await;
        self.text.push_str(&String::from_utf8_lossy(&rest));
        done.is_ok()
    }

    /// The `data:` of every event named `name`, in order, parsed as JSON.
    pub fn events(&self, name: &str) -> Vec<Value> {
        let marker = format!("event: {name}\n");
        self.text
            .split("\n\n")
            .filter(|block| block.contains(&marker))
            .filter_map(|block| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .and_then(|data| serde_json::from_str(data).ok())
            })
            .collect()
    }
}

#[tokio::test]
async fn a_followed_log_sends_every_line_then_the_final_status() {
    let server = Server::start().await;
    let id = server.deploy_ready(site()).await;
    let mut stream = RawStream::get(
        server.address(),
        &format!("/api/v1/deployments/{id}/logs?follow=true"),
    )
    .await;
    assert!(
        stream.read_to_end(Duration::from_secs(20)).await,
        "the stream of a finished build did not end: {}",
        stream.text
    );
    let head = stream
        .text
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let lines = stream.events("log");
    let (_, stored) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs"))
        .await;
    assert_eq!(
        Value::Array(lines.clone()),
        stored["lines"],
        "the stream did not send every stored line"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["attempt"] == 1 && l["at"].is_string())
    );
    assert!(stream.text.contains("\nid: "), "events carry no id");
    let end = stream.events("end");
    assert_eq!(
        end,
        [serde_json::json!({"status": "READY"})],
        "{}",
        stream.text
    );

    // Without follow, the JSON answer; an unknown deployment is a JSON 404 before any stream.
    let (status, _) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs?follow=false"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .get_json("/api/v1/deployments/0123456789abcdef0123456789abcdef/logs?follow=true")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "deployment_not_found");
    let (status, body) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs?follow=maybe"))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_followed_log_of_a_waiting_deployment_ends_when_it_is_canceled() {
    let server = Server::start_with(&[("DEPLOYSTACK_EMBEDDED_WORKERS", "0")]).await;
    let id = id_of(&server.deploy(site()).await);
    let mut stream = RawStream::get(
        server.address(),
        &format!("/api/v1/deployments/{id}/logs?follow=true"),
    )
    .await;
    assert!(
        stream
            .read_until("text/event-stream", Duration::from_secs(10))
            .await,
        "no event stream: {}",
        stream.text
    );
    let (status, _) = cancel(&server, &id).await;
    assert_eq!(status, 200);
    assert!(
        stream.read_to_end(Duration::from_secs(15)).await,
        "the stream did not end after the cancel: {}",
        stream.text
    );
    assert_eq!(
        stream.events("end"),
        [serde_json::json!({"status": "CANCELED"})],
        "{}",
        stream.text
    );
}
