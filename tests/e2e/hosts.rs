//! Host-based serving: `<deployment-id>.<base-domain>` serves that deployment at `/`, every
//! path there is a site path, and no other host name ever reaches a site or the API.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, zip_of};

/// A raw GET with exactly this `Host` line; returns the status and the whole answer.
async fn get_on(address: &str, host: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

fn location(answer: &str) -> Option<&str> {
    answer
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .map(str::trim)
}

async fn site(server: &Server, marker: &str) -> String {
    server
        .deploy_ready(zip_of(&[
            ("index.html", format!("root of {marker}").as_bytes()),
            (
                "nested/index.html",
                format!("nested of {marker}").as_bytes(),
            ),
            ("docs/index.html", b"docs"),
        ]))
        .await
}

#[tokio::test]
async fn a_deployment_host_serves_the_site_at_the_root() {
    let server = Server::start().await;
    let id = site(&server, "one").await;
    let address = server.address();
    let port = address.rsplit(':').next().unwrap();
    for host in [
        format!("{id}.localhost:{port}"),
        format!("{id}.localhost"),
        format!("{}.LocalHost:{port}", id.to_uppercase()),
    ] {
        let (status, answer) = get_on(address, &host, "/").await;
        assert_eq!(status, 200, "{host}: {answer}");
        assert!(answer.ends_with("root of one"), "{host}: {answer}");
    }
    let host = format!("{id}.localhost:{port}");
    let (status, answer) = get_on(address, &host, "/nested/").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with("nested of one"), "{answer}");

    // Folders without their slash redirect relative to the host root: /docs → /docs/.
    let (status, answer) = get_on(address, &host, "/docs?x=1").await;
    assert_eq!(status, 301, "{answer}");
    assert_eq!(location(&answer), Some("./docs/?x=1"), "{answer}");
    let (status, answer) = get_on(address, &host, "/nested/../docs").await;
    assert_eq!(status, 400, "{answer}");

    // Path-based serving on the platform host is unchanged.
    let (status, answer) = get_on(address, address, &format!("/{id}/nested/")).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = get_on(address, "localhost", &format!("/{id}/docs")).await;
    assert_eq!(
        (status, location(&answer)),
        (301, Some("./docs/")),
        "{answer}"
    );
}

#[tokio::test]
async fn every_path_on_a_deployment_host_belongs_to_the_site() {
    let server = Server::start().await;
    let id = site(&server, "one").await;
    let address = server.address();
    let host = format!("{id}.localhost");
    for path in [
        "/api/v1/deployments",
        "/healthz",
        "/metrics",
        &format!("/{id}/"),
    ] {
        let (status, answer) = get_on(address, &host, path).await;
        assert_eq!(status, 404, "{path}: {answer}");
        assert!(
            answer.contains("This deployment has no file at this path"),
            "{path} was not answered by the site: {answer}"
        );
    }
    // Uploads are not possible there either: sites answer GET and HEAD only.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /deploy HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
}

#[tokio::test]
async fn other_names_never_reach_a_site_or_the_api() {
    let server = Server::start().await;
    let id = site(&server, "one").await;
    let other = site(&server, "two").await;
    let address = server.address();
    let not_found = [
        format!("evil.{id}.localhost"),
        format!("{}.localhost", &id[..31]),
        format!("{id}0.localhost"),
        format!("x{other}.localhost"),
        "www.localhost".to_owned(),
        // A well-formed id of no deployment.
        "0123456789abcdef0123456789abcdef.localhost".to_owned(),
    ];
    for host in &not_found {
        for path in ["/", "/api/v1/deployments", &format!("/{other}/")] {
            let (status, answer) = get_on(address, host, path).await;
            assert_eq!(status, 404, "{host}{path}: {answer}");
            assert!(
                !answer.contains(" of "),
                "{host}{path} served a site: {answer}"
            );
        }
    }
    let bad = [
        format!("{id}.localhost."),
        format!("user@{id}.localhost"),
        format!("{id}.localhost:80@evil.com"),
        format!("{id}_x.localhost"),
        format!("{id}.localhost:abc"),
        format!("{id}%2elocalhost"),
        format!("{id}.localhost, {other}.localhost"),
    ];
    for host in &bad {
        let (status, answer) = get_on(address, host, "/").await;
        assert_eq!(status, 400, "{host}: {answer}");
    }
    // A name that merely contains the base domain is not under it: it is the platform, which
    // serves sites by path only and never at its root.
    let host = format!("{id}.localhost.evil.com");
    let (status, answer) = get_on(address, &host, "/").await;
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.contains("root of one"), "{answer}");
    let (status, _) = get_on(address, &host, "/nested/").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_base_domain_is_configurable() {
    let server = Server::start_with(&[("DEPLOYSTACK_BASE_DOMAIN", "Sites.Example.Test")]).await;
    let id = site(&server, "one").await;
    let address = server.address();
    let (status, answer) = get_on(address, &format!("{id}.sites.example.test"), "/").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with("root of one"));
    // The default base no longer names sites: that host is the platform now.
    let (status, answer) = get_on(address, &format!("{id}.localhost"), "/nested/").await;
    assert_eq!(status, 404, "{answer}");
    // The API answers on the platform host.
    let (status, _) = get_on(address, "sites.example.test", "/healthz").await;
    assert_eq!(status, 200);
}
