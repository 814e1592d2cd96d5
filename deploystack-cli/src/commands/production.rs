//! `promote ID|URL` and `rollback [ID|URL]`: what a project's production address serves.
//! A named deployment brings its project along, so neither needs `--project` then.

use serde_json::{Value, json};

use crate::cli::{RollbackArgs, TargetArg};
use crate::context::{Context, segment};
use crate::exit::CliError;
use crate::reference::deployment_id;

/// Run `promote`.
pub fn promote(ctx: &Context, args: TargetArg) -> Result<(), CliError> {
    let id = deployment_id(&args.target)?;
    let project = project_of(ctx, &id)?;
    let view = ctx.client.post(
        &format!("/api/v1/projects/{}/promote", segment(&project)),
        &json!({ "deployment_id": id }),
    )?;
    report(ctx, &view, &format!("Promoted {id}"));
    Ok(())
}

/// Run `rollback`.
pub fn rollback(ctx: &Context, args: RollbackArgs) -> Result<(), CliError> {
    let (project, id) = match &args.target {
        Some(target) => {
            let id = deployment_id(target)?;
            (project_of(ctx, &id)?, Some(id))
        }
        None => (ctx.project(args.project.project.as_deref())?, None),
    };
    let path = format!("/api/v1/projects/{}/rollback", segment(&project));
    let view = match &id {
        Some(id) => ctx.client.post(&path, &json!({ "deployment_id": id }))?,
        None => ctx.client.post_empty(&path)?,
    };
    report(ctx, &view, "Rolled back");
    if !ctx.out.json() {
        ctx.out.note(
            "Production is pinned: new production deployments wait for `deploystack promote`",
        );
    }
    Ok(())
}

/// The project of deployment `id`; a usage error if it has none.
fn project_of(ctx: &Context, id: &str) -> Result<String, CliError> {
    let deployment = ctx.client.get(&format!("/api/v1/deployments/{id}"))?;
    deployment["project"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::usage(format!(
                "deployment {id} belongs to no project, so it cannot be production"
            ))
            .with_hint("deploy with --project NAME (or from a linked folder) to make one that can")
        })
}

fn report(ctx: &Context, view: &Value, what: &str) {
    if ctx.out.json() {
        ctx.out.document(view);
        return;
    }
    let url = view["url"].as_str().unwrap_or_default();
    let serving = view["production"]["deployment_id"].as_str().unwrap_or("-");
    ctx.out.success(format!(
        "{what}: {} now serves {serving}",
        view["name"].as_str().unwrap_or_default()
    ));
    ctx.out.line(url);
}
