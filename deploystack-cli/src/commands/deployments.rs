//! `ls`, `inspect` and `rm`: deployments, listed, shown and deleted.

use serde_json::{Value, json};

use crate::cli::{LsArgs, TargetArg};
use crate::context::Context;
use crate::exit::CliError;
use crate::output::{bold, status};
use crate::reference::deployment_id;

/// Pages read at most while looking for a project's deployments.
const MAX_PAGES: usize = 50;

/// Run `ls`.
pub fn ls(ctx: &Context, args: LsArgs) -> Result<(), CliError> {
    let project = if args.all {
        None
    } else {
        ctx.project_or_none(args.project.as_deref(), None)?
    };
    let mut found: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut path = "/api/v1/deployments?limit=100".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(&crate::context::segment(cursor));
        }
        let page = ctx.client.get(&path)?;
        for deployment in page["deployments"].as_array().into_iter().flatten() {
            let matches = project
                .as_deref()
                .is_none_or(|p| deployment["project"].as_str() == Some(p));
            if matches && found.len() < args.limit {
                found.push(deployment.clone());
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if found.len() >= args.limit || cursor.is_none() {
            break;
        }
    }
    if ctx.out.json() {
        ctx.out
            .document(&json!({ "project": project, "deployments": found }));
        return Ok(());
    }
    if found.is_empty() {
        ctx.out.note(match &project {
            Some(project) => {
                format!("No deployments of {project} yet: `deploystack deploy` makes one")
            }
            None => "No deployments yet: `deploystack deploy` makes one".to_owned(),
        });
        return Ok(());
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|d| {
            vec![
                text(&d["id"]),
                d["project"].as_str().unwrap_or("-").to_owned(),
                text(&d["target"]),
                status(d["status"].as_str().unwrap_or_default()),
                when(&d["created_at"]),
                text(&d["url"]),
            ]
        })
        .collect();
    ctx.out.table(
        &["ID", "PROJECT", "TARGET", "STATUS", "CREATED (UTC)", "URL"],
        &rows,
    );
    Ok(())
}

/// Run `inspect`.
pub fn inspect(ctx: &Context, args: TargetArg) -> Result<(), CliError> {
    let id = deployment_id(&args.target)?;
    let deployment = ctx.client.get(&format!("/api/v1/deployments/{id}"))?;
    if ctx.out.json() {
        ctx.out.document(&deployment);
        return Ok(());
    }
    let d = &deployment;
    let mut lines = vec![
        ("id", text(&d["id"])),
        ("status", status(d["status"].as_str().unwrap_or_default())),
        ("url", text(&d["url"])),
        ("path url", text(&d["path_url"])),
        ("project", d["project"].as_str().unwrap_or("-").to_owned()),
        ("target", text(&d["target"])),
        ("created", when(&d["created_at"])),
        ("ready", when(&d["ready_at"])),
        (
            "files",
            format!(
                "{} ({})",
                d["file_count"].as_i64().unwrap_or(0),
                crate::output::bytes(d["total_bytes"].as_u64().unwrap_or(0))
            ),
        ),
        (
            "created by",
            d["created_by"].as_str().unwrap_or("-").to_owned(),
        ),
    ];
    if let Some(message) = d["error"]["message"].as_str() {
        lines.push((
            "error",
            format!("{message} ({})", text(&d["error"]["code"])),
        ));
    }
    let names: Vec<&str> = d["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    if !names.is_empty() {
        lines.push(("env", names.join(", ")));
    }
    for (label, value) in lines {
        ctx.out.line(format!("{:>11}  {value}", bold(label)));
    }
    Ok(())
}

/// Run `rm`.
pub fn rm(ctx: &Context, args: TargetArg) -> Result<(), CliError> {
    let id = deployment_id(&args.target)?;
    let answer = ctx.client.delete(&format!("/api/v1/deployments/{id}"))?;
    if ctx.out.json() {
        ctx.out.document(&answer);
    } else {
        ctx.out.success(format!(
            "Deleted {id} (it was {}); its URLs now answer 410 Gone",
            text(&answer["previous_status"])
        ));
    }
    Ok(())
}

/// A JSON string as text (`-` for anything else).
pub fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_owned()
}

/// An RFC 3339 time as `2026-12-07 19:20` (UTC, as the API gives it); `-` for none.
pub fn when(value: &Value) -> String {
    match value.as_str() {
        Some(time) => time.replace('T', " ").chars().take(16).collect(),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_minute() {
        assert_eq!(when(&json!("2026-12-07T19:20:31.5Z")), "2026-12-07 19:20");
        assert_eq!(when(&Value::Null), "-");
    }
}
