//! The server's limits against hostile clients: slow headers, huge headers, huge targets and
//! connection floods. Each test configures the limit small and proves it holds.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Server, raw_get, zip_of};

/// Send `request` and read until the server closes; `None` if nothing came within `within`.
async fn exchange(address: &str, request: &[u8], within: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may close while we still write an oversized head; the answer still counts.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_slowloris_client_is_disconnected() {
    let server = Server::start_with(&[("DEPLOYSTACK_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // One header line every 300 ms: each write is "activity", but the head never completes.
    let closed = async {
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let line = format!("X-Slow-{i}: a\r\n");
            if stream.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 256];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await
            {
                return;
            }
        }
        panic!("the slow client was still connected after 30 s");
    };
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("the slow client was not disconnected within 20 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the timeout: {elapsed:?}"
    );
    // A prompt client is still served.
    let (status, _) = raw_get(server.address(), "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = Server::start_with(&[("DEPLOYSTACK_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.address()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the idle connection was not closed within 10 s")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn a_header_block_over_the_limit_gets_431() {
    let server = Server::start_with(&[("DEPLOYSTACK_MAX_HEADER_BYTES", "4096")]).await;
    let address = server.address();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(5000)
    );
    let answer = exchange(address, request.as_bytes(), Duration::from_secs(10))
        .await
        .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Many small headers add up the same way.
    let mut request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n");
    for i in 0..60 {
        request.push_str(&format!("X-H{i}: {}\r\n", "b".repeat(80)));
    }
    request.push_str("\r\n");
    let answer = exchange(address, request.as_bytes(), Duration::from_secs(10))
        .await
        .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Just under the limit is fine.
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(3000)
    );
    let answer = exchange(address, request.as_bytes(), Duration::from_secs(10))
        .await
        .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn overlong_targets_get_414_everywhere() {
    let server = Server::start().await;
    let id = server
        .deploy_ready(zip_of(&[("index.html", b"hello")]))
        .await;
    let address = server.address();
    let long = "a".repeat(5000);
    for path in [
        format!("/{long}"),
        format!("/{id}/{long}"),
        format!("/api/v1/deployments/{long}"),
        format!("/healthz?{}", "q".repeat(9000)),
    ] {
        let (status, _) = raw_get(address, &path).await;
        assert_eq!(status, 414, "{}…", &path[..40]);
    }
    // On a deployment host too.
    let request =
        format!("GET /{long} HTTP/1.1\r\nHost: {id}.localhost\r\nConnection: close\r\n\r\n");
    let answer = exchange(address, request.as_bytes(), Duration::from_secs(10))
        .await
        .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
}

#[tokio::test]
async fn the_connection_limit_holds() {
    const LIMIT: usize = 3;
    let server = Server::start_with(&[
        ("DEPLOYSTACK_MAX_CONNECTIONS", "3"),
        // Long enough that held connections stay open for the whole test.
        ("DEPLOYSTACK_HEADER_READ_TIMEOUT_SECS", "60"),
    ])
    .await;
    let address = server.address().to_owned();
    // Hold LIMIT connections, each proven served (keep-alive, so they stay open).
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a connection under the limit was not served")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    // Two more: the kernel completes the handshake, but the server does not serve them.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        waiting.push(stream);
    }
    for stream in &mut waiting {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(700), stream.read(&mut buf)).await;
        assert!(read.is_err(), "a connection over the limit was served");
    }
    // Closing held connections lets the waiting ones in, in order.
    drop(held.pop());
    drop(held.pop());
    for stream in &mut waiting {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("a waiting connection was not served after slots freed")
            .unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
}
