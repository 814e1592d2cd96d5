//! What every request goes through before the router: request-target length, host
//! validation and dispatch, and the request timeout.
//!
//! ## Why before the router?
//! On a deployment's own host (`<deployment-id>.<base-domain>`) every path belongs to the
//! site: `/api/v1/deployments` there is a file of the site (or its 404), never the API, so a
//! tenant origin can never show platform pages or read platform answers. Deciding the host
//! after routing would let the API routes match first; deciding it here keeps the router
//! exactly the platform's surface.
//!
//! ## Why a path test before the router too?
//! Paths under `/<deployment-id>/` are the serving hot path and never an API route, so they
//! go straight to the site handler: matching them against the router's table and cloning the
//! router per request is measurable at tens of thousands of requests per second
//! (`benches/serving_vs_nginx.sh`).
//!
//! ## Why a request timeout that skips uploads?
//! Everything but an upload is answered from the repository and storage in milliseconds; a
//! request still waiting after `request_timeout_secs` means a stuck dependency, and the
//! connection is better freed with a 503. Uploads stream a large body from a possibly slow
//! client and enforce their own limits (`routes::upload`).

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use deploystack_core::services::hosts::{HostName, HostResolver, HostTarget};
use deploystack_core::services::serving::MAX_PATH_BYTES;
use tower_service::Service;

use crate::error::ApiError;
use crate::express::Express;
use crate::routes::{self, site};
use crate::state::AppState;

/// Longest request target (path and query) accepted, in bytes; longer ones get 414. Paths
/// alone are held to [`MAX_PATH_BYTES`].
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// The whole application as one request handler: cheap to clone, one per connection.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
    /// The platform's routes; only requests for the platform host reach them.
    router: Router,
    /// Which host serves what; see `deploystack_core::services::hosts`.
    hosts: Arc<dyn HostResolver>,
    /// Limit for requests that are not uploads.
    request_timeout: Duration,
}

impl App {
    /// The application over `state`, with hosts resolved by `hosts`.
    pub fn new(state: AppState, hosts: Arc<dyn HostResolver>) -> Self {
        let request_timeout = state.services.config.request_timeout();
        Self {
            inner: Arc::new(Inner {
                router: routes::router(state.clone()),
                state,
                hosts,
                request_timeout,
            }),
        }
    }

    /// What the handlers share.
    pub fn state(&self) -> &AppState {
        &self.inner.state
    }

    /// Answer one request.
    pub async fn handle(&self, request: Request<Body>) -> Response {
        let inner = &self.inner;
        if target_too_long(request.uri()) {
            return site::page(StatusCode::URI_TOO_LONG, "414 URI Too Long\n");
        }
        let host = match request_host(request.uri(), request.headers()) {
            Ok(host) => host,
            Err(reason) => {
                return site::page(
                    StatusCode::BAD_REQUEST,
                    format!("400 Bad Request\n\n{reason}.\n"),
                );
            }
        };
        let target = match &host {
            Some(host) => match inner.hosts.resolve(host).await {
                Ok(target) => target,
                Err(err) => {
                    tracing::error!(host = host.as_str(), error = %err, "cannot resolve a host");
                    return site::page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "503 Service Unavailable\n\nTry again shortly.\n",
                    );
                }
            },
            // HTTP/1.0 clients may omit Host; they can only mean the platform.
            None => HostTarget::Platform,
        };
        // Only the express lane can write a `Rendered` answer; see `crate::express`.
        let express = request.extensions().get::<Express>().is_some();
        match target {
            HostTarget::Deployment(id) => {
                let (parts, _body) = request.into_parts();
                // Boxed here and below: the serving future is a few kilobytes, and this one
                // would otherwise be copied each time the request's future moves.
                self.within(Box::pin(site::serve_host(
                    &inner.state,
                    &id,
                    &parts.method,
                    &parts.uri,
                    &parts.headers,
                    express,
                )))
                .await
            }
            // The serving hot path skips the router, whose fallback this is anyway.
            HostTarget::Platform if routes::is_site_path(request.uri().path()) => {
                let (parts, _body) = request.into_parts();
                self.within(Box::pin(site::serve_path(
                    &inner.state,
                    &parts.method,
                    &parts.uri,
                    &parts.headers,
                    express,
                )))
                .await
            }
            HostTarget::Platform => {
                let upload = routes::is_upload(request.method(), request.uri().path());
                let api = routes::is_api_path(request.uri().path());
                let mut router = inner.router.clone();
                let answer = async move {
                    match router.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                };
                if upload {
                    answer.await
                } else if api {
                    // Every answer under /api is JSON, this one too.
                    self.within_or(answer, || {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "timeout",
                            "the request took too long; try again shortly",
                        )
                        .into_response()
                    })
                    .await
                } else {
                    self.within(answer).await
                }
            }
            // Also any variant a richer resolver adds later: unknown means not found.
            _ => site::page(
                StatusCode::NOT_FOUND,
                "404 Not Found\n\nNo site is served at this host.\n",
            ),
        }
    }

    async fn within(&self, answer: impl Future<Output = Response>) -> Response {
        self.within_or(answer, || {
            site::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n\nThe request took too long; try again shortly.\n",
            )
        })
        .await
    }

    /// `answer`, or `timed_out()` once `request_timeout` has passed.
    async fn within_or(
        &self,
        answer: impl Future<Output = Response>,
        timed_out: impl FnOnce() -> Response,
    ) -> Response {
        // A warm site answers on the first poll; only an answer that has to wait (for the
        // repository or storage) is worth a timer.
        let mut answer = std::pin::pin!(answer);
        let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
        if let Poll::Ready(response) = first {
            return response;
        }
        match tokio::time::timeout(self.inner.request_timeout, answer).await {
            Ok(response) => response,
            Err(_) => timed_out(),
        }
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("hosts", &self.inner.hosts)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

fn target_too_long(uri: &Uri) -> bool {
    uri.path().len() > MAX_PATH_BYTES
        || uri
            .path_and_query()
            .is_some_and(|target| target.as_str().len() > MAX_TARGET_BYTES)
}

/// The validated host of a request: the authority of an absolute-form target, else the one
/// `Host` header. `Ok(None)` when there is neither.
fn request_host(uri: &Uri, headers: &HeaderMap) -> Result<Option<HostName>, &'static str> {
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err("more than one Host header");
    }
    let from_header = first
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|raw| HostName::parse(raw).ok())
                .ok_or("the Host header is not a valid host name")
        })
        .transpose()?;
    let from_target = uri
        .authority()
        .map(|authority| {
            HostName::parse(authority.as_str()).map_err(|_| "the request target's host is invalid")
        })
        .transpose()?;
    match (from_target, from_header) {
        // Two disagreeing hosts are how requests get routed differently by a proxy and by us.
        (Some(target), Some(header)) if target != header => {
            Err("the Host header differs from the request target's host")
        }
        (Some(host), _) | (None, Some(host)) => Ok(Some(host)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn host_of(target: &str, hosts: &[&str]) -> Result<Option<String>, &'static str> {
        let uri: Uri = target.parse().map_err(|_| "bad uri")?;
        let mut headers = HeaderMap::new();
        for host in hosts {
            headers.append(
                header::HOST,
                HeaderValue::from_str(host).map_err(|_| "bad")?,
            );
        }
        request_host(&uri, &headers).map(|h| h.map(|h| h.as_str().to_owned()))
    }

    #[test]
    fn the_host_comes_from_the_target_or_the_one_header() {
        assert_eq!(host_of("/", &[]), Ok(None));
        assert_eq!(
            host_of("/", &["A.Localhost:8000"]).unwrap().unwrap(),
            "a.localhost"
        );
        assert_eq!(
            host_of("http://a.localhost/x", &["a.localhost:80"])
                .unwrap()
                .unwrap(),
            "a.localhost"
        );
        assert!(host_of("http://a.localhost/x", &["b.localhost"]).is_err());
        assert!(host_of("/", &["a.localhost", "b.localhost"]).is_err());
        assert!(host_of("/", &["user@a.localhost"]).is_err());
        assert!(host_of("http://user@a.localhost/", &[]).is_err());
    }

    #[test]
    fn long_targets_are_refused() {
        let path = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(target_too_long(&path.parse().unwrap()));
        let query = format!("/?q={}", "a".repeat(MAX_TARGET_BYTES));
        assert!(target_too_long(&query.parse().unwrap()));
        assert!(!target_too_long(&"/a/b?c=d".parse().unwrap()));
    }
}
