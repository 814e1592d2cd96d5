//! `deploystack-worker`: builds deployments from a shared queue. All logic lives in the
//! library; this only reads configuration and waits for a shutdown signal.

use anyhow::Context;
use clap::Parser;
use deploystack_core::Services;
use deploystack_core::config::cli::{self, ConfigArgs};

/// Build worker for DeployStack: reserves jobs from the shared queue and builds them.
#[derive(Debug, Parser)]
#[command(name = "deploystack-worker", version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Number of builds to run at once.
    #[arg(long, env = "DEPLOYSTACK_WORKERS", default_value_t = 2)]
    workers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_tracing();
    let args = cli::parse::<Args>();
    let config = args.config.load()?;
    let services = Services::from_config(config)
        .await
        .context("cannot start the worker")?;
    anyhow::ensure!(
        !services.queue.is_in_process(),
        "the in-memory queue only works inside deploystack-server; set DEPLOYSTACK_QUEUE_URL to a shared queue (redis://…) to run separate workers"
    );
    deploystack_worker::run(services, args.workers, cli::shutdown_signal()).await;
    Ok(())
}
