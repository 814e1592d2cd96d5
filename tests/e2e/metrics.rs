//! `/metrics`: what a Prometheus scrape of a running server shows.

use crate::support::{Server, noise, zip_of};

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

async fn scrape(server: &Server) -> String {
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_show_cache_hits_per_layer_and_the_queue_depth() {
    let server = Server::start().await;
    let id = server
        .deploy_ready(zip_of(&[("index.html", b"<h1>cached</h1>")]))
        .await;
    let before = scrape(&server).await;
    assert_eq!(sample(&before, "deploystack_cache_enabled"), 1.0);
    let hits = sample(&before, "deploystack_cache_hits_total{layer=\"local\"}");

    // The first request fills the cache; the next ones are answered from it.
    for _ in 0..3 {
        let page = server.get(&format!("/{id}/")).await;
        assert_eq!(page.status(), 200);
    }

    let after = scrape(&server).await;
    // A warm request reads the repository once (the deployment record; what the path
    // resolves to comes from the resolution cache): at least the last two requests' reads
    // are hits.
    let new_hits = sample(&after, "deploystack_cache_hits_total{layer=\"local\"}") - hits;
    assert!(new_hits >= 2.0, "{new_hits} new hits\n{after}");
    assert!(sample(&after, "deploystack_cache_misses_total{layer=\"local\"}") >= 1.0);
    assert_eq!(
        sample(&after, "deploystack_cache_hits_total{layer=\"shared\"}"),
        0.0,
        "no shared layer is configured"
    );
    assert!(
        sample(&after, "deploystack_cache_entries") >= 2.0,
        "{after}"
    );
    // The page's bytes: read from storage once, then kept with the page's prepared answer,
    // so storage is not asked again, not even its hot-blob cache.
    assert_eq!(sample(&after, "deploystack_blob_cache_enabled"), 1.0);
    let blob_delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        blob_delta("deploystack_blob_cache_misses_total"),
        1.0,
        "{after}"
    );
    assert_eq!(
        blob_delta("deploystack_blob_cache_hits_total"),
        0.0,
        "{after}"
    );
    let ratio = sample(&after, "deploystack_cache_hit_ratio");
    assert!((0.0..=1.0).contains(&ratio), "{after}");
    assert_eq!(sample(&after, "deploystack_queue_up"), 1.0);
    for state in ["waiting", "in_flight", "dead"] {
        let series = format!("deploystack_queue_depth{{state=\"{state}\"}}");
        assert_eq!(sample(&after, &series), 0.0, "{after}");
    }
}

#[tokio::test]
async fn metrics_say_when_the_cache_is_off() {
    let server = Server::start_with(&[("DEPLOYSTACK_CACHE_MAX_BYTES", "0")]).await;
    let text = scrape(&server).await;
    assert_eq!(sample(&text, "deploystack_cache_enabled"), 0.0);
    assert!(!text.contains("deploystack_cache_hits_total"), "{text}");
    assert_eq!(sample(&text, "deploystack_queue_up"), 1.0);
}

/// Open connections per serve thread, from a scrape.
async fn connections_per_thread(server: &Server) -> Vec<f64> {
    let text = scrape(server).await;
    (0..2)
        .map(|thread| {
            sample(
                &text,
                &format!("deploystack_http_connections{{thread=\"{thread}\"}}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn connections_are_spread_evenly_over_serve_threads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Which thread accepts a connection is the kernel's choice; the balancer evens it out.
    let server = Server::start_with(&[("DEPLOYSTACK_SERVE_THREADS", "2")]).await;
    // A burst of connections, as a load generator or a browser opening many at once makes:
    // whichever thread the kernel wakes first would accept most of them.
    let address = server.address().to_owned();
    let connects = (0..40).map(|_| tokio::net::TcpStream::connect(address.as_str()));
    let mut streams: Vec<_> = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .map(|stream| stream.expect("connect"))
        .collect();
    // One keep-alive request each, answered, so every connection is being served.
    for stream in &mut streams {
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
    }

    let open = connections_per_thread(&server).await;
    let total: f64 = open.iter().sum();
    assert!(total >= 40.0, "{open:?}");
    assert!((open[0] - open[1]).abs() <= 2.0, "uneven: {open:?}");

    // Closed connections leave the counts.
    drop(streams);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let open = connections_per_thread(&server).await;
        if open.iter().sum::<f64>() <= 2.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections still counted: {open:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_single_serve_thread_is_a_thread_of_its_own() {
    let server = Server::start_with(&[("DEPLOYSTACK_SERVE_THREADS", "1")]).await;
    assert_eq!(server.get("/healthz").await.status(), 200);
    let text = scrape(&server).await;
    assert!(
        sample(&text, "deploystack_http_connections{thread=\"0\"}") >= 1.0,
        "{text}"
    );
    assert!(!text.contains("thread=\"1\""), "{text}");
    // Serving does not share the API's runtime: one thread named for it, as with several.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap();
    let names: Vec<String> = tasks
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .collect();
    let serving = names.iter().filter(|name| name.starts_with("ds-serve-"));
    assert_eq!(serving.count(), 1, "{names:?}");
}

#[tokio::test]
async fn large_files_are_served_byte_for_byte_over_one_connection() {
    let server = Server::start().await;
    // Incompressible, so no compressed variant is chosen instead; above the 64 KiB up to
    // which bodies are kept with their prepared answer, below the hot-blob cache's 1 MiB
    // object limit.
    let large = noise(300 * 1024 + 7);
    let id = server
        .deploy_ready(zip_of(&[
            ("large.bin", large.as_slice()),
            ("index.html", b"<h1>small page</h1>".as_slice()),
        ]))
        .await;

    // One keep-alive connection: whole files, a small page, a range and a HEAD in turn, so
    // no body can leak into the answers around it.
    let get = |path: &str| server.client.get(server.url(&format!("/{id}/{path}")));
    for _ in 0..3 {
        let response = get("large.bin").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.unwrap().as_ref(), large.as_slice());
        let response = get("index.html").send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "<h1>small page</h1>");
    }
    let part = get("large.bin")
        .header("range", "bytes=70000-70009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &large[70000..70010]);
    let head = server
        .client
        .head(server.url(&format!("/{id}/large.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["content-length"],
        large.len().to_string().as_str()
    );
}

#[tokio::test]
async fn answers_are_counted_by_status_class() {
    let server = Server::start().await;
    let before = scrape(&server).await;
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(
        server
            .get("/0123456789abcdef0123456789abcdef/")
            .await
            .status(),
        404
    );
    let after = scrape(&server).await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    // The first scrape itself is a 2xx answered between the two.
    assert_eq!(
        delta("deploystack_http_responses_total{class=\"2xx\"}"),
        3.0
    );
    assert_eq!(
        delta("deploystack_http_responses_total{class=\"4xx\"}"),
        1.0
    );
    // The scrape that reads it is the one request in flight.
    assert_eq!(sample(&after, "deploystack_http_requests_in_flight"), 1.0);
}
