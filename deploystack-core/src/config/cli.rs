//! What both binaries share: the command-line flags over [`Config`], log setup and the
//! shutdown signal. Behind the `cli` feature so embedders do not pull in clap.
//!
//! # Why parse with clap, then lay the result over the file?
//!
//! clap knows three of the four layers (defaults, environment, flags) but not the TOML file,
//! which sits between the defaults and the environment. So [`ConfigArgs`] keeps what clap
//! found, drops the values that are only defaults, and [`ConfigArgs::load`] applies the rest
//! over the file. The defaults clap shows in `--help` come from [`Config::default`] at run
//! time, so no default is written twice.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, Parser};

use super::{Config, ConfigError};

/// `--config FILE` (`DEPLOYSTACK_CONFIG`) plus one flag per setting of [`Config`], each also
/// read from its variable. Flatten it into a binary's arguments (`#[command(flatten)]`) and
/// call [`ConfigArgs::load`].
#[derive(Clone, Default)]
pub struct ConfigArgs {
    /// The TOML file, from `--config` or `DEPLOYSTACK_CONFIG`.
    pub config: Option<PathBuf>,
    /// What clap found on the command line and in the environment, defaults removed: the
    /// layers that go over the file.
    given: ArgMatches,
}

impl std::fmt::Debug for ConfigArgs {
    // Not the matches: they may hold AWS_SECRET_ACCESS_KEY.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigArgs")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ConfigArgs {
    /// Defaults ← file (`--config` or `DEPLOYSTACK_CONFIG`) ← environment ← flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config
            .update_from_arg_matches(&self.given)
            .map_err(|err| ConfigError::Cli(err.to_string()))?;
        Ok(config)
    }
}

impl Args for ConfigArgs {
    fn augment_args(command: Command) -> Command {
        let command = command.arg(
            Arg::new("config")
                .long("config")
                .env("DEPLOYSTACK_CONFIG")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML configuration file; the environment and flags override it"),
        );
        // The `_for_update` form: no setting is required, since the file may hold it.
        let command = Config::augment_args_for_update(command);
        let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        command.mut_args(|arg| {
            let arg = match arg.get_env() {
                // An empty variable means "not set", as in the hand-written table this
                // replaces, so `FOO=${FOO:-}` in a compose file keeps the default.
                Some(name) if std::env::var_os(name).is_some_and(|v| v.is_empty()) => arg.env(None),
                _ => arg,
            };
            match defaults.get(arg.get_id().as_str()) {
                Some(serde_json::Value::String(text)) => arg.default_value(text.clone()),
                Some(value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    arg.default_value(value.to_string())
                }
                _ => arg,
            }
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = matches.clone();
        let defaulted: Vec<String> = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::DefaultValue))
            .map(|id| id.as_str().to_owned())
            .collect();
        for id in defaulted {
            let _ = given.try_clear_id(&id);
        }
        Ok(Self {
            config: matches.get_one::<PathBuf>("config").cloned(),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The configuration of a program whose only flags are the settings (the examples): parses
/// this process's arguments and environment like a binary, exits with clap's message on a
/// bad flag or variable.
pub fn load() -> Result<Config, ConfigError> {
    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        config: ConfigArgs,
    }
    parse::<Settings>().config.load()
}

/// [`Parser::parse`], except that a bad value taken from an environment variable names the
/// variable, not only the flag it stands for. Exits with clap's message on an error.
pub fn parse<P: Parser>() -> P {
    try_parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
}

/// [`Parser::try_parse_from`], with a bad value from an environment variable naming it.
pub fn try_parse_from<P: Parser>(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<P, clap::Error> {
    let mut command = P::command();
    command
        .try_get_matches_from_mut(args)
        .and_then(|mut matches| P::from_arg_matches_mut(&mut matches))
        .map_err(|err| name_the_variable(err.format(&mut command), &command))
}

/// clap reports a bad value by its flag (`--lease-secs <SECS>`) even when it came from the
/// environment; a user who never typed that flag looks for the variable.
fn name_the_variable(mut err: clap::Error, command: &Command) -> clap::Error {
    let (Some(ContextValue::String(flag)), Some(ContextValue::String(value))) = (
        err.get(ContextKind::InvalidArg),
        err.get(ContextKind::InvalidValue),
    ) else {
        return err;
    };
    let variable = command
        .get_arguments()
        .find(|arg| arg.to_string() == *flag)
        .and_then(Arg::get_env)
        .filter(|name| std::env::var_os(name).is_some_and(|v| v == value.as_str()))
        .map(|name| name.to_string_lossy().into_owned());
    if let Some(name) = variable {
        err.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![
                format!("the value comes from the environment variable {name}").into(),
            ]),
        );
    }
    err
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A binary's arguments, as the real ones flatten them.
    #[derive(Debug, Parser)]
    #[command(name = "deploystack-test")]
    struct Flags {
        #[command(flatten)]
        config: ConfigArgs,
    }

    /// The configuration from `args` alone: the process environment is not read (the test
    /// command exports `AWS_*` for the S3 tests, and other tests must not see them).
    fn load(args: &[&str]) -> Config {
        let mut command = Flags::command().mut_args(|arg| arg.env(None));
        let mut matches = command
            .try_get_matches_from_mut(
                std::iter::once("deploystack-test").chain(args.iter().copied()),
            )
            .unwrap();
        let flags = Flags::from_arg_matches_mut(&mut matches).unwrap();
        flags.config.load().unwrap()
    }

    /// Every setting, with the flag and variable clap gives it: (TOML key, flag, variable).
    fn declared() -> Vec<(String, String, String)> {
        Config::augment_args_for_update(Command::new("t"))
            .get_arguments()
            .map(|arg| {
                (
                    arg.get_id().to_string(),
                    arg.get_long().unwrap_or_default().to_owned(),
                    arg.get_env()
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    // The environment layer is not tested here: clap reads the real process environment, and
    // setting variables in a test races the other tests. tests/e2e/binaries.rs starts the
    // real binary with variables instead.

    #[test]
    fn flags_override_the_file_and_unset_flags_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploystack.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nlease_secs = 7\nbody_read_timeout_secs = 5\n[s3]\nregion = \"eu-west-1\"\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();

        let config = load(&["--config", file]);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.lease_secs, 7, "a default must not hide the file");
        assert_eq!(config.max_deliveries, 5);

        let config = load(&[
            "--config",
            file,
            "--listen",
            "127.0.0.1:0",
            "--embedded-workers",
            "3",
            "--min-free-disk-bytes",
            "0",
            "--s3-allow-http",
            "true",
            "--dns-servers",
            "127.0.0.1:5353,127.0.0.2:53",
            "--previous-secret-keys",
            "a,b",
        ]);
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.lease_secs, 7);
        assert_eq!(config.body_read_timeout_secs, 5);
        assert_eq!(config.embedded_workers, Some(3));
        assert_eq!(config.min_free_disk_bytes, 0);
        assert_eq!(config.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.s3.allow_http, Some(true));
        assert_eq!(
            config.dns_servers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "127.0.0.2:53".parse().unwrap()
            ]
        );
        assert_eq!(config.previous_secret_keys.len(), 2);
    }

    #[test]
    fn without_a_file_or_flags_the_defaults_hold() {
        assert_eq!(load(&[]), Config::default());
    }

    #[test]
    fn bad_values_name_the_flag_and_the_file_its_line() {
        let err = try_parse_from::<Flags>(["t", "--lease-secs", "soon"]).unwrap_err();
        assert!(err.to_string().contains("--lease-secs"), "{err}");
        assert!(err.to_string().contains("soon"), "{err}");

        let err = try_parse_from::<Flags>(["t", "--serve-cpu-affinity", "true"]).unwrap_err();
        assert!(err.to_string().contains("--serve-cpu-affinity"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let flags: Flags = try_parse_from(["t", "--config", path.to_str().unwrap()]).unwrap();
        let err = flags.config.load().unwrap_err();
        assert!(err.to_string().contains("no_such_setting"), "{err}");
    }

    #[test]
    fn every_setting_has_a_flag_and_a_variable_named_after_its_key() {
        let config = serde_json::to_value(Config::default()).unwrap();
        let mut keys: Vec<String> = config
            .as_object()
            .unwrap()
            .keys()
            .filter(|key| *key != "s3")
            .cloned()
            .chain(config["s3"].as_object().unwrap().keys().cloned())
            .collect();
        let mut ids: Vec<String> = declared().into_iter().map(|(id, _, _)| id).collect();
        keys.sort();
        ids.sort();
        assert_eq!(keys, ids, "each TOML key is a flag");

        for (key, flag, variable) in declared() {
            if variable.starts_with("AWS_") {
                assert_eq!(flag, format!("s3-{}", key.replace('_', "-")));
            } else {
                assert_eq!(flag, key.replace('_', "-"));
                assert_eq!(variable, format!("DEPLOYSTACK_{}", key.to_uppercase()));
            }
        }
    }

    #[test]
    fn help_shows_each_variable_and_default_but_no_secret() {
        let help = Flags::command().render_long_help().to_string();
        for (_, flag, variable) in declared() {
            assert!(help.contains(&format!("--{flag}")), "{flag}: {help}");
            assert!(
                help.contains(&format!("[env: {variable}")),
                "{variable}: {help}"
            );
        }
        assert!(help.contains("DEPLOYSTACK_CONFIG"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:8000]"), "{help}");
        assert!(help.contains("[default: 536870912]"), "{help}");
        assert!(help.contains("[default: auto]"), "{help}");
        assert!(help.contains("[env: AWS_SECRET_ACCESS_KEY]"), "{help}");
        assert!(help.contains("[env: DEPLOYSTACK_SECRET_KEY]"), "{help}");
    }

    /// docs/configuration.md has a row per setting with its key, variable, flag and default,
    /// in that order, so the table cannot drift from the declarations.
    #[test]
    fn the_documented_table_matches_the_declarations() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (key, flag, variable) in declared() {
            let start = format!("| `{key}` | `{variable}` | `--{flag}` | ");
            let row = docs
                .lines()
                .find(|line| line.starts_with(&start))
                .unwrap_or_else(|| panic!("docs/configuration.md has no row {start}…"));
            let default = match defaults.get(&key) {
                Some(serde_json::Value::String(text)) => format!("`{text}`"),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            assert!(
                row[start.len()..].starts_with(&default),
                "default of {key} should read {default}: {row}"
            );
        }
        assert!(!docs.contains("SERVE_CPU_AFFINITY"));
    }
}
