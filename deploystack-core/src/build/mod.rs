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
//! Adapters: [`StaticStrategy`] (publish the files as they are). Framework builds follow.

mod registry;
mod static_site;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::model::{BuildSettings, EnvVar, LogLine, LogStream, ProjectName};

pub use registry::StrategyRegistry;
pub use static_site::StaticStrategy;

/// What can go wrong in a build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The user's build failed; `code` is stable (`build_failed`, `output_missing`, …).
    #[error("{message}")]
    Failed {
        /// Stable machine-readable code.
        code: &'static str,
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

impl From<std::io::Error> for BuildError {
    fn from(err: std::io::Error) -> Self {
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

/// Collects build log lines; the pipeline stores them. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BuildLog {
    attempt: i64,
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl BuildLog {
    /// An empty log for `attempt`.
    pub fn new(attempt: i64) -> Self {
        Self {
            attempt,
            lines: Arc::default(),
        }
    }

    /// Add one line.
    pub fn write(&self, stream: LogStream, message: impl Into<String>) {
        let line = LogLine {
            attempt: self.attempt,
            at: OffsetDateTime::now_utc(),
            stream,
            message: message.into(),
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
    /// The deployment's own environment variables: the only ones a build command sees.
    pub env: Vec<EnvVar>,
    /// The project the deployment belongs to; builds of one project share a dependency cache.
    pub project: Option<ProjectName>,
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
