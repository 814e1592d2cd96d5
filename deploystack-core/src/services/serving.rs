//! Serving resolution: from a request path to a file of a deployment.
//!
//! Files are found through the deployment's manifest, never by joining a request path onto a
//! filesystem path, so a path can at worst name a file that is not in the manifest. Paths are
//! still checked strictly before the lookup: they are decoded exactly once, and anything a
//! clean URL never contains — dot segments, encoded slashes, backslashes, NUL and control
//! characters, invalid UTF-8, empty segments — is refused rather than normalised, so no two
//! spellings reach the same file and no trick reaches another one.
//!
//! Which file answers a clean path is then decided by the deployment's routing configuration
//! (`crate::routing`): redirects, rewrites, headers, SPA fallback and the nearest `404.html`.
//! [`resolve_cached`] keeps each answer in a [`ResolutionCache`], so a warm path costs one
//! lookup after the deployment record, whatever routing would have asked.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use time::OffsetDateTime;

use crate::cache::ResolutionCache;
use crate::model::{Deployment, DeploymentId, DeploymentStatus, Encoding, FileEntry};
use crate::repository::{Repository, RepositoryError};
use crate::routing::{self, Route};

/// Longest request path accepted, in bytes (before decoding).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("the request path is too long")]
    TooLong,
    /// The path is not a clean URL path; the message says what is wrong with it.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Decode the part of a request path after `/<deployment-id>/` (still percent-encoded, without
/// the query) into a manifest path. `""` is the site root; a trailing `/` names a folder.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if raw.is_empty() {
        return Ok(String::new());
    }
    let (body, folder) = match raw.strip_suffix('/') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let mut decoded = String::with_capacity(raw.len());
    for (i, segment) in body.split('/').enumerate() {
        if i > 0 {
            decoded.push('/');
        }
        decoded.push_str(&decode_segment(segment)?);
    }
    if folder {
        decoded.push('/');
    }
    Ok(decoded)
}

fn decode_segment(segment: &str) -> Result<String, PathError> {
    if segment.is_empty() {
        return Err(PathError::Invalid("empty path segment (\"//\")"));
    }
    let raw = segment.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::Invalid("malformed percent-encoding"))?;
            bytes.push(hex);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    // Strict UTF-8 also refuses overlong encodings such as %c0%ae for '.'.
    let text =
        String::from_utf8(bytes).map_err(|_| PathError::Invalid("the path is not valid UTF-8"))?;
    if text == "." || text == ".." {
        return Err(PathError::Invalid("dot segments are not allowed"));
    }
    if text.contains('/') {
        return Err(PathError::Invalid("encoded slashes are not allowed"));
    }
    if text.contains('\\') {
        return Err(PathError::Invalid("backslashes are not allowed"));
    }
    if text.chars().any(char::is_control) {
        return Err(PathError::Invalid(
            "control characters (NUL included) are not allowed",
        ));
    }
    Ok(text)
}

/// What a path of a deployment resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Serve this file.
    File {
        /// The file.
        file: FileEntry,
        /// When it last changed: a deployment is immutable, so every file of it last changed
        /// when the deployment became `READY`. Served as `Last-Modified`.
        last_modified: OffsetDateTime,
    },
    /// The path names a folder without its trailing slash: redirect to the same path plus `/`
    /// so relative links inside its `index.html` resolve.
    AddTrailingSlash,
    /// Nothing there: serve this `404.html` of the deployment with status 404, if it has one.
    NotFound(Option<FileEntry>),
    /// The routing configuration redirects: `location` is a path of the site (starting with
    /// `/`, relative to the site's root, so path-based serving must prefix `/<deployment-id>`)
    /// or an absolute URL.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// Where to, without the request's query.
        location: String,
    },
}

/// What a path resolves to, and the headers the site's configuration adds to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// What to answer.
    pub resolved: Resolved,
    /// `(lowercase name, value)` pairs to set on the response, replacing the defaults
    /// (`Cache-Control` included). They passed the header rule at deploy time.
    pub headers: Vec<(String, String)>,
    /// The HTTP layer's rendering of this answer, kept with it so it is rendered once.
    pub rendered: RenderedHeads,
}

/// Response heads rendered for a [`Resolution`] of a file, one per representation (the file
/// as deployed and each precompressed variant), each filled by the first request that
/// renders it.
///
/// ## Why here?
/// A resolution of a `READY` deployment never changes, and neither does the head of a plain
/// `GET` for it: status, validators, type, length and the configured headers are all fixed
/// by the file and the deployment. Keeping the head's bytes with the cached resolution lets
/// the HTTP server answer a warm request by writing them out, without building and
/// serialising a header map per request, and the head lives and expires exactly as long as
/// the answer it belongs to. Core keeps the bytes but never reads them.
///
/// Equality ignores it: two resolutions that answer the same are equal whether or not
/// either was rendered yet.
#[derive(Debug, Clone, Default)]
pub struct RenderedHeads([OnceLock<RenderedHead>; 3]);

impl RenderedHeads {
    /// The slot of the representation with `encoding` (`None`: the file as deployed).
    pub fn slot(&self, encoding: Option<Encoding>) -> &OnceLock<RenderedHead> {
        let index = match encoding {
            None => 0,
            Some(Encoding::Br) => 1,
            Some(Encoding::Gzip) => 2,
        };
        &self.0[index]
    }

    /// Heap bytes the filled slots hold.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .filter_map(OnceLock::get)
            .map(|head| {
                head.head.len() + head.blob_key.len() + head.body.as_ref().map_or(0, Bytes::len)
            })
            .sum()
    }
}

impl PartialEq for RenderedHeads {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for RenderedHeads {}

/// One rendered response head and where its body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedHead {
    /// The status line and every header field, each ending in CRLF; without `Date` (which
    /// changes every second), `Connection` and the empty line that ends a head.
    pub head: Bytes,
    /// Storage key of the body's bytes.
    pub blob_key: String,
    /// Length of the body, as `Content-Length` in `head` says.
    pub size: u64,
    /// The body itself, when it is small enough to keep with the head: a warm request then
    /// needs no storage lookup at all. The cache that holds the resolution counts it.
    pub body: Option<Bytes>,
}

/// Why a deployment cannot serve anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// No deployment has this id.
    #[error("no deployment with this id")]
    UnknownDeployment,
    /// The deployment was deleted.
    #[error("this deployment was deleted")]
    Deleted,
    /// The deployment is not `READY` (yet, or ever).
    #[error("this deployment is {0}")]
    NotReady(DeploymentStatus),
    /// The repository failed.
    #[error(transparent)]
    Repository(RepositoryError),
}

/// Resolve the normalized `path` (see [`normalize_path`]) of deployment `id`; the headers its
/// configuration adds are dropped (see [`resolve_routed`]).
pub async fn resolve(
    repository: &dyn Repository,
    id: &DeploymentId,
    path: &str,
) -> Result<Resolved, SiteError> {
    resolve_routed(repository, id, path)
        .await
        .map(|resolution| resolution.resolved)
}

/// Resolve the normalized `path` (see [`normalize_path`]) of deployment `id` under its routing
/// configuration (`crate::routing::route`). Every file lookup is a `find_file`, which the read
/// cache answers from memory for a warm site; [`resolve_cached`] also skips those.
pub async fn resolve_routed(
    repository: &dyn Repository,
    id: &DeploymentId,
    path: &str,
) -> Result<Resolution, SiteError> {
    let deployment = servable(repository, id).await?;
    route_ready(repository, &deployment, path).await
}

/// [`resolve_routed`], with the answer kept in `resolutions`: a path asked before costs the
/// deployment record and one lookup. The record is read first, on every request, so a
/// deleted (or unknown, or not `READY`) deployment answers as such whatever `resolutions`
/// holds; only answers for a live `READY` deployment, which never change, are stored. Errors
/// are never stored.
pub async fn resolve_cached(
    repository: &dyn Repository,
    resolutions: &ResolutionCache,
    id: &DeploymentId,
    path: &str,
) -> Result<Arc<Resolution>, SiteError> {
    let deployment = servable(repository, id).await?;
    let key = resolutions.key(id, path);
    if let Some(hit) = key.as_ref().and_then(|key| resolutions.get(key)) {
        return Ok(hit);
    }
    let resolution = Arc::new(route_ready(repository, &deployment, path).await?);
    if let Some(key) = key {
        resolutions.insert(key, Arc::clone(&resolution));
    }
    Ok(resolution)
}

/// The record of deployment `id`, if it is live and `READY`.
async fn servable(repository: &dyn Repository, id: &DeploymentId) -> Result<Deployment, SiteError> {
    let deployment = match repository.get_deployment(id).await {
        Ok(deployment) => deployment,
        Err(RepositoryError::NotFound) => return Err(SiteError::UnknownDeployment),
        Err(err) => return Err(SiteError::Repository(err)),
    };
    if deployment.deleted_at.is_some() {
        return Err(SiteError::Deleted);
    }
    if deployment.status != DeploymentStatus::Ready {
        return Err(SiteError::NotReady(deployment.status));
    }
    Ok(deployment)
}

/// Route `path` of `deployment`, which [`servable`] let through.
async fn route_ready(
    repository: &dyn Repository,
    deployment: &Deployment,
    path: &str,
) -> Result<Resolution, SiteError> {
    // A READY deployment always has `ready_at`; `updated_at` is the same moment (its last
    // status change) should an older row lack it.
    let last_modified = deployment.ready_at.unwrap_or(deployment.updated_at);
    let id = &deployment.id;
    let lookup = |candidate: String| async move {
        repository
            .find_file(id, &candidate)
            .await
            .map_err(SiteError::Repository)
    };
    let routed = routing::route(deployment.routing.as_deref(), path, lookup).await?;
    let resolved = match routed.route {
        Route::File { file, status: 200 } => Resolved::File {
            file,
            last_modified,
        },
        Route::File { file, .. } => Resolved::NotFound(Some(file)),
        Route::NotFound => Resolved::NotFound(None),
        Route::AddTrailingSlash => Resolved::AddTrailingSlash,
        Route::Redirect { status, location } => Resolved::Redirect { status, location },
    };
    Ok(Resolution {
        resolved,
        headers: routed.headers,
        rendered: RenderedHeads::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn clean_paths_decode_once() {
        assert_eq!(normalize_path("").unwrap(), "");
        assert_eq!(normalize_path("a/b.css").unwrap(), "a/b.css");
        assert_eq!(normalize_path("docs/").unwrap(), "docs/");
        assert_eq!(
            normalize_path("hello%20world.txt").unwrap(),
            "hello world.txt"
        );
        assert_eq!(normalize_path("%25252e").unwrap(), "%252e");
        assert_eq!(normalize_path("caf%C3%A9.html").unwrap(), "café.html");
    }

    #[test]
    fn tricks_are_refused() {
        for raw in [
            "..",
            "a/../b",
            ".",
            "a/./b",
            "%2e%2e/x",
            "%2E%2E",
            "a%2fb",
            "a%2Fb",
            "..%2f..%2fetc%2fpasswd",
            "a\\b",
            "a%5cb",
            "a%00b",
            "a%0ab",
            "%c0%ae%c0%ae/x",
            "%ff",
            "a//b",
            "/abs",
            "%",
            "%zz",
            "%2",
        ] {
            assert!(normalize_path(raw).is_err(), "{raw:?} was accepted");
        }
        assert_eq!(
            normalize_path(&"a".repeat(MAX_PATH_BYTES + 1)),
            Err(PathError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn accepted_paths_never_climb_or_hide_separators(raw in "[a-z0-9%./\\\\]{0,24}") {
            if let Ok(path) = normalize_path(&raw) {
                let body = path.strip_suffix('/').unwrap_or(&path);
                if !body.is_empty() {
                    for segment in body.split('/') {
                        prop_assert!(!segment.is_empty());
                        prop_assert!(segment != "." && segment != "..");
                        prop_assert!(!segment.contains('\\'));
                    }
                }
            }
        }
    }
}
