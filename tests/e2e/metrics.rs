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
    // The page's bytes: read from storage once, then from the hot-blob cache.
    assert_eq!(sample(&after, "deploystack_blob_cache_enabled"), 1.0);
    let blob_delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        blob_delta("deploystack_blob_cache_misses_total"),
        1.0,
        "{after}"
    );
    assert_eq!(
        blob_delta("deploystack_blob_cache_hits_total"),
        2.0,
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
async fn connections_are_spread_evenly_over_floating_serve_threads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Floating threads: which one accepts a connection is all that decides.
    let server = Server::start_with(&[
        ("DEPLOYSTACK_SERVE_THREADS", "2"),
        ("DEPLOYSTACK_SERVE_CPU_AFFINITY", "false"),
    ])
    .await;
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

/// The cores this process may run on, in ascending order.
fn allowed_cores() -> Vec<usize> {
    let set = rustix::thread::sched_getaffinity(None).expect("sched_getaffinity");
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect()
}

/// Each serve thread's `Cpus_allowed_list`, as `taskset -p` shows it, in thread order.
fn serve_thread_cores(pid: u32) -> Vec<String> {
    let mut threads: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let path = task.unwrap().path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let name = name.trim().strip_prefix("ds-serve-")?.to_owned();
            let status = std::fs::read_to_string(path.join("status")).ok()?;
            let cores = status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?
                .trim()
                .to_owned();
            Some((name, cores))
        })
        .collect();
    threads.sort();
    threads.into_iter().map(|(_, cores)| cores).collect()
}

/// Run `work` on a thread pinned to `core`, as a client on that core.
fn on_core<T: Send + 'static>(core: usize, work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let mut set = rustix::thread::CpuSet::new();
        set.set(core);
        rustix::thread::sched_setaffinity(None, &set).expect("pin the client");
        work()
    })
    .join()
    .unwrap()
}

/// One keep-alive request on `stream`, answered.
fn health_check(stream: &mut std::net::TcpStream, address: &str) {
    use std::io::{Read, Write};
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The whole answer, so the next request finds the connection idle.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.ends_with(b"}") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// A keep-alive connection to `address` opened from a thread pinned to `core`, with one
/// request answered.
fn connect_from_core(core: usize, address: &str) -> std::net::TcpStream {
    let address = address.to_owned();
    on_core(core, move || {
        let mut stream = std::net::TcpStream::connect(address.as_str()).unwrap();
        health_check(&mut stream, &address);
        stream
    })
}

#[tokio::test]
async fn serve_threads_are_pinned_and_serve_the_connections_of_their_core() {
    let server = Server::start_with(&[("DEPLOYSTACK_SERVE_THREADS", "2")]).await;
    let cores = allowed_cores();
    let pinned = serve_thread_cores(server.pid());
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    if cores.len() < 2 {
        // Pinning needs a core per thread; with one, both threads float on it.
        assert_eq!(pinned[0], pinned[1], "{pinned:?}");
        return;
    }
    assert_eq!(pinned, [cores[0].to_string(), cores[1].to_string()]);

    // A client on one core: on loopback its packets arrive on that core, so the serve
    // thread pinned there takes each of its connections. Clients alternate between the two
    // cores, starting on the core of the thread with fewer connections, so balance never
    // has a reason to overrule the core.
    let mut open = connections_per_thread(&server).await;
    let first = usize::from(open[1] < open[0]);
    let mut streams = Vec::new();
    for step in 0..6 {
        let thread = (first + step) % 2;
        streams.push(connect_from_core(cores[thread], server.address()));
        let now = connections_per_thread(&server).await;
        let mut expected = open.clone();
        expected[thread] += 1.0;
        assert_eq!(now, expected, "a client on core {}", cores[thread]);
        open = now;
    }
    drop(streams);
}

#[tokio::test]
async fn a_connection_follows_its_client_to_another_core() {
    let server = Server::start_with(&[("DEPLOYSTACK_SERVE_THREADS", "2")]).await;
    let cores = allowed_cores();
    if cores.len() < 2 {
        // Nothing is pinned on one core (see above), so there is nowhere to move.
        return;
    }
    let before = connections_per_thread(&server).await;
    let first = usize::from(before[1] < before[0]);
    let (from, to) = (first, 1 - first);
    let mut stream = connect_from_core(cores[from], server.address());
    let mut expected = before.clone();
    expected[from] += 1.0;
    assert_eq!(connections_per_thread(&server).await, expected);

    // The client goes on from the other core: after a few hundred requests there the
    // connection is served by that core's thread.
    let address = server.address().to_owned();
    let mut stream = on_core(cores[to], move || {
        for _ in 0..400 {
            health_check(&mut stream, &address);
        }
        stream
    });
    expected[from] -= 1.0;
    expected[to] += 1.0;
    assert_eq!(connections_per_thread(&server).await, expected);
    // And it still answers there.
    health_check(&mut stream, server.address());
}

#[tokio::test]
async fn serve_threads_float_when_affinity_is_off() {
    let server = Server::start_with(&[
        ("DEPLOYSTACK_SERVE_THREADS", "2"),
        ("DEPLOYSTACK_SERVE_CPU_AFFINITY", "false"),
    ])
    .await;
    let pinned = serve_thread_cores(server.pid());
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    // Each may run on every core the process may use, as the process itself.
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let process = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    assert_eq!(pinned, [process, process]);
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
async fn large_files_are_sent_from_their_files_byte_for_byte() {
    let server = Server::start().await;
    // Incompressible, so no compressed variant is chosen instead; above the 64 KiB from which
    // bodies leave with sendfile, below the hot-blob cache's 1 MiB object limit.
    let large = noise(300 * 1024 + 7);
    let id = server
        .deploy_ready(zip_of(&[
            ("large.bin", large.as_slice()),
            ("index.html", b"<h1>small page</h1>".as_slice()),
        ]))
        .await;
    let before = scrape(&server).await;

    // One keep-alive connection: whole files, a small page, a range and a HEAD in turn, so a
    // body sent from a file cannot leak into the answers around it.
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

    let after = scrape(&server).await;
    let sent = sample(&after, "deploystack_http_sendfile_bytes_total")
        - sample(&before, "deploystack_http_sendfile_bytes_total");
    // The three whole downloads, and nothing else: the page is small, the range and the
    // HEAD are not whole bodies.
    assert_eq!(sent, 3.0 * large.len() as f64, "{after}");
}
