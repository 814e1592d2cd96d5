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
//!
//! Layout: [`path`](normalize_path) checks and decodes request paths, `cache` keeps the
//! answers ([`ResolutionCache`]), and [`Attached`] lets a caller keep what it derives from an
//! answer (prebuilt HTTP responses) with it.

mod attached;
mod cache;
mod path;

use std::sync::Arc;

use time::OffsetDateTime;

pub use self::attached::{Attached, Attachment};
pub use self::cache::{
    ResolutionCache, ResolutionCacheConfig, ResolutionCacheStats, ResolutionKey,
};
pub use self::path::{MAX_PATH_BYTES, PathError, normalize_path};
use crate::model::{Deployment, DeploymentId, DeploymentStatus, FileEntry};
use crate::repository::{Repository, RepositoryError};
use crate::routing::{self, Route};

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
    /// What the caller derived from this answer and keeps with it (the HTTP crate keeps
    /// its prebuilt responses here); core never reads it.
    pub attached: Attached,
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
    resolve_cached_ready(repository, resolutions, &deployment, path).await
}

/// [`resolve_cached`] for a deployment the caller already read with [`servable`] — to look
/// at it first (its project's protection) without reading it twice.
pub async fn resolve_cached_ready(
    repository: &dyn Repository,
    resolutions: &ResolutionCache,
    deployment: &Deployment,
    path: &str,
) -> Result<Arc<Resolution>, SiteError> {
    let id = &deployment.id;
    let key = resolutions.key(id, path);
    if let Some(hit) = key.as_ref().and_then(|key| resolutions.get(key)) {
        return Ok(hit);
    }
    let resolution = Arc::new(route_ready(repository, deployment, path).await?);
    if let Some(key) = key {
        resolutions.insert(key, Arc::clone(&resolution));
    }
    Ok(resolution)
}

/// The record of deployment `id`, if it is live and `READY`: what a site request reads first
/// (from the read cache, for a warm site).
pub async fn servable(
    repository: &dyn Repository,
    id: &DeploymentId,
) -> Result<Deployment, SiteError> {
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
        attached: Attached::default(),
    })
}
