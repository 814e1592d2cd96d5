//! `deploystack-server`: the HTTP server (and, with the in-memory queue, the builders). All
//! logic lives in the library; this only reads configuration, binds and waits for a signal —
//! or runs one maintenance command (`secrets rotate`, `token create|list|revoke`) and exits.

mod token_command;

use anyhow::Context;
use clap::{Parser, Subcommand};
use deploystack_core::Services;
use deploystack_core::config::cli::{self, ConfigArgs, init_tracing, shutdown_signal};
use deploystack_core::model::ResealCounts;
use deploystack_core::services::env;

/// DeployStack server: upload sites, build them, serve them.
#[derive(Debug, Parser)]
#[command(name = "deploystack-server", version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The key that seals environment-variable values at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// API tokens, made, listed and revoked in the configured repository.
    #[command(subcommand)]
    Token(token_command::TokenCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored value under the current key (`secret_key`, or the key file's
    /// first key), opening older values with the other configured keys
    /// (`previous_secret_keys`, later lines of the key file). Safe to run again.
    Rotate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args = cli::parse::<Args>();
    let config = args.config.load()?;
    match args.command {
        Some(Command::Secrets(SecretsCommand::Rotate)) => {
            return rotate(Services::from_config(config).await?).await;
        }
        Some(Command::Token(command)) => {
            return token_command::run(Services::from_config(config).await?, command).await;
        }
        None => {}
    }
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

/// `secrets rotate`: reseal, print what moved, fail when a value did not open.
async fn rotate(services: Services) -> anyhow::Result<()> {
    let report = env::rotate(&services).await?;
    let line = |what: &str, counts: ResealCounts| {
        println!(
            "{what}: {} re-encrypted, {} already under the current key, {} failed",
            counts.resealed, counts.current, counts.failed
        );
    };
    line("project variables", report.env_vars);
    line("upload-time variables", report.build_env);
    println!("current key: {}", services.keyring.current_key_id());
    let failed = report.env_vars.failed + report.build_env.failed;
    anyhow::ensure!(
        failed == 0,
        "{failed} values did not open (the log names their key ids): add those keys to \
         previous_secret_keys and run `deploystack-server secrets rotate` again"
    );
    Ok(())
}
