//! Serving deployed sites at `/<deployment-id>/<path>` and, on a deployment's own host
//! (`<deployment-id>.<base-domain>`, chosen by `crate::dispatch` before the router), at `/<path>`.
//!
//! The request path is taken raw (still percent-encoded) and decoded exactly once by
//! `services::serving::normalize_path`, which refuses every trick; the file is then looked up
//! in the deployment's manifest and streamed from storage by its content hash.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use deploystack_core::model::{DeploymentId, DeploymentStatus, FileEntry};
use deploystack_core::services::serving::{self, PathError, Resolved, SiteError};

use crate::state::AppState;

/// Every served file may be cached, but must be revalidated: a URL of a deployment never
/// changes content, but aliases (later) do, and revalidation with the strong ETag is cheap.
const CACHE_CONTROL: &str = "public, max-age=0, must-revalidate";

/// Fallback handler: everything that is not the API is a site path.
pub async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = method_not_allowed(&method) {
        return response;
    }
    let head = method == Method::HEAD;
    let path = uri.path();
    if path == "/" {
        return page(
            StatusCode::OK,
            "DeployStack\n\nUpload a site:  curl -F file=@site.zip <this server>/deploy\nIt is then served at /<deployment-id>/.\n",
        );
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (id_part, tail) = match rest.split_once('/') {
        Some((id, tail)) => (id, Some(tail)),
        None => (rest, None),
    };
    let Ok(id) = id_part.parse::<DeploymentId>() else {
        return page(
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nNo deployment lives at this path. Sites are served at /<deployment-id>/.\n",
        );
    };
    let Some(tail) = tail else {
        // `/<id>` → `/<id>/`, relative, so it works behind any prefix or host.
        return redirect(&format!("{id}/"), uri.query());
    };
    site_response(&state, &id, tail, &uri, &headers, head).await
}

/// A request on a deployment's own host (`<id>.<base-domain>`): every path, `/api/…`
/// included, is a path of that site.
pub async fn serve_host(
    state: &AppState,
    id: &DeploymentId,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if let Some(response) = method_not_allowed(method) {
        return response;
    }
    let head = *method == Method::HEAD;
    let path = uri.path();
    site_response(
        state,
        id,
        path.strip_prefix('/').unwrap_or(path),
        uri,
        headers,
        head,
    )
    .await
}

/// The 405 for the methods sites do not answer.
fn method_not_allowed(method: &Method) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n\nDeployed sites answer GET and HEAD only.\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(response);
    }
    None
}

/// Serve `tail` — the raw (still percent-encoded) path below the site root, without its
/// leading `/` — of deployment `id`; both path-based and host-based serving end here.
async fn site_response(
    state: &AppState,
    id: &DeploymentId,
    tail: &str,
    uri: &Uri,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let normalized = match serving::normalize_path(tail) {
        Ok(path) => path,
        Err(PathError::TooLong) => {
            return page(StatusCode::URI_TOO_LONG, "414 URI Too Long\n");
        }
        Err(err) => {
            return page(
                StatusCode::BAD_REQUEST,
                &format!("400 Bad Request\n\nThe path is not allowed: {err}.\n"),
            );
        }
    };
    match serving::resolve(state.services.repository.as_ref(), id, &normalized).await {
        Ok(Resolved::File(file)) => file_response(state, file, StatusCode::OK, headers, head).await,
        Ok(Resolved::AddTrailingSlash) => {
            // The last raw segment was validated (no '/', no '\\'); "./" keeps a segment such
            // as "javascript:x" from being read as a scheme.
            let last = tail.rsplit('/').next().unwrap_or_default();
            redirect(&format!("./{last}/"), uri.query())
        }
        Ok(Resolved::NotFound(Some(custom))) => {
            file_response(
                state,
                custom,
                StatusCode::NOT_FOUND,
                &HeaderMap::new(),
                head,
            )
            .await
        }
        Ok(Resolved::NotFound(None)) => page(
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nThis deployment has no file at this path.\n",
        ),
        Err(SiteError::UnknownDeployment) => page(
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nThere is no deployment with this id.\n",
        ),
        Err(SiteError::Deleted) => page(
            StatusCode::GONE,
            "410 Gone\n\nThis deployment was deleted.\n",
        ),
        Err(SiteError::NotReady(status)) => page(StatusCode::NOT_FOUND, not_ready_message(status)),
        Err(err) => {
            tracing::error!(%id, error = %err, "cannot resolve a site path");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n\nTry again shortly.\n",
            )
        }
    }
}

fn not_ready_message(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Queued | DeploymentStatus::Building => {
            "404 Not Found\n\nThis deployment is still being built; it is served once it is READY.\n"
        }
        DeploymentStatus::Error => {
            "404 Not Found\n\nThis deployment failed to build; see its logs in the API.\n"
        }
        _ => "404 Not Found\n\nThis deployment is not being served.\n",
    }
}

/// A platform page: plain text, never cached, never sniffed, never containing request data.
pub(crate) fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text.to_owned(),
    )
        .into_response()
}

fn redirect(location: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(q) => format!("{location}?{q}"),
        None => location.to_owned(),
    };
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, value)]).into_response(),
        Err(_) => page(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    }
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, as RFC 9110 asks for
/// `If-None-Match`).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

async fn file_response(
    state: &AppState,
    file: FileEntry,
    status: StatusCode,
    request: &HeaderMap,
    head: bool,
) -> Response {
    let etag = format!("\"{}\"", file.sha256);
    let mut response = if status == StatusCode::OK && none_match(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if head {
        let mut response = status.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
        response
    } else {
        match state.services.storage.get(&file.sha256.blob_key()).await {
            Ok(object) => {
                let mut response = (status, Body::from_stream(object.stream)).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
                response
            }
            Err(err) => {
                tracing::error!(path = %file.path, blob = %file.sha256, error = %err, "cannot read a published blob");
                return page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503 Service Unavailable\n\nTry again shortly.\n",
                );
            }
        }
    };
    let headers = response.headers_mut();
    if status == StatusCode::OK
        && let Ok(value) = HeaderValue::from_str(&etag)
    {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = "\"abc\"";
        let mut headers = HeaderMap::new();
        assert!(!none_match(&headers, etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(none_match(&headers, etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&headers, etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!none_match(&headers, etag));
    }
}
