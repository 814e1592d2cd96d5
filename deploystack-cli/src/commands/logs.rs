//! `logs ID|URL [-f]`: a deployment's build log on stdout — what is stored, or with
//! `--follow` every line as the build writes it, until the server ends the stream.

use serde_json::{Value, json};

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::exit::{CliError, Kind};
use crate::reference::deployment_id;
use crate::watch::log_text;

/// Run `logs`.
pub fn run(ctx: &Context, args: LogsArgs) -> Result<(), CliError> {
    let id = deployment_id(&args.target)?;
    if !args.follow {
        let logs = ctx.client.get(&format!("/api/v1/deployments/{id}/logs"))?;
        if ctx.out.json() {
            ctx.out.document(&logs);
        } else {
            for line in logs["lines"].as_array().into_iter().flatten() {
                ctx.out.line(log_text(line));
            }
        }
        return Ok(());
    }
    let events = ctx
        .client
        .events(&format!("/api/v1/deployments/{id}/logs?follow=true"))?;
    let mut lines: Vec<Value> = Vec::new();
    let mut status = Value::Null;
    for event in events {
        let event = event.map_err(|err| {
            CliError::new(
                Kind::Unreachable,
                format!("the log stream of {id} broke off: {err}"),
            )
            .with_hint(format!("run `deploystack logs {id} -f` again"))
        })?;
        match event.event.as_str() {
            "log" => {
                let Ok(line) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                if ctx.out.json() {
                    lines.push(line);
                } else {
                    ctx.out.line(log_text(&line));
                }
            }
            "end" => {
                status = serde_json::from_str::<Value>(&event.data)
                    .map(|end| end["status"].clone())
                    .unwrap_or(Value::Null);
                break;
            }
            _ => {}
        }
    }
    if ctx.out.json() {
        ctx.out.document(&json!({
            "deployment_id": id,
            "status": status,
            "lines": lines,
        }));
    }
    Ok(())
}
