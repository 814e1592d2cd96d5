//! `env ls|add|rm|pull`: a project's environment variables, which its builds receive.
//! The API keeps them by id; people name them by key, so `rm` looks the key up first.

use std::io::{IsTerminal, Read, Write};

use serde_json::{Value, json};

use crate::cli::{EnvCommand, EnvTarget, EnvType};
use crate::context::{Context, segment};
use crate::exit::{CliError, Kind};
use crate::output;

/// Run `env …`.
pub fn run(ctx: &Context, command: EnvCommand) -> Result<(), CliError> {
    match command {
        EnvCommand::Ls { project, decrypt } => {
            ls(ctx, &ctx.project(project.project.as_deref())?, decrypt)
        }
        EnvCommand::Add {
            key,
            value,
            targets,
            kind,
            project,
        } => add(
            ctx,
            &ctx.project(project.project.as_deref())?,
            &key,
            value,
            &targets,
            kind,
        ),
        EnvCommand::Rm {
            key,
            targets,
            project,
        } => rm(
            ctx,
            &ctx.project(project.project.as_deref())?,
            &key,
            &targets,
        ),
        EnvCommand::Pull {
            file,
            environment,
            project,
        } => pull(
            ctx,
            &ctx.project(project.project.as_deref())?,
            &ctx.resolve(&file),
            environment,
        ),
    }
}

fn base(project: &str) -> String {
    format!("/api/v1/projects/{}/env", segment(project))
}

fn ls(ctx: &Context, project: &str, decrypt: bool) -> Result<(), CliError> {
    let path = if decrypt {
        format!("{}?decrypt=true", base(project))
    } else {
        base(project)
    };
    let answer = ctx.client.get(&path)?;
    if ctx.out.json() {
        ctx.out.document(&answer);
        return Ok(());
    }
    let vars = answer["env"].as_array().cloned().unwrap_or_default();
    if vars.is_empty() {
        ctx.out.note(format!(
            "{project} has no variables: `deploystack env add KEY VALUE` adds one"
        ));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = vars
        .iter()
        .map(|v| {
            vec![
                v["key"].as_str().unwrap_or_default().to_owned(),
                output::joined(&v["targets"], ","),
                v["type"].as_str().unwrap_or_default().to_owned(),
                v["value"]
                    .as_str()
                    .map_or_else(|| "(hidden)".to_owned(), str::to_owned),
            ]
        })
        .collect();
    ctx.out.table(&["KEY", "TARGETS", "TYPE", "VALUE"], &rows);
    Ok(())
}

fn add(
    ctx: &Context,
    project: &str,
    key: &str,
    value: Option<String>,
    targets: &[EnvTarget],
    kind: EnvType,
) -> Result<(), CliError> {
    let value = match value {
        Some(value) => value,
        None => read_value(key)?,
    };
    let targets: Vec<&str> = if targets.is_empty() {
        vec!["production", "preview", "development"]
    } else {
        targets.iter().map(|t| t.as_str()).collect()
    };
    let answer = ctx.client.post(
        &base(project),
        &json!({ "key": key, "value": value, "targets": targets, "type": kind.as_str() }),
    )?;
    if ctx.out.json() {
        ctx.out.document(&answer);
    } else {
        ctx.out.success(format!(
            "Added {key} to {project} ({}, {}); the next build receives it",
            targets.join(", "),
            kind.as_str()
        ));
    }
    Ok(())
}

/// The value of `key` from stdin: typed after a prompt on a terminal, else piped in (one
/// trailing line break removed).
fn read_value(key: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let mut text = String::new();
    if stdin.is_terminal() {
        eprint!("Value of {key}: ");
        let _ = std::io::stderr().flush();
        stdin
            .read_line(&mut text)
            .map_err(|err| CliError::local("reading the value", err))?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut text)
            .map_err(|err| CliError::local("reading the value from stdin", err))?;
    }
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(value.to_owned())
}

fn rm(ctx: &Context, project: &str, key: &str, targets: &[EnvTarget]) -> Result<(), CliError> {
    let answer = ctx.client.get(&base(project))?;
    let vars: Vec<Value> = answer["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["key"].as_str() == Some(key))
        .cloned()
        .collect();
    if vars.is_empty() {
        return Err(
            CliError::new(Kind::NotFound, format!("{project} has no variable {key}"))
                .with_hint("`deploystack env ls` lists the project's variables"),
        );
    }
    let (mut removed, mut changed) = (0, 0);
    for var in &vars {
        let id = var["id"].as_str().unwrap_or_default();
        let path = format!("{}/{}", base(project), segment(id));
        let own: Vec<&str> = var["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let keep: Vec<&str> = own
            .iter()
            .copied()
            .filter(|t| !targets.is_empty() && !targets.iter().any(|x| x.as_str() == *t))
            .collect();
        if keep.len() == own.len() {
            continue;
        }
        if keep.is_empty() {
            ctx.client.delete(&path)?;
            removed += 1;
        } else {
            ctx.client.patch(&path, &json!({ "targets": keep }))?;
            changed += 1;
        }
    }
    if ctx.out.json() {
        ctx.out
            .document(&json!({ "key": key, "removed": removed, "changed": changed }));
    } else if removed + changed == 0 {
        ctx.out.note(format!(
            "{key} does not apply to those targets: nothing changed"
        ));
    } else {
        ctx.out.success(format!("Removed {key} from {project}"));
    }
    Ok(())
}

fn pull(
    ctx: &Context,
    project: &str,
    file: &std::path::Path,
    environment: EnvTarget,
) -> Result<(), CliError> {
    let answer = ctx.client.get(&format!("{}?decrypt=true", base(project)))?;
    let mut text = format!(
        "# {project}'s {} variables, written by `deploystack env pull`\n",
        environment.as_str()
    );
    let (mut written, mut skipped) = (0, Vec::new());
    for var in answer["env"].as_array().into_iter().flatten() {
        let applies = var["targets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(environment.as_str())));
        if !applies {
            continue;
        }
        let key = var["key"].as_str().unwrap_or_default();
        match var["value"].as_str() {
            Some(value) => {
                text.push_str(&format!("{key}={}\n", quote(value)));
                written += 1;
            }
            None => skipped.push(key.to_owned()),
        }
    }
    write_private(file, &text)?;
    if ctx.out.json() {
        ctx.out.document(&json!({
            "file": file.display().to_string(),
            "environment": environment.as_str(),
            "written": written,
            "skipped": skipped,
        }));
    } else {
        ctx.out
            .success(format!("Wrote {written} variables to {}", file.display()));
        if !skipped.is_empty() {
            ctx.out.warn(format!(
                "left out, being sensitive (never shown again): {}",
                skipped.join(", ")
            ));
        }
    }
    Ok(())
}

/// `value` in double quotes, as dotenv files read it.
fn quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    format!("\"{escaped}\"")
}

/// Write `text` to `path`, readable by its owner only: it holds secrets.
fn write_private(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    let failed = |err: std::io::Error| CliError::local(format!("writing {}", path.display()), err);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_so_a_dotenv_reader_gets_them_back() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a \"b\"\nc\\d"), "\"a \\\"b\\\"\\nc\\\\d\"");
    }
}
