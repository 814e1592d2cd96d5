//! `/openapi.json` describes every route the server answers, and `/docs` shows it with no
//! internet access: what an API client generator and a person reading the API rely on.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{Answer, RawConnection, Server};

/// Every `(method, path)` the document lists.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

async fn raw(address: &str, method: &str, path: &str) -> Answer {
    let length = if method == "GET" {
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
    connection.answer(false).await
}

#[tokio::test]
async fn the_document_lists_every_route_and_every_schema_it_refers_to() {
    let server = Server::start().await;
    let (status, document) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "DeployStack API");

    let listed = operations(&document);
    let expected: BTreeSet<(String, String)> = [
        ("POST", "/deploy"),
        ("POST", "/api/v1/deployments"),
        ("GET", "/api/v1/deployments"),
        ("GET", "/api/v1/deployments/{id}"),
        ("DELETE", "/api/v1/deployments/{id}"),
        ("GET", "/api/v1/deployments/{id}/logs"),
        ("POST", "/api/v1/deployments/{id}/cancel"),
        ("POST", "/api/v1/projects"),
        ("GET", "/api/v1/projects"),
        ("GET", "/api/v1/projects/{name}"),
        ("PATCH", "/api/v1/projects/{name}"),
        ("PUT", "/api/v1/projects/{name}"),
        ("DELETE", "/api/v1/projects/{name}"),
        ("POST", "/api/v1/projects/{name}/promote"),
        ("POST", "/api/v1/projects/{name}/rollback"),
        ("GET", "/api/v1/projects/{name}/production"),
        ("GET", "/api/v1/projects/{name}/domains"),
        ("POST", "/api/v1/projects/{name}/domains"),
        ("GET", "/api/v1/projects/{name}/domains/{domain}"),
        ("DELETE", "/api/v1/projects/{name}/domains/{domain}"),
        ("POST", "/api/v1/projects/{name}/domains/{domain}/verify"),
        ("GET", "/api/v1/projects/{name}/env"),
        ("POST", "/api/v1/projects/{name}/env"),
        ("GET", "/api/v1/projects/{name}/env/{id}"),
        ("PATCH", "/api/v1/projects/{name}/env/{id}"),
        ("DELETE", "/api/v1/projects/{name}/env/{id}"),
        ("GET", "/api/v1/whoami"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_owned(), path.to_owned()))
    .collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    assert!(missing.is_empty(), "not described: {missing:?}");

    // Every reference resolves, so a client generator can read the whole document.
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {target}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{target} is referred to but not defined"
        );
    }
    let error = &document["components"]["schemas"]["ErrorBody"];
    assert!(error["properties"]["error"].is_object(), "{error}");
}

/// Everything the document lists is a route the server has: asked with a made-up id, each
/// operation answers something other than the API's "no such route" and "method not
/// allowed" errors.
#[tokio::test]
async fn every_described_operation_is_served() {
    let server = Server::start().await;
    let (_, document) = server.get_json("/openapi.json").await;
    for (method, path) in operations(&document) {
        let path = path.replace("{id}", "0123456789abcdef0123456789abcdef");
        let answer = raw(server.address(), &method, &path).await;
        assert_ne!(answer.status, 405, "{method} {path}");
        if answer.status == 404 {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            assert_ne!(
                body["error"]["code"], "not_found",
                "{method} {path}: no route"
            );
        }
    }
}

#[tokio::test]
async fn the_docs_page_and_its_assets_come_from_the_binary() {
    let server = Server::start().await;
    // `/docs` sends the browser to the page itself.
    let answer = raw(server.address(), "GET", "/docs").await;
    assert!(
        (300..400).contains(&answer.status),
        "status {}",
        answer.status
    );
    assert_eq!(answer.field("location"), Some("/docs/"));

    let page = server.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The page loads its script and styles from the server, not from a CDN.
    assert!(
        !html.contains("https://"),
        "the page refers to another site:\n{html}"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset), "{asset} not on the page");
        let response = server.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    // The initializer points the page at this server's document.
    let initializer = server
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}

#[tokio::test]
async fn the_document_says_which_token_each_operation_needs() {
    let server = Server::start().await;
    let (status, document) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");

    let operation = |method: &str, path: &str| document["paths"][path][method].clone();
    for (method, path) in [("get", "/healthz"), ("get", "/readyz")] {
        let open = operation(method, path);
        assert_eq!(open["security"], serde_json::json!([]), "{method} {path}");
    }
    for (method, path, scope) in [
        ("post", "/api/v1/deployments", "deploy"),
        ("get", "/api/v1/deployments/{id}", "read"),
        ("delete", "/api/v1/projects/{name}", "admin"),
        ("post", "/api/v1/projects/{name}/promote", "deploy"),
        ("get", "/api/v1/tokens", "admin"),
    ] {
        let guarded = operation(method, path);
        assert_eq!(
            guarded["security"],
            serde_json::json!([{"bearer": []}]),
            "{method} {path}"
        );
        let description = guarded["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("scope `{scope}`")),
            "{method} {path}: {description}"
        );
        for status in ["401", "403"] {
            assert!(
                guarded["responses"][status].is_object(),
                "{method} {path} lists {status}"
            );
        }
    }
}
