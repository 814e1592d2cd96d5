//! What the binaries say about their configuration before they serve anything.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{server_binary, worker_binary};

async fn run(binary: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let data = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("DEPLOYSTACK_DATA_DIR", data.path())
        .env("DEPLOYSTACK_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the binary did not exit within 30 s")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_worker_refuses_the_in_process_queue_with_a_hint() {
    let (code, stderr) = run(worker_binary(), &[]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("DEPLOYSTACK_QUEUE_URL"), "{stderr}");
}

#[tokio::test]
async fn an_engine_url_that_cannot_be_used_is_a_clear_startup_error() {
    // Port 1 on loopback: nothing listens there.
    let (code, stderr) = run(
        server_binary(),
        &[("DEPLOYSTACK_QUEUE_URL", "redis://127.0.0.1:1")],
    )
    .await;
    assert_ne!(code, 0);
    if cfg!(feature = "redis") {
        assert!(stderr.contains("cannot open the queue"), "{stderr}");
    } else {
        assert!(stderr.contains("--features redis"), "{stderr}");
    }

    let (code, stderr) = run(
        server_binary(),
        &[("DEPLOYSTACK_DATABASE_URL", "mysql://x/y")],
    )
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("DEPLOYSTACK_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("names no engine"), "{stderr}");
}

#[tokio::test]
async fn bad_settings_stop_the_server_with_the_variable_or_file_named() {
    let (code, stderr) = run(server_binary(), &[("DEPLOYSTACK_LEASE_SECS", "soon")]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("DEPLOYSTACK_LEASE_SECS"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploystack.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nno_such_setting = 1\n").unwrap();
    let (code, stderr) = run(
        server_binary(),
        &[("DEPLOYSTACK_CONFIG", file.to_str().unwrap())],
    )
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("no_such_setting"), "{stderr}");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(server_binary(), &[("DEPLOYSTACK_LISTEN", &address)]).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
}

#[test]
fn the_configuration_examples_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let embedded = deploystack_core::Config::from_file(&dir.join("embedded.toml")).unwrap();
    assert_eq!(embedded.queue_url(), "memory://");
    assert_eq!(embedded.embedded_workers, Some(2));
    let cluster = deploystack_core::Config::from_file(&dir.join("cluster.toml")).unwrap();
    assert!(cluster.database_url().starts_with("postgres://"));
    assert!(cluster.queue_url().starts_with("redis://"));
    assert!(cluster.storage_url().starts_with("s3://"));
    assert_eq!(cluster.embedded_workers, Some(0));
    assert_eq!(cluster.s3.region.as_deref(), Some("eu-central-1"));
}
