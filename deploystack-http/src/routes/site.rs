//! Serving deployed sites at `/<deployment-id>/<path>` and, on a deployment's own host
//! (`<deployment-id>.<base-domain>`, chosen by `crate::dispatch` before the router), at `/<path>`.
//!
//! The request path is taken raw (still percent-encoded) and decoded exactly once by
//! `services::serving::normalize_path`, which refuses every trick; the file is then looked up
//! in the deployment's manifest and streamed from storage by its content hash.
//!
//! The answer follows RFC 9110 for a static representation: strong ETags and `Last-Modified`,
//! conditional requests (`conditional`), single byte ranges (`range`), `HEAD` and
//! `OPTIONS`. Content negotiation has one place, `negotiate`, which picks the bytes that
//! everything after it (preconditions, ranges, lengths) applies to.
//!
//! Which file answers is decided in core (`serving::resolve_cached`, which applies the
//! deployment's `vercel.json` / `_redirects` / `_headers` and keeps the answer for the next
//! request of the same path); this module only turns the answer
//! into HTTP: a redirect's site-relative `Location` gets the `/<deployment-id>` prefix under
//! path-based serving, and the configuration's headers are set last, over the defaults.
//! The answer to a plain request for a file is built once and kept with the resolution
//! (`prepared`).

mod conditional;
mod negotiation;
mod prepared;
pub(crate) mod protection;
mod range;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deploystack_core::model::{
    Deployment, DeploymentId, DeploymentStatus, EncodedVariant, Encoding, FileEntry,
};
use deploystack_core::services::serving::{self, PathError, Resolution, Resolved, SiteError};
use deploystack_core::storage::{ObjectStream, StorageError};
use futures_util::{StreamExt, stream};
use time::OffsetDateTime;

use self::conditional::{Precondition, Validators};
use self::prepared::{KEEP_BODY_BYTES, Prepared, PreparedAnswers};
use self::protection::{Arrival, Gate};
use self::range::ByteRange;
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
    serve_path(&state, &method, &uri, &headers).await
}

/// A site path, `/<deployment-id>/<path>`, on the platform's host.
pub async fn serve_path(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
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
        return sandboxed(redirect(&format!("{id}/"), uri.query()));
    };
    let request = SiteRequest {
        uri,
        headers,
        head,
        arrival: Arrival::Path,
    };
    sandboxed(site_response(state, &id, tail, request).await)
}

/// What every path-based answer carries: its page runs in an opaque origin.
///
/// # Why a sandbox?
/// Every path-based site shares one origin with the API and with every other path-based
/// site (`http://<platform>/<id>/…`). Without a sandbox, a tenant's script there could call
/// the API with the platform origin's authority (under `auth = local`, that is all it
/// takes) and read or change another tenant's pages and storage. `sandbox` without
/// `allow-same-origin` makes the page's origin opaque: its requests carry `Origin: null`,
/// which `middleware::auth::local` refuses, and it reads no cookie or storage of the
/// platform origin. Scripts, forms, pop-ups, modals and downloads still work.
///
/// What a path-based site loses: cookies, `localStorage`/`sessionStorage`/IndexedDB,
/// service workers, and same-origin `fetch` of its own files from script (they are
/// cross-origin requests from an opaque origin, which need CORS). A site that needs those
/// is served on its own host, `<id>.<base-domain>`, the address the API presents first.
///
/// The header is appended, not set, so a site's own `Content-Security-Policy` (from its
/// `_headers` or `vercel.json`) still applies too: a browser enforces every policy it gets.
/// It is added per request rather than kept in the prepared answers, which host-based
/// requests for the same file share; one insert of a static value is all it costs.
fn sandboxed(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::CONTENT_SECURITY_POLICY, PATH_BASED_SANDBOX);
    response
}

/// The policy of [`sandboxed`].
const PATH_BASED_SANDBOX: HeaderValue = HeaderValue::from_static(
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads",
);

/// What the answer to a site request depends on besides the deployment and the path.
#[derive(Clone, Copy)]
struct SiteRequest<'a> {
    uri: &'a Uri,
    headers: &'a HeaderMap,
    /// `HEAD` rather than `GET`.
    head: bool,
    /// Path-based (the site's root is `/<id>/` rather than the host's `/`) or on which host.
    arrival: Arrival<'a>,
}

/// A request on a host that serves deployment `id` — its own (`<id>.<base-domain>`), its
/// project's or a custom domain; `host` is that host, lowercase and without port. Every
/// path, `/api/…` included, is a path of that site.
pub async fn serve_host(
    state: &AppState,
    id: &DeploymentId,
    host: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if let Some(response) = method_not_allowed(method) {
        return response;
    }
    let path = uri.path();
    let request = SiteRequest {
        uri,
        headers,
        head: *method == Method::HEAD,
        arrival: Arrival::Host(host),
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
        arrival,
    } = request;
    let repository = state.services.repository.as_ref();
    let deployment = match serving::servable(repository, id).await {
        Ok(deployment) => deployment,
        Err(err) => return site_error(id, &err),
    };
    // Before anything of the site is looked at: prepared answers, validators and ranges of a
    // protected site never leave without access.
    let protected = match protection::check(state, &deployment, arrival, uri, headers, head).await {
        Gate::Open { protected } => protected,
        Gate::Refused(response) => return response,
    };
    let mut response = answer(state, &deployment, tail, request).await;
    if protected {
        protection::keep_private(response.headers_mut());
    }
    response
}

/// The answer of a `READY` deployment that may be served to this request.
async fn answer(
    state: &AppState,
    deployment: &Deployment,
    tail: &str,
    request: SiteRequest<'_>,
) -> Response {
    let SiteRequest {
        uri,
        headers,
        head,
        arrival,
    } = request;
    let path_based = matches!(arrival, Arrival::Path);
    let id = &deployment.id;
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
    let resolution = match serving::resolve_cached_ready(
        state.services.repository.as_ref(),
        &state.services.resolutions,
        deployment,
        &normalized,
    )
    .await
    {
        Ok(resolution) => resolution,
        Err(err) => return site_error(id, &err),
    };
    let warm = Warm {
        state,
        id,
        path: &normalized,
        resolution: &resolution,
        head,
    };
    let mut response = match &resolution.resolved {
        // A plain request is answered from the prepared answer; the configured headers are
        // part of it already.
        Resolved::File { file, .. } if is_plain(headers) => {
            return warm.answer(file, StatusCode::OK, headers).await;
        }
        // A site's own `404.html` is always sent as deployed, conditions and ranges aside.
        Resolved::NotFound(Some(custom)) => {
            return warm
                .answer(custom, StatusCode::NOT_FOUND, &HeaderMap::new())
                .await;
        }
        Resolved::Redirect { status, location } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::PERMANENT_REDIRECT);
            // A site path is relative to the site's root, which is `/<id>` when path-based.
            if path_based && location.starts_with('/') {
                redirect_with(status, &format!("/{id}{location}"), uri.query())
            } else {
                redirect_with(status, location, uri.query())
            }
        }
        Resolved::File {
            file,
            last_modified,
        } => file_response(state, file, Some(*last_modified), headers, head).await,
        Resolved::AddTrailingSlash => {
            // The last raw segment was validated (no '/', no '\\'); "./" keeps a segment such
            // as "javascript:x" from being read as a scheme.
            let last = tail.rsplit('/').next().unwrap_or_default();
            redirect(&format!("./{last}/"), uri.query())
        }
        Resolved::NotFound(None) => page(StatusCode::NOT_FOUND, NO_FILE_PAGE),
    };
    configured_headers(response.headers_mut(), &resolution);
    response
}

/// The answer when the deployment cannot serve anything.
fn site_error(id: &DeploymentId, err: &SiteError) -> Response {
    match err {
        SiteError::UnknownDeployment => page(
            StatusCode::NOT_FOUND,
            "404 Not Found\n\nThere is no deployment with this id.\n",
        ),
        SiteError::Deleted => page(
            StatusCode::GONE,
            "410 Gone\n\nThis deployment was deleted.\n",
        ),
        SiteError::NotReady(status) => page(StatusCode::NOT_FOUND, not_ready_message(*status)),
        err => {
            tracing::error!(%id, error = %err, "cannot resolve a site path");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n\nTry again shortly.\n",
            )
        }
    }
}

/// The site's own headers win over the defaults; they passed the header rule at deploy
/// time, so a value that still does not fit a header is skipped rather than answered.
fn configured_headers(headers: &mut HeaderMap, resolution: &Resolution) {
    for (name, value) in &resolution.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
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

/// What answering from a prepared answer needs.
struct Warm<'a> {
    state: &'a AppState,
    id: &'a DeploymentId,
    /// The normalized path, to put the resolution back into the cache once it holds more.
    path: &'a str,
    resolution: &'a Arc<Resolution>,
    head: bool,
}

impl Warm<'_> {
    /// The answer to a plain request for `file` (`status` 200, or 404 for a site's own
    /// `404.html`), from the prepared answer of the representation `request` negotiates,
    /// which the first such request builds and keeps.
    async fn answer(&self, file: &FileEntry, status: StatusCode, request: &HeaderMap) -> Response {
        let encoding = chosen_variant(file, request).map(|variant| variant.encoding);
        let kept = self
            .resolution
            .attached
            .get::<PreparedAnswers>()
            .and_then(|answers| answers.slot(encoding).get());
        let unkept;
        let prepared = match kept {
            Some(prepared) => prepared,
            None => match self.prepare(file, status, request).await {
                Ok(built) => match self.keep(encoding, built) {
                    Ok(kept) => kept,
                    Err(built) => {
                        unkept = built;
                        &unkept
                    }
                },
                Err(err) => return storage_failure(file, &err),
            },
        };
        if self.head {
            return prepared.response(Body::empty());
        }
        if let Some(body) = &prepared.body {
            return prepared.response(Body::from(body.clone()));
        }
        let body = match self.state.services.storage.get(&prepared.blob_key).await {
            Ok(object) => whole_body(object).await,
            Err(err) => Err(err),
        };
        match body {
            Ok((_, body, _)) => prepared.response(body),
            Err(err) => storage_failure(file, &err),
        }
    }

    /// Build the prepared answer for `file`: the headers a 200 (or the 404 of a site's own
    /// `404.html`) carries, and the body if it is small enough to keep.
    async fn prepare(
        &self,
        file: &FileEntry,
        status: StatusCode,
        request: &HeaderMap,
    ) -> Result<Prepared, StorageError> {
        let representation = negotiate(file, request);
        let last_modified = match &self.resolution.resolved {
            Resolved::File { last_modified, .. } => Some(*last_modified),
            _ => None,
        };
        let validators = Validators {
            etag: &representation.etag,
            last_modified: last_modified.and_then(conditional::http_time),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(representation.size),
        );
        representation_headers(
            &mut headers,
            file,
            &representation,
            validators,
            status == StatusCode::OK,
        );
        configured_headers(&mut headers, self.resolution);
        let mut body = None;
        if representation.size <= KEEP_BODY_BYTES {
            let object = self
                .state
                .services
                .storage
                .get(&representation.blob_key)
                .await?;
            let (size, _, whole) = whole_body(object).await?;
            // A body that did not arrive in one buffer, or not as long as the manifest
            // says, is read per request instead.
            body = whole.filter(|_| size == representation.size);
        }
        Ok(Prepared {
            status,
            headers,
            body,
            blob_key: representation.blob_key,
        })
    }

    /// Keep `prepared` with the resolution, unless another request kept one first, and put
    /// the resolution back into the cache so its budget counts what it now holds. Returns
    /// what is kept, or `prepared` back if the resolution holds something else.
    fn keep(
        &self,
        encoding: Option<Encoding>,
        prepared: Prepared,
    ) -> Result<&Prepared, Box<Prepared>> {
        let Some(answers) = self
            .resolution
            .attached
            .get_or_attach(PreparedAnswers::default)
        else {
            return Err(Box::new(prepared));
        };
        let kept = answers.slot(encoding).get_or_init(|| prepared);
        let resolutions = &self.state.services.resolutions;
        if let Some(key) = resolutions.key(self.id, self.path) {
            resolutions.insert(key, Arc::clone(self.resolution));
        }
        Ok(kept)
    }
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

/// Answer a request with preconditions or a range for `file`, a found file (plain requests
/// are answered by [`Warm::answer`]).
async fn file_response(
    state: &AppState,
    file: &FileEntry,
    last_modified: Option<OffsetDateTime>,
    request: &HeaderMap,
    head: bool,
) -> Response {
    let representation = negotiate(file, request);
    let validators = Validators {
        etag: &representation.etag,
        last_modified: last_modified.and_then(conditional::http_time),
    };
    let selected = {
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
            let mut response = StatusCode::OK.into_response();
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
                Ok((size, body, _)) => {
                    let mut response = (StatusCode::OK, body).into_response();
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                    response
                }
                Err(err) => return storage_failure(file, &err),
            }
        }
    };
    representation_headers(
        response.headers_mut(),
        file,
        &representation,
        validators,
        true,
    );
    response
}

/// What every answer carrying (part of) a representation says about it: for a found file
/// the caching headers and `Accept-Ranges`, for a site's own `404.html` only
/// `Cache-Control`; then type, encoding and `nosniff`.
fn representation_headers(
    headers: &mut HeaderMap,
    file: &FileEntry,
    representation: &Representation,
    validators: Validators<'_>,
    found: bool,
) {
    if found {
        cache_headers(headers, representation, validators);
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
}

/// The body of a 200, its length and, when it arrived in one buffer, that buffer. The first
/// chunk is read before answering, so a storage failure is a 503 rather than a 200 cut
/// short; an object that arrives in one chunk (every blob the hot-blob cache holds) becomes
/// one buffer, which hyper writes together with the response head instead of polling a
/// stream for its end.
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
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable\n\nTry again shortly.\n",
    );
    if let StorageError::Open(open) = err {
        // Storage's breaker is open: this blob is not in memory, and storage is not asked
        // until the cool-down ends. Said once by the breaker, not per request.
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(open.retry_after_secs()),
        );
    } else {
        tracing::error!(path = %file.path, blob = %file.sha256, error = %err, "cannot read a published blob");
    }
    response
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
