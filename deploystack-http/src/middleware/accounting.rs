//! Request accounting for `/metrics`: how many requests are in flight, how many were
//! answered in each status class, and how many the rate limits refused in each of their
//! classes (counted by `crate::middleware::rate_limit`). Connections are counted by the server, which opens and
//! closes them (`crate::server::Connections`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::http::{Request, StatusCode};
use axum::response::Response;
use deploystack_core::ratelimit::Class;
use tower::{Layer, Service};

/// Counters the accounting layer keeps; `/metrics` reads them when scraped.
#[derive(Debug, Default)]
pub struct RequestStats {
    in_flight: AtomicU64,
    /// Answers by status class: 1xx … 5xx.
    answered: [AtomicU64; 5],
    /// Requests the rate limits refused, by class in the order of `Class::ALL`.
    rate_limited: [AtomicU64; 3],
}

impl RequestStats {
    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Answers given so far in the class of `status` (`2` for 2xx, …); classes outside 1–5
    /// count nothing.
    pub fn answered(&self, class: u16) -> u64 {
        usize::from(class)
            .checked_sub(1)
            .and_then(|index| self.answered.get(index))
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// Requests of `class` the rate limits refused so far.
    pub fn rate_limited(&self, class: Class) -> u64 {
        self.rate_limited[Self::slot(class)].load(Ordering::Relaxed)
    }

    /// Count a request of `class` refused by the rate limits.
    pub fn record_rate_limited(&self, class: Class) {
        self.rate_limited[Self::slot(class)].fetch_add(1, Ordering::Relaxed);
    }

    fn slot(class: Class) -> usize {
        match class {
            Class::Deploys => 0,
            Class::Writes => 1,
            Class::Reads => 2,
        }
    }

    fn record(&self, status: StatusCode) {
        let index = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(count) = self.answered.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts every request that passes into [`RequestStats`].
#[derive(Debug, Clone)]
pub struct AccountingLayer {
    stats: Arc<RequestStats>,
}

impl AccountingLayer {
    /// A layer counting into `stats`.
    pub fn new(stats: Arc<RequestStats>) -> Self {
        Self { stats }
    }
}

impl<S> Layer<S> for AccountingLayer {
    type Service = Accounting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Accounting {
            inner,
            stats: Arc::clone(&self.stats),
        }
    }
}

/// The service of [`AccountingLayer`].
#[derive(Debug, Clone)]
pub struct Accounting<S> {
    inner: S,
    stats: Arc<RequestStats>,
}

/// Holds a request's place in the in-flight count, and gives it back however the request
/// ends — answered, or dropped when its client went away.
struct InFlight(Arc<RequestStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, B> Service<Request<B>> for Accounting<S>
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
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(Arc::clone(&self.stats));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            guard.0.record(response.status());
            drop(guard);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use tower::ServiceExt;

    #[tokio::test]
    async fn answers_are_counted_by_class_and_in_flight_returns_to_zero() {
        let stats = Arc::new(RequestStats::default());
        let service = AccountingLayer::new(Arc::clone(&stats)).layer(tower::service_fn(
            |request: Request<Body>| async move {
                let status = match request.uri().path() {
                    "/missing" => StatusCode::NOT_FOUND,
                    _ => StatusCode::OK,
                };
                Ok::<_, std::convert::Infallible>(status.into_response())
            },
        ));
        for path in ["/", "/a", "/missing"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            service.clone().oneshot(request).await.unwrap();
        }
        assert_eq!(stats.answered(2), 2);
        assert_eq!(stats.answered(4), 1);
        assert_eq!(stats.answered(5), 0);
        assert_eq!(stats.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_dropped_request_leaves_the_in_flight_count() {
        let stats = Arc::new(RequestStats::default());
        let mut service = AccountingLayer::new(Arc::clone(&stats)).layer(tower::service_fn(
            |_: Request<Body>| async {
                std::future::pending::<()>().await;
                Ok::<Response, std::convert::Infallible>(StatusCode::OK.into_response())
            },
        ));
        let answer = service.call(Request::new(Body::empty()));
        assert_eq!(stats.in_flight(), 1);
        drop(answer);
        assert_eq!(stats.in_flight(), 0);
        assert_eq!(stats.answered(2), 0);
    }
}
