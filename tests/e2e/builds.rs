//! Real framework builds: a Vite + React app installed with npm from the registry, built,
//! served on its deployment host and rendered by headless Chromium; the dependency cache on
//! the second build; a compiler error; cancel during the install; the build sandbox; and
//! hostile output. Each test starts its own server with a fresh data directory and build
//! cache.
//!
//! Needs `node`/`npm`, Debian's `chromium` and `bwrap`: `scripts/test` installs them. Without
//! one a test skips with a message, except under `CI=true`, where that is a failure.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{
    Server, chromium_dom, files_of, processes_with, required_tool, zip_of, zip_of_owned,
};

/// The Vite + React app: package.json, its lockfile, index.html and `src/main.jsx`.
const VITE_REACT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/e2e/fixtures/builds/vite-react"
);
/// What the app's script renders; neither index.html nor the bundle holds it verbatim.
const RENDERED: &str = "Hello from DeployStack React";
/// A build that installs from the npm registry on a busy 2-core machine.
const BUILD_TIME: Duration = Duration::from_secs(300);

/// A server with a data directory and a build cache of its own, started with `env` on top.
/// The cache directory must outlive the server, so it is handed back.
async fn start(env: &[(&str, &str)]) -> (Server, TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_owned();
    let mut vars = vec![("DEPLOYSTACK_BUILD_CACHE_DIR", cache_dir.as_str())];
    vars.extend_from_slice(env);
    (Server::start_with(&vars).await, cache)
}

/// Whether npm is there to build with (see the module docs for what a missing one means).
fn npm_available() -> bool {
    required_tool("node", "Node.js (the framework builds)").is_some()
        && required_tool("npm", "npm (the framework builds)").is_some()
}

/// The Vite + React fixture as a zip, with `src/main.jsx` replaced when `main_jsx` is given.
fn vite_react_zip(main_jsx: Option<&str>) -> Vec<u8> {
    let mut files = files_of(Path::new(VITE_REACT), &["node_modules", "dist"]);
    if let Some(source) = main_jsx {
        let main = files
            .iter_mut()
            .find(|(path, _)| path == "src/main.jsx")
            .expect("the fixture has src/main.jsx");
        main.1 = source.as_bytes().to_vec();
    }
    zip_of_owned(&files)
}

/// A Node project with no dependencies whose `build` script is `node build.cjs`: npm ci has
/// nothing to download, so the test is about what the script does.
fn node_project_zip(build_cjs: &str) -> Vec<u8> {
    let package =
        r#"{"name":"probe","version":"1.0.0","private":true,"scripts":{"build":"node build.cjs"}}"#;
    let lock = r#"{"name":"probe","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"probe","version":"1.0.0"}}}"#;
    zip_of(&[
        ("package.json", package.as_bytes()),
        ("package-lock.json", lock.as_bytes()),
        ("build.cjs", build_cjs.as_bytes()),
    ])
}

/// How long the attempt's build took: from its first log line to its last.
fn build_duration(lines: &[Value]) -> Duration {
    let at = |line: &Value| {
        OffsetDateTime::parse(line["at"].as_str().expect("a log line's time"), &Rfc3339)
            .expect("RFC 3339 time")
    };
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) => (at(last) - at(first)).try_into().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

#[tokio::test]
async fn a_vite_react_app_builds_renders_in_chromium_and_its_second_build_uses_the_cache() {
    if !npm_available() {
        return;
    }
    let Some(chromium) = required_tool("chromium", "Debian's chromium (loading built pages)")
    else {
        return;
    };
    let (server, _cache) = start(&[]).await;

    let first = server
        .upload_with(vite_react_zip(None), &[("project", "vite-react")])
        .await;
    let done = server.wait_final_within(&first, BUILD_TIME).await;
    let log = server.log_text(&first).await;
    assert_eq!(done["status"], "READY", "{done}\n{log}");
    assert!(log.contains("preset: vite"), "{log}");
    assert!(log.contains("build cache: miss"), "{log}");
    // Every variable the sandbox sets is one npm knows: no "npm warn Unknown env config".
    assert!(!log.contains("Unknown env config"), "{log}");

    // The page itself is an empty root: only running the bundle shows the text.
    let index = server.get(&format!("/{first}/index.html")).await;
    assert_eq!(index.status(), 200);
    let index = index.text().await.unwrap();
    assert!(index.contains("/assets/"), "{index}");
    assert!(!index.contains(RENDERED), "{index}");

    // Root-absolute `/assets/…` URLs resolve on the deployment's own host.
    let port = server.address().rsplit(':').next().unwrap();
    let dom = chromium_dom(&chromium, &format!("http://{first}.localhost:{port}/"), &[]).await;
    assert!(
        dom.contains(RENDERED),
        "Chromium did not render the app:\n{dom}"
    );

    // The same project with the same lockfile: dependencies come from the cache.
    let second = server
        .upload_with(vite_react_zip(None), &[("project", "vite-react")])
        .await;
    let done = server.wait_final_within(&second, BUILD_TIME).await;
    let second_log = server.log_text(&second).await;
    assert_eq!(done["status"], "READY", "{done}\n{second_log}");
    assert!(second_log.contains("build cache: restored"), "{second_log}");
    let dom = chromium_dom(
        &chromium,
        &format!("http://{second}.localhost:{port}/"),
        &[],
    )
    .await;
    assert!(dom.contains(RENDERED), "{dom}");

    let cold = build_duration(&server.log_lines(&first).await);
    let warm = build_duration(&server.log_lines(&second).await);
    eprintln!("vite-react build: first (cache miss) {cold:?}, second (cache restored) {warm:?}");
}

#[tokio::test]
async fn a_syntax_error_fails_the_build_with_the_compilers_message() {
    if !npm_available() {
        return;
    }
    let (server, _cache) = start(&[]).await;
    let good = std::fs::read_to_string(Path::new(VITE_REACT).join("src/main.jsx")).unwrap();
    // A closing tag that does not match its opening tag: a JSX syntax error.
    let broken = good.replacen("</h1>", "</h2>", 1);
    assert_ne!(broken, good, "the fixture's main.jsx has no </h1> to break");

    let id = server
        .upload_with(vite_react_zip(Some(&broken)), &[("project", "vite-broken")])
        .await;
    let done = server.wait_final_within(&id, BUILD_TIME).await;
    let log = server.log_text(&id).await;
    assert_eq!(done["status"], "ERROR", "{done}\n{log}");
    assert_eq!(done["error"]["code"], "build_failed", "{done}");
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("exit"), "no exit status in {message:?}");
    // The bundler's own report names the file, in the build's output, not ours.
    assert!(
        log.lines()
            .any(|l| !l.starts_with("system: ") && l.contains("main.jsx")),
        "the compiler's message is not in the log:\n{log}"
    );
}

#[tokio::test]
async fn cancel_during_the_install_stops_the_build_and_leaves_no_process() {
    if !npm_available() {
        return;
    }
    let (server, _cache) = start(&[]).await;
    // A number no other process has on its command line: `sleep` takes it as seconds, so the
    // install's shell and both of its children carry it where /proc shows it.
    let digits = deploystack_core::testing::env::unique_name("t")
        .trim_start_matches("t_")
        .chars()
        .map(|c| char::from(b'0' + (c.to_digit(16).unwrap() % 10) as u8))
        .collect::<String>();
    let token = format!("300.{digits}");
    let install = format!("npm ci && {{ sleep {token} & sleep {token} & wait; }}");
    let id = server
        .upload_with(
            vite_react_zip(None),
            &[("project", "vite-cancel"), ("install_command", &install)],
        )
        .await;

    let deadline = Instant::now() + BUILD_TIME;
    loop {
        let log = server.log_text(&id).await;
        if log.contains("install:") && processes_with(&token).len() >= 2 {
            break;
        }
        let (_, now) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
        assert!(
            ["QUEUED", "BUILDING"].contains(&now["status"].as_str().unwrap_or_default()),
            "the build ended before the install was running: {now}\n{log}"
        );
        assert!(
            Instant::now() < deadline,
            "the install did not start within {BUILD_TIME:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let canceled = server
        .client
        .post(server.url(&format!("/api/v1/deployments/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200);
    let body: Value = canceled.json().await.unwrap();
    assert_eq!(body["status"], "CANCELED", "{body}");
    server
        .wait_for(&id, Duration::from_secs(10), "CANCELED", |d| {
            d["status"] == "CANCELED"
        })
        .await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_with(&token);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the canceled build still run 10 s later: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, after) = server.get_json(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(after["status"], "CANCELED", "{after}");
}

#[tokio::test]
async fn the_build_sandbox_hides_the_platform_files_and_network_and_masks_secrets() {
    if !npm_available() {
        return;
    }
    if required_tool("bwrap", "bubblewrap (the build sandbox)").is_none() {
        return;
    }
    let canary = deploystack_core::testing::env::unique_name("canary");
    let aws_secret = deploystack_core::testing::env::unique_name("awssecret");
    let (server, _cache) = start(&[
        ("DEPLOYSTACK_BUILD_SANDBOX", "require"),
        ("DEPLOYSTACK_TEST_CANARY", &canary),
        ("AWS_SECRET_ACCESS_KEY", &aws_secret),
    ])
    .await;

    // A file of the platform's machine, outside the build's work directory.
    let outside = tempfile::tempdir().unwrap();
    let outside_secret = deploystack_core::testing::env::unique_name("outside");
    let outside_file = outside.path().join("secret.txt");
    std::fs::write(&outside_file, &outside_secret).unwrap();
    // A service on the platform's loopback: the build step must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sensitive = deploystack_core::testing::env::unique_name("token");

    let probe = format!(
        r#"const fs = require('fs');
const net = require('net');
fs.mkdirSync('out', {{ recursive: true }});
fs.writeFileSync('out/index.html', '<p>probe</p>');
const env = {{ ...process.env }};
delete env.DEPLOY_TOKEN; // the sensitive one goes to the log below, not to the site
fs.writeFileSync('out/env.json', JSON.stringify(env, null, 1));
let read;
try {{ read = 'read: ' + fs.readFileSync({outside}, 'utf8'); }} catch (e) {{ read = 'failed: ' + e.code; }}
fs.writeFileSync('out/read.txt', read);
console.log('the token is ' + process.env.DEPLOY_TOKEN);
const socket = net.connect({{ host: '127.0.0.1', port: {port} }});
socket.setTimeout(3000);
socket.on('connect', () => {{ fs.writeFileSync('out/net.txt', 'connected'); socket.destroy(); }});
socket.on('error', (e) => fs.writeFileSync('out/net.txt', 'failed: ' + e.code));
socket.on('timeout', () => {{ fs.writeFileSync('out/net.txt', 'failed: timeout'); socket.destroy(); }});
"#,
        outside = serde_json::to_string(outside_file.to_str().unwrap()).unwrap(),
    );
    let sensitive_env = format!("DEPLOY_TOKEN={sensitive}");
    let id = server
        .upload_with(
            node_project_zip(&probe),
            &[
                ("project", "sandbox-probe"),
                ("output_directory", "out"),
                ("env", "DEPLOY_GREETING=hello-from-env"),
                ("sensitive_env", &sensitive_env),
            ],
        )
        .await;
    let done = server.wait_final_within(&id, BUILD_TIME).await;
    let log = server.log_text(&id).await;
    assert_eq!(done["status"], "READY", "{done}\n{log}");
    assert!(log.contains("sandbox: bubblewrap"), "{log}");

    // (i) Only the deployment's own variables.
    let env = server
        .get(&format!("/{id}/env.json"))
        .await
        .text()
        .await
        .unwrap();
    let vars: Value = serde_json::from_str(&env).expect("env.json is JSON");
    assert_eq!(vars["DEPLOY_GREETING"], "hello-from-env", "{env}");
    assert!(
        !env.contains(&canary),
        "the platform's variable leaked: {env}"
    );
    assert!(
        !env.contains(&aws_secret),
        "the platform's secret leaked: {env}"
    );
    let platform_names: Vec<&String> = vars
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("DEPLOYSTACK_") || k.starts_with("AWS_"))
        .collect();
    assert!(platform_names.is_empty(), "{platform_names:?}");

    // (ii) Files outside the work directory are not there.
    let read = server
        .get(&format!("/{id}/read.txt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(read.starts_with("failed: "), "the build read {read:?}");
    assert!(!read.contains(&outside_secret));

    // (iii) No network in the build step: the connection failed and nothing reached us.
    let net = server
        .get(&format!("/{id}/net.txt"))
        .await
        .text()
        .await
        .unwrap();
    assert!(net.starts_with("failed: "), "the build connected: {net:?}");
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener accepted a connection from the build: {other:?}"),
    }

    // (iv) A sensitive value echoed by the build is masked in the log.
    assert!(log.contains("the token is "), "{log}");
    assert!(
        !log.contains(&sensitive),
        "the sensitive value is in the log:\n{log}"
    );
}

#[tokio::test]
async fn a_symbolic_link_out_of_the_output_fails_the_build_as_unsafe() {
    if !npm_available() {
        return;
    }
    let (server, _cache) = start(&[]).await;
    let build = r#"const fs = require('fs');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/index.html', '<p>hostile</p>');
fs.symlinkSync('/etc/passwd', 'out/passwd');
"#;
    let id = server
        .upload_with(
            node_project_zip(build),
            &[("project", "hostile-output"), ("output_directory", "out")],
        )
        .await;
    let done = server.wait_final_within(&id, BUILD_TIME).await;
    let log = server.log_text(&id).await;
    assert_eq!(done["status"], "ERROR", "{done}\n{log}");
    assert_eq!(done["error"]["code"], "unsafe_output", "{done}");
    assert_ne!(server.get(&format!("/{id}/passwd")).await.status(), 200);
}
