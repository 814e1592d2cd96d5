//! Bad uploads get a clear 4xx with a JSON error naming the reason, and store nothing.

use std::io::Write;

use serde_json::Value;

use crate::support::{Server, zip_of};

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error body is JSON");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn deployment_count(server: &Server) -> usize {
    let (_, list) = server.get_json("/api/v1/deployments").await;
    list["deployments"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn both_upload_endpoints_accept_a_zip() {
    let server = Server::start().await;
    let response = server
        .upload_to("/api/v1/deployments", zip_of(&[("index.html", b"v1")]))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["deployment_id"].as_str().unwrap();
    assert_eq!(server.wait_final(id).await["status"], "READY");
}

#[tokio::test]
async fn a_file_that_is_not_a_zip_is_a_400_that_says_what_it_is() {
    let server = Server::start().await;
    for (bytes, says) in [
        (
            b"this is not a zip".to_vec(),
            "the upload is not a zip archive: send a zip archive of your site",
        ),
        (
            Vec::new(),
            "the upload is empty (0 bytes): send a zip archive of your site",
        ),
        (
            vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3],
            "the upload is not a zip archive, it looks like a gzip file",
        ),
        (
            vec![0x50, 0x4b, 0x03, 0x04, 1, 2, 3],
            "the upload starts like a zip archive, but its table of contents cannot be read",
        ),
    ] {
        let (status, code, message) = error_of(server.upload_to("/deploy", bytes).await).await;
        assert_eq!(status, 400, "{code}: {message}");
        assert_eq!(code, "archive_invalid");
        assert!(message.starts_with(says), "{message}");
    }
    assert_eq!(deployment_count(&server).await, 0);
}

#[tokio::test]
async fn requests_without_a_file_field_are_told_how_to_upload() {
    let server = Server::start().await;
    let response = server
        .client
        .post(server.url("/deploy"))
        .body("raw")
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (415, "expected_multipart"));

    let form = reqwest::multipart::Form::new().text("project", "demo");
    let response = server
        .client
        .post(server.url("/deploy"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "missing_file"));
    assert!(message.contains("file"), "{message}");
}

#[tokio::test]
async fn uploads_over_the_limit_are_413_and_leave_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap().to_owned();
    let server = Server::start_with(&[
        ("DEPLOYSTACK_MAX_UPLOAD_BYTES", "10000"),
        ("TMPDIR", &tmp_path),
    ])
    .await;
    let big = vec![7u8; 50_000];

    // Declared length over the limit: refused up front.
    let (status, code, _) = error_of(server.upload_to("/deploy", big.clone()).await).await;
    assert_eq!((status, code.as_str()), (413, "upload_too_large"));

    // Chunked, no length: refused mid-stream.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let part = reqwest::multipart::Part::stream(body).file_name("site.zip");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = server
        .client
        .post(server.url("/deploy"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (413, "upload_too_large"));

    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    assert_eq!(deployment_count(&server).await, 0);
}

/// A zip whose only entry has the raw name `name` (the writer takes any name).
fn zip_with_name(name: &str) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file(name, options).unwrap();
    writer.write_all(b"x").unwrap();
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn hostile_archives_are_rejected_with_the_reason() {
    let server = Server::start().await;
    let mut symlink = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    symlink
        .add_symlink(
            "leak",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    let symlink = symlink.finish().unwrap().into_inner();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "parent traversal",
            zip_with_name("../evil.html"),
            "archive_path_traversal",
        ),
        (
            "nested traversal",
            zip_with_name("a/../../evil.html"),
            "archive_path_traversal",
        ),
        (
            "absolute path",
            zip_with_name("/etc/cron.d/evil"),
            "archive_absolute_path",
        ),
        (
            "backslash",
            zip_with_name("a\\..\\evil.html"),
            "archive_backslash",
        ),
        (
            "drive letter",
            zip_with_name("C:/evil.html"),
            "archive_drive_letter",
        ),
        (
            "control character",
            zip_with_name("a\u{1}b.html"),
            "archive_control_character",
        ),
        ("symbolic link", symlink, "archive_symlink"),
    ];
    for (what, zip, expected) in cases {
        let (status, code, message) = error_of(server.upload_to("/deploy", zip).await).await;
        assert_eq!(status, 400, "{what}: {code} {message}");
        assert_eq!(code, expected, "{what}: {message}");
    }
    assert_eq!(
        deployment_count(&server).await,
        0,
        "a rejected upload was recorded"
    );
    let sources = server.data_dir.path().join("storage/sources");
    let stored = std::fs::read_dir(&sources).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "a rejected upload was stored");
}

#[tokio::test]
async fn zip_bombs_are_rejected_before_extraction() {
    let server = Server::start_with(&[("DEPLOYSTACK_ARCHIVE_MAX_TOTAL_BYTES", "1000000")]).await;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("zeros.bin", options).unwrap();
    writer.write_all(&vec![0u8; 4 * 1024 * 1024]).unwrap();
    let zip = writer.finish().unwrap().into_inner();
    assert!(zip.len() < 20_000);
    let (status, code, _) = error_of(server.upload_to("/deploy", zip).await).await;
    assert_eq!(status, 400);
    assert!(
        code == "archive_too_large"
            || code == "archive_suspicious_ratio"
            || code == "archive_file_too_large",
        "{code}"
    );
}
