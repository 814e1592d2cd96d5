//! The security headers of the platform's own answers — the API, `/deploy`, health, metrics,
//! the docs page and the platform's text pages: no framing (`X-Frame-Options: DENY`), no
//! `Referer` leaving with a token in a URL (`Referrer-Policy: no-referrer`), no content
//! sniffing (`X-Content-Type-Options: nosniff`), and `Strict-Transport-Security` when the
//! public URL is https.
//!
//! Sites keep the headers their own configuration sets: deployment hosts and path-based
//! sites never pass the router this layer wraps (`crate::dispatch`). A header a handler set
//! already is left as it is. The answers `crate::dispatch` gives itself before any site or
//! route is chosen (a malformed or overlong request, a host that serves nothing, a custom
//! domain's redirect) are the platform's too and get the same headers through [`add`].
//!
//! # Why no `includeSubDomains` in HSTS?
//! Deployment hosts are subdomains of the base domain, which need not be the platform's
//! domain nor served over https (a local `*.localhost` setup); the platform host's own
//! policy must not decide for them.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Every platform answer's headers, but HSTS.
const ALWAYS: [(HeaderName, HeaderValue); 3] = [
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
];

/// A year, the value HSTS preload lists ask for.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// The layer's function: see the module docs.
pub async fn platform(State(state): State<AppState>, request: Request, next: Next) -> Response {
    add(&state, next.run(request).await)
}

/// `response` with the platform's security headers it does not set itself.
pub fn add(state: &AppState, mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in ALWAYS {
        headers.entry(name).or_insert(value);
    }
    if state.public_url.starts_with("https://") {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HSTS);
    }
    response
}
