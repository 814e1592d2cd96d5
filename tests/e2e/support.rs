//! Starting the real `deploystack-server` binary and talking to it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The secret key every node of a test cluster shares: 32 bytes of 0x2a, in hex.
pub const CLUSTER_SECRET_KEY: &str =
    "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a";

/// Path of the server binary, built once per test run with the same profile and engine
/// features as the tests, so `cargo test` alone never runs a stale binary.
pub fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build(
            &["-p", "deploystack-http", "--bin", "deploystack-server"],
            "deploystack-server",
        )
    })
}

/// Path of the worker binary, built like [`server_binary`].
pub fn worker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build(
            &["-p", "deploystack-worker", "--bin", "deploystack-worker"],
            "deploystack-worker",
        )
    })
}

/// Path of `examples/markdown_site.rs`: the server with a Markdown build strategy of its own.
pub fn markdown_site_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build(
            &["-p", "deploystack", "--example", "markdown_site"],
            "examples/markdown_site",
        )
    })
}

/// Path of `examples/slow_worker.rs`: the worker with a deliberately slow build strategy and
/// an optional pause before each ack, which the crash tests kill.
#[allow(dead_code)] // Only the cluster tests use it, and they need every engine feature.
pub fn slow_worker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build(
            &["-p", "deploystack", "--example", "slow_worker"],
            "examples/slow_worker",
        )
    })
}

/// Path of the `deploystack` command-line client (`deploystack-cli`), built like
/// [`server_binary`] but without engine features: the client has none.
pub fn cli_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build_with(
            &["-p", "deploystack-cli", "--bin", "deploystack"],
            "deploystack",
            &[],
        )
    })
}

/// The engine features this test run was compiled with, passed on to the binaries it builds.
fn engine_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    if cfg!(feature = "postgres") {
        features.push("postgres");
    }
    if cfg!(feature = "redis") {
        features.push("redis");
    }
    if cfg!(feature = "s3") {
        features.push("s3");
    }
    features
}

fn build(target: &[&str], output: &str) -> PathBuf {
    build_with(target, output, &engine_features())
}

/// Build `target` with `features` and return the path of `output` in the profile folder.
fn build_with(target: &[&str], output: &str, features: &[&str]) -> PathBuf {
    // Builds share target/ and its lock; one at a time keeps their output apart.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-… → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--quiet"]).args(target);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "building {output} failed");
    let binary = profile_dir.join(output);
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// A running server with its own data directory; killed when dropped.
pub struct Server {
    pub base: String,
    pub data_dir: tempfile::TempDir,
    child: Option<Child>,
    pub client: reqwest::Client,
}

impl Server {
    /// Start with the embedded defaults on port 0 and wait until it logs its address.
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    /// Start with extra `DEPLOYSTACK_*` variables.
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        Self::start_in(tempfile::tempdir().expect("temp data dir"), env, &[]).await
    }

    /// Start on an existing data directory (to test restarts), with extra variables and
    /// command-line arguments.
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        Self::start_program(server_binary(), data_dir, env, args).await
    }

    /// Start `binary` — the server or an example built on `deploystack_http::serve` — like
    /// [`Server::start_in`].
    pub async fn start_program(
        binary: &Path,
        data_dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let mut command = Command::new(binary);
        command.args(args);
        Self::spawn(command, data_dir, env).await
    }

    /// Start the server binary through `wrapper` (a command and its arguments, the binary's
    /// path appended), e.g. `ip netns exec <name>` to run it in a network namespace.
    pub async fn start_wrapped(wrapper: &[&str], env: &[(&str, &str)]) -> Server {
        let (program, arguments) = wrapper.split_first().expect("a wrapper command");
        let mut command = Command::new(program);
        command.args(arguments).arg(server_binary());
        Self::spawn(command, tempfile::tempdir().expect("temp data dir"), env).await
    }

    /// Run `command` (the server, with the test defaults and `env`) until it logs its address.
    async fn spawn(
        mut command: Command,
        data_dir: tempfile::TempDir,
        env: &[(&str, &str)],
    ) -> Server {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DEPLOYSTACK_LISTEN", "127.0.0.1:0")
            .env("DEPLOYSTACK_DATA_DIR", data_dir.path())
            .env("DEPLOYSTACK_BLOB_GRACE_SECS", "0")
            // Test machines may have less than the default 512 MiB free; the floor is still
            // checked on every upload (`faults.rs` tests it at work).
            .env("DEPLOYSTACK_MIN_FREE_DISK_BYTES", "1048576")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start deploystack-server");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read server log") {
                eprintln!("server: {line}");
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    return rest.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .expect("the server did not log its address within 30 s")
        .expect("the server exited before listening");
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("server: {line}");
            }
        });
        Server {
            base: format!("http://{address}"),
            data_dir,
            child: Some(child),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` (redirects are not followed).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server")
    }

    pub fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Upload `zip` as the multipart field `file` to `path`.
    pub async fn upload_to(&self, path: &str, zip: Vec<u8>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(zip).file_name("site.zip");
        let form = reqwest::multipart::Form::new().part("file", part);
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("upload request")
    }

    /// Upload to `/deploy` and expect 202; returns the JSON answer.
    pub async fn deploy(&self, zip: Vec<u8>) -> Value {
        let response = self.upload_to("/deploy", zip).await;
        assert_eq!(response.status(), 202, "upload was not accepted");
        response.json().await.expect("upload answer is JSON")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Upload `zip` to `POST /api/v1/deployments` with the form fields `fields` (repeat a
    /// name for a repeatable field such as `env`) and expect 202; returns the deployment id.
    pub async fn upload_with(&self, zip: Vec<u8>, fields: &[(&str, &str)]) -> String {
        let part = reqwest::multipart::Part::bytes(zip).file_name("site.zip");
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        let response = self
            .client
            .post(self.url("/api/v1/deployments"))
            .multipart(form.part("file", part))
            .send()
            .await
            .expect("upload request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 202, "upload was not accepted: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// The deployment's build log lines (`{attempt, at, stream, message}`).
    pub async fn log_lines(&self, id: &str) -> Vec<Value> {
        let (status, logs) = self
            .get_json(&format!("/api/v1/deployments/{id}/logs"))
            .await;
        assert_eq!(status, 200, "logs answered {status}: {logs}");
        logs["lines"].as_array().cloned().unwrap_or_default()
    }

    /// The build log as text, one `stream: message` per line, to search and to show.
    pub async fn log_text(&self, id: &str) -> String {
        self.log_lines(id)
            .await
            .iter()
            .map(|line| {
                format!(
                    "{}: {}\n",
                    line["stream"].as_str().unwrap_or_default(),
                    line["message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Poll the deployment until its status is final; returns the last answer.
    pub async fn wait_final(&self, id: &str) -> Value {
        self.wait_final_within(id, Duration::from_secs(30)).await
    }

    /// [`Server::wait_final`] for builds that take longer (installs from the npm registry).
    pub async fn wait_final_within(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get_json(&format!("/api/v1/deployments/{id}")).await;
            assert_eq!(status, 200, "status resource answered {status}: {body}");
            let state = body["status"].as_str().unwrap_or_default().to_owned();
            if ["READY", "ERROR", "CANCELED"].contains(&state.as_str()) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} still {state} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Poll the deployment until `done` says so about its JSON, for at most `within`.
    pub async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get_json(&format!("/api/v1/deployments/{id}")).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} was not {what} within {within:?}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deploy and wait for READY; returns the deployment id.
    pub async fn deploy_ready(&self, zip: Vec<u8>) -> String {
        let answer = self.deploy(zip).await;
        let id = answer["deployment_id"]
            .as_str()
            .expect("deployment_id")
            .to_owned();
        let final_state = self.wait_final(&id).await;
        assert_eq!(
            final_state["status"], "READY",
            "deployment failed: {final_state}"
        );
        id
    }

    /// Send SIGTERM and wait for the exit status; hands back the data directory.
    /// SIGKILL, as a crash or the out-of-memory killer would; returns the data directory.
    pub async fn kill(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().expect("child");
        child.kill().await.expect("kill the server");
        self.data_dir
    }

    pub async fn terminate(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        let mut child = self.child.take().expect("child");
        signal(child.id().expect("pid"), "TERM");
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("server did not exit within 60 s of SIGTERM")
            .expect("wait");
        (status, self.data_dir)
    }
}

/// A raw HTTP/1.1 GET with the path sent byte for byte (clients normalise `..`); returns the
/// status code and the body.
pub async fn raw_get(address: &str, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| answer[i + 4..].to_vec())
        .unwrap_or_default();
    (status, body)
}

/// A zip of `files` (path, bytes); paths ending in `/` are folders.
pub use deploystack_core::testing::fixtures::zip_bytes as zip_of;

/// A running worker process (the real `deploystack-worker` or the slow example), in a process
/// group of its own so a test can check nothing of it outlives a kill; killed when dropped.
#[allow(dead_code)] // Only the cluster tests start workers.
pub struct Worker {
    pub label: String,
    child: Option<Child>,
    pid: u32,
    /// Its data directory (build folders and caches), removed with it.
    _data_dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl Worker {
    /// Start `binary` with exactly `env` (plus PATH) and wait until its build loops run.
    pub async fn start(binary: &Path, label: &str, env: &[(String, String)]) -> Worker {
        let data_dir = tempfile::tempdir().expect("a worker's data directory");
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DEPLOYSTACK_DATA_DIR", data_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start a worker");
        let pid = child.id().expect("worker pid");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let label = label.to_owned();
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read worker log") {
                eprintln!("{label}: {line}");
                if line.contains("build workers started") {
                    return true;
                }
            }
            false
        })
        .await
        .expect("the worker did not start within 30 s");
        assert!(started, "{label} exited before starting its build loops");
        let prefix = label.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{prefix}: {line}");
            }
        });
        Worker {
            label,
            child: Some(child),
            pid,
            _data_dir: data_dir,
        }
    }

    /// SIGKILL: no chance to clean up. Returns once the process is gone.
    pub async fn kill(mut self) {
        let mut child = self.child.take().expect("child");
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }

    /// SIGTERM and the exit status, which must come within `within`.
    pub async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("child");
        signal(self.pid, "TERM");
        tokio::time::timeout(within, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {within:?} of SIGTERM", self.label))
            .expect("wait")
    }

    /// Whether any process of this worker's process group is still alive.
    pub fn group_alive(&self) -> bool {
        group_alive(self.pid)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// Whether any process is left in the process group `pgid`.
#[allow(dead_code)]
pub fn group_alive(pgid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Send `SIG<name>` to `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Where the command-line tool `name` is, or `None` after printing why the caller skips.
/// Panics under `CI=true`, where nothing may skip (`scripts/with-services` installs the tools).
pub fn required_tool(name: &str, what: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if deploystack_core::testing::env::is_ci() => {
            panic!("`{name}` is not installed: CI=true requires {what} (run ./scripts/test)")
        }
        None => {
            deploystack_core::testing::env::skip(&format!(
                "`{name}` is not installed, so {what} is not available (./scripts/test installs it)"
            ));
            None
        }
    }
}

/// Every file under `dir` as (relative path, bytes), for [`zip_of`]; folders named in `skip`
/// (`node_modules`, `dist`) are left out wherever they are.
pub fn files_of(dir: &Path, skip: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(dir.join(&folder)).unwrap() {
            let entry = entry.unwrap();
            let relative = folder.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                if !skip.iter().any(|s| entry.file_name() == *s) {
                    folders.push(relative);
                }
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                files.push((relative.to_string_lossy().into_owned(), bytes));
            }
        }
    }
    files.sort();
    files
}

/// `len` bytes no compressor shrinks (xorshift64), standing in for a real PNG, WOFF2 or zip
/// of the same size; the same every time.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A zip of owned `(path, bytes)` pairs, as [`files_of`] returns them.
pub fn zip_of_owned(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    zip_of(&borrowed)
}

/// The processes whose command line contains `token`, as (pid, command line).
pub fn processes_with(token: &str) -> Vec<(u32, String)> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            // A process may end between the listing and the read; it is then no longer there.
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            (pid != own && cmdline.contains(token)).then_some((pid, cmdline))
        })
        .collect()
}

/// One HTTP/1.1 response read off a connection.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header lines as sent, lowercase names, without `date` (it changes every second).
    pub fields: Vec<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (lowercase).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }
}

/// A raw HTTP/1.1 connection that remembers what it read beyond the last answer: requests
/// are sent byte for byte (clients normalise paths), answers read one at a time.
pub struct RawConnection {
    tcp: TcpStream,
    pending: Vec<u8>,
}

impl RawConnection {
    pub async fn open(address: &str) -> RawConnection {
        RawConnection {
            tcp: TcpStream::connect(address).await.unwrap(),
            pending: Vec::new(),
        }
    }

    pub async fn send(&mut self, raw: &str) {
        self.tcp.write_all(raw.as_bytes()).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), self.tcp.read(&mut chunk))
            .await
            .expect("no answer within 10 s")
            .unwrap();
        self.pending.extend_from_slice(&chunk[..read]);
        read > 0
    }

    /// The next answer; `head_only` for the answer to a `HEAD`, which has no body.
    pub async fn answer(&mut self, head_only: bool) -> Answer {
        let end = loop {
            if let Some(at) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(self.fill().await, "closed before a whole head");
        };
        let head = String::from_utf8(self.pending[..end].to_vec()).unwrap();
        self.pending.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let fields: Vec<String> = lines
            .filter(|line| !line.starts_with("date: "))
            .map(str::to_owned)
            .collect();
        let mut answer = Answer {
            status,
            fields,
            body: Vec::new(),
        };
        let length: usize = match answer.field("content-length") {
            Some(length) if !head_only => length.parse().unwrap(),
            _ => 0,
        };
        while self.pending.len() < length {
            assert!(self.fill().await, "closed before the whole body");
        }
        answer.body = self.pending.drain(..length).collect();
        answer
    }

    /// Whether the server closes the connection (with nothing more to read) within 10 s.
    pub async fn closed(&mut self) -> bool {
        self.pending.is_empty() && !self.fill().await
    }
}

/// `method path` with a JSON body (or none); returns the status and the JSON answer.
pub async fn call(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client.request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A raw GET with exactly this `Host` line; returns the status and the body.
pub async fn get_on(address: &str, host: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The page at `url` as headless Chromium renders it, scripts run (`--dump-dom`), with
/// `extra` flags. Chromium resolves `*.localhost` to loopback itself, so deployment hosts
/// need no resolver rules. The flags keep Chromium off the network (this machine's is
/// closed) and give the page's scripts ten seconds of virtual time.
pub async fn chromium_dom(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let run = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("chromium did not finish within 120 s")
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
