//! `deploystack-server`: the HTTP server (and, with the in-memory queue, the builders). All
//! logic lives in the library; this only reads configuration, binds and waits for a signal.

use anyhow::Context;
use clap::Parser;
use deploystack_core::Services;
use deploystack_core::config::cli::{self, ConfigArgs, init_tracing, shutdown_signal};

/// DeployStack server: upload sites, build them, serve them.
#[derive(Debug, Parser)]
#[command(name = "deploystack-server", version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = cli::parse::<Args>().config.load()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| {
            anyhow::anyhow!(
                "cannot listen on {}: {err}; is another server running? Choose another address with --listen or DEPLOYSTACK_LISTEN",
                config.listen
            )
        })?;
    let services = Services::from_config(config)
        .await
        .context("cannot start the server")?;
    deploystack_http::serve(listener, services, shutdown_signal()).await?;
    Ok(())
}
