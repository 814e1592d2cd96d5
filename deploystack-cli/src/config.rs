//! Where the server and the token come from: a `--url`/`--token` flag, else the
//! `DEPLOYSTACK_URL`/`DEPLOYSTACK_TOKEN` environment variables (clap reads both and says
//! which one it used), else the config file that `deploystack login` writes, else the
//! default local server without a token.
//!
//! The config file is `$XDG_CONFIG_HOME/deploystack/config.json` (`~/.config/…` without
//! the variable). It holds a secret, so it is created with mode 0600 in a 0700 folder, and
//! rewritten with that mode if it was looser.
//!
//! ## Why flags over environment over file?
//! The narrower the scope, the more deliberate the choice: a flag is one command, a variable
//! one shell or CI job, the file every command of the user. CI sets the variables and never
//! logs in; a person logs in once and overrides for one command with a flag.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::CliError;

/// The server a command talks to when nothing names one: `deploystack-server`'s default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// What the config file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// The server's address, as given to `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The API token `login` verified; absent for a tokenless local server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Where a setting's value came from, to say so in `whoami` and in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (`--url`, `--token`).
    Flag,
    /// An environment variable (`DEPLOYSTACK_URL`, `DEPLOYSTACK_TOKEN`).
    Env,
    /// The config file.
    File,
    /// Nothing set it.
    Default,
}

impl Origin {
    /// How to name the origin of `setting` (`url` or `token`) to a person.
    pub fn describe(self, setting: &str) -> String {
        match self {
            Origin::Flag => format!("--{setting}"),
            Origin::Env => format!("DEPLOYSTACK_{}", setting.to_uppercase()),
            Origin::File => "the config file (deploystack login)".to_owned(),
            Origin::Default => "the default".to_owned(),
        }
    }

    /// The origin as `--json` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Flag => "flag",
            Origin::Env => "env",
            Origin::File => "config",
            Origin::Default => "default",
        }
    }
}

/// A setting given on the command line or in the environment, with which of the two it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The value.
    pub value: String,
    /// [`Origin::Flag`] or [`Origin::Env`].
    pub origin: Origin,
}

/// The server and token a command uses, and where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The server's address, without a trailing slash.
    pub url: String,
    /// Where [`Settings::url`] came from.
    pub url_origin: Origin,
    /// The token, if any.
    pub token: Option<String>,
    /// Where [`Settings::token`] came from ([`Origin::Default`]: there is none).
    pub token_origin: Origin,
}

/// The settings from what the command line and environment gave (`url`, `token`) over the
/// config `file`. An empty value counts as unset, so `DEPLOYSTACK_TOKEN=` falls back to the
/// file.
pub fn resolve(url: Option<Given>, token: Option<Given>, file: Option<&ConfigFile>) -> Settings {
    let given = |g: Option<Given>| g.filter(|g| !g.value.trim().is_empty());
    let stored = |value: Option<&String>| {
        value.filter(|v| !v.trim().is_empty()).map(|v| Given {
            value: v.clone(),
            origin: Origin::File,
        })
    };
    let url = given(url)
        .or_else(|| stored(file.and_then(|f| f.url.as_ref())))
        .unwrap_or(Given {
            value: DEFAULT_URL.to_owned(),
            origin: Origin::Default,
        });
    let token = given(token).or_else(|| stored(file.and_then(|f| f.token.as_ref())));
    Settings {
        url: normalize_url(&url.value),
        url_origin: url.origin,
        token_origin: token.as_ref().map_or(Origin::Default, |t| t.origin),
        token: token.map(|t| t.value.trim().to_owned()),
    }
}

/// `url` without surrounding space and trailing slashes (`http://h:8000/` → `http://h:8000`).
pub fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// Whether `url` is one the command can talk to: `http://` or `https://` and a host.
pub fn check_url(url: &str) -> Result<(), CliError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(CliError::usage(format!(
            "{url:?} is not a server address: give one like http://127.0.0.1:8000 or https://deploy.example.com"
        ))),
    }
}

/// The config file's path: `$XDG_CONFIG_HOME/deploystack/config.json`, else
/// `$HOME/.config/deploystack/config.json`; `None` if neither variable is set.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("deploystack").join("config.json"))
}

/// The config file at `path`; `None` if there is none.
pub fn load(path: &Path) -> Result<Option<ConfigFile>, CliError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(CliError::local(format!("reading {}", path.display()), err));
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|err| {
        CliError::local(format!("reading {}", path.display()), err)
            .with_hint("fix or delete the file, or run `deploystack login` again")
    })
}

/// Write `config` to `path`, readable by its owner only.
pub fn save(path: &Path, config: &ConfigFile) -> Result<(), CliError> {
    let failed = |err: std::io::Error| CliError::local(format!("writing {}", path.display()), err);
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(failed)?;
    }
    let text = serde_json::to_string_pretty(config)
        .map_err(|err| CliError::local("encoding the config", err))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    // `mode` applies only when the file is created: tighten one that already existed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.write_all(b"\n").map_err(failed)?;
    Ok(())
}

/// Remove the config file; `false` if there was none.
pub fn remove(path: &Path) -> Result<bool, CliError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(CliError::local(format!("removing {}", path.display()), err)),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(value: &str) -> Option<Given> {
        Some(Given {
            value: value.to_owned(),
            origin: Origin::Flag,
        })
    }

    fn env(value: &str) -> Option<Given> {
        Some(Given {
            value: value.to_owned(),
            origin: Origin::Env,
        })
    }

    fn file() -> ConfigFile {
        ConfigFile {
            url: Some("https://deploy.example.com/".into()),
            token: Some("ds_file".into()),
        }
    }

    #[test]
    fn what_the_command_line_or_environment_gives_wins_over_the_file() {
        let settings = resolve(flag("http://a:1"), env("ds_env"), Some(&file()));
        assert_eq!(settings.url, "http://a:1");
        assert_eq!(settings.url_origin, Origin::Flag);
        assert_eq!(settings.token.as_deref(), Some("ds_env"));
        assert_eq!(settings.token_origin, Origin::Env);
    }

    #[test]
    fn the_file_fills_in_what_is_not_given_and_the_default_what_it_lacks() {
        let settings = resolve(None, None, Some(&file()));
        assert_eq!(settings.url, "https://deploy.example.com");
        assert_eq!(settings.url_origin, Origin::File);
        assert_eq!(settings.token.as_deref(), Some("ds_file"));
        assert_eq!(settings.token_origin, Origin::File);

        let settings = resolve(None, None, None);
        assert_eq!(settings.url, DEFAULT_URL);
        assert_eq!(settings.url_origin, Origin::Default);
        assert_eq!(settings.token, None);
        assert_eq!(settings.token_origin, Origin::Default);
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let settings = resolve(env(" "), env(""), Some(&file()));
        assert_eq!(settings.url_origin, Origin::File);
        assert_eq!(settings.token.as_deref(), Some("ds_file"));
    }

    #[test]
    fn only_http_and_https_addresses_with_a_host_are_accepted() {
        for good in ["http://127.0.0.1:8000", "https://deploy.example.com"] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in ["127.0.0.1:8000", "ftp://x", "http://", "https:///x", ""] {
            let err = check_url(bad).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_written_for_its_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploystack").join("config.json");
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &file()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap(), Some(file()));
        // A file that was readable by others is tightened on the next write.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        save(&path, &ConfigFile::default()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
    }
}
