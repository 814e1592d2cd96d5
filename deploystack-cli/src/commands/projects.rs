//! `projects ls|add|rm`: the projects themselves; and `link`, which ties a folder to one.

use serde_json::{Value, json};

use crate::cli::{LinkArgs, ProjectsCommand};
use crate::context::{Context, segment};
use crate::exit::CliError;

/// Pages of projects read at most.
const MAX_PAGES: usize = 100;

/// Run `projects …`.
pub fn run(ctx: &Context, command: ProjectsCommand) -> Result<(), CliError> {
    match command {
        ProjectsCommand::Ls => ls(ctx),
        ProjectsCommand::Add { name } => {
            let view = ctx
                .client
                .post("/api/v1/projects", &json!({ "name": name }))?;
            if ctx.out.json() {
                ctx.out.document(&view);
            } else {
                ctx.out
                    .success(format!("Created {name}; its production address:"));
                ctx.out.line(view["url"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        ProjectsCommand::Rm { name } => {
            ctx.client
                .delete(&format!("/api/v1/projects/{}", segment(&name)))?;
            if ctx.out.json() {
                ctx.out
                    .document(&json!({ "project": name, "deleted": true }));
            } else {
                ctx.out
                    .success(format!("Deleted {name} and its deployments"));
            }
            Ok(())
        }
    }
}

fn ls(ctx: &Context) -> Result<(), CliError> {
    let mut projects: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut path = "/api/v1/projects?limit=100".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str("&cursor=");
            path.push_str(&segment(cursor));
        }
        let page = ctx.client.get(&path)?;
        projects.extend(page["projects"].as_array().into_iter().flatten().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    if ctx.out.json() {
        ctx.out.document(&json!({ "projects": projects }));
        return Ok(());
    }
    if projects.is_empty() {
        ctx.out
            .note("No projects yet: `deploystack projects add NAME` creates one");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = projects
        .iter()
        .map(|p| {
            vec![
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["url"].as_str().unwrap_or_default().to_owned(),
                p["production"]["deployment_id"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
            ]
        })
        .collect();
    ctx.out.table(&["NAME", "URL", "PRODUCTION"], &rows);
    Ok(())
}

/// Run `link`: check the project exists, then write the folder's link.
pub fn link(ctx: &Context, args: LinkArgs) -> Result<(), CliError> {
    let view = ctx
        .client
        .get(&format!("/api/v1/projects/{}", segment(&args.project)))
        .map_err(|err| {
            if err.server_code() == Some("project_not_found") {
                err.with_hint(format!(
                    "create it with `deploystack projects add {}`, or deploy with --project {} (a deploy creates it)",
                    args.project, args.project
                ))
            } else {
                err
            }
        })?;
    let dir = ctx.resolve(&args.dir);
    let file = crate::link::write(&dir, &args.project)?;
    if ctx.out.json() {
        ctx.out.document(&json!({
            "project": args.project,
            "file": file.display().to_string(),
            "url": view["url"],
        }));
    } else {
        ctx.out.success(format!(
            "Linked {} to {}: commands run there now use it",
            dir.display(),
            args.project
        ));
    }
    Ok(())
}
