//! `Idempotency-Key`: a `POST` retried with the same key gets the first attempt's answer
//! instead of making a second deployment, project, domain or variable.
//!
//! The router applies this to its routes (see `crate::routes::router`); it is not a layer of
//! the outer stack because it needs the repository and only concerns the API.
//!
//! # The rules (as Stripe's API and the IETF `Idempotency-Key` draft)
//! - Only `POST` requests that carry the header are affected; a key is 1–255 visible ASCII
//!   characters (400 `invalid_idempotency_key` otherwise) and is scoped to the caller and
//!   the request's path: the token the request was authorized with (tokenless local
//!   requests share one scope), so two clients choosing the same key never see each other's
//!   answers.
//! - The first request with a key runs and its answer is kept for 24 hours. A retry with the
//!   same key and the same request (path, query, content type and body) gets that answer
//!   again, byte for byte, with `Idempotent-Replayed: true`.
//! - The same key with a different request is refused with 422 `idempotency_key_reused`.
//! - A retry while the first request still runs gets 409 `idempotency_key_in_use` with
//!   `Retry-After: 1`.
//! - Answers worth repeating are kept: every status below 500 except 408 and 429. A server
//!   error, a timeout or a request whose body did not arrive whole is not kept, so its retry
//!   runs again.
//!
//! # Why the request runs detached
//! A client that times out and disconnects is exactly the one that will retry. The request
//! is therefore run on a task of its own that finishes and records its answer even when the
//! connection is gone, so the retry finds the answer instead of a reservation nobody will
//! complete.
//!
//! # Why multipart boundaries are not part of the fingerprint
//! `curl -F` and most HTTP libraries choose a random boundary for every request they send, so
//! the same upload retried has different bytes. The fingerprint replaces the boundary by a
//! fixed token, in the content type and wherever it occurs in the body.
//!
//! # Why the body is hashed as the handler reads it
//! Uploads are large: the body streams to the handler through a tap that hashes it on the
//! way, so it is neither buffered nor written twice. A replay reads and hashes the body it
//! will not use, to tell a retry from a different request.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deploystack_core::model::ContentHash;
use deploystack_core::repository::idempotency::{IDEMPOTENCY_LOCK, IDEMPOTENCY_TTL};
use deploystack_core::repository::{IdempotencyKeys, Reservation, StoredAnswer};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::state::AppState;

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 255;
/// Most bytes of body the handler may leave unread for the request still to count as
/// received whole (multipart parsers stop at the closing boundary).
const MAX_UNREAD: usize = 64 * 1024;
/// Largest answer kept: create endpoints answer with one resource.
const MAX_ANSWER: usize = 1024 * 1024;
/// The response headers kept with an answer.
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(raw) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match parse_key(raw) {
        Ok(key) => key,
        Err(err) => return err.into_response(),
    };
    let scope = scope_of(&request);
    let keys: Arc<dyn IdempotencyKeys> = state.services.repository.clone();
    let reservation = match keys
        .reserve_idempotency_key(&scope, &key, IDEMPOTENCY_LOCK, IDEMPOTENCY_TTL)
        .await
    {
        Ok(reservation) => reservation,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let (parts, body) = request.into_parts();
    let fingerprint = Fingerprint::new(&parts);
    match reservation {
        Reservation::InProgress => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still running; retry when it has answered",
        )
        .retry_after(1)
        .into_response(),
        Reservation::Completed {
            fingerprint: first,
            answer,
        } => {
            let limit = state.services.config.max_upload_bytes;
            match fingerprint.of_whole(body, limit).await {
                Ok(this) if this == first => replay(answer),
                Ok(_) | Err(Unread::TooLarge) => reused().into_response(),
                Err(Unread::Failed) => body_failed().into_response(),
            }
        }
        Reservation::Fresh { token } => {
            let held = Held {
                keys,
                scope,
                key,
                token,
            };
            let request = Request::from_parts(parts, body);
            // Detached: see the module docs.
            let run = tokio::spawn(run_and_keep(held, fingerprint, request, next));
            match run.await {
                Ok(response) => response,
                Err(err) => ApiError::internal(format!("an idempotent request failed: {err}"))
                    .into_response(),
            }
        }
    }
}

/// Where a key is looked up: the caller (see the module docs) and the path. The `auth` layer
/// runs first, so a request's token is known here.
fn scope_of(request: &Request) -> String {
    let caller = match request
        .extensions()
        .get::<Access>()
        .and_then(|access| access.token.as_ref())
    {
        Some(token) => format!("token:{}", token.id),
        None => "local".to_owned(),
    };
    format!("{caller} POST {}", request.uri().path())
}

/// The reservation a fresh request holds.
struct Held {
    keys: Arc<dyn IdempotencyKeys>,
    scope: String,
    key: String,
    token: String,
}

impl Held {
    /// Give the key back, so a retry runs the request again.
    async fn release(&self) {
        if let Err(err) = self
            .keys
            .release_idempotency_key(&self.scope, &self.key, &self.token)
            .await
        {
            tracing::warn!(error = %err, "could not release an idempotency key");
        }
    }
}

/// Run the request with its body tapped, then keep its answer under the key or release it.
async fn run_and_keep(
    held: Held,
    fingerprint: Fingerprint,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let tap = Arc::new(Mutex::new(Tap {
        body: Some(body),
        fingerprint: Some(fingerprint),
        ended: false,
        failed: false,
    }));
    let request = Request::from_parts(parts, Body::new(TapBody(Arc::clone(&tap))));
    let response = next.run(request).await;
    let fingerprint = finish_reading(&tap).await;
    let status = response.status();
    let worth_keeping = status.as_u16() < 500
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS;
    let Some(fingerprint) = fingerprint.filter(|_| worth_keeping) else {
        held.release().await;
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(body) => body,
        Err(err) => {
            held.release().await;
            return ApiError::internal(format!("an idempotent answer could not be kept: {err}"))
                .into_response();
        }
    };
    let answer = StoredAnswer {
        status: status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    if let Err(err) = held
        .keys
        .complete_idempotency_key(&held.scope, &held.key, &held.token, &fingerprint, &answer)
        .await
    {
        // The request did its work; only a retry will not find its answer.
        tracing::warn!(error = %err, "could not keep the answer of an idempotent request");
        held.release().await;
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The first answer again.
fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used for a different request in the last 24 hours; send a new key with a new request",
    )
}

fn body_failed() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "body_incomplete",
        "the request body did not arrive whole; send it again",
    )
}

/// The key, if it is one.
fn parse_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_BYTES
        || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters, such as a UUID"
            ),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Why a body could not be hashed whole.
#[derive(Debug, PartialEq, Eq)]
enum Unread {
    /// Larger than any request that could have been kept.
    TooLarge,
    /// The client stopped sending or the read failed.
    Failed,
}

/// The hash that tells a retry from a different request: method, path, query, content type
/// and body, with a multipart boundary replaced by a fixed token.
struct Fingerprint {
    hasher: Sha256,
    /// The multipart boundary, as it appears in the body (`--` and the boundary).
    boundary: Option<Vec<u8>>,
    /// Body bytes not hashed yet because a boundary may start in them.
    pending: Vec<u8>,
}

impl Fingerprint {
    /// Start with the request's head.
    fn new(parts: &Parts) -> Self {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let boundary = multer::parse_boundary(content_type).ok();
        let mut hasher = Sha256::new();
        for field in [
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or_default(),
        ] {
            hasher.update(field.as_bytes());
            hasher.update([0]);
        }
        match &boundary {
            Some(boundary) => {
                hasher.update(content_type.replace(boundary.as_str(), "\0boundary\0"))
            }
            None => hasher.update(content_type),
        }
        hasher.update([0]);
        Self {
            hasher,
            boundary: boundary.map(|b| format!("--{b}").into_bytes()),
            pending: Vec::new(),
        }
    }

    /// Hash the next piece of the body.
    fn feed(&mut self, data: &[u8]) {
        let Some(boundary) = &self.boundary else {
            self.hasher.update(data);
            return;
        };
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(at) = find(&self.pending[start..], boundary) {
            self.hasher.update(&self.pending[start..start + at]);
            self.hasher.update(b"\0boundary\0");
            start += at + boundary.len();
        }
        // What is left may hold the beginning of a boundary: keep its tail for the next piece.
        let keep = (boundary.len() - 1).min(self.pending.len() - start);
        let hash_to = self.pending.len() - keep;
        self.hasher.update(&self.pending[start..hash_to]);
        self.pending.drain(..hash_to);
    }

    /// The hash of everything fed.
    fn finish(mut self) -> ContentHash {
        let rest = std::mem::take(&mut self.pending);
        self.hasher.update(&rest);
        ContentHash::from_bytes(self.hasher.finalize().into())
    }

    /// The hash of the whole of `body` (at most `limit` bytes).
    async fn of_whole(mut self, mut body: Body, limit: u64) -> Result<ContentHash, Unread> {
        let mut seen: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Unread::Failed)?;
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > limit {
                    return Err(Unread::TooLarge);
                }
                self.feed(data);
            }
        }
        Ok(self.finish())
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The request body as the handler reads it, with the fingerprint taken on the way. Shared
/// with the middleware, which reads what the handler left once it has answered.
struct Tap {
    /// `None` once the middleware took it back.
    body: Option<Body>,
    /// `None` once finished.
    fingerprint: Option<Fingerprint>,
    /// The body was read to its end.
    ended: bool,
    /// Reading it failed.
    failed: bool,
}

fn lock(tap: &Mutex<Tap>) -> MutexGuard<'_, Tap> {
    tap.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The fingerprint of the whole body, after reading what the handler left unread; `None`
/// when the body did not arrive whole (or more than [`MAX_UNREAD`] was left).
async fn finish_reading(tap: &Mutex<Tap>) -> Option<ContentHash> {
    let (body, mut fingerprint) = {
        let mut tap = lock(tap);
        if tap.failed {
            return None;
        }
        (tap.body.take(), tap.fingerprint.take()?)
    };
    if let Some(mut body) = body {
        let mut unread = 0;
        while let Some(frame) = body.frame().await {
            let data = frame.ok()?.into_data().unwrap_or_default();
            unread += data.len();
            if unread > MAX_UNREAD {
                return None;
            }
            fingerprint.feed(&data);
        }
    }
    Some(fingerprint.finish())
}

/// The handler's end of a [`Tap`].
struct TapBody(Arc<Mutex<Tap>>);

impl hyper::body::Body for TapBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut guard = lock(&self.0);
        let tap = &mut *guard;
        let Some(body) = tap.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(fingerprint)) =
                    (frame.data_ref(), tap.fingerprint.as_mut())
                {
                    fingerprint.feed(data);
                }
            }
            Poll::Ready(Some(Err(_))) => tap.failed = true,
            Poll::Ready(None) => tap.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let tap = lock(&self.0);
        tap.ended || tap.body.as_ref().is_none_or(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.0)
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request as HttpRequest;
    use proptest::prelude::*;

    use super::*;

    fn parts(content_type: &str, uri: &str) -> Parts {
        HttpRequest::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn multipart(boundary: &str, file: &[u8]) -> Vec<u8> {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site.zip\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    }

    fn fingerprint_in_pieces(content_type: &str, body: &[u8], piece: usize) -> ContentHash {
        let mut fingerprint = Fingerprint::new(&parts(content_type, "/api/v1/deployments"));
        for chunk in body.chunks(piece.max(1)) {
            fingerprint.feed(chunk);
        }
        fingerprint.finish()
    }

    #[test]
    fn the_same_upload_with_another_boundary_has_the_same_fingerprint() {
        let file = b"PK\x03\x04 the archive";
        let one = fingerprint_in_pieces(
            "multipart/form-data; boundary=------abc123",
            &multipart("------abc123", file),
            7,
        );
        let two = fingerprint_in_pieces(
            "multipart/form-data; boundary=xyz-987654",
            &multipart("xyz-987654", file),
            3,
        );
        assert_eq!(one, two);
        let other = fingerprint_in_pieces(
            "multipart/form-data; boundary=xyz-987654",
            &multipart("xyz-987654", b"PK\x03\x04 another archive"),
            3,
        );
        assert_ne!(one, other);
    }

    #[test]
    fn path_query_and_content_type_are_part_of_the_fingerprint() {
        let body = br#"{"name":"site"}"#;
        let finish = |content_type: &str, uri: &str| {
            let mut fingerprint = Fingerprint::new(&parts(content_type, uri));
            fingerprint.feed(body);
            fingerprint.finish()
        };
        let base = finish("application/json", "/api/v1/projects");
        assert_eq!(base, finish("application/json", "/api/v1/projects"));
        assert_ne!(base, finish("application/json", "/api/v1/projects?x=1"));
        assert_ne!(base, finish("text/plain", "/api/v1/projects"));
        assert_ne!(base, finish("application/json", "/api/v1/other"));
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        for good in ["a", "3f2a-uuid-like", &"k".repeat(MAX_KEY_BYTES)] {
            assert!(
                parse_key(&HeaderValue::from_str(good).unwrap()).is_ok(),
                "{good}"
            );
        }
        for bad in ["", "has space", &"k".repeat(MAX_KEY_BYTES + 1)] {
            let err = parse_key(&HeaderValue::from_str(bad).unwrap()).unwrap_err();
            assert_eq!(err.code, "invalid_idempotency_key", "{bad:?}");
        }
    }

    proptest! {
        /// However the body is cut into pieces, the fingerprint is the same.
        #[test]
        fn pieces_do_not_change_the_fingerprint(
            file in proptest::collection::vec(any::<u8>(), 0..400),
            piece in 1usize..64,
        ) {
            let content_type = "multipart/form-data; boundary=b0undary";
            let body = multipart("b0undary", &file);
            prop_assert_eq!(
                fingerprint_in_pieces(content_type, &body, piece),
                fingerprint_in_pieces(content_type, &body, body.len())
            );
        }
    }
}
