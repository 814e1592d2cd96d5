//! `POST /v2/files`: one file's bytes, named by their SHA-1 in `x-now-digest` (what the CLI
//! sends; `x-vercel-digest`, the name in Vercel's REST docs, is read too), its size in
//! `x-now-size`.
//!
//! It is held to the limits of our own blob uploads (`crate::routes::files`): at most the
//! largest file a deployment may have (413), the disk floor (507 `insufficient_storage`
//! before a byte is read), one of the upload slots while it arrives.
//!
//! The body is received into a temporary file while its SHA-1 is computed; a SHA-1 other
//! than the one named is 400 and nothing is stored. The file is then stored as one of our
//! blobs, named by its sha256 (`services::blobs::put_file_by_content`, which hashes it and
//! keeps the blob through the garbage collector's grace period), and the SHA-1 →
//! sha256 mapping is recorded as a small object, `vercel/sha1/<sha1>` holding the sha256 in
//! hex, in `Storage`: this module's own bookkeeping, which `POST /v13/deployments` reads to
//! turn the CLI's manifest into ours. A record is written after its blob, so it never names
//! a blob that was not stored; one whose blob was collected since is answered by
//! `missing_files` again.
//!
//! Success is exactly 200 with `{}`: the CLI treats any other 2xx as an error, and does not
//! retry a 5xx.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use deploystack_core::model::ContentHash;
use deploystack_core::services::blobs::{self, BlobError};
use deploystack_core::storage::StorageError;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::routes::files::BLOB_TIMEOUT;
use crate::routes::upload::{check_disk, within};
use crate::state::AppState;

/// How often a file is stored again while the garbage collector removes the same blob…
const BUSY_RETRIES: u32 = 5;
/// … and how long to wait before each attempt.
const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// Longest a file waits for a receiving slot (shared with our uploads) before 503.
const SLOT_WAIT: Duration = Duration::from_secs(60);

/// Whether `text` is a lowercase hex SHA-1.
pub fn is_sha1(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The storage key of the record for `sha1`.
fn record_key(sha1: &str) -> String {
    format!("vercel/sha1/{sha1}")
}

/// The sha256 recorded for `sha1`, if a file with that SHA-1 was uploaded.
pub async fn sha256_of(state: &AppState, sha1: &str) -> Result<Option<ContentHash>, ApiError> {
    let object = match state.services.storage.get(&record_key(sha1)).await {
        Ok(object) => object,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(StorageError::Open(open)) => return Err(ApiError::from(&open)),
        Err(err) => return Err(ApiError::unavailable(err)),
    };
    let bytes = object.into_bytes().await.map_err(ApiError::unavailable)?;
    // A record that does not read back is treated as missing: the file is asked for again.
    Ok(std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.trim().parse().ok()))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `POST /v2/files`: see the module docs.
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let sha1 = header_text(&headers, "x-now-digest")
        .or_else(|| header_text(&headers, "x-vercel-digest"))
        .map(str::to_ascii_lowercase)
        .filter(|digest| is_sha1(digest))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_digest",
                "send the file's lowercase hex SHA-1 in x-now-digest",
            )
        })?;
    let declared = header_text(&headers, "x-now-size")
        .or_else(|| header_text(&headers, header::CONTENT_LENGTH.as_str()))
        .map(|size| {
            size.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_size",
                    "x-now-size must be the file's size in bytes",
                )
            })
        })
        .transpose()?;
    let max = blobs::max_blob_bytes(&state.services.config);
    if declared.is_some_and(|size| size > max) {
        return Err(too_large(max));
    }
    check_disk(&state)?;
    let _slot = crate::routes::files::upload_slot(&state, SLOT_WAIT).await?;
    let temp = state
        .services
        .scratch
        .file("vercel-file-")
        .map_err(ApiError::internal)?;
    let file = temp.as_file().try_clone().map_err(ApiError::internal)?;
    let mut file = tokio::fs::File::from_std(file);
    let receive = async {
        let mut sha1_hasher = <sha1::Sha1 as sha1::Digest>::new();
        let mut size: u64 = 0;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| {
                tracing::debug!(error = %err, "a file upload broke off");
                ApiError::bad_request("bad_request", "the upload broke off")
            })?;
            size += chunk.len() as u64;
            if size > max {
                return Err(too_large(max));
            }
            sha1::Digest::update(&mut sha1_hasher, &chunk);
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.flush().await.map_err(ApiError::internal)?;
        let sha1_of_body = hex::encode(sha1::Digest::finalize(sha1_hasher));
        Ok((sha1_of_body, size))
    };
    let (actual, size) = within(BLOB_TIMEOUT, receive).await?;
    if actual != sha1 {
        return Err(ApiError::bad_request(
            "invalid_digest",
            format!(
                "the body's SHA-1 is {actual}, not {sha1} as x-now-digest says; nothing was stored"
            ),
        ));
    }
    if let Some(declared) = declared.filter(|declared| *declared != size) {
        return Err(ApiError::bad_request(
            "invalid_size",
            format!(
                "the body is {size} bytes, not {declared} as x-now-size says; nothing was stored"
            ),
        ));
    }
    // The CLI never retries a failed file, so a blob the collector is removing this very
    // moment is stored again here, after the collector's claim has passed.
    let mut attempt = 0;
    let sha256 = loop {
        match blobs::put_file_by_content(&state.services, temp.path()).await {
            Err(BlobError::Busy(_)) if attempt < BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(BUSY_PAUSE).await;
            }
            result => break result.map_err(blob_error)?.digest,
        }
    };
    drop(temp);
    state
        .services
        .storage
        .put(&record_key(&sha1), Bytes::from(sha256.to_string()))
        .await
        .map_err(|err| match err {
            StorageError::Open(open) => ApiError::from(&open),
            other => ApiError::unavailable(other),
        })?;
    Ok(Json(json!({})))
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "size_limit_exceeded",
        format!("a file may be at most {max} bytes"),
    )
}

/// The answer to a file `put_file_by_content` refused (it names no digest or size, so
/// neither can mismatch).
fn blob_error(err: BlobError) -> ApiError {
    match err {
        BlobError::TooLarge { max, .. } => too_large(max),
        BlobError::Busy(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the garbage collector is removing this file right now; deploy again",
        ),
        BlobError::Storage(StorageError::Open(open)) => ApiError::from(&open),
        BlobError::Storage(err) => ApiError::unavailable(err),
        BlobError::Repository(err) => err.into(),
        other => ApiError::internal(other),
    }
}
