//! What the tests share: real services on in-memory adapters, zip uploads, a way to run the
//! next job through the pipeline, and a build strategy whose behaviour each test scripts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploystack_core::build::{
    BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
};
use deploystack_core::events::Event;
use deploystack_core::model::{Deployment, DeploymentId, LogStream};
use deploystack_core::queue::{Delivery, QueueDepth};
use deploystack_core::services::ingest::{UploadOptions, accept_upload};
use deploystack_core::services::pipeline::{Outcome, Pipeline};
use deploystack_core::{Config, Services};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen in well under a second.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Fresh services on a private in-memory database, in-memory storage and queue, with the
/// default strategies.
pub async fn services(config: Config) -> Services {
    Services::in_memory(config).await.unwrap()
}

/// Like [`services`], with `strategy` asked before the static fallback.
pub async fn services_with(config: Config, strategy: Arc<dyn BuildStrategy>) -> Services {
    services(config).await.with_strategy(strategy)
}

pub use deploystack_core::testing::fixtures::zip_bytes;

/// Upload a zip of `files` through ingest: the deployment is `QUEUED` and its job enqueued.
pub async fn upload(services: &Services, files: &[(&str, &[u8])]) -> Deployment {
    let mut archive = tempfile::NamedTempFile::new().unwrap();
    archive.write_all(&zip_bytes(files)).unwrap();
    archive.flush().unwrap();
    accept_upload(services, archive.path(), UploadOptions::default())
        .await
        .unwrap()
}

/// Reserve the next job, which must be there now.
pub async fn reserve(services: &Services) -> Delivery {
    services
        .queue
        .reserve("t", services.config.lease(), Duration::ZERO)
        .await
        .unwrap()
        .expect("a job should be waiting")
}

/// Run one delivery through a pipeline of worker `w1`.
pub async fn process(services: &Services, delivery: &Delivery) -> Outcome {
    Pipeline::new(services.clone(), "w1")
        .process(delivery, &CancellationToken::new())
        .await
}

/// Reserve the next job and run it through the pipeline.
pub async fn build_next(services: &Services) -> Outcome {
    let delivery = reserve(services).await;
    process(services, &delivery).await
}

/// Upload `files` and build them; the deployment must end `READY`.
pub async fn deploy(services: &Services, files: &[(&str, &[u8])]) -> DeploymentId {
    let id = upload(services, files).await.id;
    assert_eq!(build_next(services).await, Outcome::Ready);
    id
}

/// The deployment as the repository has it now.
pub async fn deployment(services: &Services, id: &DeploymentId) -> Deployment {
    services.repository.get_deployment(id).await.unwrap()
}

/// The messages of the deployment's build log, in order.
pub async fn log_messages(services: &Services, id: &DeploymentId) -> Vec<String> {
    services
        .repository
        .logs(id)
        .await
        .unwrap()
        .into_iter()
        .map(|line| line.message)
        .collect()
}

/// Whether some line of the deployment's build log contains `text`.
pub async fn log_contains(services: &Services, id: &DeploymentId, text: &str) -> bool {
    log_messages(services, id)
        .await
        .iter()
        .any(|line| line.contains(text))
}

/// Every event received so far.
pub fn received(events: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    all
}

/// The queue's (waiting, in flight, dead) counts.
pub async fn depth(services: &Services) -> (u64, u64, u64) {
    let QueueDepth {
        waiting,
        in_flight,
        dead,
    } = services.queue.depth().await.unwrap();
    (waiting, in_flight, dead)
}

/// The keys of every blob in storage.
pub async fn blob_keys(services: &Services) -> Vec<String> {
    services
        .storage
        .list("blobs")
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect()
}

/// What a [`Scripted`] strategy does when it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Writes `out/index.html` and `out/leak -> /etc/passwd`, and returns `out`.
    SymlinkOutput,
    /// Writes `secret` outside `out`, and `out/index.html` plus `out/twin`, a hard link to
    /// `secret`; returns `out`.
    HardLinkOutput,
    /// Writes `out/index.html` and binds a Unix socket at `out/control.sock`; returns `out`.
    SocketOutput,
    /// Makes `out` a symbolic link to this folder (outside the build) and returns `out`.
    LinkedOutputDir(PathBuf),
    /// Writes a line to stderr and fails the way a broken user build does (`build_failed`).
    UserError,
    /// Returns an empty folder.
    EmptyOutput,
    /// Fails on the platform's side (`Unavailable`).
    Unavailable,
    /// Fails writing its output because the disk is full (`ENOSPC`).
    DiskFull,
    /// Waits until the build is canceled, then says so: a well-behaved long build.
    UntilCanceled,
    /// Ignores cancellation and waits until [`Scripted::release`], then publishes the source
    /// as it is: a zombie that finishes after it lost its claim.
    UntilReleased,
    /// Never finishes and ignores cancellation.
    Hang,
}

/// A build strategy that detects every tree and behaves as its [`Script`] says. It signals
/// when a build starts, so tests wait on that instead of sleeping.
#[derive(Debug)]
pub struct Scripted {
    script: Script,
    started: Notify,
    release: Notify,
}

impl Scripted {
    /// A strategy following `script`.
    pub fn new(script: Script) -> Arc<Self> {
        Arc::new(Self {
            script,
            started: Notify::new(),
            release: Notify::new(),
        })
    }

    /// Wait until a build has started (returns at once if one already has).
    pub async fn started(&self) {
        tokio::time::timeout(DEADLINE, self.started.notified())
            .await
            .expect("the build never started");
    }

    /// Let a build waiting in [`Script::UntilReleased`] finish.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[async_trait]
impl BuildStrategy for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn detect(&self, _source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        Ok(Some(Detection {
            strategy: self.name().to_owned(),
            reason: format!("the test scripted {:?}", self.script),
        }))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        // `notify_one` keeps the signal for a test that starts waiting later.
        self.started.notify_one();
        let out: PathBuf = ctx.work_dir.join("out");
        match &self.script {
            Script::SymlinkOutput => {
                std::fs::create_dir(&out)?;
                std::fs::write(out.join("index.html"), "<h1>innocent</h1>")?;
                std::os::unix::fs::symlink("/etc/passwd", out.join("leak"))?;
                Ok(BuildOutput { dir: out })
            }
            Script::HardLinkOutput => {
                std::fs::create_dir(&out)?;
                std::fs::write(out.join("index.html"), "<h1>innocent</h1>")?;
                let secret = ctx.work_dir.join("secret");
                std::fs::write(&secret, "not for publishing")?;
                std::fs::hard_link(&secret, out.join("twin"))?;
                Ok(BuildOutput { dir: out })
            }
            Script::SocketOutput => {
                std::fs::create_dir(&out)?;
                std::fs::write(out.join("index.html"), "<h1>innocent</h1>")?;
                // The socket file stays on disk after the listener is dropped.
                std::os::unix::net::UnixListener::bind(out.join("control.sock"))?;
                Ok(BuildOutput { dir: out })
            }
            Script::LinkedOutputDir(target) => {
                std::os::unix::fs::symlink(target, &out)?;
                Ok(BuildOutput { dir: out })
            }
            Script::UserError => {
                ctx.log
                    .write(LogStream::Stderr, "error: cannot find module 'left-pad'");
                Err(BuildError::Failed {
                    code: "build_failed".into(),
                    message: "the build command exited with status 1".to_owned(),
                })
            }
            Script::EmptyOutput => {
                std::fs::create_dir(&out)?;
                Ok(BuildOutput { dir: out })
            }
            Script::Unavailable => Err(BuildError::Unavailable(
                "the build sandbox could not start".to_owned(),
            )),
            Script::DiskFull => Err(std::io::Error::from(std::io::ErrorKind::StorageFull).into()),
            Script::UntilCanceled => {
                ctx.cancel.cancelled().await;
                Err(BuildError::Canceled)
            }
            Script::UntilReleased => {
                self.release.notified().await;
                Ok(BuildOutput {
                    dir: ctx.source.root().to_path_buf(),
                })
            }
            Script::Hang => std::future::pending().await,
        }
    }
}
