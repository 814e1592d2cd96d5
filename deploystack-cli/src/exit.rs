//! The command's one error type and its exit codes, kept together so that every failure
//! maps to exactly one documented code (`docs/cli.md` lists them) and a script can tell a
//! failed build from a typo, a bad token or a server that is down.
//!
//! Every error carries a message written for the person at the terminal and, where there is
//! one, a hint that says what to do next. Errors the server answered also keep the server's
//! own `{"code", "message", …}` object, so a caller can look at it (`deploy` reads the
//! `missing` digests of a `missing_blobs` answer) and `--json` can show it.

use std::fmt;

use serde_json::{Value, json};

/// Exit code: everything went as asked.
pub const OK: u8 = 0;
/// Exit code: the deployment ended in `ERROR` or `CANCELED` (its build failed).
pub const FAILED: u8 = 1;
/// Exit code: the command line is wrong (unknown flag, bad argument, no project known).
pub const USAGE: u8 = 2;
/// Exit code: the server refused the credentials (401 or 403: no token, a bad, expired or
/// revoked one, or one without the scope or the project).
pub const AUTH: u8 = 3;
/// Exit code: the server could not be reached (refused, unknown host, timeout, TLS).
pub const UNREACHABLE: u8 = 4;
/// Exit code: what was named does not exist (404 or 410: project, deployment, domain, token,
/// variable).
pub const NOT_FOUND: u8 = 5;
/// Exit code: the server answered with another error (a refused upload, a conflict, a 5xx)
/// or with something that is not the API's JSON.
pub const API: u8 = 6;
/// Exit code: a local file could not be read or written (the folder to deploy, the config
/// file, the link file).
pub const LOCAL: u8 = 7;

/// What kind of failure an error is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The deployment ended in `ERROR` or `CANCELED`.
    Failed,
    /// The command line is wrong.
    Usage,
    /// The server refused the credentials.
    Auth,
    /// The server could not be reached.
    Unreachable,
    /// What was named does not exist.
    NotFound,
    /// Any other answer of the server that is an error.
    Api,
    /// A local file could not be read or written.
    Local,
}

impl Kind {
    /// The exit code of this kind of failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => FAILED,
            Kind::Usage => USAGE,
            Kind::Auth => AUTH,
            Kind::Unreachable => UNREACHABLE,
            Kind::NotFound => NOT_FOUND,
            Kind::Api => API,
            Kind::Local => LOCAL,
        }
    }

    /// The kind's name in `--json` error documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failed => "deployment_failed",
            Kind::Usage => "usage",
            Kind::Auth => "auth",
            Kind::Unreachable => "unreachable",
            Kind::NotFound => "not_found",
            Kind::Api => "api",
            Kind::Local => "local",
        }
    }
}

/// A failure of the command: what happened, what to do, and the exit code it ends with.
#[derive(Debug, Clone)]
pub struct CliError {
    kind: Kind,
    message: String,
    hint: Option<String>,
    /// The server's error object (`{"code", "message", …}`), when the server answered one.
    server: Option<Value>,
    /// The HTTP status, when the server answered.
    status: Option<u16>,
    /// What `--json` prints instead of the generic error document (a failed deployment's
    /// own document, with its status and log tail).
    document: Option<Value>,
}

impl CliError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            server: None,
            status: None,
            document: None,
        }
    }

    /// A wrong command line.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// A local file that could not be read or written: `what` names it and the action.
    pub fn local(what: impl fmt::Display, err: impl fmt::Display) -> Self {
        Self::new(Kind::Local, format!("{what}: {err}"))
    }

    /// An error the server answered with `status` and its error object `server`.
    pub fn from_server(kind: Kind, status: u16, message: impl Into<String>, server: Value) -> Self {
        Self {
            status: Some(status),
            server: Some(server),
            ..Self::new(kind, message)
        }
    }

    /// The same error with `hint` (what to do) shown after its message.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same error, with a hint only if it has none yet.
    pub fn or_hint(self, hint: impl Into<String>) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.with_hint(hint)
        }
    }

    /// The same error, printed by `--json` as `document`.
    pub fn with_document(mut self, document: Value) -> Self {
        self.document = Some(document);
        self
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The code the process exits with.
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do about it, if known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The server's error code (`project_not_found`, `missing_blobs`), if it answered one.
    pub fn server_code(&self) -> Option<&str> {
        self.server.as_ref()?.get("code")?.as_str()
    }

    /// The server's error object, if it answered one.
    pub fn server(&self) -> Option<&Value> {
        self.server.as_ref()
    }

    /// The error as the one document `--json` prints.
    pub fn to_json(&self) -> Value {
        if let Some(document) = &self.document {
            return document.clone();
        }
        json!({
            "error": {
                "kind": self.kind.as_str(),
                "exit_code": self.exit_code(),
                "message": self.message,
                "hint": self.hint,
                "status": self.status,
                "server": self.server,
            }
        })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_code() {
        let kinds = [
            Kind::Failed,
            Kind::Usage,
            Kind::Auth,
            Kind::Unreachable,
            Kind::NotFound,
            Kind::Api,
            Kind::Local,
        ];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_hint_follows_the_message_and_the_json_keeps_the_server_code() {
        let err = CliError::from_server(
            Kind::NotFound,
            404,
            "no project named web",
            json!({"code": "project_not_found", "message": "no project named web"}),
        )
        .with_hint("`deploystack projects ls` lists them");
        assert_eq!(
            err.to_string(),
            "no project named web\n  `deploystack projects ls` lists them"
        );
        assert_eq!(err.server_code(), Some("project_not_found"));
        let doc = err.to_json();
        assert_eq!(doc["error"]["exit_code"], 5);
        assert_eq!(doc["error"]["server"]["code"], "project_not_found");
        // A hint given later does not replace the first.
        assert_eq!(
            err.or_hint("other").hint(),
            Some("`deploystack projects ls` lists them")
        );
    }
}
