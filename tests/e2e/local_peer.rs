//! `auth = local` lets a tokenless request through only from this machine's loopback. A
//! peer with another address must not pass even when it reaches the loopback listener — as
//! through a port forward or a proxy that keeps the client's address. The test makes such a
//! peer for real: in a network namespace of its own, which also holds `10.213.0.2` on its
//! loopback device, the server listens on `127.0.0.1`; `curl` inside the namespace asks once
//! from `127.0.0.1` and once bound to `10.213.0.2`.
//!
//! Needs root and iproute2's `ip` (network namespaces) and `curl`. Without them the test skips,
//! except under `CI=true`, where that is a failure.

use std::process::Output;

use serde_json::Value;
use tokio::process::Command;

use crate::support::{Server, required_tool};

/// The non-loopback address the namespace's loopback device holds.
const REMOTE: &str = "10.213.0.2";

/// A network namespace made for one test, deleted when dropped.
struct Namespace(String);

impl Namespace {
    async fn create() -> Namespace {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!("ds-e2e-{}-{nanos:08x}", std::process::id());
        run("ip", &["netns", "add", &name]).await;
        let namespace = Namespace(name);
        namespace.exec(&["ip", "link", "set", "lo", "up"]).await;
        namespace
            .exec(&["ip", "addr", "add", &format!("{REMOTE}/32"), "dev", "lo"])
            .await;
        namespace
    }

    /// Run `command` in the namespace; it must succeed.
    async fn exec(&self, command: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", self.0.as_str()];
        all.extend_from_slice(command);
        run("ip", &all).await
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

async fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|err| panic!("run {program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Whether this process may make network namespaces (root); under `CI=true` it must.
async fn can_make_namespaces() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .await
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if root {
        return true;
    }
    if deploystack_core::testing::env::is_ci() {
        panic!("CI=true requires root to make network namespaces (the auth=local peer test)");
    }
    deploystack_core::testing::env::skip("not root, so no network namespace for the peer test");
    false
}

/// `GET url` with curl inside `namespace`, from `source` if given: status and JSON body.
async fn get_from(namespace: &Namespace, source: Option<&str>, url: &str) -> (u16, Value) {
    let mut command = vec!["curl", "-s", "-w", "\n%{http_code}"];
    if let Some(source) = source {
        command.extend_from_slice(&["--interface", source]);
    }
    command.push(url);
    let output = namespace.exec(&command).await;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl's status line");
    (
        status.trim().parse().expect("a status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_peer_that_is_not_loopback_needs_a_token_even_on_the_loopback_listener() {
    if required_tool("ip", "iproute2 (network namespaces)").is_none()
        || required_tool("curl", "curl (requests from inside a namespace)").is_none()
        || !can_make_namespaces().await
    {
        return;
    }
    let namespace = Namespace::create().await;
    // auth is left to its default: `local`, as the server listens on loopback.
    let server = Server::start_wrapped(&["ip", "netns", "exec", &namespace.0], &[]).await;
    let url = format!("{}/api/v1/projects", server.base);

    let (status, body) = get_from(&namespace, None, &url).await;
    assert_eq!(status, 200, "from 127.0.0.1: {body}");

    let (status, body) = get_from(&namespace, Some(REMOTE), &url).await;
    assert_eq!(status, 401, "from {REMOTE}: {body}");
    assert_eq!(body["error"]["code"], "token_required", "{body}");
    drop(server);
}
