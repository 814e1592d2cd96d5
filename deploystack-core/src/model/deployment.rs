//! Deployments: one immutable build of a site, from upload to `READY` (or `ERROR`/`CANCELED`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BuildSettings, DeploymentId, EnvVar, ProjectName};

/// Where a deployment is meant to go. Production deployments of a project will move its
/// production alias when they become ready; previews never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A preview: served at its own URL only.
    #[default]
    Preview,
    /// A production deployment of its project.
    Production,
}

impl Target {
    /// The lowercase name stored in databases and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Preview => "preview",
            Target::Production => "production",
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "preview" => Ok(Target::Preview),
            "production" => Ok(Target::Production),
            other => Err(format!(
                "unknown target {other:?} (expected \"preview\" or \"production\")"
            )),
        }
    }
}

/// The life cycle of a deployment: `QUEUED → BUILDING → READY | ERROR | CANCELED`.
/// `BUILDING` may fall back to `QUEUED` when a worker gives a job back (shutdown, lost lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    /// Accepted and waiting for a worker.
    Queued,
    /// A worker holds the current attempt.
    Building,
    /// Published: files are served. A ready deployment never changes again.
    Ready,
    /// The build failed; `error` says why.
    Error,
    /// Stopped before it became ready: canceled, or deleted while queued or building.
    Canceled,
}

impl DeploymentStatus {
    /// The upper-case name used in storage and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Building => "BUILDING",
            Self::Ready => "READY",
            Self::Error => "ERROR",
            Self::Canceled => "CANCELED",
        }
    }

    /// Whether the deployment can still change status.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ready | Self::Error | Self::Canceled)
    }
}

impl FromStr for DeploymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "QUEUED" => Self::Queued,
            "BUILDING" => Self::Building,
            "READY" => Self::Ready,
            "ERROR" => Self::Error,
            "CANCELED" => Self::Canceled,
            other => return Err(format!("unknown deployment status {other:?}")),
        })
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a deployment ended in `ERROR`: a stable code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentError {
    /// Stable, machine-readable, e.g. `build_failed`, `unsafe_output`.
    pub code: String,
    /// What went wrong and, where possible, how to fix it.
    pub message: String,
}

/// What ingest hands the repository to create a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    /// Chosen by the caller so the source can be stored under it before the row exists.
    pub id: DeploymentId,
    /// The project it belongs to; anonymous uploads (`POST /deploy`) have none.
    pub project: Option<ProjectName>,
    /// Production or preview.
    pub target: Target,
    /// Storage key of the uploaded source archive, or [`manifest_source_key`] for a source
    /// given as a manifest.
    pub source_key: String,
    /// The source as a manifest of stored blobs (a content-addressed upload); empty for an
    /// uploaded archive. Recorded with the deployment in one transaction.
    pub source_files: Vec<crate::model::ManifestEntry>,
    /// Overrides of framework detection, stored with the deployment for its build.
    pub settings: BuildSettings,
    /// The upload's environment variables, values sealed (`services::env::seal_upload_env`):
    /// stored as given, opened by the worker when the build starts.
    pub env: Vec<EnvVar>,
    /// Who created it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
    /// `None` when the library was called without a caller.
    pub created_by: Option<String>,
}

/// The `source_key` of a deployment whose source is a manifest of blobs (kept in the
/// repository, not in storage): `manifest/<id>`. No object is ever stored under it.
pub fn manifest_source_key(id: &crate::model::DeploymentId) -> String {
    format!("manifest/{id}")
}

/// Whether `source_key` names a manifest source (see [`manifest_source_key`]).
pub fn is_manifest_source(source_key: &str) -> bool {
    source_key.starts_with("manifest/")
}

/// A deployment as stored. Deserializable too, so a cache can keep it outside the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Its id.
    pub id: DeploymentId,
    /// The project it belongs to, if any.
    pub project: Option<ProjectName>,
    /// Production or preview.
    pub target: Target,
    /// Where it is in its life cycle.
    pub status: DeploymentStatus,
    /// Storage key of the uploaded source archive (removed once the build is final).
    pub source_key: String,
    /// Fencing token: bumped by every claim, so only the holder of the latest attempt can
    /// publish or fail the deployment.
    pub attempt: i64,
    /// The worker holding the current attempt while `BUILDING`.
    pub lease_owner: Option<String>,
    /// When that worker's claim runs out unless renewed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Set when status is `ERROR`.
    pub error: Option<DeploymentError>,
    /// Number of files published (0 until `READY`).
    pub file_count: i64,
    /// Sum of the published files' sizes.
    pub total_bytes: i64,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last status change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it became `READY`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    /// When it was deleted; a deleted deployment is never served again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// Its compiled routing configuration (`vercel.json`, `_redirects`, `_headers`), set when
    /// it is published; `None` when the site has none. Serving applies it on every request,
    /// so it travels with the record the read cache keeps — behind an `Arc`, because that
    /// record is cloned for every request and a configuration can hold thousands of rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<std::sync::Arc<crate::routing::RoutingConfig>>,
    /// Overrides of framework detection the upload asked for (empty: detect everything).
    #[serde(default, skip_serializing_if = "BuildSettings::is_empty")]
    pub settings: BuildSettings,
    /// The upload's environment variables, values sealed as ingest stored them (rows from
    /// before sealing existed may hold plaintext; `services::env::open_upload_value` reads
    /// both). The build receives them over its project's variables (`services::env::for_build`).
    ///
    /// Never serialized: this record is what the shared read cache (Redis) stores and what
    /// embedders may turn into JSON, and variable values — sensitive ones above all — must
    /// not leave the process that read them from the repository. A record decoded from
    /// elsewhere therefore has no variables; the read cache keeps records that have some out
    /// of its shared layer, and the worker reads them from its claim, straight from the
    /// repository.
    #[serde(skip)]
    pub env: Vec<EnvVar>,
    /// Who created it: the API caller that uploaded it (`token ci (<id>)`, or
    /// `api (127.0.0.1)` for a tokenless local request); `None` for a deployment the library
    /// made without a caller, and for deployments from before this was recorded.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// One page request of a listing, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Maximum number of items (adapters clamp it to 1..=100).
    pub limit: u32,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 20,
            cursor: None,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass this as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which output stream a build log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output of a build command.
    Stdout,
    /// Standard error of a build command.
    Stderr,
    /// A line written by the platform itself (what it detected, what it published).
    System,
}

impl LogStream {
    /// The lowercase name used in storage and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::System => "system",
        }
    }
}

impl FromStr for LogStream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            "system" => Self::System,
            other => return Err(format!("unknown log stream {other:?}")),
        })
    }
}

/// A stored log line with its position in the log, so a reader can ask for what came after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogLine {
    /// Increases with every line appended to any deployment's log: the order lines were
    /// stored in. Pass the last one seen to `Repository::logs_after` for the next lines.
    pub seq: i64,
    /// The line.
    #[serde(flatten)]
    pub line: LogLine,
}

/// One line of a build's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// The build attempt that wrote it.
    pub attempt: i64,
    /// When it was written.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line break.
    pub message: String,
}
