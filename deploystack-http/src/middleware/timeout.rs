//! The request timeout: a request still unanswered after `request_timeout_secs` gets a 503
//! and frees its connection.
//!
//! ## Why not `tower_http::timeout::TimeoutLayer`?
//! It answers 408 Request Timeout with an empty body, which tells the client *it* was too
//! slow. Here the server was: everything but an upload is answered from the repository and
//! storage in milliseconds, so a request still waiting means a stuck dependency, and the
//! honest answer is 503 with the usual error body (JSON under `/api/`). Uploads stream a
//! large body from a possibly slow client and are left to their own limits: the body read
//! timeout (408) and the upload's overall time limit (`routes::upload`); so are blob uploads
//! (`PUT /api/v1/files/{sha256}`, `routes::files`) and the vercel CLI's `/v2/files`.
//!
//! The timer only measures the wait for the response head; a body that streams for as long
//! as a build runs (`logs?follow=true`) is not cut off by it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::routes::{self, site};

/// Answers 503 to requests that take longer than a limit; see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer {
    limit: Duration,
}

impl RequestTimeoutLayer {
    /// Requests (other than uploads) get at most `limit` to be answered.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (method, path) = (request.method(), request.uri().path());
        let upload = routes::is_upload(method, path) || routes::is_blob_upload(method, path);
        let api = routes::is_api_path(path) || routes::vercel::is_vercel_path(path);
        let limit = self.limit;
        let answer = self.inner.call(request);
        if upload {
            return Box::pin(answer);
        }
        Box::pin(async move {
            let mut answer = std::pin::pin!(answer);
            // A warm site path answers on the first poll; only an answer that has to wait
            // (for the repository or storage) needs a timer, so most requests skip
            // registering one.
            let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
            if let Poll::Ready(result) = first {
                return result;
            }
            match tokio::time::timeout(limit, answer).await {
                Ok(result) => result,
                Err(_) => Ok(too_long(api)),
            }
        })
    }
}

/// The answer to a request that took too long.
fn too_long(api: bool) -> Response {
    if api {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; try again shortly",
        )
        .into_response()
    } else {
        site::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable\n\nThe request took too long; try again shortly.\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn slow() -> RequestTimeout<
        impl Service<
            Request<Body>,
            Response = Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone,
    > {
        RequestTimeoutLayer::new(Duration::from_millis(20)).layer(tower::service_fn(
            |_: Request<Body>| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, std::convert::Infallible>(StatusCode::OK.into_response())
            },
        ))
    }

    #[tokio::test]
    async fn a_stuck_request_gets_503_and_json_under_the_api() {
        let site = Request::get("/0123456789abcdef0123456789abcdef/")
            .body(Body::empty())
            .unwrap();
        let response = slow().oneshot(site).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let api = Request::get("/api/v1/deployments")
            .body(Body::empty())
            .unwrap();
        let response = slow().oneshot(api).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["content-type"], "application/json");
    }

    #[tokio::test]
    async fn uploads_are_not_timed() {
        let upload = Request::post("/deploy").body(Body::empty()).unwrap();
        let response = slow().oneshot(upload).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
