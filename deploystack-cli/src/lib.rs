//! # deploystack-cli
//!
//! The `deploystack` command: deploy a folder to a DeployStack server in one command —
//! hash it, send only the files the server lacks, follow the build and print the URL — and
//! manage deployments, projects, variables, domains and tokens. `docs/cli.md` is the user's
//! guide; this crate is the code behind it.
//!
//! ## Layout
//! - [`cli`]: the command line, declared once with clap (help, completions).
//! - [`run`]: from arguments to an exit code; [`context`]: what every command gets (the
//!   client, the output, the folder's project).
//! - [`commands`]: one module per command or command group.
//! - [`api`]: the server's HTTP API — JSON requests, errors that say what to do, blobs,
//!   server-sent events.
//! - [`source`]: what a deploy sends — a folder with its ignore rules, or a zip archive —
//!   hashed in parallel; [`upload`]: sending what the server lacks; [`watch`]: following a
//!   build to its end.
//! - [`config`]: the server and token (flags, environment, config file); [`link`]: a
//!   folder's project; [`reference`](mod@reference): a deployment named by id or URL.
//! - [`output`]: stdout for results, stderr for the rest; colours and bars on terminals.
//! - [`exit`]: the one error type and the exit codes.
//!
//! ## Why ureq and not reqwest?
//! The workspace's reqwest is built without TLS; giving it rustls would, through cargo's
//! feature unification, change it for every crate built beside this one — and reqwest 0.13's
//! rustls without aws-lc panics at `Client::new` unless a crypto provider was installed,
//! which the test suites' clients never do. ureq brings its own rustls on the ring provider
//! (no cmake, no aws-lc) and touches nothing else; and a blocking client fits a command
//! that does one thing at a time, with plain threads for the parallel parts.
//!
//! ## Why a manifest and not a zip?
//! A redeploy where one file changed sends that file: the server keeps blobs by sha256 and
//! says which it lacks (`POST /api/v1/files/missing`), and the deployment is created from a
//! list of paths and digests. A zip upload would send every byte every time.

pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod exit;
pub mod link;
pub mod output;
pub mod reference;
pub mod source;
pub mod upload;
pub mod watch;

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::config::{Given, Origin};
use crate::context::Context;
use crate::exit::CliError;
use crate::output::Output;

/// Run the command line `args` (the program name first) and return the exit code.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let wants_json = args.iter().any(|a| a == "--json");
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err) => return usage_error(&err, wants_json),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err, wants_json),
    };
    let output = Output::new(cli.global.json);
    let url = given(&matches, "url", cli.global.url.clone());
    let token = given(&matches, "token", cli.global.token.clone());
    let result = Context::new(url, token, output.clone())
        .and_then(|context| commands::run(&context, cli.command));
    match result {
        Ok(()) => exit::OK,
        Err(err) => {
            output.error(&err);
            err.exit_code()
        }
    }
}

/// A global setting as clap read it, with whether it came from the flag or the variable.
fn given(matches: &ArgMatches, id: &str, value: Option<String>) -> Option<Given> {
    let origin = match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Origin::Env,
        _ => Origin::Flag,
    };
    value.map(|value| Given { value, origin })
}

/// Print clap's error (or help, or version) and return its exit code: 0 for help and
/// version, [`exit::USAGE`] for the rest.
fn usage_error(err: &clap::Error, json: bool) -> u8 {
    let _ = err.print();
    if err.exit_code() == 0 {
        return exit::OK;
    }
    if json {
        let first_line = err.to_string();
        let message = first_line
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        Output::new(true).document(&CliError::usage(message).to_json());
    }
    exit::USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whether_a_global_flag_came_from_the_command_line_or_the_environment_is_known() {
        let matches = Cli::command()
            .try_get_matches_from(["deploystack", "whoami", "--url", "http://h:1"])
            .unwrap();
        let url = given(&matches, "url", Some("http://h:1".into())).unwrap();
        assert_eq!(url.origin, Origin::Flag);
        assert_eq!(given(&matches, "token", None), None);
    }

    #[test]
    fn help_and_version_exit_zero_and_mistakes_two() {
        assert_eq!(run(["deploystack", "--version"]), exit::OK);
        assert_eq!(run(["deploystack", "no-such-command"]), exit::USAGE);
        assert_eq!(run(["deploystack", "inspect", "not-an-id"]), exit::USAGE);
    }
}
