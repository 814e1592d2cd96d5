//! What a browser is told about the platform's pages and the tenants' pages: the API and
//! platform answers forbid framing, referrers and sniffing (and pin https when the public
//! URL is https); a path-based site runs sandboxed in an opaque origin, so it cannot act
//! with the platform origin's authority; a host-based site is its own origin and keeps
//! exactly the headers it configures.

use crate::support::{Server, zip_of};

#[tokio::test]
async fn platform_answers_carry_the_security_headers_and_sites_are_sandboxed_only_by_path() {
    let server = Server::start().await;
    for path in ["/api/v1/projects", "/healthz", "/api/v1/nope", "/"] {
        let answer = server.get(path).await;
        let headers = answer.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.get("strict-transport-security").is_none(), "{path}");
    }

    let zip = zip_of(&[
        (
            "index.html",
            b"<script>fetch('/api/v1/deployments')</script>".as_slice(),
        ),
        ("_headers", b"/*\n  X-Site: mine\n".as_slice()),
    ]);
    let id = server.deploy_ready(zip).await;

    let by_path = server.get(&format!("/{id}/")).await;
    assert_eq!(by_path.status(), 200);
    let policy = by_path.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.starts_with("sandbox allow-scripts"), "{policy}");
    assert!(!policy.contains("allow-same-origin"), "{policy}");
    assert_eq!(by_path.headers()["x-site"], "mine");
    // Redirects and misses of a path-based site are its pages too.
    let missing = server.get(&format!("/{id}/missing")).await;
    assert!(missing.headers().contains_key("content-security-policy"));

    let port = server.address().rsplit(':').next().unwrap();
    let by_host = server
        .client
        .get(server.url("/"))
        .header("host", format!("{id}.localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_host.status(), 200);
    assert!(by_host.headers().get("content-security-policy").is_none());
    assert!(by_host.headers().get("x-frame-options").is_none());
    assert_eq!(by_host.headers()["x-site"], "mine");
}

#[tokio::test]
async fn answers_given_before_any_route_or_site_are_platform_pages_too() {
    let server = Server::start().await;
    let port = server.address().rsplit(':').next().unwrap().to_owned();
    let with_host = |host: String, path: String| {
        server
            .client
            .get(server.url(&path))
            .header("host", host)
            .send()
    };
    let long = format!("/{}", "a".repeat(9000));
    for (what, answer, status) in [
        (
            "a host that serves nothing",
            with_host(format!("a.nothing.localhost:{port}"), "/".into()).await,
            404,
        ),
        (
            "an invalid host",
            with_host(format!("user@localhost:{port}"), "/".into()).await,
            400,
        ),
        (
            "an overlong target",
            with_host(format!("localhost:{port}"), long).await,
            414,
        ),
    ] {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), status, "{what}");
        let headers = answer.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    }
}

#[tokio::test]
async fn an_https_public_url_pins_https_on_platform_answers() {
    let server = Server::start_with(&[("DEPLOYSTACK_PUBLIC_URL", "https://deploy.example")]).await;
    let answer = server.get("/healthz").await;
    assert_eq!(
        answer.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}
