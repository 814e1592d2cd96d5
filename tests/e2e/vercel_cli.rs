//! The official `vercel` CLI (48.12.1, from the npm registry) against the real server:
//! `vercel deploy --yes` of a fresh static folder and of a folder with a build script,
//! `deploy --prod`, `ls`, `inspect`, `logs`, `promote`, `rollback`, `env add|ls|rm`,
//! `domains add|ls|inspect` and `rm`, each with `--api http://127.0.0.1:PORT --token T`
//! (a `deploy` token made through our API) and a global config directory of its own. Every
//! step must exit 0, and its effect is checked through our own API: the deployment READY
//! and serving the files, production moved, the variable there or gone, the domain listed,
//! the deployment deleted.
//!
//! Needs the CLI and Node.js: `scripts/with-services` installs the pinned version into
//! `~/.cache/deploystack-test/vercel` and names it in `DEPLOYSTACK_TEST_VERCEL`. Without it
//! the test skips, except under `CI=true`, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::support::{Server, call, get_on, required_tool, server_binary};

/// The major version the wire was recorded with (`docs/vercel.md`).
const MAJOR: &str = "48.";
/// Longest one CLI command may take: a deploy waits for its build (an npm build included).
const COMMAND_TIME: Duration = Duration::from_secs(240);

/// The CLI: `DEPLOYSTACK_TEST_VERCEL`, else `vercel` on `PATH`; `None` after saying why the
/// test skips.
fn vercel_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DEPLOYSTACK_TEST_VERCEL").map(PathBuf::from)
        && path.is_file()
    {
        return Some(path);
    }
    required_tool(
        "vercel",
        "the vercel CLI 48.x (scripts/with-services installs it from npm)",
    )
}

/// What one run of the CLI did.
struct Run {
    stdout: String,
    stderr: String,
}

/// The CLI pointed at a server, with a config directory and a home of its own.
struct Vercel {
    cli: PathBuf,
    api: String,
    token: String,
    home: tempfile::TempDir,
}

impl Vercel {
    /// Run `vercel ARGS` in `dir` with `stdin`; the command must exit 0.
    async fn run(&self, dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
        let global = self.home.path().join("vercel-config");
        let mut command = Command::new(&self.cli);
        command
            .args(args)
            .args(["--api", &self.api, "--token", &self.token])
            .arg("--global-config")
            .arg(&global)
            .current_dir(dir)
            .env("HOME", self.home.path())
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("VERCEL_TELEMETRY_DISABLED", "1")
            .env("NO_UPDATE_NOTIFIER", "1")
            .env("NO_COLOR", "1")
            .env_remove("CI")
            .env_remove("VERCEL_ORG_ID")
            .env_remove("VERCEL_PROJECT_ID")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("run the vercel CLI");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let output = tokio::time::timeout(COMMAND_TIME, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("vercel {args:?} did not finish within {COMMAND_TIME:?}"))
            .unwrap();
        let run = Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        eprintln!(
            "vercel {args:?}\n--- stdout\n{}--- stderr\n{}",
            run.stdout, run.stderr
        );
        assert!(
            output.status.success(),
            "vercel {args:?} exited {}:\n{}\n{}",
            output.status,
            run.stdout,
            run.stderr
        );
        run
    }

    /// `vercel deploy ARGS` in `dir`: the id of the deployment it printed (`https://<id>.<base>`
    /// on stdout, which is not a terminal).
    async fn deploy(&self, dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["deploy"];
        all.extend_from_slice(args);
        let run = self.run(dir, &all, None).await;
        let url = run
            .stdout
            .lines()
            .rev()
            .find(|line| line.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL on stdout: {}", run.stdout));
        let host = url.trim().trim_start_matches("https://");
        let (id, base) = host.split_once('.').expect("a host");
        assert_eq!(base, "localhost", "{url}");
        id.to_owned()
    }
}

/// A token with `scopes` made through our API by the server's admin client.
async fn token_through_the_api(server: &Server, scopes: &[&str]) -> String {
    let (status, made) = call(
        server,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "vercel-cli", "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_owned()
}

/// A server with `auth = required`, whose client sends an admin token made with
/// `deploystack-server token create` before it started.
async fn server() -> (Server, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(server_binary())
        .args(["token", "create", "--name", "bootstrap", "--scope", "admin"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEPLOYSTACK_DATA_DIR", data_dir.path())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let admin = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap().to_owned();
    let mut server = Server::start_in(
        data_dir,
        &[
            ("DEPLOYSTACK_AUTH", "required"),
            ("DEPLOYSTACK_BUILD_CACHE_DIR", &cache_dir),
            // The CLI uploads files, then names them: they must outlive a collection in
            // between (test servers collect at once by default).
            ("DEPLOYSTACK_BLOB_GRACE_SECS", "300"),
        ],
        &[],
    )
    .await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {admin}").parse().unwrap(),
    );
    server.client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    (server, cache)
}

/// Write `files` under `dir`.
fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The deployment through our API, once final (it must be READY).
async fn ready(server: &Server, id: &str) -> Value {
    let done = server.wait_final_within(id, COMMAND_TIME).await;
    assert_eq!(
        done["status"],
        "READY",
        "{done}\n{}",
        server.log_text(id).await
    );
    done
}

/// The deployment our API says is production of `project`.
async fn production(server: &Server, project: &str) -> String {
    let (status, body) = server
        .get_json(&format!("/api/v1/projects/{project}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["production"]["deployment_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{project} has no production: {body}"))
        .to_owned()
}

/// What deployment `id`'s own host serves at `path`.
async fn served(server: &Server, id: &str, path: &str) -> (u16, String) {
    let port = server.address().rsplit(':').next().unwrap();
    get_on(server.address(), &format!("{id}.localhost:{port}"), path).await
}

#[tokio::test]
async fn the_vercel_cli_deploys_to_and_manages_a_deploystack_server() {
    let Some(cli) = vercel_cli() else { return };
    if required_tool("node", "Node.js (the vercel CLI and the builds)").is_none()
        || required_tool("npm", "npm (the framework build)").is_none()
    {
        return;
    }
    let version = std::process::Command::new(&cli)
        .arg("--version")
        .env("VERCEL_TELEMETRY_DISABLED", "1")
        .env("NO_UPDATE_NOTIFIER", "1")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    assert!(
        version
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with(MAJOR),
        "the vercel CLI is {version:?}, not {MAJOR}x"
    );
    let started = Instant::now();
    let (server, _cache) = server().await;
    let vercel = Vercel {
        cli,
        api: server.base.clone(),
        token: token_through_the_api(&server, &["deploy"]).await,
        home: tempfile::tempdir().unwrap(),
    };
    let work = tempfile::tempdir().unwrap();

    // A fresh static folder: the CLI creates the project (named after the folder), uploads
    // the files it lacks and waits for READY.
    let site = work.path().join("vercel-static");
    write(
        &site,
        &[
            ("index.html", "<h1>static via vercel</h1>"),
            ("about/index.html", "<p>about</p>"),
        ],
    );
    let preview = vercel.deploy(&site, &["--yes"]).await;
    let done = ready(&server, &preview).await;
    assert_eq!(done["project"], "vercel-static");
    assert_eq!(done["target"], "preview");
    assert!(
        site.join(".vercel/project.json").is_file(),
        "the folder is linked"
    );
    assert_eq!(
        served(&server, &preview, "/").await,
        (200, "<h1>static via vercel</h1>".to_owned())
    );
    assert_eq!(served(&server, &preview, "/about/").await.1, "<p>about</p>");

    // Production, twice (the second with a changed file), from the linked folder.
    let first_production = vercel.deploy(&site, &["--prod"]).await;
    assert_eq!(
        ready(&server, &first_production).await["target"],
        "production"
    );
    assert_eq!(production(&server, "vercel-static").await, first_production);
    write(&site, &[("index.html", "<h1>second production</h1>")]);
    let second_production = vercel.deploy(&site, &["--prod"]).await;
    ready(&server, &second_production).await;
    assert_eq!(
        production(&server, "vercel-static").await,
        second_production
    );
    assert_eq!(
        served(&server, &second_production, "/").await.1,
        "<h1>second production</h1>"
    );

    // ls lists them (one URL a line on stdout); inspect and logs find them by URL.
    let listed = vercel.run(&site, &["ls"], None).await.stdout;
    for id in [&preview, &first_production, &second_production] {
        assert!(
            listed.contains(&format!("https://{id}.localhost")),
            "{id}: {listed}"
        );
    }
    let inspected = vercel
        .run(
            &site,
            &["inspect", &format!("https://{first_production}.localhost")],
            None,
        )
        .await;
    assert!(
        format!("{}{}", inspected.stdout, inspected.stderr).contains(&first_production),
        "inspect names the deployment"
    );
    // The build log (`follow=` empty: what there is, then the end) and runtime logs.
    let logged = vercel
        .run(
            &site,
            &[
                "inspect",
                &format!("https://{first_production}.localhost"),
                "--logs",
            ],
            None,
        )
        .await;
    assert!(
        format!("{}{}", logged.stdout, logged.stderr).contains("published 2 files"),
        "inspect --logs shows the build log"
    );
    vercel
        .run(
            &site,
            &["logs", &format!("https://{second_production}.localhost")],
            None,
        )
        .await;

    // Rollback to the first production, then promote the second again: production moves
    // at once, as through our API.
    vercel
        .run(
            &site,
            &["rollback", &format!("https://{first_production}.localhost")],
            None,
        )
        .await;
    assert_eq!(production(&server, "vercel-static").await, first_production);
    let (_, body) = server.get_json("/api/v1/projects/vercel-static").await;
    assert_eq!(body["production"]["pinned"], true, "{body}");
    vercel.run(&site, &["rollback"], None).await;
    vercel
        .run(
            &site,
            &[
                "promote",
                &format!("https://{second_production}.localhost"),
                "--yes",
            ],
            None,
        )
        .await;
    assert_eq!(
        production(&server, "vercel-static").await,
        second_production
    );

    // Promoting a preview is a new production build of its source.
    vercel
        .run(
            &site,
            &["promote", &format!("https://{preview}.localhost"), "--yes"],
            None,
        )
        .await;
    let rebuilt =
        wait_for_production_other_than(&server, "vercel-static", &second_production).await;
    assert_ne!(rebuilt, preview);
    assert_eq!(
        served(&server, &rebuilt, "/").await.1,
        "<h1>static via vercel</h1>"
    );

    // Variables: added from stdin, listed, removed.
    vercel
        .run(
            &site,
            &["env", "add", "GREETING", "production"],
            Some("hello"),
        )
        .await;
    let (_, env) = server.get_json("/api/v1/projects/vercel-static/env").await;
    let vars = env["env"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["key"] == "GREETING" && v["targets"] == json!(["production"])),
        "{env}"
    );
    let listed = vercel.run(&site, &["env", "ls"], None).await;
    assert!(format!("{}{}", listed.stdout, listed.stderr).contains("GREETING"));
    vercel
        .run(
            &site,
            &["env", "rm", "GREETING", "production", "--yes"],
            None,
        )
        .await;
    let (_, env) = server.get_json("/api/v1/projects/vercel-static/env").await;
    assert!(
        !env["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["key"] == "GREETING"),
        "{env}"
    );

    // Domains: added to the linked project, listed, inspected.
    vercel
        .run(&site, &["domains", "add", "www.vercel-e2e.example"], None)
        .await;
    let (_, domains) = server
        .get_json("/api/v1/projects/vercel-static/domains")
        .await;
    assert_eq!(
        domains["domains"][0]["name"], "www.vercel-e2e.example",
        "{domains}"
    );
    let listed = vercel.run(&site, &["domains", "ls"], None).await;
    assert!(format!("{}{}", listed.stdout, listed.stderr).contains("www.vercel-e2e.example"));
    vercel
        .run(
            &site,
            &["domains", "inspect", "www.vercel-e2e.example"],
            None,
        )
        .await;

    // rm deletes the preview, as DELETE /api/v1/deployments/{id} does.
    vercel
        .run(
            &site,
            &["rm", &format!("https://{preview}.localhost"), "--yes"],
            None,
        )
        .await;
    let (status, _) = server
        .get_json(&format!("/api/v1/deployments/{preview}"))
        .await;
    assert_eq!(status, 410, "the preview is deleted");

    // A folder with a build script: sources go up without node_modules, the server builds.
    let app = work.path().join("vercel-build");
    write(
        &app,
        &[
            (
                "package.json",
                r#"{"name":"vercel-build","version":"1.0.0","private":true,"scripts":{"build":"node build.cjs"}}"#,
            ),
            (
                "package-lock.json",
                r#"{"name":"vercel-build","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"vercel-build","version":"1.0.0"}}}"#,
            ),
            (
                "build.cjs",
                "const fs = require('fs');\nfs.mkdirSync('dist', {recursive: true});\nfs.writeFileSync('dist/index.html', '<h1>built ' + (1 + 1) + '</h1>');\n",
            ),
            ("vercel.json", r#"{"outputDirectory": "dist"}"#),
            ("node_modules/left-behind/index.js", "never uploaded"),
        ],
    );
    let built = vercel.deploy(&app, &["--yes"]).await;
    ready(&server, &built).await;
    assert_eq!(served(&server, &built, "/").await.1, "<h1>built 2</h1>");
    assert_eq!(
        served(&server, &built, "/node_modules/left-behind/index.js")
            .await
            .0,
        404
    );

    eprintln!("the vercel CLI walk-through took {:?}", started.elapsed());
}

/// The production deployment of `project` once it is no longer `old` (a build that takes it
/// over), READY.
async fn wait_for_production_other_than(server: &Server, project: &str, old: &str) -> String {
    let deadline = Instant::now() + COMMAND_TIME;
    loop {
        let now = production(server, project).await;
        if now != old {
            ready(server, &now).await;
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "production of {project} is still {old} after {COMMAND_TIME:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
