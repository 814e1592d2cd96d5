//! Running the build: fetch the source, extract it without trusting it, pick a strategy and
//! build in its sandbox.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Pipeline;
use super::failure::{Failure, stop_if, user};
use crate::archive;
use crate::build::{BuildContext, BuildLog, SourceTree, sensitive_values};
use crate::model::{Deployment, EnvVar, ManifestEntry};
use crate::services::env::{self, EnvError};
use crate::storage::{StorageError, download_to_file};

/// What a finished build leaves for the output step.
#[derive(Debug)]
pub(super) struct Ran {
    /// The strategy that built, by name.
    pub(super) strategy: String,
    /// How long the strategy's build took, in milliseconds.
    pub(super) build_ms: u64,
    /// The folder the strategy says holds the site; not checked yet.
    pub(super) output_dir: PathBuf,
    /// The extracted source and the strategy's work folder: the output must lie in one.
    pub(super) source_dir: PathBuf,
    pub(super) work_dir: PathBuf,
}

impl Pipeline {
    /// Get the source on disk (extract the uploaded zip, or lay out the files of a
    /// `manifest` source), select a strategy and run its build.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_build(
        &self,
        deployment: &Deployment,
        manifest: Option<&[ManifestEntry]>,
        attempt: i64,
        log: &BuildLog,
        cancel: &CancellationToken,
        scratch: &Path,
        preset: &OnceLock<String>,
    ) -> Result<Ran, Failure> {
        let services = &self.services;
        let source_dir = scratch.join("source");
        match manifest {
            Some(files) => self.lay_out(files, &source_dir, log, cancel).await?,
            None => {
                self.fetch_archive(deployment, scratch, &source_dir, log)
                    .await?
            }
        }
        stop_if(cancel)?;

        // Read now, when the build starts: a change made while the deployment was queued
        // counts (see `services::env`, "Which moment counts").
        let env = self.build_env(deployment, log).await?;
        let work_dir = scratch.join("work");
        std::fs::create_dir(&work_dir)?;
        let mut ctx = BuildContext {
            source: SourceTree::new(&source_dir),
            work_dir,
            log: log.clone(),
            cancel: cancel.clone(),
            settings: deployment.settings.clone(),
            env,
            project: deployment.project.clone(),
        };
        ctx.log.mask(sensitive_values(&ctx.env));
        let selection = services
            .strategies
            .select(&ctx.source, &ctx.settings)
            .await?;
        ctx.source = selection.source;
        let (strategy, detection) = (selection.strategy, selection.detection);
        log.system(format!(
            "preset: {} ({})",
            detection.strategy, detection.reason
        ));
        let _ = preset.set(strategy.name().to_owned());
        self.preset_started(deployment, attempt, strategy.name())
            .await;
        let phase = Instant::now();
        let output = strategy.build(&ctx).await?;
        stop_if(cancel)?;
        let build_ms = phase.elapsed().as_millis() as u64;
        log.system(format!("build finished in {build_ms} ms"));
        Ok(Ran {
            strategy: strategy.name().to_owned(),
            build_ms,
            output_dir: output.dir,
            source_dir,
            work_dir: ctx.work_dir,
        })
    }
}

impl Pipeline {
    /// Download the uploaded zip of `deployment` and extract it, without trusting it, into
    /// `source_dir`.
    async fn fetch_archive(
        &self,
        deployment: &Deployment,
        scratch: &Path,
        source_dir: &Path,
        log: &BuildLog,
    ) -> Result<(), Failure> {
        let services = &self.services;
        let archive_path = scratch.join("source.zip");
        match download_to_file(
            services.storage.as_ref(),
            &deployment.source_key,
            &archive_path,
        )
        .await
        {
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => {
                return Err(user(
                    "source_missing",
                    "the uploaded source of this deployment is gone; upload it again",
                ));
            }
            Err(err) => return Err(err.into()),
        }
        std::fs::create_dir(source_dir)?;
        let limits = services.config.archive_limits();
        let phase = Instant::now();
        let (archive_for_task, dir_for_task) = (archive_path.clone(), source_dir.to_path_buf());
        let extracted = tokio::task::spawn_blocking(move || {
            archive::extract(&archive_for_task, &dir_for_task, &limits)
        })
        .await
        .map_err(|err| Failure::Internal(err.to_string()))??;
        let _ = std::fs::remove_file(&archive_path);
        log.system(format!(
            "extracted {} files ({} bytes) in {} ms",
            extracted.files,
            extracted.bytes,
            phase.elapsed().as_millis()
        ));
        Ok(())
    }

    /// The variables of this build, values opened; logs their names (never values).
    async fn build_env(
        &self,
        deployment: &Deployment,
        log: &BuildLog,
    ) -> Result<Vec<EnvVar>, Failure> {
        let env = match env::for_build(&self.services, deployment).await {
            Ok(env) => env,
            Err(EnvError::Repository(err)) => return Err(err.into()),
            // A key that is not configured (or an altered value): retrying cannot help, and
            // the message names the key id, never a value.
            Err(err) => {
                return Err(user(
                    "env_unreadable",
                    format!("cannot read the environment variables of this build: {err}"),
                ));
            }
        };
        if !env.is_empty() {
            let names: Vec<&str> = env.iter().map(|v| v.name.as_str()).collect();
            log.system(format!("environment variables: {}", names.join(", ")));
        }
        Ok(env)
    }
}
