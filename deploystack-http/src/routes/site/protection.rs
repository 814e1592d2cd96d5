//! Protected deployments (`deploystack_core::model::protection`) at the door: the login
//! page, the access cookie, the bypass header, and the refusal of path-based URLs.
//!
//! Every site request passes [`check`] after its deployment record is read and before
//! anything of the site is looked at — the prepared answers, conditional requests and
//! ranges included — so no byte, length or validator of a protected site leaves without the
//! cookie or the bypass secret. A deployment without a project, or whose project is not
//! protected, costs one read of its project from the read cache (in memory for a warm
//! project, evicted on every node when its protection changes); anonymous deployments cost
//! nothing.
//!
//! - **Login**: a visitor without access gets a small HTML page (401) with a form that
//!   posts `password` to [`LOGIN_PATH`] on the same host. A right password sets the cookie
//!   [`COOKIE_NAME`] — host-only (no `Domain`), `HttpOnly`, `SameSite=Lax`, `Secure` when the
//!   public URL is https — holding a token signed for this host only, valid for a day
//!   (`services::protection::AccessKey`), and answers 303 back to the page asked for.
//! - **Wrong passwords** wait [`FAILED_LOGIN_DELAY`] and get the form again (401); past
//!   `MAX_FAILED_LOGINS` (`services::protection`) per client address and host the answer is 429 without a check.
//! - **Automation** sends the project's bypass secret in [`BYPASS_HEADER`] on every request.
//! - **Path-based URLs** (`/<id>/…` on the platform's host) share one origin with every other
//!   deployment and the API, so a cookie there would open them all: a protected deployment
//!   answers 403 there, naming its own address.
//!
//! ## Why is the redirect target only a path?
//! `next` comes from the form, which anyone can prefill: only a path on this same host
//! (starting with one `/`, without backslashes or control characters) is followed, anything
//! else goes to `/`, so the login can never send a visitor to another site.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use deploystack_core::model::{Deployment, DeploymentId, Protection};
use deploystack_core::repository::RepositoryError;
use deploystack_core::secrets::Keyring;
use deploystack_core::services::protection::{
    self as rules, ACCESS_TTL, AccessKey, FAILED_LOGIN_DELAY, LoginThrottle, THROTTLE_WINDOW,
};
use deploystack_core::services::serving;

use super::{page, site_error};
use crate::state::AppState;

/// Where the login form posts, on the deployment's own host. Reserved on protected hosts: a
/// site's own file at this path is not reachable there.
pub const LOGIN_PATH: &str = "/_deploystack/login";

/// The request header automation puts the project's bypass secret in.
pub const BYPASS_HEADER: &str = "x-deploystack-protection-bypass";

/// The access cookie.
pub const COOKIE_NAME: &str = "deploystack_protection";

/// Largest login form accepted, in bytes.
const MAX_FORM_BYTES: usize = 4 * 1024;

/// Longest `next` followed, in bytes.
const MAX_NEXT_BYTES: usize = 2 * 1024;

/// What protection needs in every server: the signing key and the throttle.
#[derive(Debug)]
pub struct Guard {
    key: AccessKey,
    throttle: LoginThrottle,
    /// Whether the public URL is https: the cookie is then `Secure`.
    secure: bool,
}

impl Guard {
    /// The guard with its key derived from the platform `keyring` (so every node of a
    /// cluster accepts the others' cookies).
    pub fn new(keyring: &Keyring, secure: bool) -> Self {
        Self {
            key: AccessKey::from_keyring(keyring),
            throttle: LoginThrottle::default(),
            secure,
        }
    }
}

/// How a site request arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arrival<'a> {
    /// `/<id>/…` on the platform's host.
    Path,
    /// On this host (lowercase, without port): the deployment's own, its project's or a
    /// custom domain.
    Host(&'a str),
}

/// The verdict of [`check`].
pub(crate) enum Gate {
    /// Serve the site; `protected`: the answer must not be kept by shared caches.
    Open {
        /// Whether the deployment is protected here (and the visitor let in).
        protected: bool,
    },
    /// Answer this instead (login page, 403, 503).
    Refused(Response),
}

/// Whether this request may see `deployment` (see the module docs).
pub(crate) async fn check(
    state: &AppState,
    deployment: &Deployment,
    arrival: Arrival<'_>,
    uri: &Uri,
    headers: &HeaderMap,
    head: bool,
) -> Gate {
    let protection = match protection_here(state, deployment, arrival).await {
        Ok(None) => return Gate::Open { protected: false },
        Ok(Some(protection)) => protection,
        Err(response) => return Gate::Refused(response),
    };
    let Arrival::Host(host) = arrival else {
        return Gate::Refused(path_refused(state, &deployment.id));
    };
    if has_access(state, &protection, host, headers) {
        return Gate::Open { protected: true };
    }
    let next = uri.path_and_query().map_or("/", |target| target.as_str());
    Gate::Refused(login_page(StatusCode::UNAUTHORIZED, next, None, head))
}

/// The project's protection if it covers this arrival; `Ok(None)`: the request is open.
async fn protection_here(
    state: &AppState,
    deployment: &Deployment,
    arrival: Arrival<'_>,
) -> Result<Option<Protection>, Response> {
    let Some(name) = &deployment.project else {
        return Ok(None);
    };
    let project = match state.services.repository.get_project(name).await {
        Ok(project) => project,
        // Deleting a project deletes its deployments; the record read first will say so.
        Err(RepositoryError::NotFound) => return Ok(None),
        Err(err) => {
            tracing::error!(project = %name, error = %err, "cannot read a project's protection");
            return Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n\nTry again shortly.\n",
            ));
        }
    };
    let production_host = match arrival {
        Arrival::Path => false,
        Arrival::Host(host) => !state.is_deployment_host(host, &deployment.id),
    };
    if !project.protection.mode.covers(production_host) {
        return Ok(None);
    }
    Ok(Some(project.protection))
}

/// Whether the request carries the bypass secret or a valid cookie for `host`.
fn has_access(state: &AppState, protection: &Protection, host: &str, headers: &HeaderMap) -> bool {
    if let (Some(stored), Some(presented)) = (
        protection.bypass_hash.as_deref(),
        headers.get(BYPASS_HEADER).and_then(|v| v.to_str().ok()),
    ) && rules::bypass_matches(stored, presented)
    {
        return true;
    }
    let Some(password_hash) = protection.password_hash.as_deref() else {
        return false;
    };
    let now = unix_now();
    cookies(headers, COOKIE_NAME)
        .any(|token| state.protection.key.verify(token, host, now, password_hash))
}

/// Every value of cookie `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// `POST /_deploystack/login` on a deployment's host: check the password and set the cookie.
pub(crate) async fn login(
    state: &AppState,
    id: &DeploymentId,
    host: &str,
    client: Option<std::net::IpAddr>,
    body: Body,
) -> Response {
    let deployment = match serving::servable(state.services.repository.as_ref(), id).await {
        Ok(deployment) => deployment,
        Err(err) => return site_error(id, &err),
    };
    let protection = match protection_here(state, &deployment, Arrival::Host(host)).await {
        Ok(Some(protection)) => protection,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "404 Not Found\n\nThis address is not protected: there is nothing to log in to.\n",
            );
        }
        Err(response) => return response,
    };
    let Ok(form) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 Content Too Large\n\nThe login form is too large.\n",
        );
    };
    let mut password = None;
    let mut next = None;
    for (key, value) in form_urlencoded::parse(&form) {
        match &*key {
            "password" => password = Some(value.into_owned()),
            "next" => next = Some(value.into_owned()),
            _ => {}
        }
    }
    let next = safe_next(next.as_deref());
    let client = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string());
    let guard = &state.protection;
    if !guard.throttle.allows(host, &client) {
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        let mut response = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            next,
            Some("Too many wrong passwords. Try again in a few minutes."),
            false,
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(THROTTLE_WINDOW.as_secs()),
        );
        return response;
    }
    let right = match (&protection.password_hash, password) {
        (Some(hash), Some(password)) => rules::verify_password(hash.clone(), password).await,
        _ => false,
    };
    let Some(password_hash) = protection.password_hash.as_deref().filter(|_| right) else {
        guard.throttle.failed(host, &client);
        tracing::info!(host, client, "wrong password for a protected deployment");
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            next,
            Some("Wrong password."),
            false,
        );
    };
    let expires = unix_now().saturating_add(ACCESS_TTL.as_secs() as i64);
    let token = guard.key.issue(host, expires, password_hash);
    let cookie = format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        ACCESS_TTL.as_secs(),
        if guard.secure { "; Secure" } else { "" }
    );
    let mut response = (StatusCode::SEE_OTHER, "").into_response();
    let headers = response.headers_mut();
    if let (Ok(cookie), Ok(location)) =
        (HeaderValue::from_str(&cookie), HeaderValue::from_str(next))
    {
        headers.insert(header::SET_COOKIE, cookie);
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page to go back to after a login: `raw` if it is a path on this host, else `/`.
pub(crate) fn safe_next(raw: Option<&str>) -> &str {
    match raw {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && next.len() <= MAX_NEXT_BYTES
                && !next.starts_with(LOGIN_PATH)
                && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            next
        }
        _ => "/",
    }
}

/// The 403 of a protected deployment asked for path-based.
fn path_refused(state: &AppState, id: &DeploymentId) -> Response {
    page(
        StatusCode::FORBIDDEN,
        format!(
            "403 Forbidden\n\nThis deployment is protected and is served only at its own address: {}\n",
            state.deployment_url(id)
        ),
    )
}

/// The login page: a form posting `password` (and `next`, the page to go back to) to
/// [`LOGIN_PATH`]. Never cached, never framed.
fn login_page(status: StatusCode, next: &str, message: Option<&str>, head: bool) -> Response {
    let next = escape(safe_next(Some(next)));
    let message = message.map_or_else(String::new, |text| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(text))
    });
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>Protected deployment</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:15vh auto;padding:0 1rem}}\
input,button{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}}\
.error{{color:#b00020}}</style></head><body>\
<h1>Protected deployment</h1><p>Enter the password to view this deployment.</p>{message}\
<form method=\"post\" action=\"{LOGIN_PATH}\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Continue</button></form></body></html>\n"
    );
    let body = if head {
        Body::empty()
    } else {
        Body::from(html)
    };
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                ),
            ),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        body,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a protected answer that was let through must say to caches: only the visitor's own
/// browser may keep it, whatever the site's configuration says.
pub(crate) fn keep_private(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_host_are_followed() {
        for ok in ["/", "/a/b?c=d", "/%2F%2Fevil.example", "/a//b"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            None,
            Some(""),
            Some("https://evil.example/"),
            Some("//evil.example/"),
            Some("/\\evil.example"),
            Some("/a\\b"),
            Some("evil"),
            Some("/a b"),
            Some("/a\nLocation: x"),
            Some("/_deploystack/login"),
            Some(&"/a".repeat(MAX_NEXT_BYTES)),
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; deploystack_protection=x.y"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("deploystack_protection=z"),
        );
        let found: Vec<_> = cookies(&headers, COOKIE_NAME).collect();
        assert_eq!(found, ["x.y", "z"]);
    }

    #[test]
    fn the_login_page_escapes_what_it_repeats() {
        assert_eq!(
            escape("/a\"><script>&'"),
            "/a&quot;&gt;&lt;script&gt;&amp;&#39;"
        );
    }
}
