//! API tokens and who may do what, as a user of the real binary meets them: the first
//! token from `deploystack-server token create`, scopes and projects enforced on every
//! operation `/openapi.json` lists, revocation at once, secrets never stored in plaintext,
//! and the `local` default's refusals (cross-site, foreign `Host`), and the default's switch
//! to `required` on a network address. The peer-address part of the local rule needs a
//! network namespace: `local_peer.rs`.

use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::{Server, call, get_on, server_binary, zip_of};

/// Run `deploystack-server token …` on `data_dir` (as an operator would before the first
/// start, or beside a running server); returns what it printed.
async fn token_command(data_dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = Command::new(server_binary());
    command
        .arg("token")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEPLOYSTACK_DATA_DIR", data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("run token command");
    assert!(
        output.status.success(),
        "token {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A client that sends `token` with every request.
fn client_with(token: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A server with `auth = required` and an admin token made with the command before it
/// started; the server's client sends that token.
pub async fn required_server(env: &[(&str, &str)]) -> (Server, String) {
    let data_dir = tempfile::tempdir().unwrap();
    let admin = token_command(
        data_dir.path(),
        env,
        &["create", "--name", "bootstrap", "--scope", "admin"],
    )
    .await
    .trim()
    .to_owned();
    let mut all = vec![("DEPLOYSTACK_AUTH", "required")];
    all.extend_from_slice(env);
    let mut server = Server::start_in(data_dir, &all, &[]).await;
    server.client = client_with(&admin);
    (server, admin)
}

/// `method path` with `token` (or none) and an optional JSON body.
async fn send(
    server: &Server,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// Make a token through the API with the server's (admin) client; returns (secret, id).
async fn make_token(server: &Server, body: Value) -> (String, String) {
    let (status, made) = call(server, "POST", "/api/v1/tokens", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    (
        made["token"].as_str().unwrap().to_owned(),
        made["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_bootstrapped_admin_makes_scoped_tokens_that_work_until_revoked() {
    let (server, admin) = required_server(&[]).await;

    // No token, a wrong one, a malformed header: 401 with the challenge.
    for token in [None, Some("ds_wrong"), Some("not a token")] {
        let answer = send(&server, token, "GET", "/api/v1/projects", None).await;
        assert_eq!(answer.status(), 401, "{token:?}");
        assert!(
            answer.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // The open routes stay open.
    for path in ["/healthz", "/openapi.json"] {
        assert_eq!(
            send(&server, None, "GET", path, None).await.status(),
            200,
            "{path}"
        );
    }

    let (reader, reader_id) =
        make_token(&server, json!({"name": "dashboard", "scopes": ["read"]})).await;
    assert!(reader.starts_with("ds_"));
    assert!(
        reader
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    );

    // Listed without any secret.
    let (status, listed) = call(&server, "GET", "/api/v1/tokens", None).await;
    assert_eq!(status, 200);
    let text = listed.to_string();
    assert!(!text.contains(&reader) && !text.contains(&admin), "{text}");
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bootstrap", "dashboard"]);
    assert!(listed["tokens"][0]["last_used_at"].is_string(), "{listed}");

    // A read token reads, and may not write or manage tokens.
    let read = |path: &'static str| send(&server, Some(&reader), "GET", path, None);
    assert_eq!(read("/api/v1/projects").await.status(), 200);
    let denied = send(
        &server,
        Some(&reader),
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "site"})),
    )
    .await;
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_scope");
    assert_eq!(read("/api/v1/tokens").await.status(), 403);

    // Revoked: 401 at once.
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/v1/tokens/{reader_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(read("/api/v1/projects").await.status(), 401);
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/v1/tokens/{reader_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The secret is nowhere in the SQLite files, only its hash.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(server.data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("deploystack.db") {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!stored.is_empty());
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(admin.as_bytes()),
        "the admin secret is stored in plaintext"
    );
    assert!(
        !contains(&admin.as_bytes()[3..]),
        "the admin secret is stored in plaintext"
    );
}

/// `POST /api/v1/projects` `{name}` with `token` and an `Idempotency-Key`: status, whether
/// the answer was a replay, body.
async fn create_project_once(token: &str, server: &Server, name: &str) -> (u16, bool, Value) {
    let answer = reqwest::Client::new()
        .post(server.url("/api/v1/projects"))
        .bearer_auth(token)
        .header("Idempotency-Key", "create-site")
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let replayed = answer.headers().contains_key("idempotent-replayed");
    (status, replayed, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn idempotency_keys_belong_to_the_token_that_sent_them() {
    let (server, _) = required_server(&[]).await;
    let (alice, _) = make_token(&server, json!({"name": "alice", "scopes": ["admin"]})).await;
    let (bob, _) = make_token(&server, json!({"name": "bob", "scopes": ["admin"]})).await;

    let (status, replayed, first) = create_project_once(&alice, &server, "alpha").await;
    assert_eq!((status, replayed), (201, false), "{first}");
    // Bob chose the same key for another request: his own, not a reuse of Alice's.
    let (status, replayed, other) = create_project_once(&bob, &server, "beta").await;
    assert_eq!((status, replayed), (201, false), "{other}");
    assert_eq!(other["name"], "beta");
    // Alice's retry is still a replay of her first answer.
    let (status, replayed, again) = create_project_once(&alice, &server, "alpha").await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    // And her key with another request is still refused.
    let (status, _, reused) = create_project_once(&alice, &server, "gamma").await;
    assert_eq!(status, 422, "{reused}");
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
}

#[tokio::test]
async fn the_history_says_which_token_made_each_deployment_and_moved_production() {
    let (server, _admin) = required_server(&[]).await;
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "site"})),
    )
    .await;
    assert_eq!(status, 201);
    let (deployer, deployer_id) = make_token(
        &server,
        json!({"name": "ci", "scopes": ["deploy"], "projects": ["site"], "expires_in": "1d"}),
    )
    .await;
    let mut as_ci = server;
    as_ci.client = client_with(&deployer);
    let first = as_ci
        .upload_with(
            zip_of(&[("index.html", b"one".as_slice())]),
            &[("project", "site"), ("target", "production")],
        )
        .await;
    let built = as_ci.wait_final(&first).await;
    assert_eq!(built["status"], "READY");
    assert_eq!(
        built["created_by"],
        format!("token ci ({deployer_id})"),
        "{built}"
    );
    let second = as_ci
        .upload_with(
            zip_of(&[("index.html", b"two".as_slice())]),
            &[("project", "site"), ("target", "preview")],
        )
        .await;
    assert_eq!(as_ci.wait_final(&second).await["status"], "READY");
    let (status, promoted) = call(
        &as_ci,
        "POST",
        "/api/v1/projects/site/promote",
        Some(json!({"deployment_id": second})),
    )
    .await;
    assert_eq!(status, 200, "{promoted}");
    let (status, production) = call(&as_ci, "GET", "/api/v1/projects/site/production", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        production["history"][0]["by"],
        format!("token ci ({deployer_id})"),
        "{production}"
    );
    // The same token may not deploy to a project it is not limited to.
    let part = reqwest::multipart::Part::bytes(zip_of(&[("index.html", b"x".as_slice())]))
        .file_name("site.zip");
    let form = reqwest::multipart::Form::new()
        .text("project", "other")
        .part("file", part);
    let answer = as_ci
        .client
        .post(as_ci.url("/api/v1/deployments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
}

/// Every `(method, path)` the document lists.
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// What an admin sees of everything, to show that refused requests changed nothing.
async fn everything(server: &Server) -> Value {
    let mut seen = Vec::new();
    for path in [
        "/api/v1/tokens",
        "/api/v1/projects",
        "/api/v1/deployments",
        "/api/v1/projects/site",
        "/api/v1/projects/site/env",
        "/api/v1/projects/site/domains",
    ] {
        let (status, mut body) = call(server, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        // Tokens' last use moves with the sweep itself; everything else must not.
        if let Some(tokens) = body["tokens"].as_array_mut() {
            for token in tokens {
                token["last_used_at"] = Value::Null;
            }
        }
        seen.push(body);
    }
    Value::Array(seen)
}

#[tokio::test]
async fn every_operation_refuses_missing_expired_underscoped_and_foreign_tokens() {
    let (server, _admin) = required_server(&[]).await;
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "site"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects/site/env",
        Some(json!({"key": "API", "value": "x", "targets": ["production"]})),
    )
    .await;
    assert_eq!(status, 201);
    let deployment = server
        .upload_with(
            zip_of(&[("index.html", b"hi".as_slice())]),
            &[("project", "site")],
        )
        .await;
    server.wait_final(&deployment).await;
    let (reader, _) = make_token(&server, json!({"name": "reader", "scopes": ["read"]})).await;
    let (foreign, _) = make_token(
        &server,
        json!({"name": "foreign", "scopes": ["admin"], "projects": ["other"]}),
    )
    .await;
    let (expired, _) = make_token(
        &server,
        json!({"name": "expired", "scopes": ["admin"], "expires_in": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (_, document) = server.get_json("/openapi.json").await;
    let open = ["/healthz", "/readyz"];
    let before = everything(&server).await;
    let mut checked = 0;
    for (method, template) in operations(&document) {
        let path = template
            .replace("{name}", "site")
            .replace("{id}", &deployment)
            .replace("{domain}", "www.example.com");
        // Uploads name their project in the query, so a foreign token is refused before
        // any body is read.
        let path = if template.ends_with("/deployments") || template == "/deploy" {
            format!("{path}?project=site")
        } else {
            path
        };
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let write = method != "GET";
        let mut expect: Vec<(&str, Option<&str>, u16)> = Vec::new();
        if open.contains(&template.as_str()) {
            expect.push(("no token", None, 200));
        } else {
            expect.push(("no token", None, 401));
            expect.push(("expired", Some(&expired), 401));
            if write || template.contains("tokens") {
                expect.push(("read on a write", Some(&reader), 403));
            }
            // Blobs belong to no project: a token limited to some projects uploads them
            // for its own deployments (and the deployment's project is what it may not
            // choose). Who a token is, any valid token may ask, whatever its projects.
            if template == "/api/v1/whoami" {
                expect.push(("another project's", Some(&foreign), 200));
            } else if !template.starts_with("/api/v1/files") {
                expect.push(("another project's", Some(&foreign), 403));
            }
        }
        for (what, token, status) in expect {
            let answer = send(&server, token, &method, &path, body.clone()).await;
            let got = answer.status().as_u16();
            assert!(got < 500, "{method} {path} with {what} token: {got}");
            assert_eq!(got, status, "{method} {path} with {what} token");
            if status == 401 {
                assert!(answer.headers().contains_key("www-authenticate"));
            }
            if status >= 400 {
                let error: Value = answer.json().await.unwrap_or(Value::Null);
                assert!(
                    error["error"]["code"].is_string(),
                    "{method} {path}: {error}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 60,
        "only {checked} checks: is the document complete?"
    );
    assert_eq!(
        everything(&server).await,
        before,
        "a refused request changed something"
    );
}

#[tokio::test]
async fn on_loopback_local_requests_need_no_token_but_pages_of_other_sites_are_refused() {
    let server = Server::start().await;
    // The README's curl: no token, no Origin.
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 201);
    // Its deployments say they came from this machine, without a token.
    let id = server
        .upload_with(zip_of(&[("index.html", b"hi".as_slice())]), &[])
        .await;
    let (status, made) = call(&server, "GET", &format!("/api/v1/deployments/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(made["created_by"], "api (127.0.0.1)", "{made}");

    // A page of another site posting a form, or a sandboxed page (Origin: null).
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let answer = server
            .client
            .post(server.url("/api/v1/projects"))
            .header(name, value)
            .header("content-type", "text/plain")
            .body(r#"{"name":"evil"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{name}: {value}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_site");
    }
    // DNS rebinding: the request names another host.
    let (status, body) = get_on(server.address(), "evil.example", "/api/v1/projects").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = get_on(server.address(), "localhost", "/api/v1/projects").await;
    assert_eq!(status, 200);

    // A token, when sent, is checked even here.
    let answer = send(&server, Some("ds_wrong"), "GET", "/api/v1/projects", None).await;
    assert_eq!(answer.status(), 401);
    let (status, projects) = call(&server, "GET", "/api/v1/projects", None).await;
    assert_eq!(status, 200);
    assert_eq!(projects["projects"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn on_a_network_address_tokens_are_required_and_local_is_refused() {
    let server = Server::start_with(&[("DEPLOYSTACK_LISTEN", "0.0.0.0:0")]).await;
    let port = server.address().rsplit(':').next().unwrap().to_owned();
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/projects"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);

    let output = Command::new(server_binary())
        .env_clear()
        .env("DEPLOYSTACK_DATA_DIR", server.data_dir.path())
        .env("DEPLOYSTACK_LISTEN", "0.0.0.0:0")
        .env("DEPLOYSTACK_AUTH", "local")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("local-unsafe"), "{log}");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_at_once_on_every_server() {
    use deploystack_core::testing::env;
    let Some(admin_url) = env::postgres_url() else {
        return;
    };
    let database = env::fresh_postgres_database(&admin_url).await;
    let key = "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a";
    let vars = [
        ("DEPLOYSTACK_DATABASE_URL", database.as_str()),
        ("DEPLOYSTACK_SECRET_KEY", key),
    ];
    let (a, _) = required_server(&vars).await;
    let (b, _) = required_server(&vars).await;
    let (secret, id) = make_token(&a, json!({"name": "ci", "scopes": ["read"]})).await;
    for server in [&a, &b] {
        let answer = send(server, Some(&secret), "GET", "/api/v1/projects", None).await;
        assert_eq!(answer.status(), 200);
    }
    let (status, _) = call(&a, "DELETE", &format!("/api/v1/tokens/{id}"), None).await;
    assert_eq!(status, 204);
    for server in [&b, &a] {
        let answer = send(server, Some(&secret), "GET", "/api/v1/projects", None).await;
        assert_eq!(answer.status(), 401);
    }

    // The database holds the hash, never the secret: a dump of all its data shows that.
    let (admin_secret, _) = make_token(&a, json!({"name": "second", "scopes": ["read"]})).await;
    let dump = Command::new("pg_dump")
        .args(["--data-only", &database])
        .output()
        .await
        .expect("pg_dump (postgresql-client) runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("second"), "the dump has the tokens table");
    assert!(
        !dump.contains(&admin_secret[3..]),
        "a secret is stored in plaintext"
    );
    assert!(
        !dump.contains(&secret[3..]),
        "a secret is stored in plaintext"
    );
}
