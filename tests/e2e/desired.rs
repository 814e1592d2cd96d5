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
