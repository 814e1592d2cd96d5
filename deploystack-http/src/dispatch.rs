//! The application as one tower service, inside the middleware stack
//! (`crate::middleware`): request-target length, host validation, and dispatch to a
//! deployment's site or to the platform's router.
//!
//! ## Why before the router?
//! On a deployment's own host (`<deployment-id>.<base-domain>`), and on a project's
//! (`<project>.<base-domain>`, which resolves to its production deployment once, here, so
//! one request is always answered by one deployment), every path belongs to the
//! site: `/api/v1/deployments` there is a file of the site (or its 404), never the API, so a
//! tenant origin can never show platform pages or read platform answers. Deciding the host
//! after routing would let the API routes match first; deciding it here keeps the router
//! exactly the platform's surface.
//!
//! A deployment's host also answers `POST /_deploystack/login`, the login form of a protected
//! deployment (`routes::site::protection`), which needs the request body the site handler
//! never reads.
//!
//! A verified custom domain resolves here too: to its project's production, or to a
//! redirect answered here with the same path and query on the target domain.
//!
//! ## Why a path test before the router too?
//! Paths under `/<deployment-id>/` are the serving hot path and never an API route, so they
//! go straight to the site handler: matching them against the router's table and cloning the
//! router per request is measurable at tens of thousands of requests per second
//! (`benches/serving_vs_nginx.sh`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::Response;
use deploystack_core::services::hosts::{HostName, HostResolver, HostTarget};
use deploystack_core::services::serving::MAX_PATH_BYTES;
use tower_service::Service;

use crate::caller::Peer;
use crate::middleware::headers;
use crate::routes::{self, site};
use crate::state::AppState;

/// Longest request target (path and query) accepted, in bytes; longer ones get 414. Paths
/// alone are held to [`MAX_PATH_BYTES`].
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// The whole application as one request handler: cheap to clone, one per connection.
/// Middleware wraps it as a [`Service`]; see `crate::middleware`.
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
}

impl App {
    /// The application over `state`, with hosts resolved by `hosts`.
    pub fn new(state: AppState, hosts: Arc<dyn HostResolver>) -> Self {
        Self {
            inner: Arc::new(Inner {
                router: routes::router(state.clone()),
                state,
                hosts,
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
            return platform_page(&inner.state, StatusCode::URI_TOO_LONG, "414 URI Too Long\n");
        }
        let host = match request_host(request.uri(), request.headers()) {
            Ok(host) => host,
            Err(reason) => {
                return platform_page(
                    &inner.state,
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
                    return platform_page(
                        &inner.state,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "503 Service Unavailable\n\nTry again shortly.\n",
                    );
                }
            },
            // HTTP/1.0 clients may omit Host; they can only mean the platform.
            None => HostTarget::Platform,
        };
        match target {
            HostTarget::Deployment(id) => {
                // Only HTTP/1.0 requests lack a host, and they never resolve to a deployment.
                let host = host.as_ref().map_or("", HostName::as_str);
                let (parts, body) = request.into_parts();
                if parts.method == Method::POST && parts.uri.path() == site::protection::LOGIN_PATH
                {
                    let client = parts.extensions.get::<Peer>().map(|peer| peer.0.ip());
                    return site::protection::login(&inner.state, &id, host, client, body).await;
                }
                site::serve_host(
                    &inner.state,
                    &id,
                    host,
                    &parts.method,
                    &parts.uri,
                    &parts.headers,
                )
                .await
            }
            // The serving hot path skips the router, whose fallback this is anyway.
            HostTarget::Platform if routes::is_site_path(request.uri().path()) => {
                let (parts, _body) = request.into_parts();
                site::serve_path(&inner.state, &parts.method, &parts.uri, &parts.headers).await
            }
            HostTarget::Platform => {
                let mut request = request;
                // `vercel --api http://host/` asks for `//v13/deployments`.
                if let Some(uri) = routes::vercel::tolerate_doubled_slashes(request.uri()) {
                    *request.uri_mut() = uri;
                }
                match inner.router.clone().call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
            HostTarget::Redirect { to, status } => headers::add(
                &inner.state,
                domain_redirect(&inner.state, to.as_str(), status.code(), request.uri()),
            ),
            HostTarget::DomainNotReady => platform_page(
                &inner.state,
                StatusCode::NOT_FOUND,
                "404 Not Found\n\nThis domain is not verified yet, or redirects to a domain that is not: publish its TXT record (see GET /api/v1/projects/<project>/domains on the platform) and verify it.\n",
            ),
            HostTarget::NoProduction => platform_page(
                &inner.state,
                StatusCode::NOT_FOUND,
                "404 Not Found\n\nThis project has no production deployment yet: deploy with target=production, or promote a deployment.\n",
            ),
            // Also any variant a richer resolver adds later: unknown means not found.
            _ => platform_page(
                &inner.state,
                StatusCode::NOT_FOUND,
                "404 Not Found\n\nNo site is served at this host.\n",
            ),
        }
    }
}

impl Service<Request<Body>> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let app = self.clone();
        Box::pin(async move { Ok(app.handle(request).await) })
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("hosts", &self.inner.hosts)
            .finish_non_exhaustive()
    }
}

/// One of the platform's own text pages, with its security headers
/// (`crate::middleware::headers`): what this module answers before a site or route is chosen.
fn platform_page(state: &AppState, status: StatusCode, text: impl Into<Body>) -> Response {
    headers::add(state, site::page(status, text))
}

/// A custom domain's redirect: the same path and query on `to`, spelt with the public URL's
/// scheme and port (as every host-based address is). Never cached by a shared cache for
/// long: a redirect can be changed.
fn domain_redirect(state: &AppState, to: &str, status: u16, uri: &Uri) -> Response {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("{}{target}", state.origin_of(to));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::PERMANENT_REDIRECT);
    let mut response = site::page(status, format!("Redirecting to {location}\n"));
    match header::HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        // Only reachable with a target the request line itself could not carry.
        Err(_) => site::page(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
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
