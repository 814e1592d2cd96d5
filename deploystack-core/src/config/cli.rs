//! What both binaries share: the command-line flags over [`Config`], log setup and the
//! shutdown signal. Behind the `cli` feature so embedders do not pull in clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::{Config, ConfigError};

/// Flags that override the configuration file and the `DEPLOYSTACK_*` variables.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML configuration file [env: DEPLOYSTACK_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [env: DEPLOYSTACK_LISTEN] [default: 127.0.0.1:8000]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite file and local storage [env: DEPLOYSTACK_DATA_DIR] [default: ./data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Repository URL: sqlite://… or postgres://… [env: DEPLOYSTACK_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Queue URL: memory:// or redis://host:port/db [env: DEPLOYSTACK_QUEUE_URL]
    #[arg(long, value_name = "URL")]
    pub queue_url: Option<String>,
    /// Storage URL: file:///dir, memory:// or s3://bucket/prefix [env: DEPLOYSTACK_STORAGE_URL]
    #[arg(long, value_name = "URL")]
    pub storage_url: Option<String>,
    /// Base of the URLs the API returns [env: DEPLOYSTACK_PUBLIC_URL]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

impl ConfigArgs {
    /// Defaults ← file (`--config` or `DEPLOYSTACK_CONFIG`) ← environment ← these flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let file = self.config.clone().or_else(|| {
            std::env::var_os("DEPLOYSTACK_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let mut config = Config::load(file.as_deref())?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        for (flag, slot) in [
            (&self.database_url, &mut config.database_url),
            (&self.queue_url, &mut config.queue_url),
            (&self.storage_url, &mut config.storage_url),
            (&self.public_url, &mut config.public_url),
        ] {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        }
        Ok(config)
    }
}

/// Log to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; files, pipes and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}
