//! `PUT /api/v1/projects/{name}` as a system that keeps sites in sync uses it: send the whole
//! document, again and again; only the first apply (and real differences) change anything,
//! and a document with one bad field changes nothing.

use serde_json::{Value, json};

use crate::support::{Server, call};

fn names(changes: &Value) -> Vec<String> {
    changes
        .as_array()
        .expect("changes is a list")
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["action"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_same_document_twice_changes_nothing_the_second_time() {
    let server = Server::start().await;
    let document = json!({
        "build_settings": {"framework": "static", "output_directory": "public"},
        "retention": {"keep_previews": 3},
    });

    let (status, first) = call(
        &server,
        "PUT",
        "/api/v1/projects/docs",
        Some(document.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(names(&first["changes"]), ["created project docs"]);
    assert_eq!(
        first["project"]["build_settings"]["output_directory"],
        "public"
    );
    assert_eq!(first["project"]["retention"]["keep_previews"], 3);

    let (status, second) = call(
        &server,
        "PUT",
        "/api/v1/projects/docs",
        Some(document.clone()),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["changes"], json!([]));
    assert_eq!(second["project"], {
        let mut project = first["project"].clone();
        project["updated_at"] = second["project"]["updated_at"].clone();
        project
    });
    assert_eq!(
        second["project"]["updated_at"], first["project"]["updated_at"],
        "nothing was written"
    );

    // A field left out is its empty value: the document is the whole truth.
    let (status, third) = call(
        &server,
        "PUT",
        "/api/v1/projects/docs",
        Some(json!({"build_settings": {"framework": "static", "output_directory": "public"}})),
    )
    .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(names(&third["changes"]), ["updated retention docs"]);
    assert_eq!(third["project"]["retention"], json!({}));

    let (_, read) = call(&server, "GET", "/api/v1/projects/docs", None).await;
    assert_eq!(read["build_settings"]["output_directory"], "public");
    assert_eq!(read["retention"], json!({}));
}

#[tokio::test]
async fn a_bad_document_changes_nothing_and_names_the_field() {
    let server = Server::start().await;
    let good = json!({"build_settings": {"framework": "vite"}});
    let (status, _) = call(&server, "PUT", "/api/v1/projects/site", Some(good)).await;
    assert_eq!(status, 201);

    for (document, field, want) in [
        (
            json!({"retention": {"keep_previews": 0}}),
            "retention.keep_previews",
            422,
        ),
        (
            json!({"build_settings": {"root_directory": "../up"}}),
            "build_settings.root_directory",
            422,
        ),
        (
            json!({"retention": {"keep_previews": "x"}}),
            "retention.keep_previews",
            422,
        ),
        (json!({"bulid_settings": {}}), "bulid_settings", 422),
    ] {
        let (status, body) = call(
            &server,
            "PUT",
            "/api/v1/projects/site",
            Some(document.clone()),
        )
        .await;
        assert_eq!(status, want, "{document} → {body}");
        assert_eq!(body["error"]["field"], field, "{document} → {body}");
    }
    let (_, read) = call(&server, "GET", "/api/v1/projects/site", None).await;
    assert_eq!(
        read["build_settings"],
        json!({"framework": "vite"}),
        "nothing was applied"
    );

    let (status, body) = call(
        &server,
        "PUT",
        "/api/v1/projects/Not_A_Name",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_project_name");
    let (_, listed) = call(&server, "GET", "/api/v1/projects", None).await;
    assert_eq!(listed["projects"].as_array().unwrap().len(), 1, "{listed}");

    let response = server
        .client
        .put(server.url("/api/v1/projects/site"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn variables_follow_the_document_and_a_second_apply_changes_nothing() {
    let server = Server::start().await;
    let document = json!({
        "env": [
            {"key": "API_URL", "value": "https://api.example", "targets": ["production"], "type": "plain"},
            {"key": "API_URL", "value": "https://staging.example", "targets": ["preview", "development"], "type": "plain"},
            {"key": "TOKEN", "value": "s3cr3t-value", "targets": ["production", "preview"], "type": "sensitive"},
        ],
    });
    let (status, first) = call(
        &server,
        "PUT",
        "/api/v1/projects/vars",
        Some(document.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let made = names(&first["changes"]);
    assert_eq!(made.len(), 4, "{made:?}");
    assert_eq!(made[0], "created project vars");
    assert!(
        made[1..].iter().all(|c| c.starts_with("created env ")),
        "{made:?}"
    );

    // Sensitive values are compared without ever being shown: the same document is no change.
    let (status, second) = call(&server, "PUT", "/api/v1/projects/vars", Some(document)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["changes"], json!([]));

    // Change one value, drop a variable: exactly those two changes.
    let (status, third) = call(
        &server,
        "PUT",
        "/api/v1/projects/vars",
        Some(json!({"env": [
            {"key": "API_URL", "value": "https://api2.example", "targets": ["production"], "type": "plain"},
            {"key": "TOKEN", "value": "s3cr3t-value", "targets": ["preview", "production"], "type": "sensitive"},
        ]})),
    )
    .await;
    assert_eq!(status, 200, "{third}");
    let mut made = names(&third["changes"]);
    made.sort();
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made[0].starts_with("deleted env API_URL"), "{made:?}");
    assert!(made[1].starts_with("updated env API_URL"), "{made:?}");

    let (_, listed) = call(
        &server,
        "GET",
        "/api/v1/projects/vars/env?decrypt=true",
        None,
    )
    .await;
    let mut seen: Vec<(String, Value)> = listed["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("API_URL".to_owned(), json!("https://api2.example")),
            ("TOKEN".to_owned(), Value::Null),
        ],
        "{listed}"
    );

    // A bad variable refuses the whole document: the settings in it are not applied either.
    let (status, refused) = call(
        &server,
        "PUT",
        "/api/v1/projects/vars",
        Some(json!({
            "build_settings": {"framework": "vite"},
            "env": [{"key": "1BAD", "value": "x", "targets": ["production"]}],
        })),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "env[0].key", "{refused}");
    let (_, read) = call(&server, "GET", "/api/v1/projects/vars", None).await;
    assert_eq!(read["build_settings"], json!({}), "{read}");
    let (_, listed) = call(&server, "GET", "/api/v1/projects/vars/env", None).await;
    assert_eq!(listed["env"].as_array().unwrap().len(), 2, "{listed}");
}

#[tokio::test]
async fn domains_follow_the_document_and_a_cycle_refuses_all_of_it() {
    // Verification asks only this loopback DNS server, never the internet.
    let dns = deploystack_core::testing::dns::DnsTestServer::start()
        .await
        .unwrap();
    let servers = dns.addr().to_string();
    let server = Server::start_with(&[("DEPLOYSTACK_DNS_SERVERS", servers.as_str())]).await;
    let document = json!({
        "domains": [
            {"name": "example.com"},
            {"name": "www.example.com", "redirect": "example.com", "redirect_status": 301},
        ],
    });
    let (status, first) = call(
        &server,
        "PUT",
        "/api/v1/projects/site",
        Some(document.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let mut made = names(&first["changes"]);
    made.sort();
    assert_eq!(
        made,
        [
            "created domain example.com",
            "created domain www.example.com",
            "created project site",
        ]
    );
    let (status, second) = call(&server, "PUT", "/api/v1/projects/site", Some(document)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["changes"], json!([]));

    // A cycle is refused whole, naming it; the env in the same document is not applied.
    let (status, refused) = call(
        &server,
        "PUT",
        "/api/v1/projects/site",
        Some(json!({
            "env": [{"key": "A", "value": "1", "targets": ["production"]}],
            "domains": [
                {"name": "example.com", "redirect": "www.example.com"},
                {"name": "www.example.com", "redirect": "example.com"},
            ],
        })),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("example.com → www.example.com → example.com")
            || message.contains("www.example.com → example.com → www.example.com"),
        "{refused}"
    );
    let (_, listed) = call(&server, "GET", "/api/v1/projects/site/env", None).await;
    assert_eq!(listed["env"], json!([]), "{listed}");

    // Dropping the redirect: one update and one delete.
    let (status, third) = call(
        &server,
        "PUT",
        "/api/v1/projects/site",
        Some(json!({"domains": [{"name": "example.com"}]})),
    )
    .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(names(&third["changes"]), ["deleted domain www.example.com"]);
    let (_, listed) = call(&server, "GET", "/api/v1/projects/site/domains", None).await;
    assert_eq!(listed["domains"].as_array().unwrap().len(), 1, "{listed}");

    // A domain another project has: 409, naming the field.
    let (status, taken) = call(
        &server,
        "PUT",
        "/api/v1/projects/other",
        Some(json!({"domains": [{"name": "EXAMPLE.com."}]})),
    )
    .await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["error"]["field"], "domains[0].name", "{taken}");
    let (status, _) = call(&server, "GET", "/api/v1/projects/other", None).await;
    assert_eq!(status, 404, "a refused document creates no project");
}
