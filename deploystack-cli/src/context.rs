//! What every command gets: the API client (server and token already resolved), the output,
//! the folder it runs in and the config file's place — and the one rule for which project a
//! command acts on.

use std::path::{Path, PathBuf};

use crate::api::Client;
use crate::config::{self, Given};
use crate::exit::CliError;
use crate::link;
use crate::output::Output;

/// What a command runs with.
pub struct Context {
    /// The server's API.
    pub client: Client,
    /// Where results and messages go.
    pub out: Output,
    /// The folder the command runs in.
    pub cwd: PathBuf,
    /// The config file's path, if the environment gives one.
    pub config_path: Option<PathBuf>,
}

impl Context {
    /// A context for the `url` and `token` given on the command line or in the environment,
    /// over the config file.
    pub fn new(url: Option<Given>, token: Option<Given>, out: Output) -> Result<Self, CliError> {
        let config_path = config::path();
        let file = match &config_path {
            Some(path) => config::load(path)?,
            None => None,
        };
        let settings = config::resolve(url, token, file.as_ref());
        config::check_url(&settings.url).map_err(|err| {
            err.with_hint(format!(
                "the address came from {}",
                settings.url_origin.describe("url")
            ))
        })?;
        let cwd = std::env::current_dir()
            .map_err(|err| CliError::local("reading the current folder", err))?;
        Ok(Self {
            client: Client::new(&settings),
            out,
            cwd,
            config_path,
        })
    }

    /// The project a command acts on: `given` (`--project` or `DEPLOYSTACK_PROJECT`), else
    /// the link of `dir` (the current folder when `None`), else `None`.
    pub fn project_or_none(
        &self,
        given: Option<&str>,
        dir: Option<&Path>,
    ) -> Result<Option<String>, CliError> {
        if let Some(name) = given.map(str::trim).filter(|n| !n.is_empty()) {
            return Ok(Some(name.to_owned()));
        }
        let dir = dir.unwrap_or(&self.cwd);
        Ok(link::find(dir)?.map(|found| found.link.project))
    }

    /// [`Context::project_or_none`], where a project is required.
    pub fn project(&self, given: Option<&str>) -> Result<String, CliError> {
        self.project_or_none(given, None)?.ok_or_else(|| {
            CliError::usage("which project? None is named and this folder is not linked to one")
                .with_hint(
                    "pass --project NAME, set DEPLOYSTACK_PROJECT, or run `deploystack link NAME` here",
                )
        })
    }

    /// `path` relative to the current folder, without `.` steps (`./site` → `<cwd>/site`).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.cwd.join(path).components().collect()
    }
}

/// `name` as one path segment of a URL: project names, domains, keys and ids are made of
/// characters that need no escaping, anything else is escaped.
pub fn segment(name: &str) -> String {
    if name == "." || name == ".." {
        // A dot segment would be taken as a step up the path.
        return name.replace('.', "%2E");
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_safe_stay_and_others_are_escaped() {
        assert_eq!(segment("www.example.com"), "www.example.com");
        assert_eq!(segment("my-shop_2"), "my-shop_2");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment(".."), "%2E%2E");
    }
}
