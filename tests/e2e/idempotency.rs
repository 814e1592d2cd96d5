//! `Idempotency-Key`: what a system that retries its create requests relies on. A retry of
//! an upload gets the first answer and makes no second deployment, even though the HTTP
//! client picked a new multipart boundary; the same key with another archive is refused;
//! a retry while the first attempt still runs is told to wait.

use std::time::Duration;

use serde_json::Value;

use crate::support::{RawConnection, Server, zip_of};

fn site(text: &str) -> Vec<u8> {
    zip_of(&[("index.html", text.as_bytes())])
}

/// Upload `zip` to the API with `key`; the status, the replay header and the JSON body.
async fn upload(server: &Server, key: &str, zip: Vec<u8>) -> (u16, Option<String>, Value) {
    // A new form, so reqwest picks a new random boundary, as a retrying client's library does.
    let part = reqwest::multipart::Part::bytes(zip).file_name("site.zip");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/deployments"))
        .header("Idempotency-Key", key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        replayed,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn deployment_count(server: &Server) -> usize {
    let (status, list) = server.get_json("/api/v1/deployments?limit=100").await;
    assert_eq!(status, 200);
    list["deployments"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_upload_gets_the_first_answer_and_makes_no_second_deployment() {
    let server = Server::start().await;
    let (status, replayed, first) = upload(&server, "deploy-1", site("<h1>one</h1>")).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(replayed, None);
    let (status, replayed, again) = upload(&server, "deploy-1", site("<h1>one</h1>")).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again, first, "the retry is answered with the first answer");
    assert_eq!(deployment_count(&server).await, 1);

    // Without a key, or with another, the same archive is a new deployment.
    let (status, _, other) = upload(&server, "deploy-2", site("<h1>one</h1>")).await;
    assert_eq!(status, 202);
    assert_ne!(other["id"], first["id"]);
    server.deploy(site("<h1>one</h1>")).await;
    assert_eq!(deployment_count(&server).await, 3);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let server = Server::start().await;
    let (status, _, _) = upload(&server, "key", site("<h1>one</h1>")).await;
    assert_eq!(status, 202);
    let (status, _, body) = upload(&server, "key", site("<h1>two</h1>")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(deployment_count(&server).await, 1);

    // A key is scoped to its endpoint: the same key on /deploy is another request.
    let part = reqwest::multipart::Part::bytes(site("<h1>two</h1>")).file_name("site.zip");
    let response = reqwest::Client::new()
        .post(server.url("/deploy"))
        .header("Idempotency-Key", "key")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_malformed_key_is_a_400() {
    let server = Server::start().await;
    for key in ["has space", &"k".repeat(256)] {
        let (status, _, body) = upload(&server, key, site("<h1>x</h1>")).await;
        assert_eq!(status, 400, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_idempotency_key");
    }
    assert_eq!(deployment_count(&server).await, 0);
}

/// A client error is an answer too: the retry of a refused upload is refused the same way
/// without being processed again.
#[tokio::test]
async fn a_refused_request_is_replayed_as_refused() {
    let server = Server::start().await;
    let (status, replayed, first) = upload(&server, "bad", b"not a zip".to_vec()).await;
    assert_eq!(status, 400, "{first}");
    assert_eq!(replayed, None);
    let (status, replayed, again) = upload(&server, "bad", b"not a zip".to_vec()).await;
    assert_eq!((status, replayed.as_deref()), (400, Some("true")));
    assert_eq!(again, first);
}

#[tokio::test]
async fn a_retry_while_the_first_attempt_runs_is_told_to_wait() {
    let server = Server::start().await;
    // On a loaded machine a retry may reach the server before the first attempt's head has
    // been read, and take the key; that round checks nothing and is played again.
    for round in 0..5 {
        if retry_while_running(&server, &format!("slow-{round}")).await {
            return;
        }
    }
    panic!("the first attempt never held its key");
}

/// One round: `false` if the first attempt did not get to hold `key`.
async fn retry_while_running(server: &Server, key: &str) -> bool {
    let address = server.address().to_owned();
    let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site.zip\"\r\n\r\nnot a zip\r\n--b--\r\n";
    let head = format!(
        "POST /api/v1/deployments HTTP/1.1\r\nHost: {address}\r\nIdempotency-Key: {key}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The first attempt sends its head and half its body, then waits.
    let mut first = RawConnection::open(&address).await;
    first.send(&head).await;
    let (sent, rest) = body.split_at(body.len() / 2);
    first.send(sent).await;

    // The retry arrives meanwhile. It sends its head only: should it come first after all
    // and take the key, it gets no answer, gives up (which releases the key) and tries
    // again, so the check does not depend on which connection the server reads first.
    let mut retry = None;
    for _ in 0..50 {
        let mut connection = RawConnection::open(&address).await;
        connection
            .send(&format!(
                "POST /api/v1/deployments HTTP/1.1\r\nHost: {address}\r\nIdempotency-Key: {key}\r\n\
                 Content-Type: multipart/form-data; boundary=c\r\nContent-Length: 10\r\n\r\n"
            ))
            .await;
        let waited = Duration::from_secs(2);
        if let Ok(answer) = tokio::time::timeout(waited, connection.answer(false)).await {
            assert_eq!(
                answer.status,
                409,
                "{:?}",
                String::from_utf8_lossy(&answer.body)
            );
            retry = Some(answer);
            break;
        }
    }
    let retry = retry.expect("the retry was never told the first attempt is running");
    assert_eq!(retry.field("retry-after"), Some("1"));
    let error: Value = serde_json::from_slice(&retry.body).unwrap();
    assert_eq!(error["error"]["code"], "idempotency_key_in_use");

    // The first attempt finishes and gets its answer (not a zip: 400)...
    first.send(rest).await;
    let answer = first.answer(false).await;
    if answer.status == 409 {
        // A retry took the key before this attempt's head was read.
        return false;
    }
    assert_eq!(answer.status, 400);
    // ... which the next retry with the same request gets again.
    let mut again = RawConnection::open(&address).await;
    again
        .send(&format!(
            "{}{body}",
            head.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
        ))
        .await;
    let replay = again.answer(false).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.field("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, answer.body);
    true
}
