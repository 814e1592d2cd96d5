//! The `BuildStrategy` port: turn a source tree into a folder of files to publish.
//!
//! # Contract
//! - `detect` only looks at the source tree (no commands) and says whether this strategy
//!   knows how to build it, and why.
//! - `build` runs in a scratch directory owned by the pipeline, writes log lines through the
//!   context, stops promptly when the context's cancellation fires, and returns the folder to
//!   publish. It must not publish anything itself: the pipeline walks, checks and stores the
//!   output, so every strategy gets the same safety checks.
//! - Errors are either the user's (`BuildError::Failed`: the build itself failed and retrying
//!   will not help) or ours (`Unavailable`: worth retrying).
//!
//! [`StrategyRegistry`] is the factory: it asks strategies in order and the first match wins.
//! Adapters: one [`PresetStrategy`] per framework preset ([`presets`]: detection and defaults as
//! data), run through the [`sandbox`] with a per-project dependency [`cache`], and
//! [`StaticStrategy`] (publish the files as they are) last. `Arc<B>` and `Box<B>` are
//! strategies too (`forward`), so a decorator can wrap a registered one.

pub mod cache;
mod forward;
mod preset_strategy;
pub mod presets;
mod registry;
pub mod sandbox;
mod static_site;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::model::{BuildSettings, EnvVar, LogLine, LogStream, ProjectName};
pub use crate::secrets::MASK;
use crate::secrets::Masker;

pub use preset_strategy::{BuildPlan, PackageManager, PresetStrategy};
pub use registry::{Selection, StrategyRegistry};
pub use sandbox::SandboxMode;
pub use static_site::StaticStrategy;

/// How the built-in strategies run builds (from [`Config`](crate::config::Config)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildConfig {
    /// Whether commands must, may or must not run under bubblewrap (`build_sandbox`).
    pub sandbox: SandboxMode,
    /// Where the per-project dependency caches live (`build_cache_dir`); `None`: no cache.
    pub cache_dir: Option<PathBuf>,
}

impl BuildConfig {
    /// The build settings of `config`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            sandbox: config.build_sandbox,
            cache_dir: Some(config.build_cache_dir()),
        }
    }
}

/// What can go wrong in a build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The user's build failed; `code` is stable (`build_failed`, `output_missing`, …).
    #[error("{message}")]
    Failed {
        /// Stable machine-readable code: a literal for the built-in strategies, or one a
        /// strategy computes at run time (`format!("{tool}_failed").into()`). It becomes the
        /// deployment's `error.code`.
        code: Cow<'static, str>,
        /// What went wrong, for people.
        message: String,
    },
    /// The build was canceled (shutdown, lost lease, user request).
    #[error("the build was canceled")]
    Canceled,
    /// Something on our side failed (disk, a missing tool we should have); worth retrying.
    #[error("build infrastructure failed: {0}")]
    Unavailable(String),
}

impl BuildError {
    /// [`BuildError::Failed`] with `code` (a literal or a `String` made at run time) and a
    /// message for people.
    pub fn failed(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        BuildError::Failed {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for BuildError {
    fn from(err: std::io::Error) -> Self {
        // A full disk is final: retrying the build fills the same disk again.
        if crate::services::disk::is_out_of_space(&err) {
            return BuildError::Failed {
                code: "insufficient_storage".into(),
                message: format!(
                    "the server ran out of disk space while building ({err}); free some space \
                     (delete old deployments) and deploy again"
                ),
            };
        }
        BuildError::Unavailable(err.to_string())
    }
}

/// A source tree on local disk, as extracted from the upload.
#[derive(Debug, Clone)]
pub struct SourceTree {
    root: PathBuf,
}

impl SourceTree {
    /// A source tree rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a regular file exists at `relative` (never follows a symbolic link).
    pub fn has_file(&self, relative: &str) -> bool {
        std::fs::symlink_metadata(self.root.join(relative)).is_ok_and(|m| m.is_file())
    }

    /// Whether a directory exists at `relative` (never follows a symbolic link).
    pub fn has_dir(&self, relative: &str) -> bool {
        std::fs::symlink_metadata(self.root.join(relative)).is_ok_and(|m| m.is_dir())
    }
}

/// Why a strategy thinks it can build a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The strategy's name.
    pub strategy: String,
    /// A short human reason, written to the build log ("no package.json: publishing files as they are").
    pub reason: String,
}

/// Collects build log lines; the pipeline stores them. Cheap to clone; clones share their
/// lines and their masked values.
#[derive(Debug, Clone, Default)]
pub struct BuildLog {
    attempt: i64,
    lines: Arc<Mutex<Vec<LogLine>>>,
    masker: Arc<Mutex<Masker>>,
}

/// The values of the sensitive variables among `env` that are long enough to mask (see
/// [`Masker::MIN_CHARS`]: shorter ones would blank out ordinary words).
pub fn sensitive_values(env: &[EnvVar]) -> Vec<String> {
    env.iter()
        .filter(|v| v.sensitive && v.value.chars().count() >= Masker::MIN_CHARS)
        .map(|v| v.value.clone())
        .collect()
}

impl BuildLog {
    /// An empty log for `attempt`.
    pub fn new(attempt: i64) -> Self {
        Self {
            attempt,
            ..Self::default()
        }
    }

    /// Replace each of `values` with [`MASK`] in every line written from now on, through this
    /// log or any clone of it (see [`Masker`]: values shorter than four characters are
    /// ignored, multi-line values are masked line by line too).
    pub fn mask(&self, values: impl IntoIterator<Item = String>) {
        // A poisoned lock still holds every value: masking goes on rather than leak.
        self.masker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(values);
    }

    /// `text` with every masked value replaced by [`MASK`] (for error messages built from
    /// log lines).
    pub fn masked(&self, text: &str) -> String {
        self.masker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mask(text)
            .into_owned()
    }

    /// Add one line.
    pub fn write(&self, stream: LogStream, message: impl Into<String>) {
        let line = LogLine {
            attempt: self.attempt,
            at: OffsetDateTime::now_utc(),
            stream,
            message: self.masked(&message.into()),
        };
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }

    /// Add a line from the platform itself.
    pub fn system(&self, message: impl Into<String>) {
        self.write(LogStream::System, message);
    }

    /// Take the lines written since the last call.
    pub fn drain(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|mut lines| std::mem::take(&mut *lines))
            .unwrap_or_default()
    }
}

/// Everything a build may use.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The extracted source (already stripped of a single top-level folder).
    pub source: SourceTree,
    /// A writable scratch directory the strategy may use; removed after the build.
    pub work_dir: PathBuf,
    /// Where log lines go.
    pub log: BuildLog,
    /// Fires when the build must stop (shutdown, lost lease, cancel).
    pub cancel: CancellationToken,
    /// The deployment's overrides of detection (framework, commands, folders).
    pub settings: BuildSettings,
    /// The deployment's environment variables — its project's for its target, then its
    /// upload's (`services::env::for_build`), values opened: the only ones a build command
    /// sees. Those marked `sensitive` are masked in the log.
    pub env: Vec<EnvVar>,
    /// The project the deployment belongs to; builds of one project share a dependency cache.
    pub project: Option<ProjectName>,
}

impl BuildContext {
    /// A context for building `source` in `work_dir`, with everything else empty: attempt 1,
    /// a cancellation that has not fired, no settings overrides, no environment variables,
    /// no project. How a test (or a strategy that delegates to another) makes one; set the
    /// public fields for the rest.
    pub fn new(source: SourceTree, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            source,
            work_dir: work_dir.into(),
            log: BuildLog::new(1),
            cancel: CancellationToken::new(),
            settings: BuildSettings::default(),
            env: Vec::new(),
            project: None,
        }
    }
}

/// Whether `path` names something inside the folder it is relative to: not absolute, and
/// made only of plain names and `.` (no `..`). Settings and `vercel.json` values that name
/// folders of the upload pass this before they are joined onto a real path.
pub fn is_plain_relative(path: &str) -> bool {
    !path.starts_with('/')
        && Path::new(path).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

impl SourceTree {
    /// The project folder `root_directory` (a deployment setting) inside this tree: relative,
    /// without `..`, and an existing folder reached without following links.
    pub fn within(&self, root_directory: Option<&str>) -> Result<SourceTree, BuildError> {
        let Some(relative) = root_directory
            .map(|r| r.trim_matches('/'))
            .filter(|r| !r.is_empty() && *r != ".")
        else {
            return Ok(self.clone());
        };
        let path = Path::new(relative);
        if root_directory.is_some_and(|r| !is_plain_relative(r)) {
            return Err(BuildError::Failed {
                code: "invalid_root_directory".into(),
                message: format!(
                    "the root directory {relative:?} must be a relative path inside the upload, without `..`"
                ),
            });
        }
        let mut current = self.root.clone();
        for part in path.components() {
            current.push(part);
            if !std::fs::symlink_metadata(&current).is_ok_and(|m| m.is_dir()) {
                return Err(BuildError::Failed {
                    code: "root_directory_missing".into(),
                    message: format!(
                        "the root directory {relative:?} is not a folder of the upload"
                    ),
                });
            }
        }
        Ok(SourceTree::new(current))
    }
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// The folder whose contents are published (it becomes the site root).
    pub dir: PathBuf,
}

/// Builds one kind of project. See the module docs for the contract.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BuildStrategy: Send + Sync + 'static {
    /// Short lowercase name shown in logs and events (`static`, `vite`, …).
    fn name(&self) -> &str;

    /// Whether this strategy builds `source`, and why.
    async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError>;

    /// Build and return the folder to publish.
    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError>;
}
