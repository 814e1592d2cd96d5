//! Rate limits of the API: how many requests of each class one caller may make per minute,
//! asked of `Services::rate_limiter` (GCRA, in memory or shared through Redis; see
//! `deploystack_core::ratelimit`).
//!
//! # Classes
//! - `deploys`: uploads, the routes that create a deployment (`crate::routes::is_upload`:
//!   `POST /deploy`, `POST /api/v1/deployments`). Counted before the body is read, so a
//!   refused upload costs the server nothing and stores nothing.
//! - `writes`: every other `POST`, `PUT`, `PATCH` and `DELETE` under `/api`.
//! - `reads`: `GET` and `HEAD` (and `OPTIONS`) under `/api`.
//! - The `vercel` CLI's routes (`crate::routes::vercel`) count as the API's: creating a
//!   deployment in `deploys`, other writes in `writes`, reads in `reads`; its file uploads
//!   are not counted (the deployment they make is).
//!
//! Nothing else is limited: sites (which never reach the router, see `crate::dispatch`),
//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs` and the platform's pages.
//!
//! # Who is a caller
//! The token a request was authorized with (`token:<id>`, so a token has one budget on every
//! server and from every address), else the client's address (`ip:<address>`; IPv6 clients
//! by their /64, which one host can fill with addresses at will). A request that came
//! through no server (an embedder calling the router) is `local`.
//!
//! # Answers
//! Over the limit: 429 `rate_limited` with `Retry-After` (whole seconds, rounded up, at
//! least 1) and the headers of the IETF draft `draft-ietf-httpapi-ratelimit-headers`:
//! `RateLimit-Policy: "deploys";q=60;w=60` (the quota: `q` requests per `w` seconds) and
//! `RateLimit: "deploys";r=0;t=60` (`r` requests left now, `t` seconds until the whole quota
//! is back). Allowed API answers carry both headers too, so a client can slow down before
//! it is refused.
//!
//! # Why after `auth` and before `idempotency`
//! After authentication, so a caller is known by its token rather than its address, and a
//! request refused for its token is not counted. Before idempotency, so a refused request
//! takes no key and a client that retries with the same key after `Retry-After` gets a
//! fresh attempt; a replayed answer still costs its caller a request.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deploystack_core::ratelimit::{Class, Decision};

use crate::caller::Peer;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes;
use crate::state::AppState;

/// The quota of a class (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// What is left of it.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Which class `method` on `path` (a platform path) counts in; `None`: not limited.
pub fn class_of(method: &Method, path: &str) -> Option<Class> {
    if routes::is_upload(method, path) {
        return Some(Class::Deploys);
    }
    // Blobs are not counted one by one: a deploy sends hundreds at once. The deployment
    // they make is. The same for the `vercel` CLI's files.
    if routes::is_blob_upload(method, path) {
        return None;
    }
    if !routes::is_api_path(path) && !routes::vercel::is_vercel_path(path) {
        return None;
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Some(Class::Reads),
        _ => Some(Class::Writes),
    }
}

/// The caller a request is counted against: see the module docs.
pub fn caller_of(access: Option<&Access>, peer: Option<Peer>) -> String {
    if let Some(token) = access.and_then(|access| access.token.as_ref()) {
        return format!("token:{}", token.id);
    }
    match peer.map(|Peer(address)| address.ip().to_canonical()) {
        Some(IpAddr::V4(ip)) => format!("ip:{ip}"),
        Some(IpAddr::V6(ip)) => {
            let [a, b, c, d, ..] = ip.segments();
            format!("ip:{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        None => "local".to_owned(),
    }
}

/// The layer's function (`axum::middleware::from_fn_with_state`): see the module docs.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(class) = class_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let caller = caller_of(
        request.extensions().get::<Access>(),
        request.extensions().get::<Peer>().copied(),
    );
    let decision = match state.services.rate_limiter.check(class, &caller).await {
        Ok(Some(decision)) => decision,
        Ok(None) => return next.run(request).await,
        // The limiter of `Services::from_config` falls back by itself; one an embedder
        // supplied may not: a limiter that cannot decide lets the request through.
        Err(err) => {
            tracing::warn!(error = %err, %class, "rate limits unavailable; request let through");
            return next.run(request).await;
        }
    };
    if !decision.allowed {
        state.requests.record_rate_limited(class);
        return refuse(&decision);
    }
    let mut response = next.run(request).await;
    set_headers(response.headers_mut(), &decision);
    response
}

/// The 429 answer for a refused request.
fn refuse(decision: &Decision) -> Response {
    let wait = whole_seconds(decision.retry_after).max(1);
    let message = format!(
        "too many {class} requests from this caller (its token, or its address without one): at most {q} a minute; retry in {wait} s",
        class = decision.class,
        q = per_minute(decision),
    );
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        .retry_after(u32::try_from(wait).unwrap_or(u32::MAX))
        .into_response();
    set_headers(response.headers_mut(), decision);
    response
}

/// The quota in requests a minute, as the settings say it.
fn per_minute(decision: &Decision) -> u64 {
    let window = decision.quota.window.as_secs_f64().max(f64::MIN_POSITIVE);
    (f64::from(decision.quota.limit.get()) * 60.0 / window).round() as u64
}

/// `RateLimit-Policy` and `RateLimit` for `decision`.
pub fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    let (policy, left) = header_values(decision);
    headers.insert(RATELIMIT_POLICY, policy);
    headers.insert(RATELIMIT, left);
}

/// The values of `RateLimit-Policy` and `RateLimit`: the class is the policy's name.
fn header_values(decision: &Decision) -> (HeaderValue, HeaderValue) {
    let name = decision.class.as_str();
    let policy = format!(
        "\"{name}\";q={};w={}",
        decision.quota.limit,
        whole_seconds(decision.quota.window)
    );
    let left = format!(
        "\"{name}\";r={};t={}",
        decision.remaining,
        whole_seconds(decision.reset)
    );
    (
        HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("")),
        HeaderValue::from_str(&left).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

/// `duration` in whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::sync::Arc;

    use deploystack_core::model::{ApiToken, Scope, TokenHash, TokenId};
    use deploystack_core::ratelimit::Quota;

    use super::*;

    #[test]
    fn uploads_writes_and_reads_are_told_apart_and_the_rest_is_not_limited() {
        let id = "0123456789abcdef0123456789abcdef";
        for (method, path, class) in [
            (Method::POST, "/deploy", Some(Class::Deploys)),
            (Method::POST, "/api/v1/deployments", Some(Class::Deploys)),
            (Method::GET, "/api/v1/deployments", Some(Class::Reads)),
            (Method::HEAD, "/api/v1/projects/site", Some(Class::Reads)),
            (Method::POST, "/api/v1/projects", Some(Class::Writes)),
            (Method::PUT, "/api/v1/projects/site", Some(Class::Writes)),
            (Method::PATCH, "/api/v1/projects/site", Some(Class::Writes)),
            (
                Method::DELETE,
                &format!("/api/v1/deployments/{id}"),
                Some(Class::Writes),
            ),
            (
                Method::POST,
                &format!("/api/v1/deployments/{id}/cancel"),
                Some(Class::Writes),
            ),
            (
                Method::POST,
                "/api/v1/projects/site/promote",
                Some(Class::Writes),
            ),
            (Method::GET, "/api/v1/nope", Some(Class::Reads)),
            (Method::GET, "/deploy", None),
            (
                Method::PUT,
                &format!("/api/v1/files/{}", "a".repeat(64)),
                None,
            ),
            (Method::POST, "/api/v1/files/missing", None),
            (Method::GET, "/healthz", None),
            (Method::GET, "/readyz", None),
            (Method::GET, "/metrics", None),
            (Method::GET, "/openapi.json", None),
            (Method::GET, "/docs", None),
            (Method::GET, "/", None),
            (Method::GET, &format!("/{id}/index.html"), None),
            (Method::POST, &format!("/{id}/form"), None),
        ] {
            assert_eq!(class_of(&method, path), class, "{method} {path}");
        }
    }

    fn token() -> ApiToken {
        ApiToken {
            id: "6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f"
                .parse::<TokenId>()
                .unwrap(),
            name: "ci".into(),
            scopes: vec![Scope::Deploy],
            projects: None,
            hash: TokenHash::of("ds_x"),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn callers_are_their_token_else_their_address() {
        let peer = |text: &str| Some(Peer(text.parse().unwrap()));
        let with_token = Access {
            token: Some(Arc::new(token())),
        };
        assert_eq!(
            caller_of(Some(&with_token), peer("10.0.0.7:5000")),
            "token:6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f"
        );
        let tokenless = Access::default();
        assert_eq!(
            caller_of(Some(&tokenless), peer("10.0.0.7:5000")),
            "ip:10.0.0.7"
        );
        assert_eq!(caller_of(None, peer("[::ffff:10.0.0.7]:1")), "ip:10.0.0.7");
        // One /64 is one caller, whichever address in it the client picks.
        assert_eq!(
            caller_of(None, peer("[2001:db8:1:2:aaaa::1]:443")),
            caller_of(None, peer("[2001:db8:1:2:bbbb::9]:443"))
        );
        assert_eq!(
            caller_of(None, peer("[2001:db8:1:2::1]:443")),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(caller_of(None, None), "local");
    }

    fn decision(allowed: bool, remaining: u32, reset: Duration, retry_after: Duration) -> Decision {
        Decision {
            class: Class::Deploys,
            quota: Quota {
                limit: NonZeroU32::new(60).unwrap(),
                window: Duration::from_secs(60),
            },
            allowed,
            remaining,
            reset,
            retry_after,
        }
    }

    #[test]
    fn headers_follow_the_ietf_draft_with_seconds_rounded_up() {
        let allowed = decision(true, 12, Duration::from_millis(48_001), Duration::ZERO);
        let mut headers = HeaderMap::new();
        set_headers(&mut headers, &allowed);
        assert_eq!(headers[RATELIMIT_POLICY], "\"deploys\";q=60;w=60");
        assert_eq!(headers[RATELIMIT], "\"deploys\";r=12;t=49");
    }

    #[tokio::test]
    async fn a_refusal_is_429_rate_limited_with_retry_after_of_at_least_one_second() {
        use http_body_util::BodyExt;
        for (wait, seconds) in [
            (Duration::from_millis(4_200), "5"),
            (Duration::from_millis(1), "1"),
            (Duration::ZERO, "1"),
        ] {
            let refused = decision(false, 0, Duration::from_secs(60), wait);
            let response = refuse(&refused);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()["retry-after"], seconds, "{wait:?}");
            assert_eq!(response.headers()[RATELIMIT], "\"deploys\";r=0;t=60");
            assert_eq!(
                response.headers()[RATELIMIT_POLICY],
                "\"deploys\";q=60;w=60"
            );
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("deploys"), "{message}");
            assert!(
                message.contains(&format!("retry in {seconds} s")),
                "{message}"
            );
        }
    }
}
