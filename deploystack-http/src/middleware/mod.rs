//! The one tower stack every request passes through, from the moment hyper has parsed its
//! head until its answer is ready.
//!
//! Outermost first:
//! 1. [`accounting`]: counts requests in flight and answers by status class for `/metrics`.
//! 2. `tower_http`'s request body timeout: a body that sends nothing for
//!    `body_read_timeout_secs` fails the read, which the upload routes answer with 408.
//! 3. [`timeout`]: a request (other than an upload) still unanswered after
//!    `request_timeout_secs` gets a 503.
//! 4. [`crate::dispatch::App`]: host validation and dispatch to the site or the router.
//!
//! Three middlewares sit inside the router instead, because they need the services and only
//! concern the platform host: [`auth`], which authenticates tokens and decides who may do
//! what (outermost, so nothing below runs for a refused request), then [`rate_limit`],
//! which counts API requests per caller and class and answers 429 past the limits, then
//! [`idempotency`], which makes a retried `POST` with an `Idempotency-Key` answer as the
//! first attempt did.
//! Around both, [`headers`] adds the security headers of the platform's own answers (sites
//! keep theirs: they never reach the router).
//!
//! ## Why one stack?
//! Whatever must happen to every request — authentication, rate limits, request ids, access
//! logs — becomes one more layer here and wraps serving, the API and uploads alike. hyper
//! parses and writes every request; nothing reaches the application beside this stack.

pub mod accounting;
pub mod auth;
pub mod headers;
pub mod idempotency;
pub mod rate_limit;
pub mod timeout;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::dispatch::App;

pub use accounting::{AccountingLayer, RequestStats};
pub use timeout::RequestTimeoutLayer;

/// The whole request stack, as the server clones it for each connection.
pub type Stack = BoxCloneSyncService<Request<Incoming>, Response, Infallible>;

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackSettings {
    /// Where the accounting layer counts.
    pub stats: Arc<RequestStats>,
    /// Longest a request other than an upload may take to be answered.
    pub request_timeout: Duration,
    /// Longest a request body may go without sending a byte.
    pub body_read_timeout: Duration,
}

/// Every layer, in order, around `app`.
pub fn stack(app: App, settings: StackSettings) -> Stack {
    let service = ServiceBuilder::new()
        .layer(AccountingLayer::new(settings.stats))
        .layer(RequestBodyTimeoutLayer::new(settings.body_read_timeout))
        .map_request(|request: Request<_>| request.map(Body::new))
        .layer(RequestTimeoutLayer::new(settings.request_timeout))
        .service(app);
    BoxCloneSyncService::new(service)
}
