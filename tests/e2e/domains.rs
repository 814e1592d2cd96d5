//! Custom domains, as a user drives them against a DNS server the test runs on loopback
//! (the server asks it through `DEPLOYSTACK_DNS_SERVERS`): add a domain and get its TXT
//! record, publish the record, verify on demand or wait for the background re-check, see
//! the domain serve production — or redirect, in the order its targets are verified — and
//! get precise errors for everything that is refused.

use std::time::{Duration, Instant};

use deploystack_core::testing::dns::DnsTestServer;
use serde_json::{Value, json};

use crate::support::{Answer, RawConnection, Server, call, zip_of};

/// A server asking `dns` for verification records; `recheck_secs` is the first background
/// re-check delay.
async fn start(dns: &DnsTestServer, recheck_secs: u64) -> Server {
    let servers = dns.addr().to_string();
    let recheck = recheck_secs.to_string();
    Server::start_with(&[
        ("DEPLOYSTACK_DNS_SERVERS", servers.as_str()),
        ("DEPLOYSTACK_DOMAIN_RECHECK_SECS", recheck.as_str()),
    ])
    .await
}

/// A project whose production deployment's index says `marker`.
async fn project_with_production(server: &Server, project: &str, marker: &str) {
    let (status, body) = call(
        server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": project})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = server
        .upload_with(
            zip_of(&[("index.html", marker.as_bytes())]),
            &[("project", project), ("target", "production")],
        )
        .await;
    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
}

/// `GET path` with exactly this `Host` line.
async fn get_on(server: &Server, host: &str, path: &str) -> Answer {
    let mut connection = RawConnection::open(server.address()).await;
    connection
        .send(&format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ))
        .await;
    connection.answer(false).await
}

fn body_of(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.body).into_owned()
}

async fn add(server: &Server, project: &str, domain: Value) -> (u16, Value) {
    call(
        server,
        "POST",
        &format!("/api/v1/projects/{project}/domains"),
        Some(domain),
    )
    .await
}

async fn verify(server: &Server, project: &str, domain: &str) -> Value {
    let (status, body) = call(
        server,
        "POST",
        &format!("/api/v1/projects/{project}/domains/{domain}/verify"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Publish the TXT record a domain's document asks for.
fn publish(dns: &DnsTestServer, domain: &Value) {
    let record = &domain["verification"];
    dns.set_txt(
        record["name"].as_str().unwrap(),
        &[record["value"].as_str().unwrap()],
    );
}

#[tokio::test]
async fn a_domain_serves_production_once_its_txt_record_is_verified() {
    let dns = DnsTestServer::start().await.unwrap();
    let server = start(&dns, 3600).await;
    project_with_production(&server, "shop", "shop v1").await;

    // Added as typed (any case, a trailing dot), with an Idempotency-Key: a retry gets the
    // same domain and the same token, not a conflict.
    let create = || {
        server
            .client
            .post(server.url("/api/v1/projects/shop/domains"))
            .header("Idempotency-Key", "add-www-shop")
            .json(&json!({"name": "WWW.Shop.Example."}))
            .send()
    };
    let first = create().await.unwrap();
    assert_eq!(first.status(), 201);
    let domain: Value = first.json().await.unwrap();
    let retry = create().await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap(), domain);

    assert_eq!(domain["name"], "www.shop.example");
    assert_eq!(domain["verified"], false);
    assert_eq!(domain["status"], "pending_verification");
    assert_eq!(domain["verification"]["type"], "TXT");
    assert_eq!(
        domain["verification"]["name"],
        "_deploystack.www.shop.example"
    );
    let token = domain["verification"]["value"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);

    // Unverified: not served, and the page says why.
    let answer = get_on(&server, "www.shop.example", "/").await;
    assert_eq!(answer.status, 404);
    assert!(
        body_of(&answer).contains("not verified"),
        "{}",
        body_of(&answer)
    );

    // No record yet: the check says what to publish.
    let checked = verify(&server, "shop", "www.shop.example").await;
    assert_eq!(checked["verified"], false);
    assert_eq!(checked["check"]["result"], "record_missing");
    let message = checked["check"]["message"].as_str().unwrap();
    assert!(
        message.contains("_deploystack.www.shop.example"),
        "{message}"
    );
    assert!(message.contains(&token), "{message}");

    // A wrong value: the check says what it found and what it expected.
    dns.set_txt("_deploystack.www.shop.example", &["from-another-site"]);
    let checked = verify(&server, "shop", "www.shop.example").await;
    assert_eq!(checked["check"]["result"], "other_value");
    assert_eq!(checked["check"]["found"], json!(["from-another-site"]));
    assert!(
        checked["check"]["message"]
            .as_str()
            .unwrap()
            .contains(&token)
    );

    publish(&dns, &domain);
    let checked = verify(&server, "shop", "www.shop.example").await;
    assert_eq!(checked["verified"], true, "{checked}");
    assert_eq!(checked["status"], "active");
    assert_eq!(checked["check"]["result"], "verified");
    assert!(checked["verified_at"].is_string());

    let answer = get_on(&server, "www.shop.example", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(body_of(&answer), "shop v1");

    let (status, listed) = call(&server, "GET", "/api/v1/projects/shop/domains", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["domains"].as_array().unwrap().len(), 1);
    let (status, one) = call(
        &server,
        "GET",
        "/api/v1/projects/shop/domains/www.shop.example",
        None,
    )
    .await;
    assert_eq!((status, &one["verified"]), (200, &json!(true)));

    // Removed: the host no longer serves the site.
    let (status, _) = call(
        &server,
        "DELETE",
        "/api/v1/projects/shop/domains/www.shop.example",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let answer = get_on(&server, "www.shop.example", "/").await;
    assert_ne!(body_of(&answer), "shop v1");
    let (status, body) = call(
        &server,
        "DELETE",
        "/api/v1/projects/shop/domains/www.shop.example",
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("domain_not_found"))
    );
}

#[tokio::test]
async fn a_pending_domain_is_verified_in_the_background_once_its_record_appears() {
    let dns = DnsTestServer::start().await.unwrap();
    let server = start(&dns, 1).await;
    project_with_production(&server, "blog", "blog v1").await;
    let (status, domain) = add(&server, "blog", json!({"name": "blog.example.org"})).await;
    assert_eq!(status, 201, "{domain}");
    assert!(domain["next_check_at"].is_string());

    publish(&dns, &domain);
    let deadline = Instant::now() + Duration::from_secs(30);
    let verified = loop {
        let (_, now) = call(
            &server,
            "GET",
            "/api/v1/projects/blog/domains/blog.example.org",
            None,
        )
        .await;
        if now["verified"] == true {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "not verified in the background within 30 s: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(verified["check_attempts"].as_u64().unwrap() >= 1);
    assert_eq!(verified["next_check_at"], Value::Null);
    assert!(dns.queries() >= 1);
    let answer = get_on(&server, "blog.example.org", "/").await;
    assert_eq!(
        (answer.status, body_of(&answer)),
        (200, "blog v1".to_owned())
    );
}

#[tokio::test]
async fn redirects_wait_for_their_targets_and_keep_path_and_query() {
    let dns = DnsTestServer::start().await.unwrap();
    let server = start(&dns, 3600).await;
    project_with_production(&server, "acme", "acme home").await;
    let port = server.address().rsplit(':').next().unwrap().to_owned();

    let (status, apex) = add(&server, "acme", json!({"name": "acme.example"})).await;
    assert_eq!(status, 201, "{apex}");
    let (status, www) = add(
        &server,
        "acme",
        json!({"name": "www.acme.example", "redirect": "acme.example"}),
    )
    .await;
    assert_eq!(status, 201, "{www}");
    assert_eq!(www["redirect"], "acme.example");
    assert_eq!(www["redirect_status"], 308, "308 is the default");
    let (status, old) = add(
        &server,
        "acme",
        json!({"name": "old.acme.example", "redirect": "www.acme.example", "redirect_status": 301}),
    )
    .await;
    assert_eq!(status, 201, "{old}");

    // www is verified first: it waits for the apex, and does not redirect yet.
    publish(&dns, &www);
    let checked = verify(&server, "acme", "www.acme.example").await;
    assert_eq!(checked["verified"], true);
    assert_eq!(checked["status"], "waiting");
    assert_eq!(checked["waiting_for"], "acme.example");
    assert_eq!(get_on(&server, "www.acme.example", "/").await.status, 404);

    // The apex is verified: it serves, and www now redirects to it.
    publish(&dns, &apex);
    assert_eq!(
        verify(&server, "acme", "acme.example").await["status"],
        "active"
    );
    let (_, now) = call(
        &server,
        "GET",
        "/api/v1/projects/acme/domains/www.acme.example",
        None,
    )
    .await;
    assert_eq!(now["status"], "active", "{now}");
    let home = get_on(&server, "acme.example", "/").await;
    assert_eq!((home.status, body_of(&home)), (200, "acme home".to_owned()));
    let answer = get_on(&server, "www.acme.example", "/docs/a%20b?x=1&y=2").await;
    assert_eq!(answer.status, 308);
    assert_eq!(
        answer.field("location"),
        Some(format!("http://acme.example:{port}/docs/a%20b?x=1&y=2").as_str())
    );

    // A chain: old → www (301) → apex, applied once old is verified too.
    assert_eq!(get_on(&server, "old.acme.example", "/").await.status, 404);
    publish(&dns, &old);
    verify(&server, "acme", "old.acme.example").await;
    let answer = get_on(&server, "old.acme.example", "/x?q").await;
    assert_eq!(answer.status, 301);
    assert_eq!(
        answer.field("location"),
        Some(format!("http://www.acme.example:{port}/x?q").as_str())
    );

    // A target cannot be removed from under its redirects.
    let (status, body) = call(
        &server,
        "DELETE",
        "/api/v1/projects/acme/domains/acme.example",
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "domain_in_use");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("www.acme.example"),
        "{body}"
    );
}

#[tokio::test]
async fn refusals_name_the_rule_and_the_field() {
    let dns = DnsTestServer::start().await.unwrap();
    let server = start(&dns, 3600).await;
    for project in ["one", "two"] {
        let (status, _) = call(
            &server,
            "POST",
            "/api/v1/projects",
            Some(json!({"name": project})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, _) = add(&server, "one", json!({"name": "taken.example"})).await;
    assert_eq!(status, 201);

    let cases = [
        // (body, status, code, field, words in the message)
        (
            json!({"name": "loop.example", "redirect": "loop.example"}),
            422,
            "redirect_cycle",
            "redirect",
            "loop.example → loop.example",
        ),
        (
            json!({"name": "c.example", "redirect": "nowhere.example"}),
            422,
            "unknown_redirect_target",
            "redirect",
            "nowhere.example",
        ),
        (
            json!({"name": "https://x.example/"}),
            422,
            "invalid_domain",
            "name",
            "URL",
        ),
        (
            json!({"name": "*.example.com"}),
            422,
            "invalid_domain",
            "name",
            "wildcard",
        ),
        (
            json!({"name": "r.example", "redirect": "taken.example", "redirect_status": 303}),
            422,
            "invalid_redirect_status",
            "redirect_status",
            "303",
        ),
        (
            json!({"name": "s.example", "redirect_status": 301}),
            422,
            "redirect_status_without_redirect",
            "redirect_status",
            "s.example",
        ),
        (
            json!({"name": "shop.localhost"}),
            422,
            "domain_reserved",
            "name",
            "base domain",
        ),
        (
            json!({"name": "taken.example"}),
            409,
            "domain_taken",
            "name",
            "already in use",
        ),
        (
            json!({"name": "x.example", "redirekt": "y.example"}),
            422,
            "invalid_body",
            "redirekt",
            "redirekt",
        ),
    ];
    for (body, status, code, field, words) in cases {
        let (got, answer) = add(&server, "two", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{body}: {message}");
        if code == "domain_taken" {
            // Which project has it is not told.
            assert!(!message.contains("one"), "{message}");
        }
    }
    let (status, answer) = add(&server, "nobody", json!({"name": "n.example"})).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("project_not_found"))
    );
    let (status, answer) = add(&server, "one", json!({"name": "taken.example"})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("by this project")
    );
}

#[tokio::test]
async fn deleting_a_project_removes_its_domains_and_they_stop_serving() {
    let dns = DnsTestServer::start().await.unwrap();
    let server = start(&dns, 3600).await;
    project_with_production(&server, "gone", "gone v1").await;
    let (status, domain) = add(&server, "gone", json!({"name": "gone.example.net"})).await;
    assert_eq!(status, 201);
    publish(&dns, &domain);
    verify(&server, "gone", "gone.example.net").await;
    assert_eq!(get_on(&server, "gone.example.net", "/").await.status, 200);

    let (status, _) = call(&server, "DELETE", "/api/v1/projects/gone", None).await;
    assert_eq!(status, 204);
    let answer = get_on(&server, "gone.example.net", "/").await;
    assert_ne!(body_of(&answer), "gone v1");

    // The name is free for another project.
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "next"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, again) = add(&server, "next", json!({"name": "gone.example.net"})).await;
    assert_eq!(status, 201, "{again}");
    assert_ne!(
        again["verification"]["value"],
        domain["verification"]["value"]
    );
    assert_eq!(again["verified"], false);
}
