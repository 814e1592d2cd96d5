//! Protected deployments, as a visitor and as automation meet them: a project protected with
//! a password serves no byte of a protected deployment without the login cookie (any path,
//! `HEAD`, conditional and range requests included), a cookie opens only the host it was set
//! on, the bypass header works, a wrong password is slow and refused, path-based URLs are
//! refused, and the API validates and never shows the password.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, call, zip_of};

const PASSWORD: &str = "correct horse battery";

/// One answer of a raw request.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The value of header `name` (lowercase), if sent.
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// `method path` with exactly this `Host`, extra header lines and body.
async fn send(
    server: &Server,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}")),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(server: &Server, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(server, "GET", host, path, headers, "").await
}

/// A deployment of `project` whose pages say `marker`; waits for READY.
async fn deploy(server: &Server, project: &str, target: &str, marker: &str) -> String {
    let id = server
        .upload_with(
            zip_of(&[
                ("index.html", format!("<h1>{marker}</h1>").as_bytes()),
                (
                    "assets/app.js",
                    format!("console.log('{marker}')").as_bytes(),
                ),
            ]),
            &[("project", project), ("target", target)],
        )
        .await;
    let done = server.wait_final(&id).await;
    assert_eq!(done["status"], "READY", "{done}");
    id
}

fn port(server: &Server) -> String {
    server.address().rsplit(':').next().unwrap().to_owned()
}

/// The access cookie a login answer sets, as `name=value`.
fn cookie_of(answer: &Answer) -> String {
    let set = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie set: {}", answer.head));
    set.split(';').next().unwrap().to_owned()
}

async fn patch(server: &Server, body: Value) -> (u16, Value) {
    call(server, "PATCH", "/api/v1/projects/vault", Some(body)).await
}

#[tokio::test]
async fn a_protected_preview_serves_nothing_without_the_password() {
    let server = Server::start().await;
    let port = port(&server);
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/projects",
        Some(json!({"name": "vault"})),
    )
    .await;
    assert_eq!(status, 201);
    let production = deploy(&server, "vault", "production", "public").await;
    let preview = deploy(&server, "vault", "preview", "secret").await;
    let other = deploy(&server, "vault", "preview", "other").await;
    let preview_host = format!("{preview}.localhost:{port}");
    let other_host = format!("{other}.localhost:{port}");
    let production_host = format!("{production}.localhost:{port}");
    let project_host = format!("vault.localhost:{port}");

    // Warm the answers (and their prepared copies) while the project is public, and learn
    // the validators a visitor could try to revalidate with later.
    let warm = get(&server, &preview_host, "/", &[]).await;
    assert_eq!(warm.status, 200);
    let etag = warm.header("etag").expect("an etag");
    assert_eq!(
        get(&server, &preview_host, "/assets/app.js", &[])
            .await
            .status,
        200
    );

    // Bad requests name the field and change nothing.
    let (status, error) = patch(&server, json!({"protection": {"mode": "all"}})).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "protection.password");
    let (status, error) = patch(
        &server,
        json!({"protection": {"mode": "previews", "password": "short"}}),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "protection.password");
    let (status, error) = patch(
        &server,
        json!({"protection": {"mode": "sometimes", "password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "invalid_body");
    assert_eq!(error["error"]["field"], "protection.mode");
    assert_eq!(get(&server, &preview_host, "/", &[]).await.status, 200);

    // Turn protection on: the bypass secret is shown once; the password never.
    let (status, project) = patch(
        &server,
        json!({"protection": {"mode": "previews", "password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["protection"]["mode"], "previews");
    assert_eq!(project["protection"]["password_set"], true);
    let bypass = project["protection"]["bypass_secret"]
        .as_str()
        .expect("a bypass secret")
        .to_owned();
    assert!(bypass.starts_with("dsp_"), "{bypass}");
    let text = project.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
    let (_, shown) = call(&server, "GET", "/api/v1/projects/vault", None).await;
    assert_eq!(
        shown["protection"],
        json!({"mode": "previews", "password_set": true})
    );

    // No page of the preview without the cookie: pages, assets, HEAD, revalidation, ranges,
    // a 404 path and the API's paths on that host all get the login page.
    for (method, path, headers) in [
        ("GET", "/", vec![]),
        ("GET", "/assets/app.js", vec![]),
        ("GET", "/no/such/page", vec![]),
        ("GET", "/api/v1/deployments", vec![]),
        ("HEAD", "/", vec![]),
        ("GET", "/", vec![("If-None-Match", etag.as_str())]),
        ("GET", "/", vec![("If-None-Match", "*")]),
        ("GET", "/", vec![("Range", "bytes=0-3")]),
        ("GET", "/", vec![("Accept-Encoding", "gzip, br")]),
    ] {
        let answer = send(&server, method, &preview_host, path, &headers, "").await;
        assert_eq!(
            answer.status, 401,
            "{method} {path} {headers:?}: {}",
            answer.head
        );
        assert!(!answer.body.contains("secret"), "{}", answer.body);
        assert!(answer.header("etag").is_none(), "{}", answer.head);
        if method == "GET" {
            assert!(answer.body.contains("name=\"password\""), "{}", answer.body);
            assert!(answer.body.contains("action=\"/_deploystack/login\""));
        }
    }
    // A production deployment's own host is a reviewing address too.
    assert_eq!(get(&server, &production_host, "/", &[]).await.status, 401);
    // Production at the project's host stays public under `previews`.
    let public = get(&server, &project_host, "/", &[]).await;
    assert_eq!(
        (public.status, public.body.as_str()),
        (200, "<h1>public</h1>")
    );

    // Path-based URLs share one origin: refused, pointing at the deployment's own host.
    let (status, body) = crate::support::get_on(
        server.address(),
        &format!("127.0.0.1:{port}"),
        &format!("/{preview}/"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(&format!("{preview}.localhost")), "{body}");
    assert!(!body.contains("secret"));

    // Automation: the bypass header opens every page, and the answer is private.
    let opened = get(
        &server,
        &preview_host,
        "/assets/app.js",
        &[("x-deploystack-protection-bypass", &bypass)],
    )
    .await;
    assert_eq!(opened.status, 200);
    assert_eq!(opened.body, "console.log('secret')");
    assert_eq!(
        opened.header("cache-control").as_deref(),
        Some("private, no-cache")
    );
    // A new secret replaces the old one at once.
    let (status, rotated) = call(
        &server,
        "POST",
        "/api/v1/projects/vault/protection/bypass",
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let old_bypass = bypass;
    let bypass = rotated["bypass_secret"].as_str().unwrap().to_owned();
    assert_ne!(bypass, old_bypass);
    let old = get(
        &server,
        &preview_host,
        "/",
        &[("x-deploystack-protection-bypass", &old_bypass)],
    )
    .await;
    assert_eq!(old.status, 401);
    let new = get(
        &server,
        &preview_host,
        "/",
        &[("x-deploystack-protection-bypass", &bypass)],
    )
    .await;
    assert_eq!(new.status, 200);
    let wrong_bypass = format!("dsp_{}", "0".repeat(64));
    let refused = get(
        &server,
        &preview_host,
        "/",
        &[("x-deploystack-protection-bypass", &wrong_bypass)],
    )
    .await;
    assert_eq!(refused.status, 401);

    // A wrong password is slow and gets the form again.
    let started = Instant::now();
    let wrong = send(
        &server,
        "POST",
        &preview_host,
        "/_deploystack/login",
        &[],
        "password=guess&next=%2F",
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(wrong.body.contains("Wrong password"), "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none());

    // The right one sets a host-only, HttpOnly, SameSite=Lax cookie and goes back (303) to
    // the page asked for; a target on another site goes to `/` instead.
    let login = send(
        &server,
        "POST",
        &preview_host,
        "/_deploystack/login",
        &[],
        &format!(
            "password={}&next=%2Fassets%2Fapp.js",
            PASSWORD.replace(' ', "+")
        ),
    )
    .await;
    assert_eq!(login.status, 303, "{}", login.head);
    assert_eq!(login.header("location").as_deref(), Some("/assets/app.js"));
    let set = login.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    assert!(!set.contains("Secure"), "the public URL is http: {set}");
    let cookie = cookie_of(&login);
    let evil = send(
        &server,
        "POST",
        &preview_host,
        "/_deploystack/login",
        &[],
        &format!(
            "password={}&next=https%3A%2F%2Fevil.example%2F",
            PASSWORD.replace(' ', "+")
        ),
    )
    .await;
    assert_eq!(evil.header("location").as_deref(), Some("/"));

    // The cookie opens this preview — every path, HEAD and revalidation too…
    let page = get(&server, &preview_host, "/", &[("Cookie", &cookie)]).await;
    assert_eq!((page.status, page.body.as_str()), (200, "<h1>secret</h1>"));
    let revalidated = get(
        &server,
        &preview_host,
        "/",
        &[("Cookie", &cookie), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(revalidated.status, 304);
    // …and no other deployment, of this project or any.
    assert_eq!(
        get(&server, &other_host, "/", &[("Cookie", &cookie)])
            .await
            .status,
        401
    );
    assert_eq!(
        get(&server, &production_host, "/", &[("Cookie", &cookie)])
            .await
            .status,
        401
    );
    // A forged cookie (another expiry with the same signature) opens nothing.
    let (name_expiry, mac) = cookie.split_once('.').unwrap();
    let (name, _) = name_expiry.split_once('=').unwrap();
    let forged = format!("{name}=99999999999.{mac}");
    assert_eq!(
        get(&server, &preview_host, "/", &[("Cookie", &forged)])
            .await
            .status,
        401
    );

    // `all` protects production at the project's host as well; the preview's cookie stays
    // valid (the password did not change) but does not open the project's host.
    let (status, project) = patch(
        &server,
        json!({"protection": {"mode": "all", "password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{project}");
    assert!(
        project["protection"].get("bypass_secret").is_none(),
        "{project}"
    );
    assert_eq!(get(&server, &project_host, "/", &[]).await.status, 401);
    assert_eq!(
        get(&server, &project_host, "/", &[("Cookie", &cookie)])
            .await
            .status,
        401
    );
    assert_eq!(
        get(&server, &preview_host, "/", &[("Cookie", &cookie)])
            .await
            .status,
        200
    );

    // A new password ends every login.
    let (status, _) = patch(
        &server,
        json!({"protection": {"mode": "all", "password": "another password"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get(&server, &preview_host, "/", &[("Cookie", &cookie)])
            .await
            .status,
        401
    );

    // Off: public again, path-based too.
    let (status, project) = patch(&server, json!({"protection": {"mode": "none"}})).await;
    assert_eq!(status, 200);
    let (status, error) = call(
        &server,
        "POST",
        "/api/v1/projects/vault/protection/bypass",
        None,
    )
    .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "project_not_protected");
    assert_eq!(
        project["protection"],
        json!({"mode": "none", "password_set": false})
    );
    assert_eq!(get(&server, &preview_host, "/", &[]).await.status, 200);
    let (status, _) = crate::support::get_on(
        server.address(),
        &format!("127.0.0.1:{port}"),
        &format!("/{preview}/"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn guessing_passwords_is_throttled() {
    let server = Server::start().await;
    let port = port(&server);
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/projects/vault",
        Some(json!({"protection": {"mode": "previews", "password": PASSWORD}})),
    )
    .await;
    assert_eq!(status, 201);
    let preview = deploy(&server, "vault", "preview", "secret").await;
    let host = format!("{preview}.localhost:{port}");

    // Ten wrong guesses at once each take a second and are refused…
    let started = Instant::now();
    let guesses: Vec<_> = (0..10)
        .map(|i| {
            let server_address = server.address().to_owned();
            let host = host.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(server_address).await.unwrap();
                let body = format!("password=guess-{i}");
                let request = format!(
                    "POST /_deploystack/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.unwrap();
                String::from_utf8_lossy(&answer)[9..12].to_owned()
            })
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.await.unwrap(), "401");
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    // …and then even the right password is refused for a while, with a Retry-After.
    let body = format!("password={}", PASSWORD.replace(' ', "+"));
    let blocked = send(&server, "POST", &host, "/_deploystack/login", &[], &body).await;
    assert_eq!(blocked.status, 429, "{}", blocked.head);
    assert!(blocked.header("retry-after").is_some());
    assert!(blocked.header("set-cookie").is_none());
}

#[tokio::test]
async fn the_same_document_twice_changes_protection_once() {
    let server = Server::start().await;
    let document = json!({"protection": {"mode": "all", "password": PASSWORD}});
    let (status, first) = call(
        &server,
        "PUT",
        "/api/v1/projects/docs",
        Some(document.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert!(
        first["changes"]
            .as_array()
            .unwrap()
            .contains(&json!({"action": "updated", "kind": "protection", "name": "docs"})),
        "{first}"
    );
    assert!(first["project"]["protection"]["bypass_secret"].is_string());
    let (status, again) = call(&server, "PUT", "/api/v1/projects/docs", Some(document)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["changes"], json!([]), "{again}");
    assert_eq!(
        again["project"]["protection"],
        json!({"mode": "all", "password_set": true})
    );

    // Another password is a change; a bad one names the field and changes nothing.
    let (_, changed) = call(
        &server,
        "PUT",
        "/api/v1/projects/docs",
        Some(json!({"protection": {"mode": "all", "password": "another password"}})),
    )
    .await;
    assert_eq!(
        changed["changes"],
        json!([{"action": "updated", "kind": "protection", "name": "docs"}])
    );
    let (status, error) = call(
        &server,
        "PUT",
        "/api/v1/projects/docs",
        Some(json!({"protection": {"mode": "previews"}})),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "protection.password");
    // Leaving protection out of the document means none.
    let (_, off) = call(&server, "PUT", "/api/v1/projects/docs", Some(json!({}))).await;
    assert_eq!(off["project"]["protection"]["mode"], "none");
}

#[tokio::test]
async fn a_custom_domain_is_protected_only_under_all() {
    use deploystack_core::testing::dns::DnsTestServer;

    let dns = DnsTestServer::start().await.unwrap();
    let servers = dns.addr().to_string();
    let server = Server::start_with(&[("DEPLOYSTACK_DNS_SERVERS", servers.as_str())]).await;
    let port = port(&server);
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/projects/shop",
        Some(json!({"protection": {"mode": "previews", "password": PASSWORD}})),
    )
    .await;
    assert_eq!(status, 201);
    deploy(&server, "shop", "production", "live").await;
    let (status, domain) = call(
        &server,
        "POST",
        "/api/v1/projects/shop/domains",
        Some(json!({"name": "www.shop.example"})),
    )
    .await;
    assert_eq!(status, 201, "{domain}");
    let record = &domain["verification"];
    dns.set_txt(
        record["name"].as_str().unwrap(),
        &[record["value"].as_str().unwrap()],
    );
    let (status, verified) = call(
        &server,
        "POST",
        "/api/v1/projects/shop/domains/www.shop.example/verify",
        None,
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    let custom = format!("www.shop.example:{port}");
    let project_host = format!("shop.localhost:{port}");

    // `previews`: production at the custom domain is public.
    let open = get(&server, &custom, "/", &[]).await;
    assert_eq!((open.status, open.body.as_str()), (200, "<h1>live</h1>"));

    // `all`: the custom domain asks too, and a login there opens that host only. (PATCH: a
    // desired-state document without `domains` would remove the domain.)
    let (status, _) = call(
        &server,
        "PATCH",
        "/api/v1/projects/shop",
        Some(json!({"protection": {"mode": "all", "password": PASSWORD}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(get(&server, &custom, "/", &[]).await.status, 401);
    let login = send(
        &server,
        "POST",
        &custom,
        "/_deploystack/login",
        &[],
        &format!("password={}", PASSWORD.replace(' ', "+")),
    )
    .await;
    assert_eq!(login.status, 303, "{}", login.head);
    let cookie = cookie_of(&login);
    let page = get(&server, &custom, "/", &[("Cookie", &cookie)]).await;
    assert_eq!((page.status, page.body.as_str()), (200, "<h1>live</h1>"));
    assert_eq!(
        get(&server, &project_host, "/", &[("Cookie", &cookie)])
            .await
            .status,
        401
    );
}
