//! Uploads: `POST /deploy` (the seed API) and `POST /api/v1/deployments`, both taking a
//! multipart form whose field `file` holds a zip archive.
//!
//! The body is streamed into a temporary file with a byte limit: past it the answer is 413 and
//! the temporary file is removed (it is deleted when dropped, on every path). Nothing is held
//! in memory whole. Validation of the archive itself happens in `services::ingest`.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use deploystack_core::model::{ProjectName, Target};
use deploystack_core::services::ingest::{self, IngestError, UploadOptions};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::routes::deployments::DeploymentView;
use crate::state::AppState;

/// Longest an upload may take from first to last byte (slow clients hold a connection and a
/// temporary file).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Most form fields an upload may have.
const MAX_FIELDS: usize = 8;
/// Largest text field (`project`, `target`).
const MAX_TEXT_FIELD: u64 = 1024;
/// After refusing an oversized upload, read and drop up to this much more of it (for at most
/// [`DRAIN_TIME`]) before answering. A server that answers and closes while the client is still
/// sending makes the client's TCP stack see a reset, and many clients then report "connection
/// reset" instead of the 413; nginx's "lingering close" exists for the same reason.
const DRAIN_BYTES: u64 = 8 * 1024 * 1024;
/// See [`DRAIN_BYTES`].
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Options that may also come as query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    /// Project name.
    pub project: Option<String>,
    /// `preview` (default) or `production`.
    pub target: Option<String>,
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload is larger than the limit of {limit} bytes"),
    )
}

/// `POST /deploy`, `POST /api/v1/deployments`: accept a zip; 202 with the deployment.
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request("invalid_query", err.body_text()))?;
    let limit = state.services.config.max_upload_bytes;
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

    let temp = tempfile::NamedTempFile::new().map_err(ApiError::internal)?;
    let file = temp.as_file().try_clone().map_err(ApiError::internal)?;
    let mut file = tokio::fs::File::from_std(file);

    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limit.saturating_add(DRAIN_BYTES)));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut form = UploadQuery::default();
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
                        file.write_all(&chunk).await.map_err(ApiError::internal)?;
                    }
                    file.flush().await.map_err(ApiError::internal)?;
                }
                Some(name @ ("project" | "target")) => {
                    let name = name.to_owned();
                    let mut text = Vec::new();
                    while let Some(chunk) =
                        field.chunk().await.map_err(|e| multipart_error(e, limit))?
                    {
                        text.extend_from_slice(&chunk);
                        if text.len() as u64 > MAX_TEXT_FIELD {
                            return Err(ApiError::bad_request(
                                "invalid_upload",
                                format!("field {name:?} is too long"),
                            ));
                        }
                    }
                    let text = String::from_utf8(text).map_err(|_| {
                        ApiError::bad_request(
                            "invalid_upload",
                            format!("field {name:?} is not UTF-8"),
                        )
                    })?;
                    if name == "project" {
                        form.project = Some(text);
                    } else {
                        form.target = Some(text);
                    }
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
    match tokio::time::timeout(UPLOAD_TIMEOUT, receive).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload_timeout",
                "the upload took too long",
            ));
        }
    }

    let options = upload_options(query, form)?;
    let deployment = ingest::accept_upload(&state.services, temp.path(), options)
        .await
        .map_err(|err| match err {
            IngestError::Archive(err) if err.is_user_error() => {
                ApiError::bad_request(err.code(), err.to_string())
            }
            IngestError::Storage(err) => ApiError::unavailable(err),
            IngestError::Repository(err) => err.into(),
            other => ApiError::internal(other),
        })?;
    drop(temp);
    Ok((
        StatusCode::ACCEPTED,
        Json(DeploymentView::new(&state, deployment)),
    ))
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

fn upload_options(query: UploadQuery, form: UploadQuery) -> Result<UploadOptions, ApiError> {
    let project = form
        .project
        .or(query.project)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<ProjectName>())
        .transpose()
        .map_err(|err| ApiError::bad_request("invalid_project", err.to_string()))?;
    let target = form
        .target
        .or(query.target)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<Target>())
        .transpose()
        .map_err(|err| ApiError::bad_request("invalid_target", err))?
        .unwrap_or_default();
    Ok(UploadOptions { project, target })
}

fn multipart_error(err: multer::Error, limit: u64) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
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
