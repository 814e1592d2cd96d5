//! The API around a deployment's life: list, logs, delete, health, shutdown and restart.

use std::time::{Duration, Instant};

use crate::support::{Server, noise, zip_of};

#[tokio::test]
async fn deployments_are_listed_newest_first_in_pages() {
    let server = Server::start().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let answer = server
            .deploy(zip_of(&[("index.html", format!("v{n}").as_bytes())]))
            .await;
        ids.push(answer["deployment_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/deployments?limit=2&cursor={c}"),
            None => "/api/v1/deployments?limit=2".to_owned(),
        };
        let (status, page) = server.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        let items = page["deployments"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|d| d["deployment_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "not newest first, or pages overlap");

    let (status, body) = server.get_json("/api/v1/deployments?limit=1000").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query");
}

#[tokio::test]
async fn the_build_log_says_what_happened() {
    let server = Server::start().await;
    let id = server
        .deploy_ready(zip_of(&[("index.html", b"x"), ("a.css", b"y")]))
        .await;
    let (status, logs) = server
        .get_json(&format!("/api/v1/deployments/{id}/logs"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(logs["status"], "READY");
    let text: Vec<String> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        text.iter().any(|l| l.contains("preset: static")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|l| l.contains("published 2 files")),
        "{text:?}"
    );
}

#[tokio::test]
async fn api_errors_are_json_with_the_right_status() {
    let server = Server::start().await;
    let (status, body) = server.get_json("/api/v1/deployments/not-an-id").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_deployment_id");
    let (status, body) = server
        .get_json("/api/v1/deployments/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "deployment_not_found");
    assert!(body["error"]["message"].is_string());
}

fn blob_count(server: &Server) -> usize {
    let blobs = server.data_dir.path().join("storage/blobs");
    let Ok(fanout) = std::fs::read_dir(blobs) else {
        return 0;
    };
    fanout
        .filter_map(Result::ok)
        .filter_map(|dir| std::fs::read_dir(dir.path()).ok())
        .map(|files| {
            files
                .filter_map(Result::ok)
                .filter(|f| !f.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .sum()
}

#[tokio::test]
async fn deleting_stops_serving_at_once_and_frees_unshared_blobs() {
    let server = Server::start().await;
    let keep = server
        .deploy_ready(zip_of(&[("index.html", b"shared"), ("keep.txt", b"keep")]))
        .await;
    let gone = server
        .deploy_ready(zip_of(&[
            ("index.html", b"shared"),
            ("only.txt", b"only-here"),
        ]))
        .await;
    assert_eq!(blob_count(&server), 3, "identical files are stored once");

    let response = server
        .client
        .delete(server.url(&format!("/api/v1/deployments/{gone}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let site = server.get(&format!("/{gone}/")).await;
    assert_eq!(site.status(), 410);
    let (status, body) = server
        .get_json(&format!("/api/v1/deployments/{gone}"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("deployment_deleted"))
    );
    let again = server
        .client
        .delete(server.url(&format!("/api/v1/deployments/{gone}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);

    let deadline = Instant::now() + Duration::from_secs(10);
    while blob_count(&server) != 2 {
        assert!(
            Instant::now() < deadline,
            "the unshared blob was not collected: {} blobs",
            blob_count(&server)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kept = server.get(&format!("/{keep}/")).await;
    assert_eq!(kept.text().await.unwrap(), "shared");
    let (_, list) = server.get_json("/api/v1/deployments").await;
    assert_eq!(list["deployments"].as_array().unwrap().len(), 1);
}

/// Files the server process holds open although they were deleted: their disk space is not
/// freed until the server closes them.
fn deleted_files_held_open(server: &Server) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).unwrap();
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.ends_with(" (deleted)"))
        .collect()
}

#[tokio::test]
async fn a_deleted_deployment_s_served_files_free_their_disk_space() {
    let server = Server::start().await;
    // Large and incompressible: the kind of body that was once sent from an open file.
    let large = noise(300 * 1024);
    let id = server
        .deploy_ready(zip_of(&[("large.bin", large.as_slice())]))
        .await;
    for _ in 0..3 {
        let response = server.get(&format!("/{id}/large.bin")).await;
        assert_eq!(response.bytes().await.unwrap().len(), large.len());
    }
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/deployments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while blob_count(&server) != 0 {
        assert!(Instant::now() < deadline, "the blob was not collected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deleted_files_held_open(&server), Vec::<String>::new());
}

#[tokio::test]
async fn health_and_readiness() {
    let server = Server::start().await;
    let (status, body) = server.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = server.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    for check in ["repository", "storage", "queue"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_a_restart_serves_the_same_sites() {
    let server = Server::start().await;
    let id = server
        .deploy_ready(zip_of(&[("index.html", b"survives")]))
        .await;
    let (status, data_dir) = server.terminate().await;
    assert!(status.success(), "exit status {status:?}");

    let restarted = Server::start_in(data_dir, &[], &[]).await;
    let page = restarted.get(&format!("/{id}/")).await;
    assert_eq!(page.text().await.unwrap(), "survives");
}

#[tokio::test]
async fn settings_come_from_the_file_the_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploystack.toml");
    std::fs::write(
        &file,
        "public_url = \"https://from-file.example\"\nmax_upload_bytes = 5000\n",
    )
    .unwrap();
    let file = file.to_str().unwrap().to_owned();

    // The file alone: its public URL shapes the answer, its upload limit applies.
    let server = Server::start_with(&[("DEPLOYSTACK_CONFIG", &file)]).await;
    let answer = server.deploy(zip_of(&[("index.html", b"x")])).await;
    assert!(
        answer["url"]
            .as_str()
            .unwrap()
            .starts_with("https://from-file.example/"),
        "{answer}"
    );
    let response = server.upload_to("/deploy", vec![0u8; 10_000]).await;
    assert_eq!(response.status(), 413);

    // A flag beats the environment, which beats the file.
    let server = Server::start_in(
        tempfile::tempdir().unwrap(),
        &[
            ("DEPLOYSTACK_CONFIG", &file),
            ("DEPLOYSTACK_PUBLIC_URL", "https://from-env.example"),
        ],
        &["--public-url", "https://from-flag.example"],
    )
    .await;
    let answer = server.deploy(zip_of(&[("index.html", b"x")])).await;
    assert!(
        answer["url"]
            .as_str()
            .unwrap()
            .starts_with("https://from-flag.example/"),
        "{answer}"
    );
}
