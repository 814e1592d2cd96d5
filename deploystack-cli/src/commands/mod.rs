//! One module per command or group of commands; [`run`] sends each to its module.
//!
//! - [`deploy`] is `deploy`.
//! - [`deployments`] has `ls`, `inspect` and `rm`; [`logs`] is `logs`.
//! - [`production`] has `promote` and `rollback`.
//! - [`env`](mod@env), [`domains`], [`projects`] (and `link`) and [`tokens`] are the groups.
//! - [`auth`] has `login`, `logout` and `whoami`.
//! - [`completions`] prints the shell completions.

pub mod auth;
pub mod completions;
pub mod deploy;
pub mod deployments;
pub mod domains;
pub mod env;
pub mod logs;
pub mod production;
pub mod projects;
pub mod tokens;

use crate::cli::Command;
use crate::context::Context;
use crate::exit::CliError;

/// Run `command`.
pub fn run(ctx: &Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Deploy(args) => deploy::run(ctx, args),
        Command::Ls(args) => deployments::ls(ctx, args),
        Command::Inspect(args) => deployments::inspect(ctx, args),
        Command::Logs(args) => logs::run(ctx, args),
        Command::Rm(args) => deployments::rm(ctx, args),
        Command::Promote(args) => production::promote(ctx, args),
        Command::Rollback(args) => production::rollback(ctx, args),
        Command::Env(command) => env::run(ctx, command),
        Command::Domains(command) => domains::run(ctx, command),
        Command::Projects(command) => projects::run(ctx, command),
        Command::Tokens(command) => tokens::run(ctx, command),
        Command::Login(args) => auth::login(ctx, args),
        Command::Logout => auth::logout(ctx),
        Command::Whoami => auth::whoami(ctx),
        Command::Link(args) => projects::link(ctx, args),
        Command::Completions(args) => completions::run(ctx, args),
    }
}
