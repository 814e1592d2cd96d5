//! What the pool tests share: services on in-memory adapters, zip uploads, a running pool
//! with its shutdown switch, and build strategies that signal when they start.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deploystack_core::build::{
    BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
};
use deploystack_core::model::{Deployment, DeploymentId, DeploymentStatus};
use deploystack_core::queue::QueueDepth;
use deploystack_core::services::ingest::{UploadOptions, accept_upload};
use deploystack_core::{Config, Services};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should take a second or two.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Fresh services on a private in-memory database, in-memory storage and queue.
pub async fn services(config: Config) -> Services {
    Services::in_memory(config).await.unwrap()
}

/// Like [`services`], with `strategy` asked before the static fallback.
pub async fn services_with(config: Config, strategy: Arc<dyn BuildStrategy>) -> Services {
    services(config).await.with_strategy(strategy)
}

pub use deploystack_core::testing::fixtures::zip_bytes;

/// `bytes` in a temporary file, removed on drop.
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    file
}

/// Upload a zip of `files` through ingest: `QUEUED`, and its job enqueued.
pub async fn upload(services: &Services, files: &[(&str, &[u8])]) -> Deployment {
    let archive = temp_file(&zip_bytes(files));
    accept_upload(services, archive.path(), UploadOptions::default())
        .await
        .unwrap()
}

/// The deployment as the repository has it now.
pub async fn deployment(services: &Services, id: &DeploymentId) -> Deployment {
    services.repository.get_deployment(id).await.unwrap()
}

/// Wait until the deployment has `status`.
pub async fn wait_for_status(services: &Services, id: &DeploymentId, status: DeploymentStatus) {
    let give_up = Instant::now() + DEADLINE;
    loop {
        let now = deployment(services, id).await.status;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "deployment {id} stayed {now}, never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether some line of the deployment's build log contains `text`.
pub async fn log_contains(services: &Services, id: &DeploymentId, text: &str) -> bool {
    services
        .repository
        .logs(id)
        .await
        .unwrap()
        .iter()
        .any(|line| line.message.contains(text))
}

/// What the queue holds now.
pub async fn depth(services: &Services) -> QueueDepth {
    services.queue.depth().await.unwrap()
}

/// A worker pool running in the background, and the switch that shuts it down.
pub struct Pool {
    shutdown: CancellationToken,
    running: JoinHandle<()>,
}

impl Pool {
    /// Start `workers` build loops (and the maintenance loops) on `services`.
    pub fn start(services: &Services, workers: usize) -> Self {
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(deploystack_worker::run(
            services.clone(),
            workers,
            shutdown.clone().cancelled_owned(),
        ));
        Self { shutdown, running }
    }

    /// Signal shutdown and wait for `run` to return, which it must do within `DEADLINE`.
    pub async fn shut_down(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.running)
            .await
            .expect("the pool did not stop")
            .expect("the pool panicked");
    }
}

/// What a [`Scripted`] strategy does when it builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Works for this long, then publishes the source as it is.
    Sleep(Duration),
    /// Waits until the build is canceled, then says so.
    UntilCanceled,
}

/// A build strategy that detects every tree, behaves as its [`Script`] says, and signals when
/// a build starts so tests wait on that instead of sleeping.
#[derive(Debug)]
pub struct Scripted {
    script: Script,
    started: Notify,
}

impl Scripted {
    /// A strategy following `script`.
    pub fn new(script: Script) -> Arc<Self> {
        Arc::new(Self {
            script,
            started: Notify::new(),
        })
    }

    /// Wait until a build has started (returns at once if one already has).
    pub async fn started(&self) {
        tokio::time::timeout(DEADLINE, self.started.notified())
            .await
            .expect("the build never started");
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
        match self.script {
            Script::Sleep(duration) => {
                tokio::time::sleep(duration).await;
                Ok(BuildOutput {
                    dir: ctx.source.root().to_path_buf(),
                })
            }
            Script::UntilCanceled => {
                ctx.cancel.cancelled().await;
                Err(BuildError::Canceled)
            }
        }
    }
}
