//! The sandbox runner: runs one shell command of a build (install or build step) so that
//! untrusted project code cannot see or reach more than it needs.
//!
//! Why: a build runs the uploader's code (package.json scripts, postinstall hooks of every
//! dependency). With bubblewrap (`bwrap`) the command gets new namespaces, a read-only view of
//! the system directories and only the DNS/TLS pieces of `/etc`, a non-root uid, its project
//! folder at a fixed path (`/build/src`), and the network only during the install step.
//! Without bwrap the command still gets a clean environment and its own process group, and
//! the log says it is unsandboxed; `build_sandbox = "require"` refuses to build instead.
//!
//! Either way the environment holds only `PATH`, `HOME`, `CI=1`, the package managers' cache
//! folders, `NODE_ENV=production` (build step only) and the deployment's own variables: never
//! the platform's settings (database, Redis, S3 credentials, `DEPLOYSTACK_*`).
//!
//! The whole process group is killed (SIGKILL) when the command ends, when the build is
//! canceled and when the future is dropped (timeouts), so nothing the command started in the
//! background outlives it. Under bwrap the command runs in its own PID namespace, which the
//! kernel empties when bwrap dies.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::{BuildError, BuildLog};
use crate::model::LogStream;

/// Whether builds must, may or must not run under bubblewrap (`build_sandbox`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Use bubblewrap when it works here, else run unsandboxed and say so in the log.
    #[default]
    Auto,
    /// Use bubblewrap; fail builds (`sandbox_unavailable`) when it does not work here.
    Require,
    /// Never use bubblewrap (the clean environment and process group still apply).
    Off,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "require" => Ok(Self::Require),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "unknown sandbox mode {other:?}; expected auto, require or off"
            )),
        }
    }
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Require => "require",
            Self::Off => "off",
        })
    }
}

/// The system folders searched for programs, and the `PATH` of every build command.
pub const SYSTEM_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where a program called `name` is, among [`SYSTEM_PATH`] (what build commands can run).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return None;
    }
    SYSTEM_PATH
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

/// The folders of one build, as seen from outside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The project folder (read-write; `/build/src` inside the sandbox).
    pub project: PathBuf,
    /// `HOME` (read-write; `/build/home`).
    pub home: PathBuf,
    /// The package managers' caches (read-write; `/build/cache`).
    pub cache: PathBuf,
}

impl Workspace {
    /// A workspace building `project` with its home and cache folders under `work_dir`
    /// (created if missing).
    pub fn new(project: &Path, work_dir: &Path) -> std::io::Result<Self> {
        let ws = Self {
            project: project.to_path_buf(),
            home: work_dir.join("home"),
            cache: work_dir.join("cache"),
        };
        std::fs::create_dir_all(&ws.home)?;
        std::fs::create_dir_all(&ws.cache)?;
        Ok(ws)
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct Step {
    /// `install` or `build`: the step's name in messages.
    pub label: &'static str,
    /// The shell command (`sh -c`).
    pub command: String,
    /// Whether the command may use the network (only the install step).
    pub network: bool,
    /// The deployment's own variables, added after the base environment.
    pub env: Vec<(String, String)>,
    /// The error code when the command exits non-zero (`install_failed`, `build_failed`).
    pub failure_code: &'static str,
}

/// How many lines of output a failure message quotes.
const TAIL_LINES: usize = 20;
/// The uid and gid build commands run as inside the sandbox.
const SANDBOX_ID: &str = "1000";
/// The paths of the workspace inside the sandbox.
const INNER_PROJECT: &str = "/build/src";
const INNER_HOME: &str = "/build/home";
const INNER_CACHE: &str = "/build/cache";
/// The pieces of `/etc` a build needs for DNS, TLS and user lookups; the rest stays hidden.
const ETC_ALLOWED: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/localtime",
];

/// Runs build commands, under bubblewrap when it is available. Cheap to share.
#[derive(Debug)]
pub struct Sandbox {
    mode: SandboxMode,
    /// Whether bubblewrap works here, probed once: the path of `bwrap`, or why not.
    probe: OnceCell<Result<PathBuf, String>>,
    /// Whether the probe's result was written to the platform's log.
    announced: std::sync::Once,
}

impl Sandbox {
    /// A runner in `mode`.
    pub fn new(mode: SandboxMode) -> Self {
        Self {
            mode,
            probe: OnceCell::new(),
            announced: std::sync::Once::new(),
        }
    }

    /// The bwrap to use, or why there is none; checks once by running `true` in a sandbox.
    async fn bwrap(&self) -> Result<PathBuf, String> {
        if self.mode == SandboxMode::Off {
            return Err("build_sandbox is off".to_owned());
        }
        let probe = self
            .probe
            .get_or_init(|| async {
                let bwrap = find_program("bwrap")
                    .ok_or_else(|| "bubblewrap (bwrap) is not installed".to_owned())?;
                let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
                let ws =
                    Workspace::new(scratch.path(), scratch.path()).map_err(|e| e.to_string())?;
                let out = tokio::process::Command::new(&bwrap)
                    .args(bwrap_args(&ws, false))
                    .args(["--", "/bin/sh", "-c", "true"])
                    .env_clear()
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|e| format!("bubblewrap cannot start: {e}"))?;
                if out.status.success() {
                    Ok(bwrap)
                } else {
                    Err(format!(
                        "bubblewrap cannot create its namespaces here: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))
                }
            })
            .await
            .clone();
        // Operators learn it from the platform's own log too, once, not only from build logs.
        self.announced.call_once(|| match &probe {
            Ok(bwrap) => tracing::info!(bwrap = %bwrap.display(), "builds run in a bubblewrap sandbox"),
            Err(why) => tracing::warn!(reason = %why, "builds run UNSANDBOXED (set build_sandbox = \"require\" to refuse them)"),
        });
        probe
    }

    /// Whether commands will run sandboxed: the log line to write (`sandbox: bubblewrap` or
    /// `sandbox: none (…)`), or `sandbox_unavailable` when the sandbox is required.
    pub async fn describe(&self) -> Result<String, BuildError> {
        match self.bwrap().await {
            Ok(_) => Ok("sandbox: bubblewrap".to_owned()),
            Err(why) if self.mode == SandboxMode::Require => Err(BuildError::Failed {
                code: "sandbox_unavailable".into(),
                message: format!("build_sandbox is require, but {why}"),
            }),
            Err(why) => Ok(format!("sandbox: none ({why}; the build runs unsandboxed)")),
        }
    }

    /// Run `step` in `ws`, writing every line of its output to `log`. Fails with the step's
    /// code, its exit status and the last lines of its output when it exits non-zero.
    pub async fn run(
        &self,
        ws: &Workspace,
        step: &Step,
        log: &BuildLog,
        cancel: &CancellationToken,
    ) -> Result<(), BuildError> {
        if cancel.is_cancelled() {
            return Err(BuildError::Canceled);
        }
        let sandboxed = match self.bwrap().await {
            Ok(bwrap) => Some(bwrap),
            Err(why) if self.mode == SandboxMode::Require => {
                return Err(BuildError::Failed {
                    code: "sandbox_unavailable".into(),
                    message: format!("build_sandbox is require, but {why}"),
                });
            }
            Err(_) => None,
        };
        let mut command = match &sandboxed {
            Some(bwrap) => {
                let inner = Workspace {
                    project: INNER_PROJECT.into(),
                    home: INNER_HOME.into(),
                    cache: INNER_CACHE.into(),
                };
                let mut command = tokio::process::Command::new(bwrap);
                // bwrap itself sees nothing of ours either (`--clearenv` covers the command).
                command.env_clear().args(bwrap_args(ws, step.network));
                for (name, value) in environment(&inner, step) {
                    command.arg("--setenv").arg(name).arg(value);
                }
                command.args(["--", "/bin/sh", "-c", &step.command]);
                command
            }
            None => {
                let tmp = ws.home.join(".tmp");
                std::fs::create_dir_all(&tmp)?;
                let mut command = tokio::process::Command::new("/bin/sh");
                command
                    .args(["-c", &step.command])
                    .current_dir(&ws.project)
                    .env_clear()
                    .envs(environment(ws, step))
                    .env("TMPDIR", tmp);
                command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            BuildError::Unavailable(format!("cannot start the {} step: {e}", step.label))
        })?;
        let group = GroupKill(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw),
        );
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let readers =
            [
                child.stdout.take().map(|out| {
                    tokio::spawn(pump(out, LogStream::Stdout, log.clone(), tail.clone()))
                }),
                child.stderr.take().map(|err| {
                    tokio::spawn(pump(err, LogStream::Stderr, log.clone(), tail.clone()))
                }),
            ];
        let status = tokio::select! {
            status = child.wait() => status,
            () = cancel.cancelled() => {
                drop(group);
                let _ = child.wait().await;
                return Err(BuildError::Canceled);
            }
        };
        // Whatever the command left running in the background goes now; that also closes
        // the pipes, so the readers below finish.
        drop(group);
        for reader in readers.into_iter().flatten() {
            // Bounded: a process that escaped the group (unsandboxed `setsid`) may hold a pipe.
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        let status = status.map_err(|e| BuildError::Unavailable(e.to_string()))?;
        if status.success() {
            return Ok(());
        }
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "failed".to_owned(),
        };
        let tail: Vec<String> = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        let mut message = format!("the {} command `{}` {how}", step.label, step.command);
        if !tail.is_empty() {
            message.push_str("; last lines of its output:\n");
            message.push_str(&tail.join("\n"));
        }
        Err(BuildError::Failed {
            code: step.failure_code.into(),
            message: log.masked(&message),
        })
    }
}

/// Kills a whole process group (SIGKILL to `-pgid`) when dropped: on success, on cancel and
/// when the build future is dropped by a timeout.
struct GroupKill(Option<rustix::process::Pid>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// Copy one output stream into the log, line by line, keeping the last lines for errors.
async fn pump(
    stream: impl AsyncRead + Unpin,
    kind: LogStream,
    log: BuildLog,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = log.masked(line.trim_end_matches(['\n', '\r']));
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
                log.write(kind, line);
            }
        }
    }
}

/// The whole environment of a build command, with paths as the command sees them.
fn environment(ws: &Workspace, step: &Step) -> Vec<(String, String)> {
    let cache = |sub: &str| ws.cache.join(sub).display().to_string();
    let path = std::iter::once(ws.project.join("node_modules/.bin").display().to_string())
        .chain(SYSTEM_PATH.iter().map(|s| (*s).to_owned()))
        .collect::<Vec<_>>()
        .join(":");
    let mut env = vec![
        ("PATH".to_owned(), path),
        ("HOME".to_owned(), ws.home.display().to_string()),
        ("CI".to_owned(), "1".to_owned()),
        ("npm_config_cache".to_owned(), cache("npm")),
        ("npm_config_update_notifier".to_owned(), "false".to_owned()),
        ("npm_config_fund".to_owned(), "false".to_owned()),
        ("npm_config_audit".to_owned(), "false".to_owned()),
        // pnpm's store goes to `$PNPM_HOME/store` (its documented default when PNPM_HOME is
        // set, in every pnpm version). Not `npm_config_store_dir`: npm warns about that
        // unknown setting ("Unknown env config store-dir") in every npm command, and pnpm 11
        // no longer reads `npm_config_*` at all.
        ("PNPM_HOME".to_owned(), cache("pnpm")),
        ("YARN_CACHE_FOLDER".to_owned(), cache("yarn")),
        ("BUN_INSTALL_CACHE_DIR".to_owned(), cache("bun")),
    ];
    if step.label == "build" {
        env.push(("NODE_ENV".to_owned(), "production".to_owned()));
    }
    env.extend(step.env.iter().cloned());
    env
}

/// The bubblewrap arguments before `--` (namespaces, mounts, working folder).
fn bwrap_args(ws: &Workspace, network: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--unshare-all",
        "--unshare-user",
        "--uid",
        SANDBOX_ID,
        "--gid",
        SANDBOX_ID,
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if network {
        args.push("--share-net".to_owned());
    }
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(dir) {
                    args.extend([
                        "--symlink".to_owned(),
                        target.display().to_string(),
                        dir.to_owned(),
                    ]);
                }
            }
            Ok(meta) if meta.is_dir() => {
                args.extend(["--ro-bind".to_owned(), dir.to_owned(), dir.to_owned()]);
            }
            _ => {}
        }
    }
    for etc in ETC_ALLOWED {
        args.extend([
            "--ro-bind-try".to_owned(),
            (*etc).to_owned(),
            (*etc).to_owned(),
        ]);
    }
    args.extend(
        ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    for (outside, inside) in [
        (&ws.project, INNER_PROJECT),
        (&ws.home, INNER_HOME),
        (&ws.cache, INNER_CACHE),
    ] {
        args.extend([
            "--bind".to_owned(),
            outside.display().to_string(),
            inside.to_owned(),
        ]);
    }
    args.extend(["--chdir".to_owned(), INNER_PROJECT.to_owned()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(command: &str) -> Step {
        Step {
            label: "build",
            command: command.to_owned(),
            network: false,
            env: vec![("GREETING".to_owned(), "hello".to_owned())],
            failure_code: "build_failed",
        }
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in ["auto", "require", "off"] {
            assert_eq!(mode.parse::<SandboxMode>().unwrap().to_string(), mode);
        }
        assert!("strict".parse::<SandboxMode>().is_err());
    }

    #[test]
    fn the_environment_holds_only_what_builds_need() {
        let ws = Workspace {
            project: "/p".into(),
            home: "/h".into(),
            cache: "/c".into(),
        };
        let env = environment(&ws, &step("true"));
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"NODE_ENV"));
        assert!(names.contains(&"GREETING"));
        assert!(names.iter().all(|n| !n.starts_with("DEPLOYSTACK_")
            && !n.starts_with("AWS_")
            && *n != "DATABASE_URL"));
        assert!(
            env.iter()
                .any(|(n, v)| n == "PATH" && v.starts_with("/p/node_modules/.bin:"))
        );
        // The pnpm store is in the cached folder, set so npm has nothing to warn about: every
        // `npm_config_*` variable names a setting npm knows.
        assert!(env.iter().any(|(n, v)| n == "PNPM_HOME" && v == "/c/pnpm"));
        let npm_settings: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_prefix("npm_config_"))
            .collect();
        assert_eq!(npm_settings, ["cache", "update_notifier", "fund", "audit"]);
        let install = Step {
            label: "install",
            ..step("true")
        };
        assert!(
            environment(&ws, &install)
                .iter()
                .all(|(n, _)| n != "NODE_ENV")
        );
    }

    #[tokio::test]
    async fn unsandboxed_runs_log_lines_and_report_failures_with_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), dir.path()).unwrap();
        let sandbox = Sandbox::new(SandboxMode::Off);
        assert!(
            sandbox
                .describe()
                .await
                .unwrap()
                .starts_with("sandbox: none (")
        );
        let log = BuildLog::new(1);
        log.mask(["hello".to_owned()]);
        let cancel = CancellationToken::new();
        sandbox
            .run(
                &ws,
                &step("echo out $GREETING; echo err >&2"),
                &log,
                &cancel,
            )
            .await
            .unwrap();
        let lines = log.drain();
        assert!(
            lines
                .iter()
                .any(|l| l.stream == LogStream::Stdout && l.message == "out ***")
        );
        assert!(
            lines
                .iter()
                .any(|l| l.stream == LogStream::Stderr && l.message == "err")
        );

        let err = sandbox
            .run(
                &ws,
                &step("for i in $(seq 1 30); do echo line $i; done; echo $GREETING; exit 3"),
                &log,
                &cancel,
            )
            .await
            .unwrap_err();
        let BuildError::Failed { code, message } = err else {
            panic!("expected a failure");
        };
        assert_eq!(code, "build_failed");
        assert!(message.contains("exited with status 3"), "{message}");
        assert!(
            message.contains("line 30") && !message.contains("line 5\n"),
            "{message}"
        );
        assert!(
            !message.contains("hello") && message.contains("***"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_secret_printed_in_pieces_is_masked_once_its_line_is_whole() {
        use tokio::io::AsyncReadExt as _;
        let log = BuildLog::new(1);
        log.mask(["hunter22".to_owned()]);
        // Three reads, the secret split between the first two, as a pipe may deliver it.
        let chunks = (&b"token=hun"[..])
            .chain(&b"ter22 ok\nnext"[..])
            .chain(&b" line hunter22\r\n"[..]);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        pump(chunks, LogStream::Stdout, log.clone(), tail.clone()).await;
        let lines: Vec<String> = log.drain().into_iter().map(|l| l.message).collect();
        assert_eq!(lines, ["token=*** ok", "next line ***"]);
        assert!(tail.lock().unwrap().iter().all(|l| !l.contains("hunter22")));
    }

    /// A pipe that delivers its bytes in the given pieces, one per read.
    struct Pieces(VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    proptest::proptest! {
        /// Wherever the pipe cuts the output, no secret reaches a log line or the tail.
        #[test]
        fn secrets_are_masked_however_the_output_is_cut(
            secrets in proptest::collection::vec("[a-z]{4,12}", 1..3),
            words in proptest::collection::vec("[a-z ]{0,8}", 1..6),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let mut output = String::new();
            for (n, word) in words.iter().enumerate() {
                output.push_str(word);
                output.push_str(&secrets[n % secrets.len()]);
                output.push(if n % 2 == 0 { ' ' } else { '\n' });
            }
            let bytes = output.into_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = VecDeque::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                // An empty read means end of file on a pipe: only non-empty pieces.
                if cut > from {
                    pieces.push_back(bytes[from..cut].to_vec());
                }
                from = cut;
            }
            let log = BuildLog::new(1);
            log.mask(secrets.clone());
            let tail = Arc::new(Mutex::new(VecDeque::new()));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(pump(Pieces(pieces), LogStream::Stdout, log.clone(), tail.clone()));
            let lines = log.drain();
            proptest::prop_assert!(!lines.is_empty());
            for line in &lines {
                for secret in &secrets {
                    proptest::prop_assert!(!line.message.contains(secret.as_str()), "{}", line.message);
                }
            }
        }
    }
}

/// Tests that run real commands under bubblewrap. Without bwrap they print why they skip;
/// under `CI=true` a missing bwrap is a failure.
#[cfg(test)]
mod bwrap_tests {
    use super::*;

    fn is_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
    }

    async fn sandbox() -> Option<Sandbox> {
        let sandbox = Sandbox::new(SandboxMode::Require);
        match sandbox.describe().await {
            Ok(_) => Some(sandbox),
            Err(err) if is_ci() => panic!("CI=true requires a working bubblewrap: {err}"),
            Err(err) => {
                // Reported as `testing::env::skip` does (that module needs the `testing`
                // feature, which these tests run without): printed, and counted by scripts/test.
                eprintln!("skipped: {err}");
                if let Some(path) = std::env::var_os("DEPLOYSTACK_TEST_SKIP_LOG") {
                    use std::io::Write;
                    let line = format!(
                        "bubblewrap does not work: {}\n",
                        err.to_string().replace('\n', " ")
                    );
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut file| file.write_all(line.as_bytes()));
                }
                None
            }
        }
    }

    fn step(command: &str, network: bool) -> Step {
        Step {
            label: if network { "install" } else { "build" },
            command: command.to_owned(),
            network,
            env: vec![("OWN".to_owned(), "mine".to_owned())],
            failure_code: if network {
                "install_failed"
            } else {
                "build_failed"
            },
        }
    }

    async fn output(
        sandbox: &Sandbox,
        ws: &Workspace,
        step: &Step,
    ) -> (Result<(), BuildError>, Vec<String>) {
        let log = BuildLog::new(1);
        let result = sandbox.run(ws, step, &log, &CancellationToken::new()).await;
        (result, log.drain().into_iter().map(|l| l.message).collect())
    }

    #[tokio::test]
    async fn commands_see_only_their_own_environment_and_run_as_a_plain_user() {
        let Some(sandbox) = sandbox().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        let ws = Workspace::new(&dir.path().join("src"), dir.path()).unwrap();
        let (result, lines) = output(
            &sandbox,
            &ws,
            &step("id -u; pwd; env | cut -d= -f1 | sort", false),
        )
        .await;
        result.unwrap();
        assert_eq!(lines[0], "1000");
        assert_eq!(lines[1], "/build/src");
        let names: Vec<&str> = lines[2..].iter().map(String::as_str).collect();
        for name in &names {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "CI",
                    "NODE_ENV",
                    "OWN",
                    "PWD",
                    "SHLVL",
                    "_",
                    "YARN_CACHE_FOLDER",
                    "BUN_INSTALL_CACHE_DIR",
                    "PNPM_HOME"
                ]
                .contains(name)
                    || name.starts_with("npm_config_"),
                "unexpected variable {name} in {names:?}"
            );
        }
        assert!(names.contains(&"OWN"));
    }

    #[tokio::test]
    async fn commands_cannot_read_outside_their_folders_or_reach_the_network_while_building() {
        let Some(sandbox) = sandbox().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("src");
        std::fs::create_dir(&project).unwrap();
        let ws = Workspace::new(&project, dir.path()).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "platform secret").unwrap();

        let (result, lines) = output(
            &sandbox,
            &ws,
            &step(&format!("cat {}", outside.path().display()), false),
        )
        .await;
        assert!(result.is_err(), "{lines:?}");
        assert!(lines.iter().all(|l| !l.contains("platform secret")));
        let (result, _) = output(
            &sandbox,
            &ws,
            &step("cat /etc/hostname || cat /etc/machine-id", false),
        )
        .await;
        assert!(
            result.is_err(),
            "only the DNS and TLS pieces of /etc are visible"
        );
        let (result, _) = output(&sandbox, &ws, &step("touch /usr/x", false)).await;
        assert!(result.is_err(), "system folders are read-only");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = format!(
            "node -e \"require('net').connect({port}, '127.0.0.1').on('connect', () => {{ console.log('connected'); process.exit(0) }}).on('error', e => {{ console.log('error ' + e.code); process.exit(1) }})\""
        );
        let (result, lines) = output(&sandbox, &ws, &step(&connect, false)).await;
        assert!(
            result.is_err(),
            "the build step reached the network: {lines:?}"
        );
        let (result, lines) = output(&sandbox, &ws, &step(&connect, true)).await;
        assert!(
            result.is_ok(),
            "the install step has the network: {lines:?}"
        );
    }

    /// Host pids of processes whose command line has `marker` as an argument.
    fn pids_running(marker: &str) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == marker.as_bytes()))
            })
            .collect()
    }

    async fn gone(marker: &str) -> bool {
        for _ in 0..100 {
            if pids_running(marker).is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Whether both sleeps of the command are running within a few seconds: "started" is
    /// echoed before the second one is exec'd, so on a busy machine it may still be starting.
    async fn both_run(marker: &str) -> bool {
        for _ in 0..250 {
            if pids_running(marker).len() == 2 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn started(log: &BuildLog, seen: &mut Vec<String>) {
        for _ in 0..500 {
            seen.extend(log.drain().into_iter().map(|l| l.message));
            if seen.iter().any(|l| l == "started") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the command did not start: {seen:?}");
    }

    async fn no_process_survives(sandbox: Sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path(), dir.path()).unwrap();
        let marker = format!("{}", 100_000 + rand::random::<u32>() % 800_000);
        let command = step(
            &format!("sleep {marker} & echo started; sleep {marker}"),
            false,
        );

        // Canceled.
        let log = BuildLog::new(1);
        let cancel = CancellationToken::new();
        let run = sandbox.run(&ws, &command, &log, &cancel);
        let watcher = async {
            started(&log, &mut Vec::new()).await;
            assert!(both_run(&marker).await, "both sleeps run");
            cancel.cancel();
        };
        let (result, ()) = tokio::join!(run, watcher);
        assert!(matches!(result, Err(BuildError::Canceled)), "{result:?}");
        assert!(gone(&marker).await, "processes left behind after cancel");

        // The future dropped by a timeout.
        let log = BuildLog::new(1);
        let cancel = CancellationToken::new();
        {
            let run = sandbox.run(&ws, &command, &log, &cancel);
            tokio::pin!(run);
            let mut seen = Vec::new();
            tokio::select! {
                _ = &mut run => panic!("the command ended by itself"),
                () = started(&log, &mut seen) => {}
            }
        }
        assert!(
            gone(&marker).await,
            "processes left behind after the future was dropped"
        );

        // Finished, with a background child still running.
        let (result, _) = output(
            &sandbox,
            &ws,
            &step(&format!("sleep {marker} & echo started"), false),
        )
        .await;
        result.unwrap();
        assert!(
            gone(&marker).await,
            "a background child outlived its command"
        );
    }

    #[tokio::test]
    async fn cancel_drop_and_exit_leave_no_process_behind_sandboxed() {
        let Some(sandbox) = sandbox().await else {
            return;
        };
        no_process_survives(sandbox).await;
    }

    #[tokio::test]
    async fn cancel_drop_and_exit_leave_no_process_behind_unsandboxed() {
        no_process_survives(Sandbox::new(SandboxMode::Off)).await;
    }
}
