//! Serving over raw keep-alive connections: every kind of answer (200, 304, 206, 416, HEAD,
//! OPTIONS, redirects, 404) one after another and pipelined in one write, a warm answer (from
//! the prepared answer) the same as the cold one, a request with a body followed by another
//! in the same write, and `Connection: close` honoured.

use crate::support::{RawConnection as Connection, Server, zip_of};

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n")
}

async fn site(server: &Server) -> String {
    let page = "<!doctype html><p>a page kept warm</p>".repeat(40);
    server
        .deploy_ready(zip_of(&[
            ("index.html", page.as_bytes()),
            ("docs/index.html", b"<h1>docs</h1>".as_slice()),
            ("404.html", b"<h1>custom not found</h1>".as_slice()),
            ("_headers", b"/*\n  X-Site: kept\n".as_slice()),
            ("_redirects", b"/old /docs/ 302\n".as_slice()),
        ]))
        .await
}

#[tokio::test]
async fn warm_answers_are_the_cold_answers() {
    let server = Server::start().await;
    let id = site(&server).await;
    // A site without a `404.html` of its own answers with the platform's page.
    let bare = server
        .deploy_ready(zip_of(&[("index.html", b"bare".as_slice())]))
        .await;
    let mut connection = Connection::open(server.address()).await;
    for (path, extra, status) in [
        (format!("/{id}/"), "", 200),
        (format!("/{id}/"), "Accept-Encoding: gzip\r\n", 200),
        (format!("/{id}/"), "Accept-Encoding: br, gzip\r\n", 200),
        (format!("/{id}/missing/page"), "", 404),
        (format!("/{bare}/missing/page"), "", 404),
    ] {
        // The first answer is built in full and kept; the next two are answered from it.
        connection.send(&get(&path, extra)).await;
        let cold = connection.answer(false).await;
        assert_eq!(cold.status, status, "{path} {extra}");
        let own_site = path.starts_with(&format!("/{id}/"));
        assert_eq!(cold.field("x-site").is_some(), own_site, "{path}");
        for _ in 0..2 {
            connection.send(&get(&path, extra)).await;
            let warm = connection.answer(false).await;
            assert_eq!(warm.fields, cold.fields, "{path} {extra}");
            assert_eq!(warm.body, cold.body, "{path} {extra}");
        }
        connection
            .send(&format!(
                "HEAD {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n"
            ))
            .await;
        let head = connection.answer(true).await;
        assert_eq!(head.status, status);
        assert_eq!(head.fields, cold.fields, "HEAD {path} {extra}");

        // The same request with an (empty) body, on a connection of its own, is answered the
        // same.
        let mut other = Connection::open(server.address()).await;
        other
            .send(&get(&path, &format!("{extra}Content-Length: 0\r\n")))
            .await;
        let with_body = other.answer(false).await;
        assert_eq!(with_body.status, status);
        assert_eq!(with_body.fields, cold.fields, "with a body: {path} {extra}");
        assert_eq!(with_body.body, cold.body);
    }
    let gzip = {
        connection
            .send(&get(&format!("/{id}/"), "Accept-Encoding: gzip\r\n"))
            .await;
        connection.answer(false).await
    };
    assert_eq!(gzip.field("content-encoding"), Some("gzip"));
    assert_eq!(gzip.field("vary"), Some("accept-encoding"));
    // A conditional request is not plain: it gets its 304, not the kept 200.
    let etag = gzip.field("etag").unwrap().to_owned();
    connection
        .send(&get(
            &format!("/{id}/"),
            &format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n"),
        ))
        .await;
    let revalidated = connection.answer(true).await;
    assert_eq!(revalidated.status, 304);
    assert_eq!(revalidated.field("etag"), Some(etag.as_str()));
}

/// The requests of [`every_kind_of_answer`] for site `id`, and the status each gets.
fn every_kind_of_request(id: &str, etag: &str) -> Vec<(String, u16, bool)> {
    let raw = |method: &str, path: &str, extra: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n")
    };
    vec![
        (get(&format!("/{id}/"), ""), 200, false),
        (
            get(&format!("/{id}/"), &format!("If-None-Match: {etag}\r\n")),
            304,
            true,
        ),
        (get(&format!("/{id}/"), "Range: bytes=0-9\r\n"), 206, false),
        (
            get(&format!("/{id}/"), "Range: bytes=999999-\r\n"),
            416,
            false,
        ),
        (raw("HEAD", &format!("/{id}/"), ""), 200, true),
        (raw("OPTIONS", &format!("/{id}/"), ""), 204, true),
        (get(&format!("/{id}/docs"), ""), 301, false),
        (get(&format!("/{id}/old"), ""), 302, false),
        (get(&format!("/{id}/nothing/here"), ""), 404, false),
        (get(&format!("/{id}/docs/"), ""), 200, false),
    ]
}

#[tokio::test]
async fn every_kind_of_answer_over_keep_alive_and_pipelined() {
    let server = Server::start().await;
    let id = site(&server).await;
    let mut connection = Connection::open(server.address()).await;
    connection.send(&get(&format!("/{id}/"), "")).await;
    let page = connection.answer(false).await;
    let etag = page.field("etag").unwrap().to_owned();

    // One at a time on one connection…
    let requests = every_kind_of_request(&id, &etag);
    let mut one_by_one = Vec::new();
    for (request, status, head_only) in &requests {
        connection.send(request).await;
        let answer = connection.answer(*head_only).await;
        assert_eq!(answer.status, *status, "{request}: {answer:?}");
        one_by_one.push(answer);
    }
    assert_eq!(one_by_one[0].body, page.body);
    assert_eq!(one_by_one[2].body, &page.body[..10]);
    assert_eq!(
        one_by_one[2].field("content-range"),
        Some(format!("bytes 0-9/{}", page.body.len()).as_str())
    );
    assert_eq!(
        one_by_one[3].field("content-range"),
        Some(format!("bytes */{}", page.body.len()).as_str())
    );
    assert_eq!(
        one_by_one[4].field("content-length"),
        Some(page.body.len().to_string().as_str())
    );
    assert_eq!(one_by_one[5].field("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(one_by_one[6].field("location"), Some("./docs/"));
    assert_eq!(
        one_by_one[7].field("location"),
        Some(format!("/{id}/docs/").as_str())
    );
    assert_eq!(one_by_one[8].body, b"<h1>custom not found</h1>");
    assert_eq!(one_by_one[9].body, b"<h1>docs</h1>");

    // …and all in one write, on a new connection: the same answers, in order.
    let mut pipelined = Connection::open(server.address()).await;
    let all: String = requests
        .iter()
        .map(|(request, _, _)| request.as_str())
        .collect();
    pipelined.send(&all).await;
    for ((request, _, head_only), alone) in requests.iter().zip(&one_by_one) {
        let answer = pipelined.answer(*head_only).await;
        assert_eq!(answer.status, alone.status, "{request}");
        assert_eq!(answer.fields, alone.fields, "{request}");
        assert_eq!(answer.body, alone.body, "{request}");
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = Server::start().await;
    let id = site(&server).await;
    let mut connection = Connection::open(server.address()).await;
    let pipelined = [
        get(&format!("/{id}/"), ""),
        get(&format!("/{id}/nothing"), ""),
        get("/healthz", ""),
        get(&format!("/{id}/index.html"), ""),
    ]
    .concat();
    connection.send(&pipelined).await;
    let statuses = [200, 404, 200, 200];
    let mut answers = Vec::new();
    for status in statuses {
        let answer = connection.answer(false).await;
        assert_eq!(answer.status, status, "{answer:?}");
        answers.push(answer);
    }
    assert_eq!(answers[1].body, b"<h1>custom not found</h1>");
    assert_eq!(answers[0].body, answers[3].body);
}

#[tokio::test]
async fn a_request_with_a_body_and_one_behind_it_in_the_same_write() {
    let server = Server::start().await;
    let id = site(&server).await;
    let mut connection = Connection::open(server.address()).await;
    connection.send(&get(&format!("/{id}/"), "")).await;
    let page = connection.answer(false).await;
    assert_eq!(page.status, 200);
    // A POST with a body, and a GET behind it in the same write: both are answered, in order.
    let post = format!(
        "POST /{id}/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello{}",
        get(&format!("/{id}/"), "")
    );
    connection.send(&post).await;
    let refused = connection.answer(false).await;
    assert_eq!(refused.status, 405);
    assert_eq!(refused.field("allow"), Some("GET, HEAD, OPTIONS"));
    let again = connection.answer(false).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, page.body);
    // The API answers on the same connection too.
    connection.send(&get("/healthz", "")).await;
    assert_eq!(connection.answer(false).await.status, 200);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let server = Server::start().await;
    let id = site(&server).await;
    let mut connection = Connection::open(server.address()).await;
    connection.send(&get(&format!("/{id}/"), "")).await;
    let first = connection.answer(false).await;
    assert_eq!(first.field("connection"), None);
    connection
        .send(&get(&format!("/{id}/"), "Connection: close\r\n"))
        .await;
    let last = connection.answer(false).await;
    assert_eq!(last.status, 200);
    assert_eq!(last.field("connection"), Some("close"));
    assert!(
        connection.closed().await,
        "the server kept the connection open"
    );
}
