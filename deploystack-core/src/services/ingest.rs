//! Ingest: turn an uploaded archive into a `QUEUED` deployment.
//!
//! Order matters, so that nothing accepted is ever lost: validate (reject before storing
//! anything), store the source, commit the row, then enqueue. If the enqueue fails the row is
//! still `QUEUED` and the reconciler enqueues it later.
//!
//! # Projects
//! An upload naming a project (`project=NAME`) belongs to it; a project that does not exist
//! yet is created with default settings. The deployment's build settings are the upload's
//! fields over the project's: upload fields > project settings > `vercel.json` > detection
//! (the last two are the build strategy's, see `crate::build::preset_strategy`).
//!
//! # How many may wait
//! A project may have at most `max_queued_per_project` deployments waiting to be built
//! (`QUEUED`); a further upload to it is refused with [`IngestError::TooManyQueued`] before
//! anything is stored (checked after the upload's own checks, before its source is written).
//! The count is read, not reserved, so uploads to one project racing each other may pass it
//! together by as many as race; it keeps one project from filling the queue, it is not a
//! quota. Uploads without a project are not counted against any cap: they are held back by
//! the deploys rate limit of whoever sends them (see `crate::ratelimit`).
//!
//! # Build settings and environment variables
//! An upload may override detection ([`BuildSettings`]) and give its build environment
//! variables ([`EnvVar`]). Both are checked here, before anything is stored, by
//! [`validate_settings`] and [`validate_env`]: the rules are the platform's, whichever
//! surface (HTTP form, CLI, embedding code) the values came through.

use std::path::Path;

use crate::archive::{self, ArchiveError};
use crate::events::{Event, emit_best_effort};
use crate::model::{
    BuildSettings, Deployment, DeploymentId, DeploymentStatus, EnvVar, NewDeployment, ProjectName,
    Target,
};
use crate::queue::Job;
use crate::repository::RepositoryError;
use crate::services::Services;
use crate::storage::StorageError;

/// Options of an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// The project the deployment belongs to, if any.
    pub project: Option<ProjectName>,
    /// Production or preview.
    pub target: Target,
    /// Overrides of framework detection (checked by [`validate_settings`]).
    pub settings: BuildSettings,
    /// The build's environment variables (checked by [`validate_env`]).
    pub env: Vec<EnvVar>,
    /// Who is uploading, as the history names callers (`token ci (<id>)`): kept on the
    /// deployment and in its `DeploymentCreated` event (and `ProjectCreated`, when the upload
    /// creates its project).
    pub by: Option<String>,
}

/// Longest build setting, in bytes.
pub const MAX_SETTING_BYTES: usize = 1024;
/// Longest environment variable name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Longest environment variable value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 64 * 1024;
/// Most environment variables one deployment may have.
pub const MAX_ENV_VARS: usize = 100;
/// Names the platform sets for every build itself; `DEPLOYSTACK_*` is reserved too.
pub const RESERVED_ENV_NAMES: &[&str] = &["PATH", "HOME"];
/// The prefix of names reserved for the platform.
pub const RESERVED_ENV_PREFIX: &str = "DEPLOYSTACK_";

/// Why an upload was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The archive is not acceptable; the message says why (the user's problem).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The source could not be stored.
    #[error("cannot store the upload: {0}")]
    Storage(#[from] StorageError),
    /// The deployment could not be recorded.
    #[error("cannot record the deployment: {0}")]
    Repository(#[from] RepositoryError),
    /// A build setting is not acceptable; the message says which and why.
    #[error("{0}")]
    InvalidBuildSettings(String),
    /// An environment variable is not acceptable; the message says which and why (never
    /// its value).
    #[error("{0}")]
    InvalidEnv(String),
    /// The project named could not be used or created (an unusable name, a failing
    /// repository).
    #[error(transparent)]
    Project(#[from] crate::services::projects::ProjectError),
    /// The project already has `queued` deployments waiting to be built, and at most `max`
    /// may wait (`max_queued_per_project`); nothing was stored.
    #[error(
        "project {project} already has {queued} deployments waiting to be built (at most {max} may wait); wait for some to finish, or cancel some"
    )]
    TooManyQueued {
        /// The project.
        project: ProjectName,
        /// How many of its deployments are `QUEUED`.
        queued: u64,
        /// The cap.
        max: u32,
    },
    /// A manifest names blobs the server does not have (never uploaded, or collected since):
    /// upload them and send the same manifest again. Nothing was recorded.
    #[error("{} of the files named are not uploaded yet; upload them and send the manifest again", .0.len())]
    MissingBlobs(Vec<crate::model::ContentHash>),
    /// A manifest is not acceptable (a path against the rules, a file given twice, past a
    /// limit); the message says which file and why. Nothing was recorded.
    #[error("{0}")]
    InvalidManifest(String),
    /// A deployment cannot be built again from its source: it was uploaded as an archive
    /// (whose source is removed after its build) or it has been deleted.
    #[error(
        "the source of deployment {0} is not kept (it was uploaded as a zip, or deleted); deploy the files again"
    )]
    SourceGone(DeploymentId),
    /// Validation could not run.
    #[error("archive validation did not finish: {0}")]
    Internal(String),
}

/// The storage key of a deployment's uploaded source.
pub fn source_key(id: &DeploymentId) -> String {
    format!("sources/{id}.zip")
}

/// Validate the zip at `archive_path`, store it, record a `QUEUED` deployment and enqueue its
/// build. The caller still owns (and removes) the file.
pub async fn accept_upload(
    services: &Services,
    archive_path: &Path,
    options: UploadOptions,
) -> Result<Deployment, IngestError> {
    validate_settings(&options.settings)?;
    validate_env(&options.env)?;
    let limits = services.config.archive_limits();
    let path = archive_path.to_owned();
    // Reading the central directory is blocking file I/O; keep it off the async workers.
    tokio::task::spawn_blocking(move || archive::inspect(&path, &limits))
        .await
        .map_err(|err| IngestError::Internal(err.to_string()))??;
    if let Some(project) = &options.project {
        check_queue_cap(services, project).await?;
    }
    let prepared = prepare(services, &options).await?;
    let id = DeploymentId::random();
    let key = source_key(&id);
    services.storage.put_file(&key, archive_path).await?;
    match record(services, id, key.clone(), Vec::new(), prepared, options).await {
        Ok(deployment) => Ok(deployment),
        Err(err) => {
            // Nothing references the source; do not leave it behind.
            if let Err(cleanup) = services.storage.delete(&key).await {
                tracing::warn!(%id, error = %cleanup, "could not remove the source of a failed upload");
            }
            Err(err)
        }
    }
}

/// What an upload's options become before anything is stored: the build settings (the
/// upload's over its project's) and the variables, sealed.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) settings: BuildSettings,
    pub(crate) env: Vec<EnvVar>,
}

/// Create the upload's project if it names one for the first time (as `vercel deploy`
/// does), merge its build settings under the upload's own fields (which win; stored with the
/// deployment so a later change of the project does not change how this one builds), and
/// seal the variables: the deployment row holds no plaintext value (see `services::env`,
/// "Upload-time variables").
pub(crate) async fn prepare(
    services: &Services,
    options: &UploadOptions,
) -> Result<Prepared, IngestError> {
    let settings = match &options.project {
        Some(name) => {
            let project =
                crate::services::projects::get_or_create(services, name, options.by.as_deref())
                    .await?;
            options.settings.clone().over(&project.build_settings)
        }
        None => options.settings.clone(),
    };
    // Sealing only fails for values far beyond the size `validate_env` allows.
    let env = crate::services::env::seal_upload_env(&services.keyring, options.env.clone())
        .map_err(|err| IngestError::Internal(err.to_string()))?;
    Ok(Prepared { settings, env })
}

/// Record a `QUEUED` deployment whose source is stored (`source_key`) or given as
/// `source_files`, enqueue its build and announce it. If the enqueue fails the row is still
/// `QUEUED` and the reconciler enqueues it later: the upload is accepted.
pub(crate) async fn record(
    services: &Services,
    id: DeploymentId,
    source_key: String,
    source_files: Vec<crate::model::ManifestEntry>,
    prepared: Prepared,
    options: UploadOptions,
) -> Result<Deployment, IngestError> {
    let new = NewDeployment {
        id,
        project: options.project,
        target: options.target,
        source_key,
        source_files,
        settings: prepared.settings,
        env: prepared.env,
        created_by: options.by.clone(),
    };
    let deployment = services.repository.create_deployment(&new).await?;
    if let Err(err) = services.queue.enqueue(&Job { deployment_id: id }).await {
        tracing::warn!(%id, error = %err, "enqueue failed; the reconciler will retry");
    }
    emit_best_effort(
        services.events.as_ref(),
        Event::DeploymentCreated {
            deployment_id: id,
            by: options.by,
        },
    )
    .await;
    Ok(deployment)
}

/// Refuse a deployment of `project` when `max_queued_per_project` of its deployments are
/// already `QUEUED` (see the module docs); 0 turns the cap off.
pub async fn check_queue_cap(
    services: &Services,
    project: &ProjectName,
) -> Result<(), IngestError> {
    let max = services.config.max_queued_per_project;
    if max == 0 {
        return Ok(());
    }
    let queued = services
        .repository
        .count_deployments(project, DeploymentStatus::Queued)
        .await?;
    if queued >= u64::from(max) {
        return Err(IngestError::TooManyQueued {
            project: project.clone(),
            queued,
            max,
        });
    }
    Ok(())
}

/// Check build settings: each at most [`MAX_SETTING_BYTES`], on one line, without NUL; the
/// root and output directories relative paths that stay inside the upload (no leading `/`, no
/// `..` segment, no backslash). `InvalidBuildSettings` names the first offending setting.
pub fn validate_settings(settings: &BuildSettings) -> Result<(), IngestError> {
    let fields = [
        ("framework", &settings.framework, false),
        ("root_directory", &settings.root_directory, true),
        ("install_command", &settings.install_command, false),
        ("build_command", &settings.build_command, false),
        ("output_directory", &settings.output_directory, true),
    ];
    for (name, value, is_path) in fields {
        let Some(value) = value else { continue };
        let invalid = |why: &str| IngestError::InvalidBuildSettings(format!("{name} {why}"));
        if value.len() > MAX_SETTING_BYTES {
            return Err(invalid(&format!(
                "is longer than {MAX_SETTING_BYTES} bytes"
            )));
        }
        if value.contains(['\0', '\n', '\r']) {
            return Err(invalid("must be one line without NUL characters"));
        }
        if value.trim().is_empty() {
            return Err(invalid("is empty; leave it out to use the detected value"));
        }
        if is_path {
            if value.starts_with('/') || value.contains('\\') {
                return Err(invalid(
                    "must be a relative path inside the upload, with forward slashes (like apps/web)",
                ));
            }
            if !crate::build::is_plain_relative(value) {
                return Err(invalid("must stay inside the upload: `..` is not allowed"));
            }
        }
    }
    Ok(())
}

/// Check environment variables: at most [`MAX_ENV_VARS`], each name `[A-Za-z_][A-Za-z0-9_]*`
/// of at most [`MAX_ENV_NAME_BYTES`], given once, not one the platform sets itself (`PATH`,
/// `HOME`, `DEPLOYSTACK_*`); each value at most [`MAX_ENV_VALUE_BYTES`] without NUL (a process
/// environment cannot hold one). `InvalidEnv` names the variable, never its value.
pub fn validate_env(env: &[EnvVar]) -> Result<(), IngestError> {
    if env.len() > MAX_ENV_VARS {
        return Err(IngestError::InvalidEnv(format!(
            "{} environment variables given; at most {MAX_ENV_VARS} are allowed",
            env.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for var in env {
        let name = var.name.as_str();
        let invalid = |why: String| IngestError::InvalidEnv(why);
        if !is_env_name(name) {
            let shown: String = name.chars().take(64).collect();
            return Err(invalid(format!(
                "{shown:?} is not a valid variable name: use letters, digits and _, not starting with a digit"
            )));
        }
        if name.len() > MAX_ENV_NAME_BYTES {
            return Err(invalid(format!(
                "variable names are at most {MAX_ENV_NAME_BYTES} bytes long"
            )));
        }
        if RESERVED_ENV_NAMES.contains(&name) || name.starts_with(RESERVED_ENV_PREFIX) {
            return Err(invalid(format!(
                "{name} is set by the platform for every build and cannot be overridden \
                 (reserved: PATH, HOME and names starting with {RESERVED_ENV_PREFIX})"
            )));
        }
        if var.value.len() > MAX_ENV_VALUE_BYTES {
            return Err(invalid(format!(
                "the value of {name} is longer than {MAX_ENV_VALUE_BYTES} bytes"
            )));
        }
        if var.value.contains('\0') {
            return Err(invalid(format!(
                "the value of {name} contains a NUL character"
            )));
        }
        if !seen.insert(name) {
            return Err(invalid(format!("{name} is given more than once")));
        }
    }
    Ok(())
}

/// Whether `name` matches `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.to_owned(),
            value: value.to_owned(),
            sensitive: false,
        }
    }

    fn settings_error(settings: BuildSettings) -> String {
        match validate_settings(&settings) {
            Err(IngestError::InvalidBuildSettings(message)) => message,
            other => panic!("{settings:?} accepted: {other:?}"),
        }
    }

    fn env_error(env: &[EnvVar]) -> String {
        match validate_env(env) {
            Err(IngestError::InvalidEnv(message)) => message,
            other => panic!("{env:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn reasonable_settings_pass() {
        let settings = BuildSettings {
            framework: Some("vite".into()),
            root_directory: Some("apps/web".into()),
            install_command: Some("pnpm install --frozen-lockfile".into()),
            build_command: Some("npm run build && echo done".into()),
            output_directory: Some("./dist/client".into()),
        };
        validate_settings(&settings).unwrap();
        validate_settings(&BuildSettings::default()).unwrap();
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let long = "x".repeat(MAX_SETTING_BYTES + 1);
        let cases = [
            (
                BuildSettings {
                    build_command: Some(long),
                    ..Default::default()
                },
                "build_command",
            ),
            (
                BuildSettings {
                    install_command: Some("npm ci\nrm -rf /".into()),
                    ..Default::default()
                },
                "install_command",
            ),
            (
                BuildSettings {
                    framework: Some("vite\0".into()),
                    ..Default::default()
                },
                "framework",
            ),
            (
                BuildSettings {
                    root_directory: Some("/etc".into()),
                    ..Default::default()
                },
                "root_directory",
            ),
            (
                BuildSettings {
                    root_directory: Some("apps/../../etc".into()),
                    ..Default::default()
                },
                "root_directory",
            ),
            (
                BuildSettings {
                    output_directory: Some("..".into()),
                    ..Default::default()
                },
                "output_directory",
            ),
            (
                BuildSettings {
                    output_directory: Some("dist\\..\\..".into()),
                    ..Default::default()
                },
                "output_directory",
            ),
        ];
        for (settings, name) in cases {
            let message = settings_error(settings);
            assert!(message.starts_with(name), "{message}");
        }
    }

    #[test]
    fn reasonable_variables_pass() {
        let mut env = vec![
            var("API_URL", "https://example.com"),
            var("_private", ""),
            var("MULTI_LINE", "line 1\nline 2"),
        ];
        env.extend((0..97).map(|i| var(&format!("V{i}"), "x")));
        validate_env(&env).unwrap();
    }

    #[test]
    fn bad_variables_are_refused_without_their_value() {
        for name in ["1ABC", "A-B", "", "Ä", "A B"] {
            env_error(&[var(name, "v")]);
        }
        for name in ["PATH", "HOME", "DEPLOYSTACK_TOKEN", "DEPLOYSTACK_"] {
            let message = env_error(&[var(name, "v")]);
            assert!(message.contains("platform"), "{message}");
        }
        env_error(&[var(&"N".repeat(MAX_ENV_NAME_BYTES + 1), "v")]);
        let message = env_error(&[var("BIG", &"s".repeat(MAX_ENV_VALUE_BYTES + 1))]);
        assert!(!message.contains("sss"), "{message}");
        env_error(&[var("NUL", "a\0b")]);
        env_error(&[var("TWICE", "1"), var("TWICE", "2")]);
        let many: Vec<EnvVar> = (0..=MAX_ENV_VARS)
            .map(|i| var(&format!("V{i}"), "x"))
            .collect();
        env_error(&many);
    }
}

#[cfg(all(test, feature = "testing", feature = "sqlite"))]
mod queue_cap {
    use super::*;
    use crate::Config;

    async fn upload(services: &Services, project: Option<&str>) -> Result<Deployment, IngestError> {
        let zip = crate::testing::fixtures::zip_bytes(&[("index.html", b"hi")]);
        let archive = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(archive.path(), zip).expect("write the zip");
        let options = UploadOptions {
            project: project.map(|name| name.parse().expect("a project name")),
            ..UploadOptions::default()
        };
        accept_upload(services, archive.path(), options).await
    }

    #[tokio::test]
    async fn a_project_with_the_most_deployments_waiting_gets_no_more_and_nothing_is_stored() {
        let config = Config {
            max_queued_per_project: 2,
            ..Config::default()
        };
        // No workers: every deployment stays QUEUED.
        let services = Services::in_memory(config).await.unwrap();
        for _ in 0..2 {
            upload(&services, Some("busy")).await.unwrap();
        }
        let sources = services.storage.list("sources/").await.unwrap().len();
        match upload(&services, Some("busy")).await {
            Err(
                err @ IngestError::TooManyQueued {
                    queued: 2, max: 2, ..
                },
            ) => {
                let message = err.to_string();
                assert!(
                    message.contains("busy already has 2 deployments waiting"),
                    "{message}"
                );
            }
            other => panic!("a third queued deployment was accepted: {other:?}"),
        }
        assert_eq!(
            services.storage.list("sources/").await.unwrap().len(),
            sources
        );
        let page = services
            .repository
            .list_deployments(&crate::model::PageRequest::default())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2, "the refused upload was recorded");

        // Other projects and uploads without a project are not held back.
        upload(&services, Some("other")).await.unwrap();
        for _ in 0..3 {
            upload(&services, None).await.unwrap();
        }
        // Once one of them is no longer waiting, the project takes another.
        let waiting = &page.items[0];
        crate::services::deployments::cancel(&services, &waiting.id, None)
            .await
            .unwrap();
        upload(&services, Some("busy")).await.unwrap();
    }

    #[tokio::test]
    async fn zero_turns_the_cap_off() {
        let config = Config {
            max_queued_per_project: 0,
            ..Config::default()
        };
        let services = Services::in_memory(config).await.unwrap();
        for _ in 0..25 {
            upload(&services, Some("many")).await.unwrap();
        }
    }
}
