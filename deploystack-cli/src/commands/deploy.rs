//! `deploystack deploy [PATH]`: read the folder (or zip), hash it, send what the server
//! lacks, create the deployment from the manifest, follow the build and print the URL.
//!
//! ## `--env` and `--build-env`
//! The server has one kind of per-deployment variable: `env`, recorded on the deployment
//! (`inspect` shows it) and given to its build — a static site has no process at run time
//! to give variables to. Both flags therefore land in `env`; naming the same key in both is
//! a usage error rather than a silent choice. Variables kept on the project
//! (`deploystack env`) are added by the server, as for any deployment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::cli::DeployArgs;
use crate::context::{Context, segment};
use crate::exit::{CliError, Kind};
use crate::output::{bold_err, bytes};
use crate::source::{Source, hash};
use crate::{output, upload, watch};

/// Run `deploy`.
pub fn run(ctx: &Context, args: DeployArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let env = variables(&args.env, &args.build_env)?;
    let path = ctx.resolve(&args.path);
    let link_dir = path.is_dir().then_some(path.as_path());
    let project = ctx.project_or_none(args.project.as_deref(), link_dir)?;
    if args.prod && project.is_none() {
        return Err(
            CliError::usage("--prod needs a project: production is a project's")
                .with_hint("pass --project NAME, or run `deploystack link NAME` in the folder"),
        );
    }
    let out = &ctx.out;

    let source = Source::read(&path)?;
    for skipped in &source.skipped {
        out.warn(format!("{skipped} is a symbolic link: not sent"));
    }
    if source.files.is_empty() {
        return Err(CliError::usage(format!(
            "nothing to deploy in {}: it is empty, or every file in it is ignored",
            path.display()
        ))
        .with_hint("see the ignore rules in docs/cli.md (.gitignore, .deployignore)"));
    }

    let bar = out.bar(source.total_bytes(), "hashing", true);
    let digests = hash::hash_all(&source, &bar)?;
    bar.finish_and_clear();

    let missing = upload::missing(&ctx.client, &digests)?;
    let mut uploaded = send(ctx, &source, &digests, &missing)?;

    let target = if args.prod { "production" } else { "preview" };
    let mut body = json!({
        "files": source.files.iter().zip(&digests).map(|(file, digest)| json!({
            "path": file.path,
            "digest": digest,
            "size": file.size,
            "mode": file.mode,
        })).collect::<Vec<_>>(),
        "target": target,
        "env": env,
    });
    if let Some(project) = &project {
        body["project"] = json!(project);
    }
    let created = match ctx.client.post("/api/v1/deployments", &body) {
        Ok(created) => created,
        // Blobs the server lost between the question and the deployment (a garbage
        // collection in between): send them, and ask once more.
        Err(err) if err.server_code() == Some("missing_blobs") => {
            let missing: Vec<String> = err
                .server()
                .and_then(|s| s["missing"].as_array())
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            uploaded += send(ctx, &source, &digests, &missing)?;
            ctx.client.post("/api/v1/deployments", &body)?
        }
        Err(err) => return Err(err),
    };
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    if !crate::reference::is_id(&id) {
        return Err(
            CliError::new(Kind::Api, "the server's answer names no deployment id")
                .with_hint("is the server as new as this command?"),
        );
    }
    let summary = json!({ "files": source.files.len(), "uploaded": uploaded });
    out.note(format!(
        "{} {} ({} of {} files sent, {})",
        bold_err("Deploying"),
        created["url"].as_str().unwrap_or_default(),
        uploaded,
        source.files.len(),
        bytes(uploaded_bytes(&source, &digests, &missing)),
    ));

    if args.no_wait {
        return finish(ctx, &created, &summary, None);
    }
    let print: Option<watch::Printer> = if out.json() {
        None
    } else {
        Some(Arc::new(|line: &str| eprintln!("  {line}")))
    };
    let ended = watch::wait(&ctx.client, &id, print)?;
    let deployment = ended.deployment;
    let status = deployment["status"].as_str().unwrap_or_default().to_owned();
    if status != "READY" {
        let reason = deployment["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_lowercase(), str::to_owned);
        let mut document = view(&deployment, &summary);
        document["log_tail"] = json!(ended.tail);
        if !ended.tail.is_empty() {
            out.note(format!("Last lines of the build log of {id}:"));
            for line in &ended.tail {
                out.note(format!("  {line}"));
            }
        }
        return Err(CliError::new(
            Kind::Failed,
            format!("deployment {id} ended {status}: {reason}"),
        )
        .with_hint(format!(
            "`deploystack logs {id}` prints its whole build log"
        ))
        .with_document(document));
    }
    out.success(format!("Ready in {:.1}s", started.elapsed().as_secs_f64()));
    let production = match (&project, args.prod) {
        (Some(project), true) => Some(production_of(ctx, project, &id)?),
        _ => None,
    };
    finish(ctx, &deployment, &summary, production)
}

/// `--env` and `--build-env` pairs as one map; a key in both, or a pair without `=`, is a
/// usage error.
pub fn variables(
    env: &[String],
    build_env: &[String],
) -> Result<BTreeMap<String, String>, CliError> {
    let mut all = BTreeMap::new();
    let mut from_env = BTreeMap::new();
    for (flag, pairs) in [("--env", env), ("--build-env", build_env)] {
        for pair in pairs {
            let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.trim().is_empty())
            else {
                return Err(CliError::usage(format!(
                    "{flag} {pair:?}: give a variable as KEY=VALUE"
                )));
            };
            let key = key.trim().to_owned();
            if let Some(other) = from_env.insert(key.clone(), flag)
                && other != flag
            {
                return Err(CliError::usage(format!(
                    "{key} is given both with --env and with --build-env; the server has one set of variables per deployment, give it once"
                )));
            }
            all.insert(key, value.to_owned());
        }
    }
    Ok(all)
}

/// Send the files for `wanted` digests; returns how many were sent.
fn send(
    ctx: &Context,
    source: &Source,
    digests: &[String],
    wanted: &[String],
) -> Result<usize, CliError> {
    let indexes = upload::files_for(source, digests, wanted);
    if indexes.is_empty() {
        return Ok(0);
    }
    let total: u64 = indexes.iter().map(|&i| source.files[i].size).sum();
    let bar = ctx.out.bar(total, "uploading", true);
    upload::send(&ctx.client, source, digests, &indexes, &bar)?;
    bar.finish_and_clear();
    Ok(indexes.len())
}

fn uploaded_bytes(source: &Source, digests: &[String], missing: &[String]) -> u64 {
    upload::files_for(source, digests, missing)
        .iter()
        .map(|&i| source.files[i].size)
        .sum()
}

/// Production after a `--prod` deploy: the project's address if it now serves `id`; a
/// warning (and `null`) if production is pinned elsewhere.
fn production_of(ctx: &Context, project: &str, id: &str) -> Result<Value, CliError> {
    let view = ctx
        .client
        .get(&format!("/api/v1/projects/{}", segment(project)))?;
    let serves = view["production"]["deployment_id"].as_str() == Some(id);
    if !serves {
        ctx.out.warn(format!(
            "production of {project} stays on {} (pinned by a rollback); `deploystack promote {id}` makes this deployment production",
            view["production"]["deployment_id"].as_str().unwrap_or("nothing"),
        ));
        return Ok(Value::Null);
    }
    let url = view["url"].as_str().unwrap_or_default().to_owned();
    ctx.out.success(format!("Production: {url}"));
    Ok(json!(url))
}

/// The deployment's document: the API's view, with the manifest's numbers.
fn view(deployment: &Value, summary: &Value) -> Value {
    let mut document = deployment.clone();
    if let Some(map) = document.as_object_mut() {
        map.insert("files".into(), summary["files"].clone());
        map.insert("uploaded".into(), summary["uploaded"].clone());
    }
    document
}

fn finish(
    ctx: &Context,
    deployment: &Value,
    summary: &Value,
    production: Option<Value>,
) -> Result<(), CliError> {
    let url = deployment["url"].as_str().unwrap_or_default();
    if ctx.out.json() {
        let mut document = view(deployment, summary);
        if let Some(production) = production {
            document["production_url"] = production;
        }
        ctx.out.document(&document);
    } else {
        ctx.out.line(url);
        if deployment["status"] != "READY" {
            ctx.out.note(format!(
                "{} ({}); `deploystack inspect {}` shows how it goes",
                output::status(deployment["status"].as_str().unwrap_or_default()),
                deployment["id"].as_str().unwrap_or_default(),
                deployment["id"].as_str().unwrap_or_default(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn both_kinds_of_variables_are_one_map_and_values_may_hold_equals_signs() {
        let map = variables(&strings(&["A=1", "URL=https://x?a=b"]), &strings(&["B="])).unwrap();
        assert_eq!(map["A"], "1");
        assert_eq!(map["URL"], "https://x?a=b");
        assert_eq!(map["B"], "");
        // The last of a repeated key wins, as on a shell's command line.
        let map = variables(&strings(&["A=1", "A=2"]), &[]).unwrap();
        assert_eq!(map["A"], "2");
    }

    #[test]
    fn a_pair_without_a_key_or_a_key_given_twice_is_a_usage_error() {
        for (env, build) in [
            (strings(&["NOEQUALS"]), vec![]),
            (strings(&["=x"]), vec![]),
            (strings(&["A=1"]), strings(&["A=2"])),
        ] {
            let err = variables(&env, &build).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{env:?} {build:?}");
        }
    }
}
