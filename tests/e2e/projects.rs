//! Projects, as a user drives them: create one, deploy to production and preview, watch
//! `<project>.<base-domain>` follow production through promotes and rollbacks (and stay put
//! while pinned), hammer the host while production switches, and get precise errors for bad
//! input.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, call, get_on, zip_of};

/// A production or preview deployment of `project` whose index says `marker`; waits for READY.
async fn deploy(server: &Server, project: &str, target: &str, marker: &str) -> String {
    let id = server
        .upload_with(
            zip_of(&[("index.html", marker.as_bytes())]),
            &[("project", project), ("target", target)],
        )
        .await;
    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
    id
}

/// What the project's host serves at `/` now.
async fn served(server: &Server, project: &str) -> (u16, String) {
    let address = server.address();
    let port = address.rsplit(':').next().unwrap();
    get_on(address, &format!("{project}.localhost:{port}"), "/").await
}

async fn production_of(server: &Server, project: &str) -> Value {
    let (status, body) = call(server, "GET", &format!("/api/v1/projects/{project}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["production"].clone()
}

#[tokio::test]
async fn production_follows_deploys_promotes_and_rollbacks_with_vercels_pin() {
    let server = Server::start().await;
    let (status, created) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "shop", "retention": {"keep_previews": 5}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "shop");
    assert_eq!(created["production"], Value::Null);
    assert_eq!(created["retention"]["keep_previews"], 5);
    let port = server.address().rsplit(':').next().unwrap().to_owned();
    assert_eq!(created["url"], format!("http://shop.localhost:{port}/"));

    // No production yet: a clear 404, not the platform.
    let (status, body) = served(&server, "shop").await;
    assert_eq!(status, 404);
    assert!(body.contains("no production deployment"), "{body}");

    // A production deployment serves at the project's host.
    let first = deploy(&server, "shop", "production", "first").await;
    assert_eq!(served(&server, "shop").await, (200, "first".into()));
    let production = production_of(&server, "shop").await;
    assert_eq!(production["deployment_id"], first.as_str());
    assert_eq!(production["pinned"], false);

    // Its url is its own host; path_url the path-based address.
    let (_, view) = server
        .get_json(&format!("/api/v1/deployments/{first}"))
        .await;
    assert_eq!(view["url"], format!("http://{first}.localhost:{port}/"));
    assert_eq!(view["path_url"], server.url(&format!("/{first}/")));
    assert_eq!(view["project"], "shop");
    assert_eq!(view["target"], "production");

    // A preview does not move production.
    let preview = deploy(&server, "shop", "preview", "preview").await;
    assert_eq!(served(&server, "shop").await, (200, "first".into()));

    // Promote the preview: no rebuild, served at once.
    let (status, promoted) = call(
        &server,
        "POST",
        "/api/v1/projects/shop/promote",
        Some(json!({"deployment_id": preview})),
    )
    .await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["production"]["deployment_id"], preview.as_str());
    assert_eq!(served(&server, "shop").await, (200, "preview".into()));

    // Roll back (to the previous production): pinned.
    let (status, rolled) = call(&server, "POST", "/api/v1/projects/shop/rollback", None).await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["production"]["deployment_id"], first.as_str());
    assert_eq!(rolled["production"]["pinned"], true);
    assert_eq!(served(&server, "shop").await, (200, "first".into()));

    // While pinned, a new production deployment builds but does not take production.
    let second = deploy(&server, "shop", "production", "second").await;
    assert_eq!(served(&server, "shop").await, (200, "first".into()));
    assert_eq!(
        production_of(&server, "shop").await["deployment_id"],
        first.as_str()
    );

    // The next promote unpins.
    let (status, promoted) = call(
        &server,
        "POST",
        "/api/v1/projects/shop/promote",
        Some(json!({"deployment_id": second})),
    )
    .await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["production"]["pinned"], false);
    assert_eq!(served(&server, "shop").await, (200, "second".into()));

    // The history lists every step, newest first.
    let (status, history) = call(&server, "GET", "/api/v1/projects/shop/production", None).await;
    assert_eq!(status, 200, "{history}");
    let steps: Vec<(Value, Value, Value, Value)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["from"].clone(),
                row["to"].clone(),
                row["reason"].clone(),
                row["by"].clone(),
            )
        })
        .collect();
    // Who: the API caller for a promote or a rollback; nobody for a deploy's own move.
    let api = json!("api (127.0.0.1)");
    assert_eq!(
        steps,
        vec![
            (json!(first), json!(second), json!("promote"), api.clone()),
            (json!(preview), json!(first), json!("rollback"), api.clone()),
            (json!(first), json!(preview), json!("promote"), api),
            (Value::Null, json!(first), json!("deploy"), Value::Null),
        ]
    );

    // Teardown: the project's deployments answer 410, the host 404; a repeat is a 404.
    let (status, _) = call(&server, "DELETE", "/api/v1/projects/shop", None).await;
    assert_eq!(status, 204);
    let (status, gone) = server
        .get_json(&format!("/api/v1/deployments/{second}"))
        .await;
    assert_eq!(status, 410, "{gone}");
    let response = server.get(&format!("/{first}/")).await;
    assert_eq!(response.status(), 410);
    assert_eq!(served(&server, "shop").await.0, 404);
    let (status, again) = call(&server, "DELETE", "/api/v1/projects/shop", None).await;
    assert_eq!(status, 404, "{again}");
    assert_eq!(again["error"]["code"], "project_not_found");
}

#[tokio::test]
async fn an_upload_naming_a_new_project_creates_it_and_its_settings_apply() {
    let server = Server::start().await;
    let id = deploy(&server, "fresh", "production", "hello").await;
    let (status, project) = call(&server, "GET", "/api/v1/projects/fresh", None).await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["production"]["deployment_id"], id.as_str());

    // Project settings apply to its next deployments; upload fields win over them.
    let (status, patched) = call(
        &server,
        "PATCH",
        "/api/v1/projects/fresh",
        Some(json!({"build_settings": {"framework": "static", "output_directory": "site"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let next = server
        .upload_with(
            zip_of(&[("public/index.html", b"from public")]),
            &[("project", "fresh"), ("output_directory", "public")],
        )
        .await;
    let (_, view) = server
        .get_json(&format!("/api/v1/deployments/{next}"))
        .await;
    assert_eq!(view["build_settings"]["framework"], "static");
    assert_eq!(view["build_settings"]["output_directory"], "public");

    let (status, listed) = call(&server, "GET", "/api/v1/projects?limit=1", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["projects"][0]["name"], "fresh");
}

#[tokio::test]
async fn bad_project_input_gets_a_json_error_naming_the_field() {
    let server = Server::start().await;
    let cases = [
        (json!({"name": "Not_A_Slug"}), 422, "name"),
        (
            json!({"name": "0123456789abcdef0123456789abcdef"}),
            422,
            "name",
        ),
        (json!({"nme": "typo"}), 422, "nme"),
        (
            json!({"name": "ok", "retention": {"keep_previews": 0}}),
            422,
            "retention.keep_previews",
        ),
        (
            json!({"name": "ok", "retention": {"max_age_days": 100000}}),
            422,
            "retention.max_age_days",
        ),
        (
            json!({"name": "ok", "build_settings": {"output_directory": "../up"}}),
            422,
            "build_settings.output_directory",
        ),
    ];
    for (body, status, field) in cases {
        let (got, answer) = call(&server, "POST", "/api/v1/projects", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // Nothing half-applied: none of those created a project.
    let (_, listed) = call(&server, "GET", "/api/v1/projects", None).await;
    assert_eq!(listed["projects"], json!([]), "{listed}");

    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "ok"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, taken) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "ok"})),
    )
    .await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["error"]["field"], "name");

    let (status, missing) = call(&server, "GET", "/api/v1/projects/nope", None).await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "project_not_found");

    // Promote: a malformed id, an unknown one, a queued one, another project's.
    let (status, answer) = call(
        &server,
        "POST",
        "/api/v1/projects/ok/promote",
        Some(json!({"deployment_id": "xyz"})),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (422, &json!("deployment_id"))
    );
    let other = deploy(&server, "other", "preview", "other").await;
    for id in ["0123456789abcdef0123456789abcdef", other.as_str()] {
        let (status, answer) = call(
            &server,
            "POST",
            "/api/v1/projects/ok/promote",
            Some(json!({"deployment_id": id})),
        )
        .await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"]["field"], "deployment_id", "{answer}");
    }
    let (status, answer) = call(&server, "POST", "/api/v1/projects/ok/promote", None).await;
    assert_eq!(status, 400, "{answer}");
    // Nothing to roll back to.
    let (status, answer) = call(&server, "POST", "/api/v1/projects/ok/rollback", None).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "nothing_to_roll_back_to");
    let (_, history) = call(&server, "GET", "/api/v1/projects/ok/production", None).await;
    assert_eq!(history["history"], json!([]), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_during_twenty_switches_is_one_whole_deployment() {
    let server = Server::start().await;
    // Large enough that an answer takes several reads: a mix would show.
    let a_body = "A".repeat(256 * 1024);
    let b_body = "B".repeat(256 * 1024);
    let a = deploy(&server, "busy", "production", &a_body).await;
    let b = deploy(&server, "busy", "preview", &b_body).await;
    assert_eq!(served(&server, "busy").await.1, a_body);

    let stop = tokio_util::sync::CancellationToken::new();
    let address = server.address().to_owned();
    let port = address.rsplit(':').next().unwrap().to_owned();
    let hammer = {
        let stop = stop.clone();
        let (a_body, b_body) = (a_body.clone(), b_body.clone());
        tokio::spawn(async move {
            let host = format!("busy.localhost:{port}");
            let (mut seen_a, mut seen_b) = (0u32, 0u32);
            // Bounded: at most this many requests, whatever happens.
            for _ in 0..20_000 {
                if stop.is_cancelled() {
                    break;
                }
                let (status, body) = get_on(&address, &host, "/").await;
                assert_eq!(status, 200, "an answer failed during a switch");
                if body == a_body {
                    seen_a += 1;
                } else if body == b_body {
                    seen_b += 1;
                } else {
                    panic!(
                        "an answer mixed deployments or was cut ({} bytes)",
                        body.len()
                    );
                }
            }
            (seen_a, seen_b)
        })
    };
    for round in 0..20 {
        let (to, reason) = if round % 2 == 0 {
            (&b, "promote")
        } else {
            (&a, "rollback")
        };
        let (status, answer) = call(
            &server,
            "POST",
            &format!("/api/v1/projects/busy/{reason}"),
            Some(json!({"deployment_id": to})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        // The very next request is served by the new production.
        let expected = if to == &a { &a_body } else { &b_body };
        assert_eq!(&served(&server, "busy").await.1, expected, "round {round}");
    }
    stop.cancel();
    let (seen_a, seen_b) = hammer.await.expect("the hammering client failed");
    assert!(seen_a + seen_b > 0);
    let (_, history) = call(&server, "GET", "/api/v1/projects/busy/production", None).await;
    assert_eq!(history["history"].as_array().map(Vec::len), Some(21));
}

#[tokio::test]
async fn retention_deletes_old_previews_but_never_production() {
    let server = Server::start().await;
    let (status, created) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "tidy", "retention": {"keep_previews": 1}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let production = deploy(&server, "tidy", "production", "prod").await;
    let old = deploy(&server, "tidy", "preview", "old").await;
    let newer = deploy(&server, "tidy", "preview", "newer").await;

    // The policy runs right after each publish: poll until the older preview is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = server.get_json(&format!("/api/v1/deployments/{old}")).await;
        if status == 410 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the preview beyond keep_previews was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kept in [&production, &newer] {
        let (status, view) = server
            .get_json(&format!("/api/v1/deployments/{kept}"))
            .await;
        assert_eq!(status, 200, "{view}");
    }
    assert_eq!(served(&server, "tidy").await, (200, "prod".into()));
}
