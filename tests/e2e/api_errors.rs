//! Every answer under `/api` is JSON, errors included: unknown paths, paths with dot
//! segments and methods a route does not take get `{"error": {"code", "message"}}` with the
//! right status, never a text page or an empty body.

use serde_json::Value;

use crate::support::{Answer, RawConnection, Server};

/// The error code of a JSON error body, after checking its content type and shape.
fn error_code(answer: &Answer) -> String {
    assert_eq!(
        answer.field("content-type"),
        Some("application/json"),
        "status {}, body {:?}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {:?}",
            String::from_utf8_lossy(&answer.body)
        )
    });
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// Send `method path` byte for byte (clients normalise `..`) and read the answer.
async fn raw(address: &str, method: &str, path: &str) -> Answer {
    // GET and HEAD go without a body, as browsers send them; the other methods send an empty
    // one, as clients of the API do.
    let length = if matches!(method, "GET" | "HEAD") {
        ""
    } else {
        "Content-Length: 0\r\n"
    };
    let mut connection = RawConnection::open(address).await;
    connection
        .send(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{length}Connection: close\r\n\r\n"
        ))
        .await;
    connection.answer(method == "HEAD").await
}

#[tokio::test]
async fn an_unknown_api_path_is_a_json_404() {
    let server = Server::start().await;
    for path in ["/api/v1/nope", "/api", "/api/", "/api/v2/deployments"] {
        for method in ["GET", "HEAD", "POST"] {
            let answer = raw(server.address(), method, path).await;
            assert_eq!(answer.status, 404, "{method} {path}");
            if method == "HEAD" {
                assert_eq!(answer.field("content-type"), Some("application/json"));
                assert!(answer.body.is_empty(), "{method} {path}");
            } else {
                assert_eq!(error_code(&answer), "not_found", "{method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn an_api_path_with_dot_segments_is_a_json_404() {
    let server = Server::start().await;
    for path in [
        "/api/v1/deployments/../../etc",
        "/api/../etc/passwd",
        "/api/v1/./deployments",
    ] {
        let answer = raw(server.address(), "GET", path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(error_code(&answer), "not_found", "{path}");
    }
}

#[tokio::test]
async fn a_method_an_api_route_does_not_take_is_a_json_405_with_allow() {
    let server = Server::start().await;
    let id = "0123456789abcdef0123456789abcdef";
    for (method, path, allowed) in [
        ("PUT", "/api/v1/deployments".to_owned(), "GET,HEAD,POST"),
        ("DELETE", "/api/v1/deployments".to_owned(), "GET,HEAD,POST"),
        (
            "POST",
            format!("/api/v1/deployments/{id}"),
            "DELETE,GET,HEAD",
        ),
        ("GET", format!("/api/v1/deployments/{id}/cancel"), "POST"),
        (
            "PATCH",
            format!("/api/v1/deployments/{id}/logs"),
            "GET,HEAD",
        ),
    ] {
        let answer = raw(server.address(), method, &path).await;
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(error_code(&answer), "method_not_allowed", "{method} {path}");
        let mut allow: Vec<&str> = answer
            .field("allow")
            .unwrap_or_else(|| panic!("no Allow on {method} {path}"))
            .split(',')
            .map(str::trim)
            .collect();
        allow.sort_unstable();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn platform_routes_outside_the_api_are_unchanged() {
    let server = Server::start().await;
    // A site path under the platform host is still a site path, answered as a page.
    let answer = raw(server.address(), "GET", "/nope").await;
    assert_eq!(answer.status, 404);
    assert_ne!(answer.field("content-type"), Some("application/json"));
    // A path that only starts with the letters of the API is not under it.
    let answer = raw(server.address(), "GET", "/apis").await;
    assert_eq!(answer.status, 404);
    assert_ne!(answer.field("content-type"), Some("application/json"));
    let answer = raw(server.address(), "GET", "/api/v1/deployments").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.field("content-type"), Some("application/json"));
}
