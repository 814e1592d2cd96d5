//! A project's environment variables, end to end: the API and its refusals, what a build of
//! each target receives (and what its log shows), that no value lands in the database in
//! plaintext, and that `deploystack-server secrets rotate` moves every value to a new key.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::{Server, required_tool, server_binary, zip_of};

/// Two platform keys, as 64 hex digits.
const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// `method path` with a JSON body (or none) and extra headers; the status and the JSON answer.
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client.request(method, server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_project(server: &Server, name: &str) {
    let (status, body) = call(
        server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": name})),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// `POST …/env`, expecting 201; the answer.
async fn add(server: &Server, project: &str, var: Value) -> Value {
    let (status, body) = call(
        server,
        "POST",
        &format!("/api/v1/projects/{project}/env"),
        Some(var),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The error's `(status, code, field)`.
fn refusal(status: u16, body: &Value) -> (u16, &str, &str) {
    (
        status,
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["field"].as_str().unwrap_or_default(),
    )
}

/// `key → value` of a listing (`None` when the answer has no value).
fn values(listing: &Value) -> Vec<(String, Option<String>)> {
    listing["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v.get("value").and_then(Value::as_str).map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test]
async fn env_api_creates_reads_changes_and_deletes_and_names_the_field_it_refuses() {
    let server = Server::start().await;
    create_project(&server, "envshop").await;
    let base = "/api/v1/projects/envshop/env";

    let plain = add(
        &server,
        "envshop",
        json!({"key": "API_URL", "value": "https://api.example", "targets": ["production", "preview"], "type": "plain"}),
    )
    .await;
    assert_eq!(plain["value"], "https://api.example");
    assert_eq!(plain["type"], "plain");
    assert_eq!(plain["targets"], json!(["production", "preview"]));
    assert!(plain["created_at"].is_string() && plain["updated_at"].is_string());
    let encrypted = add(
        &server,
        "envshop",
        json!({"key": "DB_URL", "value": "postgres://db-secret", "targets": ["production"]}),
    )
    .await;
    assert_eq!(encrypted["type"], "encrypted", "the default type");
    assert!(encrypted.get("value").is_none(), "{encrypted}");
    let sensitive = add(
        &server,
        "envshop",
        json!({"key": "TOKEN", "value": "tok-sensitive-1", "targets": ["preview"], "type": "sensitive"}),
    )
    .await;
    assert!(sensitive.get("value").is_none(), "{sensitive}");

    let (status, listing) = call(&server, "GET", base, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        values(&listing),
        [
            ("API_URL".into(), Some("https://api.example".into())),
            ("DB_URL".into(), None),
            ("TOKEN".into(), None)
        ]
    );
    let (_, decrypted) = call(&server, "GET", &format!("{base}?decrypt=true"), None, &[]).await;
    assert_eq!(
        values(&decrypted),
        [
            ("API_URL".into(), Some("https://api.example".into())),
            ("DB_URL".into(), Some("postgres://db-secret".into())),
            ("TOKEN".into(), None)
        ]
    );
    let token_path = format!("{base}/{}", sensitive["id"].as_str().unwrap());
    let (status, one) = call(
        &server,
        "GET",
        &format!("{token_path}?decrypt=true"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(one.get("value").is_none(), "{one}");
    assert!(!decrypted.to_string().contains("tok-sensitive-1"));

    // Refusals name the field.
    let cases = [
        (
            json!({"key": "1BAD", "value": "x", "targets": ["preview"]}),
            (422, "invalid_env", "key"),
        ),
        (
            json!({"key": "PATH", "value": "x", "targets": ["preview"]}),
            (422, "invalid_env", "key"),
        ),
        (
            json!({"key": "OK", "value": "x", "targets": []}),
            (422, "invalid_env", "targets"),
        ),
        (
            json!({"key": "OK", "value": "x", "targets": ["staging"]}),
            (422, "invalid_body", "targets[0]"),
        ),
        (
            json!({"key": "OK", "value": "x", "targets": ["preview"], "type": "secret"}),
            (422, "invalid_body", "type"),
        ),
        (
            json!({"key": "OK", "targets": ["preview"]}),
            (422, "invalid_body", "value"),
        ),
        (
            json!({"key": "OK", "value": "x".repeat(64 * 1024 + 1), "targets": ["preview"]}),
            (422, "invalid_env", "value"),
        ),
        (
            json!({"key": "API_URL", "value": "x", "targets": ["development", "preview"]}),
            (409, "env_conflict", "key"),
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = call(&server, "POST", base, Some(body.clone()), &[]).await;
        assert_eq!(refusal(status, &answer), expected, "{body}: {answer}");
    }
    let (status, answer) = call(
        &server,
        "POST",
        "/api/v1/projects/nosuch/env",
        Some(json!({"key": "A", "value": "x", "targets": ["preview"]})),
        &[],
    )
    .await;
    assert_eq!(refusal(status, &answer), (404, "project_not_found", ""));

    // PATCH: a sensitive value is never made readable without a new value.
    let (status, answer) = call(
        &server,
        "PATCH",
        &token_path,
        Some(json!({"type": "plain"})),
        &[],
    )
    .await;
    assert_eq!(
        refusal(status, &answer),
        (422, "invalid_env", "type"),
        "{answer}"
    );
    let (status, answer) = call(
        &server,
        "PATCH",
        &token_path,
        Some(json!({"type": "plain", "value": "now-public"})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value"], "now-public");
    let (status, answer) = call(
        &server,
        "PATCH",
        &format!("{base}/{}", encrypted["id"].as_str().unwrap()),
        Some(json!({"targets": ["preview", "production"]})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["targets"], json!(["production", "preview"]));
    let (status, answer) = call(
        &server,
        "PATCH",
        &format!("{base}/{}", plain["id"].as_str().unwrap()),
        Some(json!({"colour": "blue"})),
        &[],
    )
    .await;
    assert_eq!(
        refusal(status, &answer),
        (422, "invalid_body", "colour"),
        "{answer}"
    );

    // DELETE, then again: 404 as for projects and deployments.
    let (status, _) = call(&server, "DELETE", &token_path, None, &[]).await;
    assert_eq!(status, 204);
    let (status, answer) = call(&server, "DELETE", &token_path, None, &[]).await;
    assert_eq!(refusal(status, &answer), (404, "env_not_found", ""));
    let (status, answer) = call(&server, "GET", &format!("{base}/not-an-id"), None, &[]).await;
    assert_eq!(refusal(status, &answer), (404, "env_not_found", ""));

    // A create retried with its Idempotency-Key creates one variable and answers the same.
    let body = json!({"key": "RETRIED", "value": "once", "targets": ["preview"], "type": "plain"});
    let key = [("Idempotency-Key", "env-create-1")];
    let (first_status, first) = call(&server, "POST", base, Some(body.clone()), &key).await;
    let (second_status, second) = call(&server, "POST", base, Some(body), &key).await;
    assert_eq!(
        (first_status, second_status),
        (201, 201),
        "{first} {second}"
    );
    assert_eq!(first["id"], second["id"]);
    let (_, listing) = call(&server, "GET", base, None, &[]).await;
    let retried = values(&listing)
        .into_iter()
        .filter(|(key, _)| key == "RETRIED")
        .count();
    assert_eq!(retried, 1, "{listing}");
}

/// Every file under `dir`, bytes and all.
fn files_under(dir: &Path, found: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn env_values_are_never_stored_in_plaintext() {
    let server = Server::start().await;
    create_project(&server, "sealed").await;
    let unique = deploystack_core::testing::env::unique_name("plaintext");
    let secrets: Vec<String> = ["plain", "encrypted", "sensitive", "upload", "uploadsens"]
        .iter()
        .map(|kind| format!("{kind}-{unique}"))
        .collect();
    for (kind, value) in ["plain", "encrypted", "sensitive"].iter().zip(&secrets) {
        add(
            &server,
            "sealed",
            json!({"key": format!("V_{}", kind.to_uppercase()), "value": value, "targets": ["preview"], "type": kind}),
        )
        .await;
    }
    let id = server
        .upload_with(
            zip_of(&[("index.html", b"<p>sealed</p>".as_slice())]),
            &[
                ("project", "sealed"),
                ("env", &format!("UPLOAD_PLAIN={}", secrets[3])),
                ("sensitive_env", &format!("UPLOAD_SECRET={}", secrets[4])),
            ],
        )
        .await;
    assert_eq!(server.wait_final(&id).await["status"], "READY");

    let (status, data_dir) = server.terminate().await;
    assert!(status.success(), "{status}");
    let mut files = Vec::new();
    files_under(data_dir.path(), &mut files);
    assert!(
        files
            .iter()
            .any(|(path, _)| path.ends_with("deploystack.db")),
        "{:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        for secret in &secrets {
            assert!(
                !contains(bytes, secret),
                "{path} holds {secret} in plaintext"
            );
        }
    }
    let key_file = data_dir.path().join("secret.key");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the key file is {mode:o}");
}

/// A Node project whose build writes the variables named in `keys` (those it has) to
/// `out/env.json` and prints each value to the log.
fn env_probe_zip(keys: &[&str]) -> Vec<u8> {
    let build = format!(
        r#"const fs = require('fs');
fs.mkdirSync('out', {{ recursive: true }});
fs.writeFileSync('out/index.html', '<p>probe</p>');
const seen = {{}};
for (const key of {keys}) {{
  if (key in process.env) {{ seen[key] = process.env[key]; console.log(key + ' is ' + process.env[key]); }}
}}
fs.writeFileSync('out/env.json', JSON.stringify(seen));
"#,
        keys = serde_json::to_string(keys).unwrap()
    );
    let package =
        r#"{"name":"probe","version":"1.0.0","private":true,"scripts":{"build":"node build.cjs"}}"#;
    let lock = r#"{"name":"probe","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"probe","version":"1.0.0"}}}"#;
    zip_of(&[
        ("package.json", package.as_bytes()),
        ("package-lock.json", lock.as_bytes()),
        ("build.cjs", build.as_bytes()),
    ])
}

#[tokio::test]
async fn env_a_build_receives_exactly_its_targets_variables_with_secrets_masked() {
    if required_tool("node", "Node.js (the probe build)").is_none()
        || required_tool("npm", "npm (the probe build)").is_none()
    {
        return;
    }
    let server = Server::start().await;
    create_project(&server, "envbuild").await;
    let prod_secret = deploystack_core::testing::env::unique_name("prodsecret");
    let preview_secret = deploystack_core::testing::env::unique_name("previewsecret");
    for var in [
        json!({"key": "SHARED", "value": "from-project", "targets": ["production", "preview"], "type": "plain"}),
        json!({"key": "PROD_SECRET", "value": prod_secret, "targets": ["production"], "type": "encrypted"}),
        json!({"key": "PREVIEW_SECRET", "value": preview_secret, "targets": ["preview"], "type": "sensitive"}),
        json!({"key": "DEV_ONLY", "value": "local", "targets": ["development"], "type": "plain"}),
    ] {
        add(&server, "envbuild", var).await;
    }
    let keys = [
        "SHARED",
        "PROD_SECRET",
        "PREVIEW_SECRET",
        "DEV_ONLY",
        "FROM_UPLOAD",
    ];
    let build = |target: &'static str, upload_env: Vec<String>| {
        let server = &server;
        async move {
            let mut fields = vec![
                ("project", "envbuild".to_owned()),
                ("target", target.to_owned()),
                ("output_directory", "out".to_owned()),
            ];
            fields.extend(upload_env.into_iter().map(|e| ("env", e)));
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let id = server.upload_with(env_probe_zip(&keys), &fields).await;
            let done = server
                .wait_final_within(&id, Duration::from_secs(300))
                .await;
            let log = server.log_text(&id).await;
            assert_eq!(done["status"], "READY", "{done}\n{log}");
            let env: Value = server
                .get(&format!("/{id}/env.json"))
                .await
                .json()
                .await
                .expect("env.json");
            (env, log)
        }
    };

    let (production, log) = build(
        "production",
        vec!["SHARED=from-upload".into(), "FROM_UPLOAD=yes".into()],
    )
    .await;
    assert_eq!(
        production,
        json!({"SHARED": "from-upload", "PROD_SECRET": prod_secret, "FROM_UPLOAD": "yes"})
    );
    assert!(!log.contains(&prod_secret), "{log}");
    assert!(log.contains("PROD_SECRET is ***"), "{log}");
    assert!(log.contains("SHARED is from-upload"), "{log}");

    let (preview, log) = build("preview", vec![]).await;
    assert_eq!(
        preview,
        json!({"SHARED": "from-project", "PREVIEW_SECRET": preview_secret})
    );
    assert!(!log.contains(&preview_secret), "{log}");
    assert!(log.contains("PREVIEW_SECRET is ***"), "{log}");
}

/// `deploystack-server secrets rotate` with `key` current and `previous` older keys, on the
/// data directory `dir`; its exit status and standard output.
async fn rotate(dir: &Path, key: &str, previous: Option<&str>) -> (bool, String) {
    let mut command = Command::new(server_binary());
    command
        .args(["secrets", "rotate"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEPLOYSTACK_DATA_DIR", dir)
        .env("DEPLOYSTACK_SECRET_KEY", key)
        .stdin(Stdio::null());
    if let Some(previous) = previous {
        command.env("DEPLOYSTACK_PREVIOUS_SECRET_KEYS", previous);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("rotate did not finish within 60 s")
        .expect("run secrets rotate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn env_rotation_moves_every_value_to_the_new_key() {
    let server = Server::start_with(&[("DEPLOYSTACK_SECRET_KEY", KEY_A)]).await;
    create_project(&server, "rotating").await;
    add(
        &server,
        "rotating",
        json!({"key": "DB_URL", "value": "postgres://rotate-me", "targets": ["production"]}),
    )
    .await;
    add(
        &server,
        "rotating",
        json!({"key": "TOKEN", "value": "sensitive-rotate", "targets": ["preview"], "type": "sensitive"}),
    )
    .await;
    let id = server
        .upload_with(
            zip_of(&[("index.html", b"<p>r</p>".as_slice())]),
            &[("project", "rotating"), ("env", "UPLOADED=rotate-too")],
        )
        .await;
    assert_eq!(server.wait_final(&id).await["status"], "READY");
    let (_, data_dir) = server.terminate().await;

    // Key B alone cannot open what key A sealed: rotation needs A as a previous key.
    let (ok, output) = rotate(data_dir.path(), KEY_B, None).await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("2 failed") || output.contains("failed"),
        "{output}"
    );

    let (ok, output) = rotate(data_dir.path(), KEY_B, Some(KEY_A)).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("project variables: 2 re-encrypted"),
        "{output}"
    );
    assert!(
        output.contains("upload-time variables: 1 re-encrypted"),
        "{output}"
    );
    let (ok, output) = rotate(data_dir.path(), KEY_B, Some(KEY_A)).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("project variables: 0 re-encrypted, 2 already"),
        "{output}"
    );

    // Key A is gone; every value still reads.
    let server = Server::start_in(data_dir, &[("DEPLOYSTACK_SECRET_KEY", KEY_B)], &[]).await;
    let (status, listing) = call(
        &server,
        "GET",
        "/api/v1/projects/rotating/env?decrypt=true",
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(
        values(&listing),
        [
            ("DB_URL".into(), Some("postgres://rotate-me".into())),
            ("TOKEN".into(), None)
        ]
    );
}
