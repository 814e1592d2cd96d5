//! What a page in a real browser can do to the API of a default (loopback, `auth = local`)
//! server: nothing. Headless Chromium opens an attacker's page three ways — as a deployment
//! served path-based (`/<id>/`, the API's own origin), as a deployment on its own host
//! (`<id>.localhost`), and as a page of another site (`evil.test`, served by the test) — and
//! its script tries to list deployments, create a project, delete another tenant's
//! deployment and upload a site. Each attempt is checked twice: what the page saw (reads
//! fail, so nothing leaks), and, through the API, that nothing changed.
//!
//! Needs Debian's `chromium` (`scripts/test` installs it). Without it the test skips, except
//! under `CI=true`, where that is a failure.

use std::path::Path;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{Server, chromium_dom, required_tool, zip_of};

/// The attacker's page: every attempt's outcome as the page saw it, written into the DOM as
/// `RESULT {…}` once all have settled. `failed` means the browser refused the request or
/// its answer (a CORS error, a failed preflight); `opaque` means a `no-cors` request was
/// sent but its answer is unreadable; otherwise the status and the start of the body.
fn attacker_page(api: &str, victim: &str) -> String {
    let zip = zip_of(&[("index.html", b"<h1>pwned</h1>".as_slice())]);
    let bytes: Vec<String> = zip.iter().map(u8::to_string).collect();
    format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
const api = "{api}";
const out = {{}};
async function attempt(name, run) {{
  try {{
    const r = await run();
    out[name] = r.type === "opaque" ? "opaque" : r.status + " " + (await r.text()).slice(0, 120);
  }} catch (e) {{
    out[name] = "failed";
  }}
}}
(async () => {{
  await attempt("list", () => fetch(api + "/api/v1/deployments"));
  await attempt("own_path", () => fetch("/api/v1/deployments"));
  await attempt("create", () => fetch(api + "/api/v1/projects", {{
    method: "POST", mode: "no-cors",
    headers: {{"content-type": "text/plain"}}, body: '{{"name":"pwned"}}'
  }}));
  await attempt("delete", () => fetch(api + "/api/v1/deployments/{victim}", {{method: "DELETE"}}));
  const form = new FormData();
  form.append("file", new Blob([new Uint8Array([{bytes}])], {{type: "application/zip"}}), "site.zip");
  await attempt("deploy", () => fetch(api + "/api/v1/deployments", {{
    method: "POST", mode: "no-cors", body: form
  }}));
  document.getElementById("out").textContent = "RESULT " + JSON.stringify(out);
}})();
</script></body></html>"#,
        bytes = bytes.join(",")
    )
}

/// Load `url` in headless Chromium, let its scripts run, and return what the page wrote.
/// `evil.test` resolves to loopback (the test's own page server); Chromium resolves
/// `*.localhost` to loopback itself.
async fn outcome_in_chromium(chromium: &Path, url: &str) -> Value {
    let dom = chromium_dom(
        chromium,
        url,
        &["--host-resolver-rules=MAP evil.test 127.0.0.1"],
    )
    .await;
    let result = dom
        .split("RESULT ")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the page at {url} did not finish its script: {dom}"));
    // The DOM dump escapes the text's quotes as entities only inside attributes; the text of
    // a <pre> keeps them, but `&`, `<` and `>` are escaped.
    let json = result
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"))
}

/// Serve `page` to every request on a loopback port of its own: another site's origin.
async fn serve_page(page: String) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        // Bounded: a page load makes a handful of requests (the page, a favicon).
        for _ in 0..64 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let page = page.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, task)
}

/// What an attacker's page saw: reads and the delete (which needs a preflight) failed in the
/// browser; the `no-cors` writes were at most sent, their answers unreadable.
fn assert_nothing_worked(page: &str, seen: &Value) {
    for attempt in ["list", "delete"] {
        assert_eq!(seen[attempt], "failed", "{page}: {attempt}: {seen}");
    }
    for attempt in ["create", "deploy"] {
        let outcome = seen[attempt].as_str().unwrap_or_default();
        assert!(
            outcome == "failed" || outcome == "opaque",
            "{page}: {attempt}: {seen}"
        );
    }
}

/// Through the API, as the operator: the victim is still there and served, no project
/// `pwned`, and no deployment beyond the `expected` ones.
async fn assert_nothing_changed(server: &Server, victim: &str, expected: usize) {
    let (status, victim_now) = server
        .get_json(&format!("/api/v1/deployments/{victim}"))
        .await;
    assert_eq!(status, 200, "{victim_now}");
    assert_eq!(victim_now["status"], "READY");
    let (status, _) = server.get_json("/api/v1/projects/pwned").await;
    assert_eq!(status, 404, "a page created a project");
    let (status, list) = server.get_json("/api/v1/deployments?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["deployments"].as_array().unwrap().len(),
        expected,
        "a page made a deployment: {list}"
    );
}

#[tokio::test]
async fn pages_of_deployments_and_of_other_sites_cannot_use_the_api() {
    let Some(chromium) = required_tool("chromium", "Debian's chromium (loading pages)") else {
        return;
    };
    let server = Server::start().await;
    let api = format!("http://{}", server.address());
    let port = server.address().rsplit(':').next().unwrap().to_owned();
    let victim = server
        .deploy_ready(zip_of(&[("index.html", b"<h1>victim</h1>".as_slice())]))
        .await;

    // The attacker's site as a deployment: its page calls the API by relative URL when
    // opened path-based (the API's own origin), and by the API's address otherwise.
    let by_path = server
        .deploy_ready(zip_of(&[(
            "index.html",
            attacker_page("", &victim).as_bytes(),
        )]))
        .await;
    let by_host = server
        .deploy_ready(zip_of(&[(
            "index.html",
            attacker_page(&api, &victim).as_bytes(),
        )]))
        .await;
    let deployments = 3;

    let page = format!("{api}/{by_path}/");
    let seen = outcome_in_chromium(&chromium, &page).await;
    assert_nothing_worked(&page, &seen);
    assert_eq!(seen["own_path"], "failed", "{seen}");
    assert_nothing_changed(&server, &victim, deployments).await;

    let page = format!("http://{by_host}.localhost:{port}/");
    let seen = outcome_in_chromium(&chromium, &page).await;
    assert_nothing_worked(&page, &seen);
    // On its own host, `/api/…` is a path of the site (its 404), never the API.
    let own = seen["own_path"].as_str().unwrap_or_default();
    assert!(own.starts_with("404"), "{page}: {seen}");
    assert_nothing_changed(&server, &victim, deployments).await;

    let (evil_port, evil) = serve_page(attacker_page(&api, &victim)).await;
    let page = format!("http://evil.test:{evil_port}/");
    let seen = outcome_in_chromium(&chromium, &page).await;
    assert_nothing_worked(&page, &seen);
    assert_nothing_changed(&server, &victim, deployments).await;
    evil.abort();

    // The same requests without a browser's Origin (curl on this machine) are let through:
    // the refusals above were the browser's context, not a broken API.
    let (status, listed) = server.get_json("/api/v1/deployments").await;
    assert_eq!(status, 200);
    assert_eq!(listed["deployments"].as_array().unwrap().len(), deployments);
}
