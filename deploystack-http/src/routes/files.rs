//! Content-addressed uploads: `POST /api/v1/files/missing` (which of these sha256 digests
//! does the server lack?), `PUT /api/v1/files/{sha256}` (here are the bytes of one) and
//! `POST /api/v1/files` (here are the bytes of several, one multipart part each: a site of
//! many small files in a few requests rather than one per file). A
//! client then creates the deployment from a manifest naming them (`POST
//! /api/v1/deployments` with a JSON body, `routes::manifest`), so a redeploy sends only the
//! files that changed. The rules are `deploystack_core::services::blobs`'.
//!
//! ## Why these routes are not rate-limited per request
//! A first deploy of a site of 5,000 files makes 5,000 blob uploads; counting them against
//! the `writes` quota would refuse ordinary sites. What a blob upload can cost is bounded
//! otherwise: each is at most `archive_max_file_bytes`, received under the same time limits
//! and disk floor as an upload, and the deployment that uses them counts in `deploys`.
//!
//! [`receive`] is shared with the `vercel` CLI's `/v2/files`: the body streamed into a
//! temporary file, `Content-Length` required and held to the blob limit before a byte is
//! read.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use deploystack_core::model::ContentHash;
use deploystack_core::services::blobs::{self, BlobError};
use deploystack_core::storage::StorageError;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::routes::upload::{check_disk, too_many_uploads, within, write_failure};
use crate::state::AppState;

/// Longest one blob may take to arrive.
pub const BLOB_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a blob upload waits for one of the upload slots (`max_connections / 2`) before
/// it is answered 503: clients send several at once, so a short queue is normal.
pub const SLOT_WAIT: Duration = Duration::from_secs(10);

/// The digests a client asks about.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MissingRequest {
    /// sha256 digests, lowercase hex: one per file of the deployment to be (repeats are
    /// fine).
    #[schema(value_type = Vec<String>)]
    pub digests: Vec<ContentHash>,
}

/// The digests the server lacks.
#[derive(Debug, Serialize, ToSchema)]
pub struct MissingAnswer {
    /// The digests asked about that must be uploaded, each once, in the order asked.
    #[schema(value_type = Vec<String>)]
    pub missing: Vec<ContentHash>,
}

/// A blob received.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlobAnswer {
    /// Its sha256 digest.
    #[schema(value_type = String)]
    pub digest: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was stored now (`false`: it already was).
    pub created: bool,
}

/// `POST /api/v1/files/missing`: which of these blobs must be uploaded.
#[utoipa::path(
    post,
    path = "/v1/files/missing",
    tag = "files",
    summary = "Which files must be uploaded",
    description = "Give the sha256 digests of every file of a deployment to be; the answer lists those the server does not have yet. Upload each with `PUT /api/v1/files/{sha256}`, then create the deployment from the manifest (`POST /api/v1/deployments` with a JSON body). The blobs the server has are kept for `blob_grace_secs` from this call, long enough to create the deployment.",
    request_body = MissingRequest,
    responses(
        (status = 200, description = "The digests to upload", body = MissingAnswer),
        (status = 400, description = "`invalid_json` (not a list of lowercase hex sha256 digests) or `too_many_digests`", body = ErrorBody),
    )
)]
pub async fn missing(
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<MissingAnswer>, ApiError> {
    let body = read_json_body(body).await?;
    let request: MissingRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"digests\": [\"<sha256>\", …]}}: {err}"),
        )
    })?;
    let missing = blobs::missing(&state.services, &request.digests)
        .await
        .map_err(blob_error)?;
    Ok(Json(MissingAnswer { missing }))
}

/// `PUT /api/v1/files/{sha256}`: the bytes of one blob.
#[utoipa::path(
    put,
    path = "/v1/files/{sha256}",
    tag = "files",
    summary = "Upload one file's bytes",
    description = "The raw bytes of one file (any content type), with `Content-Length`. They must hash to the sha256 in the path, or nothing is stored. Uploading a blob the server has already is harmless (`created: false`).",
    params(("sha256" = String, Path, description = "The sha256 digest of the bytes, lowercase hex")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored (or already stored)", body = BlobAnswer),
        (status = 400, description = "`invalid_digest` or `digest_mismatch`; nothing was stored", body = ErrorBody),
        (status = 411, description = "`length_required`", body = ErrorBody),
        (status = 413, description = "`too_large`: larger than the largest file a deployment may have", body = ErrorBody),
        (status = 503, description = "`too_many_uploads` or storage is unavailable; try again after `Retry-After`", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobAnswer>, ApiError> {
    let digest: ContentHash = digest.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_digest",
            "the path must end in the sha256 of the bytes, as 64 lowercase hex characters",
        )
    })?;
    let received = receive(&state, &headers, body).await?;
    let stored = blobs::put_file(
        &state.services,
        &digest,
        Some(received.size),
        received.file.path(),
    )
    .await
    .map_err(blob_error)?;
    Ok(Json(BlobAnswer {
        digest: stored.digest,
        size: stored.size,
        created: stored.created,
    }))
}

/// One of the upload slots (half of `max_connections`, shared with zip uploads), waiting
/// up to `wait` for one: clients send several files at once, so a short queue is normal.
/// Held while a body arrives; 503 `too_many_uploads` past the wait.
pub async fn upload_slot(
    state: &AppState,
    wait: Duration,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(wait, std::sync::Arc::clone(&state.uploads).acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        _ => Err(too_many_uploads()),
    }
}

/// Most blobs one batch may carry.
pub const MAX_BATCH_FILES: usize = 1000;
/// Most bytes one batch may carry, all parts together.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Blobs received in one batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// One per part, in the order sent.
    pub files: Vec<BlobAnswer>,
}

/// `POST /api/v1/files`: several blobs in one request.
#[utoipa::path(
    post,
    path = "/v1/files",
    tag = "files",
    summary = "Upload several files' bytes at once",
    description = "A `multipart/form-data` body whose every part is named by the sha256 of its bytes (`name=\"<sha256>\"`) and holds them. For many small files one request instead of one each: at most 1,000 parts and 64 MiB in all. Every part is checked before any is stored: one that does not hash to its name refuses the whole batch (400 `digest_mismatch`), and nothing is stored.",
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Stored (or already stored), in the order sent", body = BatchAnswer),
        (status = 400, description = "`invalid_digest`, `digest_mismatch`, `invalid_upload` or `too_many_files`; nothing was stored", body = ErrorBody),
        (status = 413, description = "`too_large`: over 64 MiB in all, or a part larger than the largest file a deployment may have", body = ErrorBody),
        (status = 415, description = "`expected_multipart`", body = ErrorBody),
        (status = 503, description = "`too_many_uploads` or storage is unavailable; try again after `Retry-After`", body = ErrorBody),
        (status = 507, description = "`insufficient_storage`", body = ErrorBody),
    )
)]
pub async fn put_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchAnswer>, ApiError> {
    let config = &state.services.config;
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected_multipart",
                "send the files as multipart/form-data, each part named by its sha256",
            )
        })?;
    check_disk(&state)?;
    let _slot = upload_slot(&state, SLOT_WAIT).await?;
    let max_part = blobs::max_blob_bytes(config);
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_BATCH_BYTES));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut parts: Vec<(ContentHash, tempfile::NamedTempFile)> = Vec::new();
    let receive = async {
        while let Some(mut field) = multipart.next_field().await.map_err(batch_error)? {
            if parts.len() >= MAX_BATCH_FILES {
                return Err(ApiError::bad_request(
                    "too_many_files",
                    format!("at most {MAX_BATCH_FILES} files per batch"),
                ));
            }
            let digest: ContentHash = field
                .name()
                .and_then(|name| name.parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_digest",
                        "every part must be named by the sha256 of its bytes, 64 lowercase hex characters",
                    )
                })?;
            let temp = state
                .services
                .scratch
                .file("blob-")
                .map_err(ApiError::internal)?;
            let std_file = temp.as_file().try_clone().map_err(ApiError::internal)?;
            let mut file = tokio::fs::File::from_std(std_file);
            let mut written: u64 = 0;
            while let Some(chunk) = field.chunk().await.map_err(batch_error)? {
                written += chunk.len() as u64;
                if written > max_part {
                    return Err(too_large(written, max_part));
                }
                file.write_all(&chunk).await.map_err(write_failure)?;
            }
            file.flush().await.map_err(write_failure)?;
            parts.push((digest, temp));
        }
        Ok(())
    };
    within(BLOB_TIMEOUT, receive).await?;
    let files: Vec<(ContentHash, std::path::PathBuf)> = parts
        .iter()
        .map(|(digest, temp)| (*digest, temp.path().to_path_buf()))
        .collect();
    let stored = blobs::put_files(&state.services, &files)
        .await
        .map_err(blob_error)?;
    drop(parts);
    Ok(Json(BatchAnswer {
        files: stored
            .into_iter()
            .map(|s| BlobAnswer {
                digest: s.digest,
                size: s.size,
                created: s.created,
            })
            .collect(),
    }))
}

fn batch_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "a batch carries at most {MAX_BATCH_BYTES} bytes; send fewer files per request"
                ),
            )
        }
        other => ApiError::bad_request(
            "invalid_upload",
            format!("the multipart body is malformed or broke off: {other}"),
        ),
    }
}

/// A blob's bytes, received into a temporary file (removed when dropped).
#[derive(Debug)]
pub struct Received {
    /// The bytes.
    pub file: tempfile::NamedTempFile,
    /// How many arrived (the `Content-Length`).
    pub size: u64,
}

/// Receive a blob's body into a temporary file: `Content-Length` required (411) and at most
/// the blob limit (413, before a byte is read), the disk floor checked (507), one of the
/// upload slots held while it arrives (503 after [`SLOT_WAIT`]), at most [`BLOB_TIMEOUT`].
pub async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Received, ApiError> {
    let config = &state.services.config;
    let Some(size) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return Err(ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send the blob with a Content-Length header",
        ));
    };
    let max = blobs::max_blob_bytes(config);
    if size > max {
        return Err(too_large(size, max));
    }
    check_disk(state)?;
    let _slot = upload_slot(state, SLOT_WAIT).await?;
    let temp = state
        .services
        .scratch
        .file("blob-")
        .map_err(ApiError::internal)?;
    let std_file = temp.as_file().try_clone().map_err(ApiError::internal)?;
    let mut file = tokio::fs::File::from_std(std_file);
    let receive = async {
        let mut stream = body.into_data_stream();
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| {
                tracing::debug!(error = %err, "a blob upload broke off");
                ApiError::bad_request("invalid_upload", "the upload stream broke off")
            })?;
            written += chunk.len() as u64;
            if written > size {
                return Err(ApiError::bad_request(
                    "invalid_upload",
                    "more bytes arrived than Content-Length announced",
                ));
            }
            file.write_all(&chunk).await.map_err(write_failure)?;
        }
        file.flush().await.map_err(write_failure)?;
        Ok(written)
    };
    let written = within(BLOB_TIMEOUT, receive).await?;
    Ok(Received {
        file: temp,
        size: written,
    })
}

/// Largest JSON body of these routes and of a manifest: room for the most files a
/// deployment may have, with long paths.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// A JSON request body, at most [`MAX_JSON_BYTES`] (413 beyond).
pub async fn read_json_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_JSON_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the request body is larger than {MAX_JSON_BYTES} bytes, or broke off"),
            )
        })
}

fn too_large(size: u64, max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the file is {size} bytes, more than the largest file a deployment may have ({max} bytes)"
        ),
    )
}

/// The answer to a blob call the core refused.
pub fn blob_error(err: BlobError) -> ApiError {
    match err {
        err @ BlobError::Mismatch { .. } => {
            ApiError::bad_request("digest_mismatch", err.to_string())
        }
        err @ BlobError::SizeMismatch { .. } => {
            ApiError::bad_request("size_mismatch", err.to_string())
        }
        BlobError::TooLarge { size, max } => too_large(size, max),
        err @ BlobError::TooMany { .. } => {
            ApiError::bad_request("too_many_digests", err.to_string())
        }
        err @ BlobError::Busy(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "blob_busy",
            err.to_string(),
        )
        .retry_after(1),
        BlobError::Storage(StorageError::Open(open)) => ApiError::from(&open),
        BlobError::Storage(err) if err.is_full() => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            "storage is full; nothing was stored",
        ),
        BlobError::Storage(err) => ApiError::unavailable(err),
        BlobError::Repository(err) => err.into(),
        other => ApiError::internal(other),
    }
}
