//! `deploystack-server token create|list|revoke`: the first token without a chicken-and-egg
//! step. The command talks to the configured repository directly (the same settings as the
//! server: file, environment, flags), so it works in the embedded shape (the SQLite file)
//! and in a cluster (PostgreSQL) alike, with no server running.
//! Part of the binary only; the rules of a token live in `deploystack_core::services::tokens`.

use clap::Subcommand;
use deploystack_core::Services;
use deploystack_core::model::{ProjectName, Scope, TokenId};
use deploystack_core::services::tokens::{self, TokenRequest};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print its secret (shown this once).
    Create {
        /// What to call it (`ci`, `alice laptop`).
        #[arg(long)]
        name: String,
        /// A scope: read, deploy or admin; repeat for more.
        #[arg(long = "scope", required = true)]
        scopes: Vec<Scope>,
        /// A project it is limited to; repeat for more; leave out for every project.
        #[arg(long = "project")]
        projects: Vec<ProjectName>,
        /// Its lifetime: seconds, or a number with a unit (90s, 15m, 12h, 30d, 52w).
        #[arg(long, value_parser = tokens::parse_lifetime)]
        expires_in: Option<std::time::Duration>,
    },
    /// List the tokens (never a secret).
    List,
    /// Revoke a token by its id: it stops working at once, on every server.
    Revoke {
        /// The token's id (from `token list`).
        id: TokenId,
    },
}

pub async fn run(services: Services, command: TokenCommand) -> anyhow::Result<()> {
    let repository = services.repository.as_ref();
    match command {
        TokenCommand::Create {
            name,
            scopes,
            projects,
            expires_in,
        } => {
            let request = TokenRequest {
                name,
                scopes,
                projects: (!projects.is_empty()).then_some(projects),
                expires_in,
            };
            let (token, secret) = tokens::create(repository, request).await?;
            eprintln!(
                "token {} ({}) made; its secret, shown this once:",
                token.name, token.id
            );
            println!("{}", secret.expose());
        }
        TokenCommand::List => {
            for token in repository.list_tokens().await? {
                let projects = token.projects.map_or_else(
                    || "every project".to_owned(),
                    |projects| {
                        let names: Vec<&str> = projects.iter().map(ProjectName::as_str).collect();
                        names.join(",")
                    },
                );
                let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
                let when = |at: Option<time::OffsetDateTime>| {
                    at.map_or_else(|| "-".to_owned(), |at| at.to_string())
                };
                println!(
                    "{}\t{}\t{}\t{}\texpires {}\tlast used {}",
                    token.id,
                    token.name,
                    scopes.join(","),
                    projects,
                    when(token.expires_at),
                    when(token.last_used_at)
                );
            }
        }
        TokenCommand::Revoke { id } => {
            repository.revoke_token(&id).await?;
            eprintln!("token {id} revoked");
        }
    }
    Ok(())
}
