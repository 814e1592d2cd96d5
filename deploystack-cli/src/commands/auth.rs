//! `login`, `logout` and `whoami`: which server, and who the server takes us for.
//!
//! `login` asks the server first (`GET /api/v1/whoami`) and writes the config file only if
//! the server accepts the token, so a typo never becomes the saved default.

use std::io::{IsTerminal, Read, Write};

use serde_json::{Value, json};

use crate::api::Client;
use crate::cli::LoginArgs;
use crate::config::{self, ConfigFile, Origin, Settings};
use crate::context::Context;
use crate::exit::CliError;
use crate::output;

/// Run `login`.
pub fn login(ctx: &Context, args: LoginArgs) -> Result<(), CliError> {
    let current = ctx.client.settings();
    let token = match (current.token_origin, args.no_token) {
        (_, true) => None,
        (Origin::Flag | Origin::Env, false) => current.token.clone(),
        _ => read_token()?,
    };
    let settings = Settings {
        url: current.url.clone(),
        url_origin: current.url_origin,
        token_origin: if token.is_some() {
            Origin::Flag
        } else {
            Origin::Default
        },
        token,
    };
    let client = Client::new(&settings);
    let who = client.get("/api/v1/whoami")?;
    let path = ctx.config_path.as_ref().ok_or_else(|| {
        CliError::usage(
            "there is no place for the config file: neither XDG_CONFIG_HOME nor HOME is set",
        )
        .with_hint("set one, or use DEPLOYSTACK_URL and DEPLOYSTACK_TOKEN instead of logging in")
    })?;
    config::save(
        path,
        &ConfigFile {
            url: Some(settings.url.clone()),
            token: settings.token.clone(),
        },
    )?;
    if ctx.out.json() {
        ctx.out.document(&json!({
            "url": settings.url,
            "config": path.display().to_string(),
            "caller": who["caller"],
            "token": who["token"],
        }));
    } else {
        ctx.out.success(format!(
            "Logged in to {} as {}; saved in {}",
            settings.url,
            describe(&who),
            path.display()
        ));
    }
    Ok(())
}

/// The token typed at a prompt (on a terminal) or piped in; `None` when empty.
fn read_token() -> Result<Option<String>, CliError> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("API token (empty for none, on a local server): ");
        let _ = std::io::stderr().flush();
        stdin
            .read_line(&mut text)
            .map_err(|err| CliError::local("reading the token", err))?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut text)
            .map_err(|err| CliError::local("reading the token from stdin", err))?;
    }
    let token = text.trim();
    Ok((!token.is_empty()).then(|| token.to_owned()))
}

/// Run `logout`.
pub fn logout(ctx: &Context) -> Result<(), CliError> {
    let removed = match &ctx.config_path {
        Some(path) => config::remove(path)?,
        None => false,
    };
    if ctx.out.json() {
        ctx.out.document(&json!({
            "removed": removed,
            "config": ctx.config_path.as_ref().map(|p| p.display().to_string()),
        }));
    } else if removed {
        ctx.out
            .success("Logged out: the saved server and token are forgotten");
    } else {
        ctx.out.note("Not logged in: there was no config file");
    }
    Ok(())
}

/// Run `whoami`.
pub fn whoami(ctx: &Context) -> Result<(), CliError> {
    let who = ctx.client.get("/api/v1/whoami")?;
    let settings = ctx.client.settings();
    if ctx.out.json() {
        ctx.out.document(&json!({
            "url": settings.url,
            "url_from": settings.url_origin.as_str(),
            "token_from": settings.token.as_ref().map(|_| settings.token_origin.as_str()),
            "caller": who["caller"],
            "token": who["token"],
        }));
        return Ok(());
    }
    ctx.out.line(format!(
        "{} (from {})",
        settings.url,
        settings.url_origin.describe("url")
    ));
    ctx.out.line(describe(&who));
    Ok(())
}

/// Who the server took the caller for, in words.
fn describe(who: &Value) -> String {
    let token = &who["token"];
    if token.is_null() {
        return "no token (a local caller, let in without one)".to_owned();
    }
    let scopes = output::joined(&token["scopes"], ", ");
    let projects = if token["projects"].is_array() {
        format!("projects {}", output::joined(&token["projects"], ", "))
    } else {
        "every project".to_owned()
    };
    format!(
        "token {} ({}): {scopes} on {projects}",
        token["name"].as_str().unwrap_or_default(),
        token["id"].as_str().unwrap_or_default()
    )
}
