//! A build strategy written in user code: `examples/markdown_site.rs` is a whole server with
//! a Markdown site builder registered before the built-in strategies. The platform must pick
//! it for a folder of Markdown and serve what it rendered.

use std::time::Duration;

use crate::support::{Server, markdown_site_binary, zip_of};

#[tokio::test]
async fn a_strategy_registered_from_user_code_builds_and_serves_markdown() {
    let server = Server::start_program(
        markdown_site_binary(),
        tempfile::tempdir().unwrap(),
        &[],
        &[],
    )
    .await;
    let zip = zip_of(&[
        (
            "README.md",
            b"# Field notes\n\nRead [the guide](guide.md#setup) first.\n\n- alpha\n- beta\n",
        ),
        (
            "docs/guide.md",
            b"# Guide\n\n## Setup\n\nRun `deploy --now`:\n\n```\ndeploy --now\n```\n",
        ),
        ("guide.md", b"# Top guide\n\nPlain *emphasis*.\n"),
        ("logo.txt", b"not markdown"),
    ]);
    let id = server.upload_with(zip, &[]).await;
    let done = server.wait_final_within(&id, Duration::from_secs(60)).await;
    let log = server.log_text(&id).await;
    assert_eq!(done["status"], "READY", "{done}\n{log}");

    // The platform names the strategy it chose and why; the strategy logs its own work.
    assert!(
        log.lines()
            .any(|l| l.starts_with("system: ") && l.contains(": markdown (3 Markdown pages")),
        "the log does not name the markdown strategy:\n{log}"
    );
    assert!(log.contains("markdown: rendered 3 pages"), "{log}");

    let page = server.get(&format!("/{id}/")).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Field notes</title>"), "{html}");
    assert!(html.contains("<h1>Field notes</h1>"), "{html}");
    assert!(
        html.contains(r#"<a href="guide.html#setup">the guide</a>"#),
        "{html}"
    );
    assert!(html.contains("<li>alpha</li>"), "{html}");

    let guide = server.get(&format!("/{id}/docs/guide.html")).await;
    assert_eq!(guide.status(), 200);
    let guide = guide.text().await.unwrap();
    assert!(guide.contains("<h2>Setup</h2>"), "{guide}");
    assert!(guide.contains("<code>deploy --now</code>"), "{guide}");
    assert!(
        guide.contains("<pre><code>deploy --now\n</code></pre>"),
        "{guide}"
    );
    let top = server.get(&format!("/{id}/guide.html")).await;
    assert!(top.text().await.unwrap().contains("<em>emphasis</em>"));

    // Files that are not Markdown are published as they are; sources are not.
    let other = server.get(&format!("/{id}/logo.txt")).await;
    assert_eq!(other.text().await.unwrap(), "not markdown");
    assert_eq!(server.get(&format!("/{id}/guide.md")).await.status(), 404);

    // Anything else still goes to the built-in strategies.
    let plain = server
        .upload_with(zip_of(&[("index.html", b"<p>plain</p>")]), &[])
        .await;
    let done = server.wait_final(&plain).await;
    assert_eq!(done["status"], "READY", "{done}");
    let log = server.log_text(&plain).await;
    assert!(!log.contains(": markdown ("), "{log}");
}
