//! `domains ls|add|verify|rm`: a project's custom domains. Adding one prints the TXT record
//! that proves it is yours; the server checks it on its own schedule, `verify` at once.

use serde_json::{Value, json};

use crate::cli::DomainsCommand;
use crate::context::{Context, segment};
use crate::exit::CliError;
use crate::output::bold;

/// Run `domains …`.
pub fn run(ctx: &Context, command: DomainsCommand) -> Result<(), CliError> {
    match command {
        DomainsCommand::Ls { project } => {
            let project = ctx.project(project.project.as_deref())?;
            let answer = ctx.client.get(&base(&project))?;
            if ctx.out.json() {
                ctx.out.document(&answer);
                return Ok(());
            }
            let domains = answer["domains"].as_array().cloned().unwrap_or_default();
            if domains.is_empty() {
                ctx.out.note(format!(
                    "{project} has no domains: `deploystack domains add NAME` adds one"
                ));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = domains
                .iter()
                .map(|d| {
                    vec![
                        text(&d["name"]),
                        text(&d["status"]),
                        d["redirect"].as_str().unwrap_or("-").to_owned(),
                        text(&d["url"]),
                    ]
                })
                .collect();
            ctx.out
                .table(&["DOMAIN", "STATUS", "REDIRECT", "URL"], &rows);
        }
        DomainsCommand::Add { domain, project } => {
            let project = ctx.project(project.project.as_deref())?;
            let answer = ctx
                .client
                .post(&base(&project), &json!({ "name": domain }))?;
            if ctx.out.json() {
                ctx.out.document(&answer);
                return Ok(());
            }
            ctx.out
                .success(format!("Added {} to {project}", text(&answer["name"])));
            record(ctx, &answer);
        }
        DomainsCommand::Verify { domain, project } => {
            let project = ctx.project(project.project.as_deref())?;
            let path = format!("{}/{}/verify", base(&project), segment(&domain));
            let answer = ctx.client.post_empty(&path)?;
            if ctx.out.json() {
                ctx.out.document(&answer);
                return Ok(());
            }
            if answer["verified"] == true {
                ctx.out.success(format!(
                    "{} is verified ({})",
                    text(&answer["name"]),
                    text(&answer["status"])
                ));
            } else {
                ctx.out.warn(format!(
                    "{} is not verified yet: {}",
                    text(&answer["name"]),
                    answer["check"]["message"]
                        .as_str()
                        .unwrap_or("no record found")
                ));
                record(ctx, &answer);
            }
        }
        DomainsCommand::Rm { domain, project } => {
            let project = ctx.project(project.project.as_deref())?;
            ctx.client
                .delete(&format!("{}/{}", base(&project), segment(&domain)))?;
            if ctx.out.json() {
                ctx.out
                    .document(&json!({ "domain": domain, "project": project, "removed": true }));
            } else {
                ctx.out.success(format!("Removed {domain} from {project}"));
            }
        }
    }
    Ok(())
}

fn base(project: &str) -> String {
    format!("/api/v1/projects/{}/domains", segment(project))
}

/// Print the TXT record that verifies a domain.
fn record(ctx: &Context, domain: &Value) {
    let v = &domain["verification"];
    ctx.out.line(format!(
        "{} {} {}",
        bold(&text(&v["name"])),
        text(&v["type"]),
        text(&v["value"])
    ));
    ctx.out.note(
        "Publish this TXT record; the server checks it regularly, `deploystack domains verify` at once",
    );
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_owned()
}
