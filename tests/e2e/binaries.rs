//! What the binaries say about their configuration before they serve anything.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{server_binary, worker_binary};

async fn run(binary: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let (code, _, stderr) = run_with_args(binary, env, &[]).await;
    (code, stderr)
}

/// Run `binary` with `args` and only `env` (plus a fresh data directory and port 0) until it
/// exits; its exit code, stdout and stderr.
async fn run_with_args(
    binary: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let data = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("DEPLOYSTACK_DATA_DIR", data.path())
        .env("DEPLOYSTACK_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
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
        String::from_utf8_lossy(&output.stdout).into_owned(),
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
    assert!(stderr.contains("soon"), "{stderr}");

    let (code, stderr) = run(server_binary(), &[("AWS_ALLOW_HTTP", "maybe")]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("AWS_ALLOW_HTTP"), "{stderr}");

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
async fn a_taken_port_is_a_clear_error_that_suggests_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(server_binary(), &[("DEPLOYSTACK_LISTEN", &address)]).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(stderr.contains("DEPLOYSTACK_LISTEN"), "{stderr}");
}

/// Defaults < file < environment < flags, seen through the one setting whose effect is
/// visible from outside before any request: the address. A taken port fails the start, a
/// free one (port 0) does not, so whichever layer names the taken port is the one in force.
#[tokio::test]
async fn the_environment_overrides_the_file_and_a_flag_overrides_both() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploystack.toml");
    let file_name = file.to_str().unwrap();

    // The file names the taken port and the variable a bad address: the variable wins.
    std::fs::write(&file, format!("listen = \"{address}\"\n")).unwrap();
    let (code, _, stderr) = run_with_args(
        server_binary(),
        &[("DEPLOYSTACK_LISTEN", "not-an-address")],
        &["--config", file_name],
    )
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("DEPLOYSTACK_LISTEN"), "{stderr}");
    assert!(stderr.contains("not-an-address"), "{stderr}");

    // The variable names the taken port, the flag the same bad address: the flag wins.
    let (code, _, stderr) = run_with_args(
        server_binary(),
        &[("DEPLOYSTACK_LISTEN", &address)],
        &["--listen", "also-not-an-address"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("also-not-an-address"), "{stderr}");
    assert!(!stderr.contains("cannot listen"), "{stderr}");

    // The flag names the taken port over the file's and the variable's free one (port 0):
    // the error is about the flag's port.
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n").unwrap();
    let (code, _, stderr) = run_with_args(
        server_binary(),
        &[("DEPLOYSTACK_CONFIG", file_name)],
        &["--listen", &address],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn version_and_help_name_the_binary_its_flags_and_variables() {
    for (binary, name) in [
        (server_binary(), "deploystack-server"),
        (worker_binary(), "deploystack-worker"),
    ] {
        let (code, stdout, stderr) = run_with_args(binary, &[], &["--version"]).await;
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            stdout.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION")),
            "{stdout}"
        );

        let (code, help, stderr) = run_with_args(binary, &[], &["--help"]).await;
        assert_eq!(code, 0, "{stderr}");
        for expected in [
            "--listen",
            "DEPLOYSTACK_LISTEN",
            "--config",
            "DEPLOYSTACK_CONFIG",
            "--body-read-timeout-secs",
            "DEPLOYSTACK_BODY_READ_TIMEOUT_SECS",
            "--min-free-disk-bytes",
            "[default: 536870912]",
            "--max-upload-bytes",
            "--s3-region",
            "AWS_REGION",
        ] {
            assert!(
                help.contains(expected),
                "{name} --help lacks {expected}: {help}"
            );
        }
        assert!(!help.contains("serve-cpu-affinity"), "{help}");
    }
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
