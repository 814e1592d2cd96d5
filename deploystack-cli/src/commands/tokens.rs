//! `tokens ls|create|revoke`: API tokens, for an admin. A new token's secret is printed
//! once, alone on stdout, so `token=$(deploystack tokens create ci)` keeps it.

use serde_json::{Value, json};

use crate::cli::TokensCommand;
use crate::context::{Context, segment};
use crate::exit::CliError;
use crate::output;

/// Run `tokens …`.
pub fn run(ctx: &Context, command: TokensCommand) -> Result<(), CliError> {
    match command {
        TokensCommand::Ls => {
            let answer = ctx.client.get("/api/v1/tokens")?;
            if ctx.out.json() {
                ctx.out.document(&answer);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = answer["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        text(&t["id"]),
                        text(&t["name"]),
                        output::joined(&t["scopes"], ","),
                        if t["projects"].is_array() {
                            output::joined(&t["projects"], ",")
                        } else {
                            "every project".to_owned()
                        },
                        super::deployments::when(&t["expires_at"]),
                    ]
                })
                .collect();
            ctx.out
                .table(&["ID", "NAME", "SCOPES", "PROJECTS", "EXPIRES"], &rows);
        }
        TokensCommand::Create {
            name,
            scopes,
            projects,
            expires_in,
        } => {
            let mut body = json!({
                "name": name,
                "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            });
            if !projects.is_empty() {
                body["projects"] = json!(projects);
            }
            if let Some(lifetime) = expires_in {
                body["expires_in"] = match lifetime.trim().parse::<u64>() {
                    Ok(seconds) => json!(seconds),
                    Err(_) => json!(lifetime),
                };
            }
            let answer = ctx.client.post("/api/v1/tokens", &body)?;
            if ctx.out.json() {
                ctx.out.document(&answer);
                return Ok(());
            }
            ctx.out.line(text(&answer["token"]));
            ctx.out.success(format!(
                "Made token {name} ({}); its secret above is shown this once",
                text(&answer["id"])
            ));
        }
        TokensCommand::Revoke { id } => {
            ctx.client
                .delete(&format!("/api/v1/tokens/{}", segment(&id)))?;
            if ctx.out.json() {
                ctx.out.document(&json!({ "id": id, "revoked": true }));
            } else {
                ctx.out
                    .success(format!("Revoked {id}: it stops working at once"));
            }
        }
    }
    Ok(())
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_owned()
}
