//! The `deploystack` command-line client against the real server, as a user runs it: deploy
//! a folder and load the page, redeploys that send only what changed, ignore rules, a zip as
//! the path, the followed build log, `--json` documents, promote and rollback, `login` and
//! `link`, and each failure's exit code and message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{Server, cli_binary, get_on, required_tool, zip_of};

/// What one run of the command left.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The one JSON document the command printed on stdout.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not one JSON document ({err}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// A user of the command: a home of their own (so no config file of the machine's is read)
/// and a server address in the environment, as CI would set it.
struct User {
    home: TempDir,
    url: String,
}

impl User {
    fn of(server: &Server) -> User {
        User {
            home: tempfile::tempdir().unwrap(),
            url: server.base.clone(),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.home.path().join("config/deploystack/config.json")
    }

    /// `deploystack args…` in `dir` with `DEPLOYSTACK_URL` set and `env` added.
    async fn run_in(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(dir, args);
        command.env("DEPLOYSTACK_URL", &self.url);
        for (key, value) in env {
            command.env(key, value);
        }
        output(command).await
    }

    async fn run(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_in(dir, args, &[]).await
    }

    /// The command with only the user's home in its environment.
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(cli_binary());
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

async fn output(mut command: Command) -> Run {
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the command did not finish within 120 s")
        .expect("run deploystack");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!("stderr of deploystack:\n{}", run.stderr);
    run
}

/// Write `files` (path, text) under `root`.
fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A site of `count` pages besides its home page.
fn site(count: usize) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("index.html", "<h1>Home v1</h1>")]);
    for i in 0..count {
        write(
            dir.path(),
            &[(&format!("pages/p{i}.html"), &format!("<p>page {i}</p>"))],
        );
    }
    dir
}

/// What deployment `id` serves at `path`, through the path-based address.
async fn page(server: &Server, id: &str, path: &str) -> (u16, String) {
    let response = server.get(&format!("/{id}/{path}")).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A Node project with no dependencies whose build runs `build_cjs`.
fn node_project(build_cjs: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "package.json",
                r#"{"name":"probe","version":"1.0.0","private":true,"scripts":{"build":"node build.cjs"}}"#,
            ),
            (
                "package-lock.json",
                r#"{"name":"probe","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"probe","version":"1.0.0"}}}"#,
            ),
            ("build.cjs", build_cjs),
        ],
    );
    dir
}

#[tokio::test]
async fn a_folder_deploys_and_redeploys_send_only_what_changed() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = site(30);
    // Larger than a batch takes: sent on its own (`PUT /api/v1/files/{sha256}`).
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();

    let first = user
        .run(dir.path(), &["deploy", ".", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(first["status"], "READY", "{first}");
    assert_eq!(first["files"], 32);
    assert_eq!(first["uploaded"], 32);
    let id = first["id"].as_str().unwrap();
    assert!(first["url"].as_str().unwrap().contains(id), "{first}");
    assert_eq!(
        page(&server, id, "").await,
        (200, "<h1>Home v1</h1>".into())
    );
    assert_eq!(page(&server, id, "pages/p7.html").await.1, "<p>page 7</p>");
    let served = server.get(&format!("/{id}/big.bin")).await;
    assert_eq!(served.bytes().await.unwrap().as_ref(), big.as_slice());

    // One file changed: only it is sent, and the new deployment serves it.
    write(dir.path(), &[("index.html", "<h1>Home v2</h1>")]);
    let second = user
        .run(dir.path(), &["deploy", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(second["status"], "READY", "{second}");
    assert_eq!(second["files"], 32);
    assert_eq!(second["uploaded"], 1, "{second}");
    let second_id = second["id"].as_str().unwrap();
    assert_ne!(second_id, id);
    assert_eq!(page(&server, second_id, "").await.1, "<h1>Home v2</h1>");
    assert_eq!(
        page(&server, second_id, "pages/p29.html").await.1,
        "<p>page 29</p>"
    );
    // The first deployment is immutable.
    assert_eq!(page(&server, id, "").await.1, "<h1>Home v1</h1>");

    // Nothing changed: nothing is sent, and it still deploys.
    let third = user
        .run(dir.path(), &["deploy", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(third["status"], "READY", "{third}");
    assert_eq!(third["uploaded"], 0, "{third}");

    // Without --json: the URL alone on stdout, progress and the summary on stderr.
    let human = user.run(dir.path(), &["deploy"]).await.ok();
    let url = human.stdout.trim();
    assert!(url.starts_with("http://") && !url.contains('\n'), "{url}");
    assert!(
        human.stderr.contains("0 of 32 files sent"),
        "{}",
        human.stderr
    );
    assert!(human.stderr.contains("Ready"), "{}", human.stderr);
}

#[tokio::test]
async fn ignored_files_dependencies_and_version_control_are_not_sent() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("index.html", "home"),
            (".gitignore", "secret.txt\n*.log\n"),
            (".deployignore", "drafts/\n"),
            ("secret.txt", "password"),
            ("debug.log", "log"),
            ("drafts/next.html", "draft"),
            ("node_modules/lib/index.js", "dependency"),
            (".git/HEAD", "ref: refs/heads/main"),
            ("about/index.html", "about"),
        ],
    );
    let deployed = user
        .run(dir.path(), &["deploy", "--json"])
        .await
        .ok()
        .json();
    // index.html, about/index.html, .gitignore and .deployignore.
    assert_eq!(deployed["files"], 4, "{deployed}");
    assert_eq!(deployed["uploaded"], 4, "{deployed}");
    let id = deployed["id"].as_str().unwrap();
    assert_eq!(page(&server, id, "about/").await, (200, "about".into()));
    for path in [
        "secret.txt",
        "debug.log",
        "drafts/next.html",
        "node_modules/lib/index.js",
        ".git/HEAD",
    ] {
        assert_eq!(page(&server, id, path).await.0, 404, "{path} was sent");
    }
}

#[tokio::test]
async fn a_zip_deploys_like_a_folder_and_its_redeploy_sends_only_what_changed() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = tempfile::tempdir().unwrap();
    // One top-level folder, as GitHub's "Download ZIP" makes: served from inside it.
    let zip = |home: &str| {
        zip_of(&[
            ("site-main/index.html", home.as_bytes()),
            ("site-main/css/a.css", b"h1{color:teal}".as_slice()),
            ("site-main/node_modules/x.js", b"x".as_slice()),
        ])
    };
    std::fs::write(dir.path().join("site.zip"), zip("zip v1")).unwrap();
    let first = user
        .run(dir.path(), &["deploy", "site.zip", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(first["status"], "READY", "{first}");
    assert_eq!(first["files"], 2, "{first}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(page(&server, id, "").await, (200, "zip v1".into()));
    assert_eq!(page(&server, id, "css/a.css").await.1, "h1{color:teal}");

    std::fs::write(dir.path().join("site.zip"), zip("zip v2")).unwrap();
    let second = user
        .run(dir.path(), &["deploy", "site.zip", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(second["uploaded"], 1, "{second}");
    assert_eq!(
        page(&server, second["id"].as_str().unwrap(), "").await.1,
        "zip v2"
    );
}

#[tokio::test]
async fn logs_follow_prints_lines_as_the_build_writes_them() {
    if required_tool("npm", "npm (the follow test's build)").is_none() {
        return;
    }
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = node_project(
        "console.log('first step done');\n\
         setTimeout(() => { console.log('second step done'); process.exit(1); }, 2500);\n",
    );
    let queued = user
        .run(
            dir.path(),
            &["deploy", "--no-wait", "--json", "--project", "slow"],
        )
        .await
        .ok()
        .json();
    let id = queued["id"].as_str().unwrap().to_owned();

    let mut command = user.command(dir.path(), &["logs", &id, "-f"]);
    command.env("DEPLOYSTACK_URL", &user.url);
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains("first step done") {
                return true;
            }
        }
        false
    })
    .await
    .expect("no first step within 90 s");
    assert!(first, "the stream ended without the first step: {seen:?}");
    // The build is still running: the line came while it was written, not at the end.
    assert!(
        child.try_wait().unwrap().is_none(),
        "logs -f had exited already"
    );
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    let status = child.wait().await.unwrap();
    assert!(status.success(), "logs -f exited {status}");
    assert!(
        rest.iter().any(|l| l.contains("second step done")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn a_failed_build_exits_1_with_the_end_of_its_log() {
    if required_tool("npm", "npm (the failing build)").is_none() {
        return;
    }
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = node_project(
        "console.log('compiling pages');\nconsole.error('boom: page two does not parse');\nprocess.exit(1);\n",
    );
    let failed = user
        .run(dir.path(), &["deploy", "--project", "broken"])
        .await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("ended ERROR"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("Last lines of the build log"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("boom: page two does not parse"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("deploystack logs"),
        "{}",
        failed.stderr
    );

    let failed = user
        .run(dir.path(), &["deploy", "--project", "broken", "--json"])
        .await;
    assert_eq!(failed.code, 1);
    let document = failed.json();
    assert_eq!(document["status"], "ERROR", "{document}");
    assert!(
        document["log_tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("boom")),
        "{document}"
    );
}

#[tokio::test]
async fn json_output_is_one_document_for_every_kind_of_command() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = site(2);
    let deployed = user
        .run(
            dir.path(),
            &[
                "deploy",
                "--project",
                "docs",
                "--env",
                "API=https://api",
                "--json",
            ],
        )
        .await
        .ok()
        .json();
    let id = deployed["id"].as_str().unwrap();
    assert_eq!(deployed["project"], "docs");
    assert_eq!(deployed["env"][0]["name"], "API", "{deployed}");
    let url = deployed["url"].as_str().unwrap();

    let listed = user.run(dir.path(), &["ls", "--json"]).await.ok().json();
    assert_eq!(listed["deployments"][0]["id"], id, "{listed}");
    // A deployment named by its URL is the same deployment.
    let inspected = user
        .run(dir.path(), &["inspect", url, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(inspected["id"], id);
    assert_eq!(inspected["status"], "READY");
    let logs = user
        .run(dir.path(), &["logs", id, "--json"])
        .await
        .ok()
        .json();
    assert!(!logs["lines"].as_array().unwrap().is_empty(), "{logs}");
    let projects = user
        .run(dir.path(), &["projects", "ls", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(projects["projects"][0]["name"], "docs");
    let added = user
        .run(
            dir.path(),
            &[
                "env", "add", "FLAG", "on", "--type", "plain", "-p", "docs", "--json",
            ],
        )
        .await
        .ok()
        .json();
    assert_eq!(added["key"], "FLAG");
    let vars = user
        .run(dir.path(), &["env", "ls", "-p", "docs", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(vars["env"][0]["value"], "on", "{vars}");
    let who = user
        .run(dir.path(), &["whoami", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(who["caller"], "local", "{who}");
    assert_eq!(who["url"], user.url.as_str());
    let domains = user
        .run(dir.path(), &["domains", "ls", "-p", "docs", "--json"])
        .await
        .ok()
        .json();
    assert!(domains["domains"].as_array().unwrap().is_empty());
    let completions = user
        .run(dir.path(), &["completions", "bash", "--json"])
        .await
        .ok()
        .json();
    assert!(
        completions["script"]
            .as_str()
            .unwrap()
            .contains("deploystack")
    );
    let removed = user
        .run(dir.path(), &["rm", id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(removed["deleted"], true);
    assert_eq!(page(&server, id, "").await.0, 410);
    // An error is one document too, with its exit code.
    let missing = user.run(dir.path(), &["inspect", id, "--json"]).await;
    assert_eq!(missing.code, 5);
    assert_eq!(missing.json()["error"]["exit_code"], 5);
}

/// Check that the production address of project `shop` serves `body`.
async fn production(server: &Server, body: &str) {
    let (status, text) = get_on(server.address(), "shop.localhost", "/").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(body),
        "production serves {text:?}, not {body:?}"
    );
}

#[tokio::test]
async fn promote_and_rollback_change_what_the_production_address_serves() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("index.html", "<h1>one</h1>")]);
    let one = user
        .run(
            dir.path(),
            &["deploy", "--prod", "--project", "shop", "--json"],
        )
        .await
        .ok()
        .json();
    assert!(
        one["production_url"].as_str().unwrap().contains("shop."),
        "{one}"
    );
    production(&server, "<h1>one</h1>").await;

    write(dir.path(), &[("index.html", "<h1>two</h1>")]);
    let two = user
        .run(dir.path(), &["deploy", "--project", "shop", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(two["target"], "preview");
    production(&server, "<h1>one</h1>").await;

    let promoted = user
        .run(
            dir.path(),
            &["promote", two["url"].as_str().unwrap(), "--json"],
        )
        .await
        .ok()
        .json();
    assert_eq!(promoted["production"]["deployment_id"], two["id"]);
    production(&server, "<h1>two</h1>").await;

    let rolled = user
        .run(dir.path(), &["rollback", "--project", "shop", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(rolled["production"]["deployment_id"], one["id"]);
    assert_eq!(rolled["production"]["pinned"], true);
    production(&server, "<h1>one</h1>").await;

    // Rolling back to a named deployment finds its project by itself.
    user.run(dir.path(), &["rollback", two["id"].as_str().unwrap()])
        .await
        .ok();
    production(&server, "<h1>two</h1>").await;
}

#[tokio::test]
async fn each_failure_has_its_exit_code_and_says_what_to_do() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = site(1);

    // Nothing listens on port 1.
    let down = user
        .run_in(
            dir.path(),
            &["ls"],
            &[("DEPLOYSTACK_URL", "http://127.0.0.1:1")],
        )
        .await;
    assert_eq!(down.code, 4, "{}", down.stderr);
    assert!(
        down.stderr
            .contains("could not reach http://127.0.0.1:1: connection refused"),
        "{}",
        down.stderr
    );
    assert!(down.stderr.contains("DEPLOYSTACK_URL"), "{}", down.stderr);

    let unknown = user
        .run(dir.path(), &["env", "ls", "--project", "nope"])
        .await;
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no project named nope"),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains("deploystack projects ls"),
        "{}",
        unknown.stderr
    );

    for args in [
        vec!["deploy", "--env", "NOEQUALS"],
        vec!["inspect", "not-a-deployment"],
        vec!["deploi"],
        vec!["deploy", "--prod"],
        vec!["deploy", "no-such-folder"],
    ] {
        let wrong = user.run(dir.path(), &args).await;
        assert_eq!(wrong.code, 2, "{args:?}: {}", wrong.stderr);
        assert!(!wrong.stderr.is_empty());
    }
}

#[tokio::test]
async fn a_bad_or_missing_token_exits_3_and_says_how_to_log_in() {
    let (server, admin) = crate::tokens::required_server(&[]).await;
    let user = User::of(&server);
    let dir = site(1);

    let none = user.run(dir.path(), &["ls"]).await;
    assert_eq!(none.code, 3, "{}", none.stderr);
    assert!(none.stderr.contains("needs a token"), "{}", none.stderr);
    assert!(none.stderr.contains("deploystack login"), "{}", none.stderr);

    let bad = user
        .run_in(
            dir.path(),
            &["deploy"],
            &[("DEPLOYSTACK_TOKEN", "ds_not_a_real_token")],
        )
        .await;
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(bad.stderr.contains("not valid"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("DEPLOYSTACK_TOKEN was refused"),
        "{}",
        bad.stderr
    );

    // A token limited to another project may not deploy to this one.
    let made = user
        .run_in(
            dir.path(),
            &[
                "tokens",
                "create",
                "ci",
                "--scope",
                "deploy",
                "--project",
                "other",
                "--json",
            ],
            &[("DEPLOYSTACK_TOKEN", &admin)],
        )
        .await
        .ok()
        .json();
    let limited = made["token"].as_str().unwrap();
    let refused = user
        .run_in(
            dir.path(),
            &["deploy", "--project", "shop"],
            &[("DEPLOYSTACK_TOKEN", limited)],
        )
        .await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("whoami"), "{}", refused.stderr);
    // It may still ask who it is.
    let who = user
        .run_in(
            dir.path(),
            &["whoami", "--json"],
            &[("DEPLOYSTACK_TOKEN", limited)],
        )
        .await
        .ok()
        .json();
    assert_eq!(who["token"]["name"], "ci");
    assert_eq!(who["token"]["projects"][0], "other");
}

#[tokio::test]
async fn login_keeps_a_checked_token_in_a_private_file_that_later_commands_use() {
    let (server, admin) = crate::tokens::required_server(&[]).await;
    let user = User::of(&server);
    let dir = site(1);
    let url = user.url.clone();

    // A wrong token is not saved.
    let refused =
        output(user.command(dir.path(), &["login", "--url", &url, "--token", "ds_wrong"])).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(!user.config_file().exists());

    output(user.command(dir.path(), &["login", "--url", &url, "--token", &admin]))
        .await
        .ok();
    let file = user.config_file();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the config file is readable by others");
    }
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["url"], url.as_str());
    assert_eq!(saved["token"], admin.as_str());

    // Neither URL nor token in the environment: the file's are used.
    let who = output(user.command(dir.path(), &["whoami", "--json"]))
        .await
        .ok()
        .json();
    assert_eq!(who["token"]["name"], "bootstrap", "{who}");
    assert_eq!(who["url_from"], "config");
    // The environment wins over the file, and a flag over the environment.
    let mut command = user.command(dir.path(), &["whoami"]);
    command.env("DEPLOYSTACK_URL", "http://127.0.0.1:1");
    assert_eq!(output(command).await.code, 4);
    let mut command = user.command(dir.path(), &["whoami", "--url", &url]);
    command.env("DEPLOYSTACK_URL", "http://127.0.0.1:1");
    output(command).await.ok();

    output(user.command(dir.path(), &["logout"])).await.ok();
    assert!(!file.exists());
    // After logout the default local address is used (whether or not a server listens there).
    let after = output(user.command(dir.path(), &["whoami", "--json"])).await;
    let default = "http://127.0.0.1:8000";
    assert!(
        after.stdout.contains(default) || after.stderr.contains(default),
        "{}{}",
        after.stdout,
        after.stderr
    );
}

#[tokio::test]
async fn a_linked_folder_deploys_to_its_project() {
    let server = Server::start().await;
    let user = User::of(&server);
    let dir = site(1);
    let other = site(1);
    user.run(dir.path(), &["projects", "add", "blog"])
        .await
        .ok();
    // A deployment of another project, which the linked folder's `ls` leaves out.
    user.run(other.path(), &["deploy", "--project", "shop"])
        .await
        .ok();

    let unknown = user.run(dir.path(), &["link", "nope"]).await;
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);
    user.run(dir.path(), &["link", "blog"]).await.ok();
    assert!(dir.path().join(".deploystack/project.json").exists());

    let deployed = user
        .run(dir.path(), &["deploy", "--prod", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(deployed["project"], "blog", "{deployed}");
    assert_eq!(deployed["target"], "production");
    // The link itself is not part of the site.
    assert_eq!(deployed["files"], 2, "{deployed}");
    let (status, text) = get_on(server.address(), "blog.localhost", "/").await;
    assert_eq!(status, 200);
    assert!(text.contains("Home v1"), "{text}");

    // From a folder below, too; `ls` shows the project's deployments only.
    let below = dir.path().join("pages");
    let listed = user.run(&below, &["ls", "--json"]).await.ok().json();
    let projects: Vec<&str> = listed["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["project"].as_str().unwrap())
        .collect();
    assert_eq!(projects, vec!["blog"]);
}

#[tokio::test]
async fn variables_tokens_and_projects_are_managed_by_name() {
    let (server, admin) = crate::tokens::required_server(&[]).await;
    let user = User::of(&server);
    let dir = tempfile::tempdir().unwrap();
    let as_admin = [("DEPLOYSTACK_TOKEN", admin.as_str())];
    user.run_in(dir.path(), &["projects", "add", "docs"], &as_admin)
        .await
        .ok();
    for args in [
        vec![
            "env",
            "add",
            "API_URL",
            "https://api",
            "--type",
            "plain",
            "-t",
            "production",
        ],
        vec!["env", "add", "SECRET", "s3cret", "--type", "sensitive"],
    ] {
        let mut args = args;
        args.extend(["--project", "docs"]);
        user.run_in(dir.path(), &args, &as_admin).await.ok();
    }

    // `env pull` writes the target's readable values, privately; sensitive ones cannot be.
    let pulled = user
        .run_in(
            dir.path(),
            &[
                "env",
                "pull",
                "--environment",
                "production",
                "-p",
                "docs",
                "--json",
            ],
            &as_admin,
        )
        .await
        .ok()
        .json();
    assert_eq!(pulled["written"], 1, "{pulled}");
    assert_eq!(pulled["skipped"][0], "SECRET");
    let text = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert!(text.contains("API_URL=\"https://api\""), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Removed by key; an unknown key is "not found".
    user.run_in(
        dir.path(),
        &["env", "rm", "API_URL", "-p", "docs"],
        &as_admin,
    )
    .await
    .ok();
    let left = user
        .run_in(
            dir.path(),
            &["env", "ls", "-p", "docs", "--json"],
            &as_admin,
        )
        .await
        .ok()
        .json();
    let keys: Vec<&str> = left["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["SECRET"]);
    let gone = user
        .run_in(
            dir.path(),
            &["env", "rm", "API_URL", "-p", "docs"],
            &as_admin,
        )
        .await;
    assert_eq!(gone.code, 5, "{}", gone.stderr);

    // A token made, listed, and revoked: it stops working at once.
    let made = user
        .run_in(
            dir.path(),
            &[
                "tokens",
                "create",
                "laptop",
                "--scope",
                "read",
                "--expires-in",
                "30d",
                "--json",
            ],
            &as_admin,
        )
        .await
        .ok()
        .json();
    let secret = made["token"].as_str().unwrap();
    let id = made["id"].as_str().unwrap();
    let listed = user
        .run_in(dir.path(), &["tokens", "ls", "--json"], &as_admin)
        .await
        .ok()
        .json();
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "laptop" && t["scopes"][0] == "read"),
        "{listed}"
    );
    user.run_in(dir.path(), &["whoami"], &[("DEPLOYSTACK_TOKEN", secret)])
        .await
        .ok();
    user.run_in(dir.path(), &["tokens", "revoke", id], &as_admin)
        .await
        .ok();
    let revoked = user
        .run_in(dir.path(), &["whoami"], &[("DEPLOYSTACK_TOKEN", secret)])
        .await;
    assert_eq!(revoked.code, 3, "{}", revoked.stderr);

    // A project removed is gone, and naming it again is "not found".
    user.run_in(dir.path(), &["projects", "rm", "docs"], &as_admin)
        .await
        .ok();
    let projects = user
        .run_in(dir.path(), &["projects", "ls", "--json"], &as_admin)
        .await
        .ok()
        .json();
    assert!(
        projects["projects"].as_array().unwrap().is_empty(),
        "{projects}"
    );
    let unknown = user
        .run_in(dir.path(), &["env", "ls", "-p", "docs"], &as_admin)
        .await;
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);
}
