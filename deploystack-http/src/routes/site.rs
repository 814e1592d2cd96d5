//! Serving deployed sites at `/<deployment-id>/<path>` and, on a deployment's own host
//! (`<deployment-id>.<base-domain>`, chosen by `crate::dispatch` before the router), at `/<path>`.
//!
//! The request path is taken raw (still percent-encoded) and decoded exactly once by
//! `services::serving::normalize_path`, which refuses every trick; the file is then looked up
//! in the deployment's manifest and streamed from storage by its content hash.
//!
//! The answer follows RFC 9110 for a static representation: strong ETags and `Last-Modified`,
//! conditional requests ([`conditional`]), single byte ranges ([`range`]), `HEAD` and
//! `OPTIONS`. Content negotiation has one place, `negotiate`, which picks the bytes that
//! everything after it (preconditions, ranges, lengths) applies to.
//!
//! Which file answers is decided in core (`serving::resolve_cached`, which applies the
//! deployment's `vercel.json` / `_redirects` / `_headers` and keeps the answer for the next
//! request of the same path); this module only turns the answer
//! into HTTP: a redirect's site-relative `Location` gets the `/<deployment-id>` prefix under
//! path-based serving, and the configuration's headers are set last, over the defaults.

mod conditional;
mod negotiation;
mod range;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deploystack_core::cache::ResolutionKey;
use deploystack_core::model::{
    DeploymentId, DeploymentStatus, EncodedVariant, Encoding, FileEntry,
};
use deploystack_core::services::serving::{
    self, PathError, RenderedHead, Resolution, Resolved, SiteError,
};
use deploystack_core::storage::{ObjectStream, StorageError};
use futures_util::{StreamExt, stream};
use time::OffsetDateTime;

use self::conditional::{Precondition, Validators};
use self::range::ByteRange;
use crate::express::{self, Rendered};
use crate::sendfile::{self, FileBacked};
use crate::state::AppState;

/// Every served file may be cached, but must be revalidated: a URL of a deployment never
/// changes content, but aliases (later) do, and revalidation with the strong ETag is cheap.
const CACHE_CONTROL: &str = "public, max-age=0, must-revalidate";

/// The methods site paths answer; `OPTIONS` and every 405 say so in `Allow`.
const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Fallback handler: everything that is not the API is a site path.
pub async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve_path(&state, &method, &uri, &headers, false).await
}

/// A site path, `/<deployment-id>/<path>`, on the platform's host. `express` says the
/// request came through `crate::express`, which can write a [`Rendered`] answer.
pub async fn serve_path(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    express: bool,
) -> Response {
    if let Some(response) = method_not_allowed(method) {
        return response;
    }
    let head = *method == Method::HEAD;
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
    let request = SiteRequest {
        uri,
        headers,
        head,
        path_based: true,
        express,
    };
    site_response(state, &id, tail, request).await
}

/// What the answer to a site request depends on besides the deployment and the path.
#[derive(Clone, Copy)]
struct SiteRequest<'a> {
    uri: &'a Uri,
    headers: &'a HeaderMap,
    /// `HEAD` rather than `GET`.
    head: bool,
    /// The site's root is `/<id>/` rather than the host's `/`.
    path_based: bool,
    /// Through the express lane, which can write a [`Rendered`] answer.
    express: bool,
}

/// A request on a deployment's own host (`<id>.<base-domain>`): every path, `/api/…`
/// included, is a path of that site.
pub async fn serve_host(
    state: &AppState,
    id: &DeploymentId,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    express: bool,
) -> Response {
    if let Some(response) = method_not_allowed(method) {
        return response;
    }
    let path = uri.path();
    let request = SiteRequest {
        uri,
        headers,
        head: *method == Method::HEAD,
        path_based: false,
        express,
    };
    site_response(state, id, path.strip_prefix('/').unwrap_or(path), request).await
}

/// The answer to the methods sites do not serve files for: `OPTIONS` (204) and the 405s.
fn method_not_allowed(method: &Method) -> Option<Response> {
    if method == Method::OPTIONS {
        // Every site path (and `OPTIONS *`) allows the same methods, so no lookup is needed.
        return Some((StatusCode::NO_CONTENT, [(header::ALLOW, ALLOW)]).into_response());
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\n\nDeployed sites answer GET, HEAD and OPTIONS only.\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
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
    request: SiteRequest<'_>,
) -> Response {
    let SiteRequest {
        uri,
        headers,
        head,
        path_based,
        express,
    } = request;
    let normalized = match serving::normalize_path(tail) {
        Ok(path) => path,
        Err(PathError::TooLong) => {
            return page(StatusCode::URI_TOO_LONG, "414 URI Too Long\n");
        }
        Err(err) => {
            return page(
                StatusCode::BAD_REQUEST,
                format!("400 Bad Request\n\nThe path is not allowed: {err}.\n"),
            );
        }
    };
    // Shared with the resolution cache, so the answer is read by reference from here on.
    let resolution = serving::resolve_cached(
        state.services.repository.as_ref(),
        &state.services.resolutions,
        id,
        &normalized,
    )
    .await;
    // A plain request for a file whose head was rendered before is answered with it.
    let plain = express && is_plain(headers);
    if plain
        && let Ok(resolution) = &resolution
        && let Some(response) = rendered_answer(state, resolution, headers, head).await
    {
        return response;
    }
    let mut response = match resolution.as_deref().map(|r| &r.resolved) {
        Ok(Resolved::Redirect { status, location }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::PERMANENT_REDIRECT);
            // A site path is relative to the site's root, which is `/<id>` when path-based.
            if path_based && location.starts_with('/') {
                redirect_with(status, &format!("/{id}{location}"), uri.query())
            } else {
                redirect_with(status, location, uri.query())
            }
        }
        Ok(Resolved::File {
            file,
            last_modified,
        }) => {
            file_response(
                state,
                file,
                Some(*last_modified),
                StatusCode::OK,
                headers,
                head,
            )
            .await
        }
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
                None,
                StatusCode::NOT_FOUND,
                &HeaderMap::new(),
                head,
            )
            .await
        }
        Ok(Resolved::NotFound(None)) => page(StatusCode::NOT_FOUND, NO_FILE_PAGE),
        Err(SiteError::UnknownDeployment) => page(
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nThere is no deployment with this id.\n",
        ),
        Err(SiteError::Deleted) => page(
            StatusCode::GONE,
            "410 Gone\n\nThis deployment was deleted.\n",
        ),
        Err(SiteError::NotReady(status)) => page(StatusCode::NOT_FOUND, not_ready_message(*status)),
        Err(err) => {
            tracing::error!(%id, error = %err, "cannot resolve a site path");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n\nTry again shortly.\n",
            )
        }
    };
    // The site's own headers win over the defaults; they passed the header rule at deploy
    // time, so a value that still does not fit a header is skipped rather than answered.
    let configured = resolution.as_deref().map_or(&[][..], |r| &r.headers);
    for (name, value) in configured {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    if plain && let Ok(resolution) = &resolution {
        let key = state.services.resolutions.key(id, &normalized);
        remember_head(
            state,
            key,
            resolution,
            headers,
            response.status(),
            response.headers(),
        )
        .await;
    }
    response
}

/// Fill the slot of `encoding` with `rendered`, unless another request did first, and put
/// the resolution back into the cache so its budget counts the new bytes.
fn keep_rendered(
    state: &AppState,
    key: Option<ResolutionKey>,
    resolution: &Arc<Resolution>,
    encoding: Option<Encoding>,
    rendered: RenderedHead,
) {
    if resolution.rendered.slot(encoding).set(rendered).is_ok()
        && let Some(key) = key
    {
        state
            .services
            .resolutions
            .insert(key, Arc::clone(resolution));
    }
}

/// The request headers that make an answer depend on more than the path and
/// `Accept-Encoding`; a request without them is *plain*.
const NOT_PLAIN: [header::HeaderName; 6] = [
    header::RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

fn is_plain(headers: &HeaderMap) -> bool {
    !NOT_PLAIN.iter().any(|name| headers.contains_key(name))
}

/// The file a resolution answers with and the request headers its representation is chosen
/// by: a site's `404.html` is always sent as deployed.
fn answering_file<'a>(
    resolution: &'a Resolution,
    request: &'a HeaderMap,
) -> Option<(&'a FileEntry, &'a HeaderMap)> {
    static NONE: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
    match &resolution.resolved {
        Resolved::File { file, .. } => Some((file, request)),
        Resolved::NotFound(Some(file)) => Some((file, &NONE)),
        _ => None,
    }
}

/// The answer to a plain request from the head rendered for an earlier one
/// ([`remember_head`]), with the body from storage (the hot-blob cache, for a warm file).
/// `None` when there is no such head yet, or the body is not one buffer: the full path then
/// answers.
async fn rendered_answer(
    state: &AppState,
    resolution: &Resolution,
    request: &HeaderMap,
    head: bool,
) -> Option<Response> {
    let encoding = match &resolution.resolved {
        Resolved::NotFound(None) => None,
        _ => {
            let (file, request) = answering_file(resolution, request)?;
            chosen_variant(file, request).map(|variant| variant.encoding)
        }
    };
    let rendered = resolution.rendered.slot(encoding).get()?;
    let storage = &*state.services.storage;
    let (body, file) = if head {
        (Bytes::new(), None)
    } else if let Some(body) = &rendered.body {
        (body.clone(), None)
    } else if let Some(file) = usize::try_from(rendered.size)
        .ok()
        .and_then(|size| state.open_files.open(storage, &rendered.blob_key, size))
    {
        (Bytes::new(), Some(file))
    } else {
        let object = storage.get(&rendered.blob_key).await.ok()?;
        let (size, _, whole) = whole_body(object).await.ok()?;
        (whole.filter(|_| size == rendered.size)?, None)
    };
    let mut response = Response::new(Body::empty());
    response.extensions_mut().insert(Rendered {
        head: rendered.head.clone(),
        body,
        file,
    });
    Some(response)
}

/// Bodies below this size are kept with their rendered head (`RenderedHead::body`); larger
/// ones are sent from their file (`crate::sendfile`) or read from the hot-blob cache.
const KEEP_WITH_HEAD_BYTES: u64 = sendfile::MIN_BYTES as u64;

/// Keep the head of `response`, the full answer to a plain request, with its resolution,
/// for [`rendered_answer`] to send next time. The resolution goes into the resolution cache
/// again, so the cache's budget counts what it now holds.
async fn remember_head(
    state: &AppState,
    key: Option<ResolutionKey>,
    resolution: &Arc<Resolution>,
    request: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
) {
    if let Resolved::NotFound(None) = &resolution.resolved {
        // The platform's page: static bytes, kept with the head like a small file.
        let body = Bytes::from_static(NO_FILE_PAGE.as_bytes());
        let rendered = RenderedHead {
            head: express::render_head(status, response_headers, body.len() as u64),
            blob_key: String::new(),
            size: body.len() as u64,
            body: Some(body),
        };
        keep_rendered(state, key, resolution, None, rendered);
        return;
    }
    let Some((file, request)) = answering_file(resolution, request) else {
        return;
    };
    if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
        return; // a storage failure's 503
    }
    let representation = negotiate(file, request);
    if resolution
        .rendered
        .slot(representation.encoding)
        .get()
        .is_some()
    {
        return;
    }
    let head = express::render_head(status, response_headers, representation.size);
    let mut body = None;
    if representation.size < KEEP_WITH_HEAD_BYTES {
        // Just read to answer this request, so the hot-blob cache has it.
        let storage = &*state.services.storage;
        if let Ok(object) = storage.get(&representation.blob_key).await
            && let Ok((size, _, Some(bytes))) = whole_body(object).await
            && size == representation.size
        {
            body = Some(bytes);
        }
    }
    let rendered = RenderedHead {
        head,
        blob_key: representation.blob_key,
        size: representation.size,
        body,
    };
    keep_rendered(state, key, resolution, representation.encoding, rendered);
}

/// The platform's 404 for a path of a deployment without its own `404.html`.
const NO_FILE_PAGE: &str = "404 Not Found\n\nThis deployment has no file at this path.\n";

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
pub(crate) fn page(status: StatusCode, text: impl Into<Body>) -> Response {
    // Static header values and body: every 404 is a page, and owned values would be
    // validated and copied into a new allocation each time.
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        text.into(),
    )
        .into_response()
}

fn redirect(location: &str, query: Option<&str>) -> Response {
    redirect_with(StatusCode::MOVED_PERMANENTLY, location, query)
}

/// A redirect to `location`, carrying the request's query along (after the destination's
/// own, if it has one).
fn redirect_with(status: StatusCode, location: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(q) if location.contains('?') => format!("{location}&{q}"),
        Some(q) => format!("{location}?{q}"),
        None => location.to_owned(),
    };
    match HeaderValue::from_str(&location) {
        Ok(value) => (status, [(header::LOCATION, value)]).into_response(),
        Err(_) => page(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    }
}

/// One representation of a file: the bytes a response would carry and their validator.
///
/// A file has its identity representation and, for text made smaller at deploy time, brotli
/// and gzip variants. [`negotiate`] picks one, and everything after it — preconditions,
/// ranges, `Content-Length` — applies to the chosen bytes, as RFC 9110 asks (a range of a
/// brotli response counts brotli bytes).
struct Representation {
    /// Storage key of the bytes.
    blob_key: String,
    /// Their length.
    size: u64,
    /// Strong entity tag of exactly these bytes, quotes included.
    etag: String,
    /// `Content-Encoding` of the variant; `None` for the file as deployed.
    encoding: Option<Encoding>,
    /// Whether the choice depended on `Accept-Encoding`, i.e. whether caches must key on it
    /// (`Vary: Accept-Encoding`): true for every response about a file with variants,
    /// whichever was picked, and false for files that only have their identity bytes.
    varies_by_encoding: bool,
}

/// Content negotiation: the one place that picks which bytes answer `request`.
///
/// A file without variants always answers with itself and nothing varies, so no `Vary` is
/// sent. A file with variants picks one from `Accept-Encoding` ([`negotiation`]); each
/// variant's strong ETag is the hash of its own bytes, so `If-None-Match` and `If-Range`
/// match exactly the representation they were issued for.
fn negotiate(file: &FileEntry, request: &HeaderMap) -> Representation {
    match chosen_variant(file, request) {
        Some(variant) => Representation {
            blob_key: variant.sha256.blob_key(),
            size: variant.size,
            etag: format!("\"{}\"", variant.sha256),
            encoding: Some(variant.encoding),
            varies_by_encoding: true,
        },
        None => Representation {
            blob_key: file.sha256.blob_key(),
            size: file.size,
            etag: format!("\"{}\"", file.sha256),
            encoding: None,
            varies_by_encoding: !file.encodings.is_empty(),
        },
    }
}

/// The variant `Accept-Encoding` picks, or `None` for the file as deployed.
fn chosen_variant<'a>(file: &'a FileEntry, request: &HeaderMap) -> Option<&'a EncodedVariant> {
    if file.encodings.is_empty() {
        return None;
    }
    let mut available = [Encoding::Br; Encoding::ALL.len()];
    let count = file.encodings.len().min(available.len());
    for (slot, variant) in available.iter_mut().zip(&file.encodings) {
        *slot = variant.encoding;
    }
    let encoding = negotiation::choose(request, &available[..count])?;
    file.encodings.iter().find(|v| v.encoding == encoding)
}

/// Largest slice of a blob read from storage at once while streaming a range, so a range of
/// a large file never sits in memory whole.
const RANGE_PIECE: u64 = 1024 * 1024;

/// Answer with `file`: `status` is 200 for a found file, 404 for the site's own `404.html`
/// (which is sent as is: conditions and ranges only apply to the file that was asked for).
async fn file_response(
    state: &AppState,
    file: &FileEntry,
    last_modified: Option<OffsetDateTime>,
    status: StatusCode,
    request: &HeaderMap,
    head: bool,
) -> Response {
    let representation = negotiate(file, request);
    let validators = Validators {
        etag: &representation.etag,
        last_modified: last_modified.and_then(conditional::http_time),
    };
    let found = status == StatusCode::OK;
    let selected = if !found {
        ByteRange::Whole
    } else {
        match conditional::evaluate(request, validators) {
            Precondition::NotModified => {
                // RFC 9110 §15.4.5: the validator and caching fields a 200 would carry, no
                // representation metadata, no body.
                let mut response = StatusCode::NOT_MODIFIED.into_response();
                cache_headers(response.headers_mut(), &representation, validators);
                return response;
            }
            Precondition::Failed => {
                let mut response = page(
                    StatusCode::PRECONDITION_FAILED,
                    "412 Precondition Failed\n\nThe file does not match If-Match / If-Unmodified-Since.\n",
                );
                validator_headers(response.headers_mut(), validators);
                vary_header(response.headers_mut(), &representation);
                return response;
            }
            Precondition::Proceed => {}
        }
        // RFC 9110 §14.2: range handling is defined for GET only, so HEAD ignores `Range`
        // and describes the whole file.
        match request.get(header::RANGE).map(HeaderValue::to_str) {
            Some(Ok(value)) if !head && conditional::if_range_allows(request, validators) => {
                range::evaluate(value, representation.size)
            }
            _ => ByteRange::Whole,
        }
    };
    let mut response = match selected {
        ByteRange::Unsatisfiable => {
            let mut response = page(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "416 Range Not Satisfiable\n\nThe range selects no byte of this file.\n",
            );
            let headers = response.headers_mut();
            validator_headers(headers, validators);
            vary_header(headers, &representation);
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", representation.size)) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return response;
        }
        ByteRange::Part(range) => {
            match range_body(state, &representation.blob_key, range.clone()).await {
                Ok(body) => {
                    let mut response = (StatusCode::PARTIAL_CONTENT, body).into_response();
                    let headers = response.headers_mut();
                    headers.insert(
                        header::CONTENT_LENGTH,
                        HeaderValue::from(range.end - range.start),
                    );
                    // `range` is never empty, so `end - 1` is its last byte.
                    if let Ok(value) = HeaderValue::from_str(&format!(
                        "bytes {}-{}/{}",
                        range.start,
                        range.end - 1,
                        representation.size
                    )) {
                        headers.insert(header::CONTENT_RANGE, value);
                    }
                    response
                }
                Err(err) => return storage_failure(file, &err),
            }
        }
        ByteRange::Whole if head => {
            let mut response = status.into_response();
            response.headers_mut().insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(representation.size),
            );
            response
        }
        ByteRange::Whole => {
            let body = match state.services.storage.get(&representation.blob_key).await {
                Ok(object) => whole_body(object).await,
                Err(err) => Err(err),
            };
            match body {
                Ok((size, body, whole)) => {
                    let mut response = (status, body).into_response();
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                    let storage = &*state.services.storage;
                    let key = &representation.blob_key;
                    let files = &state.open_files;
                    if let Some(file) =
                        whole.and_then(|b| FileBacked::open(files, storage, key, &b))
                    {
                        response.extensions_mut().insert(file);
                    }
                    response
                }
                Err(err) => return storage_failure(file, &err),
            }
        }
    };
    let headers = response.headers_mut();
    if found {
        cache_headers(headers, &representation, validators);
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    } else {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
    }
    if let Ok(value) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(encoding) = representation.encoding {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.as_str()),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The body of a 200, its length and, when it arrived in one buffer, that buffer. The first
/// chunk is read before answering, so a storage failure is a 503 rather than a 200 cut
/// short; an object that arrives in one chunk (every blob the hot-blob cache holds) becomes
/// one buffer, which hyper writes together with the response head instead of polling a
/// stream for its end (or which `crate::sendfile` sends from its file).
async fn whole_body(mut object: ObjectStream) -> Result<(u64, Body, Option<Bytes>), StorageError> {
    let size = object.size;
    let Some(first) = object.stream.next().await else {
        return Ok((size, Body::empty(), None));
    };
    let first = first?;
    if first.len() as u64 == size {
        return Ok((size, Body::from(first.clone()), Some(first)));
    }
    let rest = object.stream;
    Ok((
        size,
        Body::from_stream(stream::once(async move { Ok(first) }).chain(rest)),
        None,
    ))
}

/// The body of a 206: the first piece is read before answering, so a storage failure is a
/// 503 rather than a 206 cut short; the rest is read piece by piece as the client takes it.
async fn range_body(
    state: &AppState,
    key: &str,
    range: std::ops::Range<u64>,
) -> Result<Body, StorageError> {
    let storage = Arc::clone(&state.services.storage);
    let first_end = range.end.min(range.start.saturating_add(RANGE_PIECE));
    let first = storage.get_range(key, range.start..first_end).await?;
    let key = key.to_owned();
    let end = range.end;
    let rest = stream::try_unfold(first_end, move |at| {
        let storage = Arc::clone(&storage);
        let key = key.clone();
        async move {
            if at >= end {
                return Ok(None);
            }
            let next = end.min(at.saturating_add(RANGE_PIECE));
            let piece = storage.get_range(&key, at..next).await?;
            Ok::<_, StorageError>(Some((piece, next)))
        }
    });
    Ok(Body::from_stream(
        stream::once(async move { Ok(first) }).chain(rest),
    ))
}

fn storage_failure(file: &FileEntry, err: &StorageError) -> Response {
    tracing::error!(path = %file.path, blob = %file.sha256, error = %err, "cannot read a published blob");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable\n\nTry again shortly.\n",
    )
}

/// `ETag` and `Last-Modified`: sent with every answer about a found file, 412 and 416
/// included, so a client learns the current validators without another request.
fn validator_headers(headers: &mut HeaderMap, validators: Validators<'_>) {
    if let Ok(value) = HeaderValue::from_str(validators.etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(modified) = validators.last_modified
        && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified))
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
}

/// What a 200, a 206 and a 304 for the same file all carry (RFC 9110 §15.3.7, §15.4.5):
/// validators, `Cache-Control` and, for files with variants, `Vary`.
fn cache_headers(
    headers: &mut HeaderMap,
    representation: &Representation,
    validators: Validators<'_>,
) {
    validator_headers(headers, validators);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    vary_header(headers, representation);
}

/// `Vary: Accept-Encoding` for every answer about a file with variants — 412 and 416
/// included, whose validators and lengths are those of the negotiated variant.
fn vary_header(headers: &mut HeaderMap, representation: &Representation) {
    if representation.varies_by_encoding {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}
