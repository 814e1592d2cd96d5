//! Uploads: `POST /deploy` (the seed API) and `POST /api/v1/deployments`, both taking a
//! multipart form whose field `file` holds a zip archive.
//!
//! Options come as form fields or query parameters (a form field wins over a parameter of
//! the same name): `project`, `target`, the build settings `framework`, `root_directory`,
//! `install_command`, `build_command`, `output_directory`, and environment variables as
//! repeatable `env=NAME=value` and `sensitive_env=NAME=value` (write-only: never shown
//! again). Variables from both places are combined; the rules are
//! `services::ingest::validate_settings` and `validate_env`.
//!
//! The body is streamed into a temporary file with a byte limit: past it the answer is 413 and
//! the temporary file is removed (it is deleted when dropped, on every path; after a crash the
//! next start sweeps it, see `services::scratch`). Nothing is held in memory whole.
//! Validation of the archive itself happens in `services::ingest`.
//!
//! ## Why uploads are limited three ways
//! An upload holds a connection for as long as its client sends. A body that goes silent for
//! `body_read_timeout_secs` is answered 408 (the stack's body timeout); one that drips slowly
//! is cut at `UPLOAD_TIMEOUT`; and at most half of `max_connections` uploads are received at
//! once (503 with `Retry-After` beyond), so stalled uploads can never take every connection
//! from serving and health checks. A disk below `min_free_disk_bytes` refuses uploads up
//! front with 507, and running out of space while receiving one answers 507 too.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use deploystack_core::model::{BuildSettings, EnvVar, ProjectName, Target};
use deploystack_core::services::disk;
use deploystack_core::services::ingest::{
    self, IngestError, MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, MAX_ENV_VARS, MAX_SETTING_BYTES,
    UploadOptions,
};
use deploystack_core::storage::StorageError;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::middleware::auth::Access;
use crate::routes::deployments::DeploymentView;
use crate::state::AppState;

/// Longest an upload may take from first to last byte (slow clients hold a connection and a
/// temporary file).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Most form fields an upload may have besides environment variables (`file`, `project`,
/// `target`, five build settings, and a few ignored ones)…
const MAX_OTHER_FIELDS: usize = 16;
/// … and in all: the variables are counted (and limited) on their own.
const MAX_FIELDS: usize = MAX_OTHER_FIELDS + MAX_ENV_VARS;
/// Largest text field (`project`, `target`).
const MAX_TEXT_FIELD: usize = 1024;
/// Largest `env`/`sensitive_env` field: a name, `=`, a value.
const MAX_ENV_FIELD: usize = MAX_ENV_NAME_BYTES + 1 + MAX_ENV_VALUE_BYTES;
/// The build setting fields, by their form and query name.
const SETTING_FIELDS: [&str; 5] = [
    "framework",
    "root_directory",
    "install_command",
    "build_command",
    "output_directory",
];
/// After refusing an oversized upload, read and drop up to this much more of it (for at most
/// [`DRAIN_TIME`]) before answering. A server that answers and closes while the client is still
/// sending makes the client's TCP stack see a reset, and many clients then report "connection
/// reset" instead of the 413; nginx's "lingering close" exists for the same reason.
const DRAIN_BYTES: u64 = 8 * 1024 * 1024;
/// See [`DRAIN_BYTES`].
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The options of an upload as received, from the form or the query string, before they are
/// parsed and checked.
#[derive(Debug, Default)]
pub struct UploadFields {
    /// Project name.
    pub project: Option<String>,
    /// `preview` (default) or `production`.
    pub target: Option<String>,
    /// Overrides of detection.
    pub settings: BuildSettings,
    /// Variables, in the order given.
    pub env: Vec<EnvVar>,
}

impl UploadFields {
    /// Take one text field or query parameter; `Ok(false)` if `name` is none of ours.
    fn set(&mut self, name: &str, value: String) -> Result<bool, ApiError> {
        let settings = &mut self.settings;
        let slot = match name {
            "project" => &mut self.project,
            "target" => &mut self.target,
            "framework" => &mut settings.framework,
            "root_directory" => &mut settings.root_directory,
            "install_command" => &mut settings.install_command,
            "build_command" => &mut settings.build_command,
            "output_directory" => &mut settings.output_directory,
            "env" | "sensitive_env" => {
                if self.env.len() >= MAX_ENV_VARS {
                    return Err(ApiError::bad_request(
                        "invalid_env",
                        format!("at most {MAX_ENV_VARS} environment variables are allowed"),
                    ));
                }
                self.env.push(parse_env(&value, name == "sensitive_env")?);
                return Ok(true);
            }
            _ => return Ok(false),
        };
        *slot = Some(value);
        Ok(true)
    }

    /// The options of `query`, a raw query string.
    fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let mut fields = Self::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if let Some(limit) = field_limit(&name) {
                if value.len() > limit.bytes {
                    return Err(limit.too_long(&name));
                }
                fields.set(&name, value.into_owned())?;
            }
        }
        Ok(fields)
    }

    /// These options (from the form) over `query`'s: a form field wins over a parameter of
    /// the same name; variables of both are kept.
    pub(crate) fn over(self, query: UploadFields) -> UploadFields {
        let (form, query_settings) = (self.settings, query.settings);
        let mut env = query.env;
        env.extend(self.env);
        UploadFields {
            project: self.project.or(query.project),
            target: self.target.or(query.target),
            settings: BuildSettings {
                framework: form.framework.or(query_settings.framework),
                root_directory: form.root_directory.or(query_settings.root_directory),
                install_command: form.install_command.or(query_settings.install_command),
                build_command: form.build_command.or(query_settings.build_command),
                output_directory: form.output_directory.or(query_settings.output_directory),
            },
            env,
        }
    }
}

/// `NAME=value` as a variable (the value may itself hold `=`).
fn parse_env(text: &str, sensitive: bool) -> Result<EnvVar, ApiError> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(ApiError::bad_request(
            "invalid_env",
            "give environment variables as NAME=value (env=API_URL=https://…)",
        ));
    };
    Ok(EnvVar {
        name: name.to_owned(),
        value: value.to_owned(),
        sensitive,
    })
}

/// How long a text option may be, and the error code for one that is longer.
struct FieldLimit {
    bytes: usize,
    code: &'static str,
}

impl FieldLimit {
    fn too_long(&self, name: &str) -> ApiError {
        ApiError::bad_request(
            self.code,
            format!("{name} is longer than {} bytes", self.bytes),
        )
    }

    fn not_utf8(&self, name: &str) -> ApiError {
        ApiError::bad_request(self.code, format!("{name} is not UTF-8 text"))
    }
}

/// The limit of text option `name`; `None` for names that are no option of ours.
fn field_limit(name: &str) -> Option<FieldLimit> {
    let (bytes, code) = match name {
        "project" | "target" => (MAX_TEXT_FIELD, "invalid_upload"),
        "env" | "sensitive_env" => (MAX_ENV_FIELD, "invalid_env"),
        _ if SETTING_FIELDS.contains(&name) => (MAX_SETTING_BYTES, "invalid_build_settings"),
        _ => return None,
    };
    Some(FieldLimit { bytes, code })
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload is larger than the limit of {limit} bytes"),
    )
}

/// The form an upload sends, as the API documentation shows it (the handler reads the
/// multipart stream itself, field by field). Each field but `file` may also be a query
/// parameter; a form field wins over a parameter of the same name.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used.
pub struct UploadForm {
    /// The site or project as a zip archive.
    #[schema(value_type = String, format = Binary, content_media_type = "application/zip")]
    file: Vec<u8>,
    /// The project it belongs to (a DNS-safe slug).
    project: Option<String>,
    /// `preview` (default) or `production`.
    target: Option<String>,
    /// A framework preset (`vite`, `nextjs`, …, or `static`) instead of detection.
    framework: Option<String>,
    /// The folder inside the archive that holds the project.
    root_directory: Option<String>,
    /// The command that installs dependencies.
    install_command: Option<String>,
    /// The command that builds the site.
    build_command: Option<String>,
    /// The folder the build writes the site to.
    output_directory: Option<String>,
    /// Environment variables for the build, each `NAME=value`; repeat the field for more.
    env: Option<Vec<String>>,
    /// Write-only environment variables, `NAME=value`: masked in logs, never shown again.
    sensitive_env: Option<Vec<String>>,
}

/// What both upload routes answer, described once for `/openapi.json`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, clippy::large_enum_variant)] // Never built: only the OpenAPI derive reads it.
enum UploadAnswers {
    /// Accepted and queued for its build.
    #[response(status = 202)]
    Accepted(DeploymentView),
    /// Not a usable zip archive, a bad option, an unacceptable manifest
    /// (`invalid_manifest`), or blobs the manifest names are not uploaded yet
    /// (`missing_blobs`, listed in `error.missing`).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `body_timeout` or `upload_timeout`.
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// `idempotency_key_in_use`: the first request with this key still runs.
    #[response(status = 409)]
    KeyInUse(ErrorBody),
    /// `upload_too_large`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Not a multipart form.
    #[response(status = 415)]
    NotMultipart(ErrorBody),
    /// `idempotency_key_reused`: the key was used for another request.
    #[response(status = 422)]
    KeyReused(ErrorBody),
    /// `rate_limited`: this caller made too many uploads (`Retry-After` says when to try
    /// again; `RateLimit-Policy` and `RateLimit` give the quota and what is left), or
    /// `too_many_queued`: the project has `max_queued_per_project` deployments waiting to be
    /// built already. Nothing was stored.
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// `too_many_uploads` (see `Retry-After`) or a dependency is down.
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// `insufficient_storage`: the server's disk is (nearly) full.
    #[response(status = 507)]
    DiskFull(ErrorBody),
}

/// `POST /deploy`: the seed API's name for [`upload`].
#[utoipa::path(
    post,
    path = "/deploy",
    tag = "deployments",
    summary = "Upload a site (the original endpoint)",
    description = "The same as `POST /api/v1/deployments`.",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retry with the same key gets the first answer (docs/api.md, Retries)")),
    responses(UploadAnswers)
)]
pub async fn deploy(
    state: State<AppState>,
    access: Access,
    caller: Caller,
    uri: OriginalUri,
    headers: HeaderMap,
    query: RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    upload(state, access, caller, uri, headers, query, body).await
}

/// `POST /deploy`, `POST /api/v1/deployments`: accept a zip; 202 with the deployment.
#[utoipa::path(
    post,
    path = "/v1/deployments",
    tag = "deployments",
    summary = "Upload a site",
    description = "Either streams a zip archive in the multipart field `file`, or takes a JSON manifest of files uploaded before with `PUT /api/v1/files/{sha256}` (400 `missing_blobs` lists those still to upload; send the same manifest again after uploading them). Checks it, stores it and queues its build. Poll `status_url` or follow the log until the status is `READY`.",
    request_body(content(
        (UploadForm = "multipart/form-data"),
        (crate::routes::manifest::ManifestRequest = "application/json")
    )),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retry with the same key gets the first answer (docs/api.md, Retries)")),
    responses(UploadAnswers)
)]
pub async fn upload(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let query = UploadFields::from_query(query.as_deref())?;
    // A token limited to projects is refused before the body is read when the query names
    // the project; a form field is checked once the form is read, below.
    // The same for a project with too many deployments waiting (checked again, with the
    // form's project, before anything is stored).
    if let Some(project) = query.project.as_deref().and_then(|p| p.parse().ok()) {
        access.check_project(Some(&project))?;
        ingest::check_queue_cap(&state.services, &project)
            .await
            .map_err(ingest_error)?;
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if json {
        return crate::routes::manifest::create(&state, access, caller, query, body).await;
    }
    let config = &state.services.config;
    check_disk(&state)?;
    let Ok(_receiving) = Arc::clone(&state.uploads).try_acquire_owned() else {
        return Err(too_many_uploads());
    };
    let limit = config.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit) {
        if len <= limit.saturating_add(DRAIN_BYTES) {
            drain(body).await;
        }
        return Err(too_large(limit));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected_multipart",
            "send the archive as multipart/form-data with a field named \"file\" (curl -F file=@site.zip …)",
        )
    })?;

    let temp = state
        .services
        .scratch
        .file("upload-")
        .map_err(write_failure)?;
    let file = temp.as_file().try_clone().map_err(ApiError::internal)?;
    let mut file = tokio::fs::File::from_std(file);

    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limit.saturating_add(DRAIN_BYTES)));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut form = UploadFields::default();
    let receive = async {
        let mut received_file = false;
        let mut fields = 0;
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?
        {
            fields += 1;
            if fields > MAX_FIELDS {
                return Err(ApiError::bad_request(
                    "invalid_upload",
                    "too many form fields",
                ));
            }
            match field.name() {
                Some("file") => {
                    if received_file {
                        return Err(ApiError::bad_request(
                            "invalid_upload",
                            "send exactly one field named \"file\"",
                        ));
                    }
                    received_file = true;
                    let mut written: u64 = 0;
                    while let Some(chunk) =
                        field.chunk().await.map_err(|e| multipart_error(e, limit))?
                    {
                        written += chunk.len() as u64;
                        if written > limit {
                            // Bounded by DRAIN_TIME here and by the stream limit in multer.
                            let _ = tokio::time::timeout(DRAIN_TIME, async {
                                while let Ok(Some(_)) = field.chunk().await {}
                            })
                            .await;
                            return Err(too_large(limit));
                        }
                        file.write_all(&chunk).await.map_err(write_failure)?;
                    }
                    file.flush().await.map_err(write_failure)?;
                }
                Some(name) if field_limit(name).is_some() => {
                    let name = name.to_owned();
                    let field_limit = field_limit(&name)
                        .ok_or_else(|| ApiError::internal("an option field lost its limit"))?;
                    let mut text = Vec::new();
                    while let Some(chunk) =
                        field.chunk().await.map_err(|e| multipart_error(e, limit))?
                    {
                        text.extend_from_slice(&chunk);
                        if text.len() > field_limit.bytes {
                            return Err(field_limit.too_long(&name));
                        }
                    }
                    let text = String::from_utf8(text).map_err(|_| field_limit.not_utf8(&name))?;
                    form.set(&name, text)?;
                }
                // Other fields are ignored, but still read, so the stream moves on.
                _ => {
                    while field
                        .chunk()
                        .await
                        .map_err(|e| multipart_error(e, limit))?
                        .is_some()
                    {}
                }
            }
        }
        if !received_file {
            return Err(ApiError::bad_request(
                "missing_file",
                "the form has no field named \"file\"; upload the zip as -F file=@site.zip",
            ));
        }
        Ok(())
    };
    within(UPLOAD_TIMEOUT, receive).await?;

    let options = UploadOptions {
        by: caller.by().map(str::to_owned),
        ..upload_options(form.over(query))?
    };
    access.check_project(options.project.as_ref())?;
    let deployment = ingest::accept_upload(&state.services, temp.path(), options)
        .await
        .map_err(ingest_error)?;
    drop(temp);
    let mut view = DeploymentView::new(&state, deployment);
    if uri.path() == "/deploy" {
        // The seed contract: `/deploy` answers with the path-based address.
        view.url = view.path_url.clone();
    }
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The answer to an upload (of a zip or a manifest) ingest refused.
pub(crate) fn ingest_error(err: IngestError) -> ApiError {
    match err {
        IngestError::MissingBlobs(missing) => ApiError::bad_request(
            "missing_blobs",
            format!(
                "{} of the files named are not uploaded yet: upload each blob in error.missing (PUT /api/v1/files/{{sha256}}), then send the same request again",
                missing.len()
            ),
        )
        .with_missing(missing.iter().map(ToString::to_string).collect()),
        IngestError::InvalidManifest(message) => {
            ApiError::bad_request("invalid_manifest", message)
        }
        err @ IngestError::SourceGone(_) => {
            ApiError::new(StatusCode::CONFLICT, "source_gone", err.to_string())
        }
        IngestError::Archive(err) if err.is_user_error() => {
            ApiError::bad_request(err.code(), err.to_string())
        }
        IngestError::InvalidBuildSettings(message) => {
            ApiError::bad_request("invalid_build_settings", message)
        }
        IngestError::InvalidEnv(message) => ApiError::bad_request("invalid_env", message),
        IngestError::Storage(StorageError::Open(open)) => ApiError::from(&open),
        IngestError::Storage(err) if err.is_full() => out_of_space(&err),
        IngestError::Storage(err) => ApiError::unavailable(err),
        IngestError::Repository(err) => err.into(),
        IngestError::Project(err) => crate::routes::projects::project_error(err),
        err @ IngestError::TooManyQueued { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_queued",
            err.to_string(),
        ),
        other => ApiError::internal(other),
    }
}

/// 507 when the data directory's disk has less free space than `min_free_disk_bytes`:
/// checked before any of a body is read, by every route that receives one to store.
pub(crate) fn check_disk(state: &AppState) -> Result<(), ApiError> {
    let config = &state.services.config;
    disk::check_floor(&config.data_dir, config.min_free_disk_bytes).map_err(|low| {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            low.to_string(),
        )
    })
}

/// `receive` (a body arriving) given at most `limit`: 408 `upload_timeout` past it.
pub(crate) async fn within<T>(
    limit: Duration,
    receive: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(limit, receive)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_timeout",
                "the upload took too long",
            ))
        })
}

/// 503 when every upload slot (half of `max_connections`) is taken.
pub(crate) fn too_many_uploads() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_uploads",
        "too many uploads are being received right now; try again in a few seconds",
    )
    .retry_after(5)
}

/// Read and drop at most [`DRAIN_BYTES`] of `body`, for at most [`DRAIN_TIME`].
async fn drain(body: Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen: u64 = 0;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

pub(crate) fn upload_options(fields: UploadFields) -> Result<UploadOptions, ApiError> {
    let project = fields
        .project
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<ProjectName>())
        .transpose()
        .map_err(|err| ApiError::bad_request("invalid_project", err.to_string()))?;
    let target = fields
        .target
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<Target>())
        .transpose()
        .map_err(|err| ApiError::bad_request("invalid_target", err))?
        .unwrap_or_default();
    // An empty setting means "detect", as leaving it out does (forms send empty fields).
    let settings = fields.settings;
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let settings = BuildSettings {
        framework: given(settings.framework),
        root_directory: given(settings.root_directory),
        install_command: given(settings.install_command),
        build_command: given(settings.build_command),
        output_directory: given(settings.output_directory),
    };
    Ok(UploadOptions {
        project,
        target,
        settings,
        env: fields.env,
        by: None,
    })
}

fn multipart_error(err: multer::Error, limit: u64) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
        multer::Error::StreamReadFailed(err) if body_timed_out(err.as_ref()) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the upload sent nothing for too long (body_read_timeout_secs); send the body without pausing",
        ),
        multer::Error::StreamReadFailed(err) => {
            tracing::debug!(error = %err, "upload stream failed");
            ApiError::bad_request("invalid_upload", "the upload stream broke off")
        }
        other => ApiError::bad_request(
            "invalid_upload",
            format!("the multipart body is malformed: {other}"),
        ),
    }
}

/// Whether reading the body failed because it went silent (the stack's body timeout,
/// `crate::middleware`).
fn body_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// 507 when writing the spool ran out of space, else a 500 that logs `err`.
pub(crate) fn write_failure(err: std::io::Error) -> ApiError {
    if disk::is_out_of_space(&err) {
        out_of_space(&err)
    } else {
        ApiError::internal(err)
    }
}

fn out_of_space(err: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %err, "an upload ran out of disk space");
    ApiError::new(
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
        "the server ran out of disk space while receiving the upload; nothing was stored. Free some space (delete old deployments) and try again",
    )
}
