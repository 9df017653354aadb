//! The end-to-end harness: builds the artifacts once per test process,
//! starts `portico serve` on an ephemeral 127.0.0.1 port, and speaks HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use portico::build;
use portico::serve::Target;

/// A secret long enough for anything that checks length.
pub const JWT_SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789";
pub const API_TOKEN: &str = "probe-token-4f1c9a";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate sits in the workspace")
        .to_path_buf()
}

fn e2e_dir() -> PathBuf {
    workspace().join("target").join("e2e")
}

/// The files the tests serve, built once per test process.
pub struct Artifacts {
    pub app_spin: PathBuf,
    pub app_wasi: PathBuf,
    pub probe_spin: PathBuf,
    pub probe_wasi: PathBuf,
    pub standalone: Vec<PathBuf>,
    /// `tests/fixtures/misbehaving`: loops, allocates or sleeps on request.
    pub misbehaving: PathBuf,
    /// `tests/fixtures/hello`: a fixed 200.
    pub hello: PathBuf,
    /// `examples/reuse-rate-limiter` with the rate limiter plugged into its
    /// import, per target (spin, wasi): on spin exactly as Spin composes a
    /// `dependencies` entry (the standalone `dist/components/rate-limiter.wasm`),
    /// on wasi with the limiter over `platform-wasi`.
    pub reuse_rate_limiter: [PathBuf; 2],
    /// `examples/reuse-flags` likewise, with `flags`.
    pub reuse_flags: [PathBuf; 2],
}

impl Artifacts {
    pub fn app(&self, target: Target) -> &Path {
        match target {
            Target::Spin => &self.app_spin,
            Target::Wasi => &self.app_wasi,
        }
    }

    pub fn probe(&self, target: Target) -> &Path {
        match target {
            Target::Spin => &self.probe_spin,
            Target::Wasi => &self.probe_wasi,
        }
    }
}

pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let ws = workspace();
        let built = build::build(&ws).expect("portico build");
        build::compile(
            &ws,
            &[
                "platform-probe",
                "misbehaving",
                "hello",
                "reuse-rate-limiter",
                "reuse-flags",
            ],
        )
        .expect("compile the fixtures");
        let dir = e2e_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mut probes = Vec::new();
        for (target, platform) in [("spin", "platform-spin"), ("wasi", "platform-wasi")] {
            let bytes =
                build::compose_crates(&ws, &[platform], "platform-probe").expect("compose probe");
            let path = dir.join(format!("probe-{target}.wasm"));
            std::fs::write(&path, bytes).unwrap();
            probes.push(path);
        }
        // Users' own components reusing a standalone business component.
        let reuse = |dependency: &str, example: &str| -> [PathBuf; 2] {
            let standalone = ws.join(format!("dist/components/{dependency}.wasm"));
            let spin = portico::compose::compose(vec![
                portico::compose::Part {
                    name: dependency,
                    bytes: std::fs::read(&standalone).expect("the standalone component"),
                },
                portico::compose::Part {
                    name: example,
                    bytes: std::fs::read(build::compiled(&ws, example)).expect("the example"),
                },
            ])
            .expect("compose as Spin composes dependencies");
            let wasi = build::compose_crates(&ws, &["platform-wasi", dependency], example)
                .expect("compose over platform-wasi");
            [("spin", spin), ("wasi", wasi)].map(|(target, bytes)| {
                let path = dir.join(format!("{example}-{target}.wasm"));
                std::fs::write(&path, bytes).unwrap();
                path
            })
        };
        let reuse_rate_limiter = reuse("rate-limiter", "reuse-rate-limiter");
        let reuse_flags = reuse("flags", "reuse-flags");
        let standalone = built
            .iter()
            .map(|a| a.path.clone())
            .filter(|p| p.parent().is_some_and(|d| d.ends_with("components")))
            .collect();
        Artifacts {
            app_spin: ws.join("dist/portico-spin.wasm"),
            app_wasi: ws.join("dist/portico-wasi.wasm"),
            probe_spin: probes[0].clone(),
            probe_wasi: probes[1].clone(),
            standalone,
            misbehaving: build::compiled(&ws, "misbehaving"),
            hello: build::compiled(&ws, "hello"),
            reuse_rate_limiter,
            reuse_flags,
        }
    })
}

pub fn target_name(target: Target) -> &'static str {
    match target {
        Target::Spin => "spin",
        Target::Wasi => "wasi",
    }
}

/// What to serve and how.
pub struct HostConfig {
    pub target: Target,
    pub component: PathBuf,
    pub manifest: PathBuf,
    pub vars: Vec<(String, String)>,
    pub data: PathBuf,
    /// Further `portico serve` arguments (e.g. `--schedule`).
    pub args: Vec<String>,
    /// `serve`, or `up` (which also builds, publishes the pages and seeds a
    /// fresh data folder).
    pub subcommand: &'static str,
}

impl HostConfig {
    /// The whole app, with a fresh data folder.
    pub fn app(target: Target, data: &Path) -> HostConfig {
        HostConfig {
            target,
            component: artifacts().app(target).to_path_buf(),
            manifest: workspace().join("spin.toml"),
            vars: vec![("jwt_secret".into(), JWT_SECRET.into())],
            data: data.to_path_buf(),
            args: kv_on_redis_args(target),
            subcommand: "serve",
        }
    }

    /// The platform probe over the adapter of `target`.
    pub fn probe(target: Target, data: &Path) -> HostConfig {
        HostConfig {
            target,
            component: artifacts().probe(target).to_path_buf(),
            manifest: workspace().join("tests/fixtures/platform-probe/spin.toml"),
            vars: vec![("api_token".into(), API_TOKEN.into())],
            data: data.to_path_buf(),
            args: kv_on_redis_args(target),
            subcommand: "serve",
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_portico"));
        command
            .arg("--workspace")
            .arg(workspace())
            .arg(self.subcommand)
            .args([
                "--target",
                target_name(self.target),
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--data")
            .arg(&self.data)
            .arg("--component")
            .arg(&self.component)
            .arg("--manifest")
            .arg(&self.manifest)
            .arg("--cache-dir")
            .arg(e2e_dir().join("cache"));
        for (name, value) in &self.vars {
            command.arg("--var").arg(format!("{name}={value}"));
        }
        command.args(&self.args);
        command
    }
}

/// The runtime that serves `--target wasi` apps: the embedded host, stock
/// `wasmtime serve` when `PORTICO_E2E_RUNTIME=wasmtime` (the second run of
/// the suite in CI), or Node.js with `jco serve` when
/// `PORTICO_E2E_RUNTIME=jco`. The same test bodies run on each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Runtime {
    Embedded,
    WasmtimeServe,
    JcoServe,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Embedded => "portico",
            Runtime::WasmtimeServe => "wasmtime",
            Runtime::JcoServe => "jco",
        }
    }
}

pub fn runtime() -> Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    *RUNTIME.get_or_init(|| match std::env::var("PORTICO_E2E_RUNTIME").as_deref() {
        Err(_) | Ok("" | "portico") => Runtime::Embedded,
        Ok("wasmtime") => Runtime::WasmtimeServe,
        Ok("jco") => Runtime::JcoServe,
        Ok(other) => {
            panic!("PORTICO_E2E_RUNTIME={other}: expected `portico`, `wasmtime` or `jco`")
        }
    })
}

/// Skips the calling test on a stock runtime when it checks something only
/// the embedded host provides; `why` is printed and appended to
/// `target/e2e/skipped-on-<runtime>.txt`, which CI prints after the run.
/// Returns true when the test should return at once.
pub fn embedded_host_only(why: &str) -> bool {
    let runtime = runtime();
    if runtime == Runtime::Embedded {
        return false;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    eprintln!("skipped on {}: {test}: {why}", runtime.name());
    std::fs::create_dir_all(e2e_dir()).unwrap();
    use std::io::Write;
    let mut list = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(e2e_dir().join(format!("skipped-on-{}.txt", runtime.name())))
        .unwrap();
    writeln!(list, "{test}: {why}").unwrap();
    true
}

/// The targets a test that loops over both checks: on a stock runtime only
/// `wasi` (it cannot run the spin artifact).
pub fn targets() -> &'static [Target] {
    match runtime() {
        Runtime::Embedded => &[Target::Spin, Target::Wasi],
        Runtime::WasmtimeServe | Runtime::JcoServe => &[Target::Wasi],
    }
}

/// The target of a test that checks app behaviour once rather than per
/// target: `spin` on the embedded host, `wasi` on a stock runtime.
pub fn one_target() -> Target {
    match runtime() {
        Runtime::Embedded => Target::Spin,
        Runtime::WasmtimeServe | Runtime::JcoServe => Target::Wasi,
    }
}

/// What a stock runtime can serve: the wasi artifact, with variables and a
/// data folder, nothing `portico serve` adds.
fn assert_stock_servable(config: &HostConfig) {
    assert_eq!(
        config.target,
        Target::Wasi,
        "a stock runtime runs the wasi target only"
    );
    assert!(
        config.args.is_empty() && config.subcommand == "serve",
        "`portico {} {:?}` has no stock runtime equivalent: \
         mark the test with harness::embedded_host_only",
        config.subcommand,
        config.args
    );
}

/// `jco serve` as the README documents it, with `examples/jco/setup.mjs`
/// preopening `<data>/wasi` and passing the variables (those `config`'s
/// manifest declares, in upper case). jco takes no port 0, so a free port
/// is picked first. `PORTICO_E2E_JCO` names the jco binary (default: `npx
/// --yes @bytecodealliance/jco@1.35.0`).
fn jco_command(config: &HostConfig) -> (Command, String) {
    assert_stock_servable(config);
    let data = config.data.join("wasi");
    std::fs::create_dir_all(&data).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut command = match std::env::var("PORTICO_E2E_JCO") {
        Ok(binary) => Command::new(binary),
        Err(_) => {
            let mut npx = Command::new("npx");
            npx.args(["--yes", "@bytecodealliance/jco@1.35.0"]);
            npx
        }
    };
    command
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--jco-import")
        .arg(workspace().join("examples/jco/setup.mjs"))
        .arg(&config.component)
        .env("PORTICO_DATA", &data)
        .env("PORTICO_MANIFEST", &config.manifest);
    for (name, value) in &config.vars {
        command.env(name.to_ascii_uppercase(), value);
    }
    (command, format!("http://127.0.0.1:{port}"))
}

/// The stock runtime's command for `config`, exactly as the README documents
/// it: `wasmtime serve -S cli --dir <data>/wasi::/data --env NAME=VALUE`,
/// each variable in upper case (`--data`'s `wasi/` folder is what the
/// embedded host preopens too, so `portico kv` and the tests' file checks
/// read the same files).
fn wasmtime_command(config: &HostConfig) -> Command {
    assert_stock_servable(config);
    let data = config.data.join("wasi");
    std::fs::create_dir_all(&data).unwrap();
    let binary = std::env::var("PORTICO_E2E_WASMTIME").unwrap_or_else(|_| "wasmtime".into());
    let mut command = Command::new(binary);
    command
        .args(["serve", "-S", "cli", "--addr", "127.0.0.1:0", "--dir"])
        .arg(format!("{}::/data", data.display()));
    for (name, value) in &config.vars {
        command
            .arg("--env")
            .arg(format!("{}={value}", name.to_ascii_uppercase()));
    }
    command.arg(&config.component);
    command
}

/// `wasmtime serve` prefixes each line a guest writes with its instance
/// (`stderr [3] :: `); the tests read the component's own lines.
fn without_instance_prefix(line: &str) -> &str {
    for stream in ["stderr [", "stdout ["] {
        if let Some(rest) = line.strip_prefix(stream)
            && let Some((number, text)) = rest.split_once("] :: ")
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            return text;
        }
    }
    line
}

/// A running `portico serve` (or `wasmtime serve`); killed when dropped.
pub struct Host {
    child: Child,
    pub url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Host {
    pub fn start(config: &HostConfig) -> Host {
        let runtime = runtime();
        let stock = runtime == Runtime::WasmtimeServe;
        let (mut command, jco_url) = match runtime {
            Runtime::Embedded => (config.command(), None),
            Runtime::WasmtimeServe => (wasmtime_command(config), None),
            Runtime::JcoServe => {
                let (command, url) = jco_command(config);
                (command, Some(url))
            }
        };
        // A group of its own, so that dropping the host also ends what a
        // launcher (npx) started.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {command:?}: {err}"));
        // `portico` prints its address on stdout; `wasmtime serve` prints
        // `Serving HTTP on http://127.0.0.1:<port>/` on stderr, and `jco
        // serve` `Server listening @ 127.0.0.1:<port>...` there too.
        let url_of = |line: &str| {
            line.find("http://")
                .map(|at| line[at..].trim().trim_end_matches('/').to_string())
        };
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = url_of(&line).filter(|_| runtime == Runtime::Embedded) {
                    let _ = stdout_tx.send(url);
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if stock && line.starts_with("Serving HTTP on ") {
                    let _ = tx.send(url_of(&line).expect("wasmtime's address"));
                }
                if let Some(url) = jco_url
                    .as_ref()
                    .filter(|_| line.starts_with("Server listening @ "))
                {
                    let _ = tx.send(url.clone());
                }
                let line = if stock {
                    without_instance_prefix(&line)
                } else {
                    &line
                };
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(url) => Host { child, url, stderr },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{command:?} did not start; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until the host's stderr satisfies `ready`, for log
    /// lines that travel through a pipe after the response; returns it.
    pub fn stderr_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr();
            if ready(&text) || std::time::Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // The whole group (see `start`), then the child itself.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data folder under `target/e2e`.
pub fn data_dir(name: &str) -> tempfile::TempDir {
    let dir = e2e_dir().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(dir)
        .unwrap()
}

/// A client that reports every status instead of failing on 4xx/5xx.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The path the request went to, when the client knows it.
    pub path: Option<String>,
}

impl Reply {
    pub fn from(response: ureq::http::Response<ureq::Body>) -> Reply {
        use ureq::ResponseExt;
        let path = Some(response.get_uri().path().to_string());
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("read body");
        Reply {
            status,
            headers,
            body,
            path,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.text()))
    }

    /// Asserts an RFC 9457 problem with `status` and type fragment `kind`.
    pub fn assert_problem(&self, status: u16, kind: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content-type; body: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(
            body["type"],
            format!("https://portico.dev/problems#{kind}"),
            "{body}"
        );
        assert_eq!(body["status"], status, "{body}");
        assert!(
            body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(body["detail"].is_string(), "{body}");
        // Every problem names the request path it answers (RFC 9457
        // `instance`); the gateway reports the path it routed on, which for
        // a percent-encoded request is the decoded form.
        let instance = body["instance"].as_str().unwrap_or_else(|| {
            panic!("problem without an instance: {body}");
        });
        assert!(instance.starts_with('/'), "{body}");
        if let Some(path) = self.path.as_deref().filter(|p| !p.contains('%')) {
            assert_eq!(instance, path, "{body}");
        }
        body
    }
}

pub fn get(url: &str) -> Reply {
    Reply::from(client().get(url).call().expect("GET"))
}

/// Runs `portico kv ...` against a data folder.
pub fn portico_kv(target: Target, data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--workspace")
        .arg(workspace())
        .arg("kv")
        .args(args)
        .args(["--target", target_name(target)])
        .arg("--data")
        .arg(data)
        .output()
        .expect("run portico kv")
}

/// Logs `username` in with the JSON login and returns the session token
/// (the `session` cookie's value).
pub fn login_token(host: &Host, username: &str, password: &str) -> String {
    let login = Reply::from(
        client()
            .post(&format!("{}/api/login", host.url))
            .header("content-type", "application/json")
            .send(serde_json::json!({"username": username, "password": password}).to_string())
            .unwrap(),
    );
    assert_eq!(login.status, 200, "login {username}: {}", login.text());
    let cookie = login.header("set-cookie").expect("login sets a cookie");
    cookie
        .split(';')
        .next()
        .unwrap()
        .trim()
        .strip_prefix("session=")
        .expect("session cookie")
        .to_string()
}

/// The app with an admin created at first login, cheap password hashing
/// and a rate limit no test reaches.
pub fn app_with_admin(target: Target, data: &Path, admin: &str, password: &str) -> HostConfig {
    let mut config = HostConfig::app(target, data);
    for (name, value) in [
        ("bootstrap_admin", format!("{admin}:{password}")),
        ("password_iterations", "1000".to_string()),
        ("rate_limit_policies", "default=1000000/1s".to_string()),
    ] {
        config.vars.push((name.into(), value));
    }
    config
}

/// A flag set of one flag, `generation`, whose value is `generation`: what
/// the crash and storage-fault tests write to see which set survived.
pub fn generation_flag_set(generation: u64) -> String {
    serde_json::json!({"flags": {"generation": {
        "state": "ENABLED",
        "variants": {"current": generation},
        "defaultVariant": "current"
    }}})
    .to_string()
}

/// SQLite's own `PRAGMA integrity_check` is `ok` for every `*.db` in `data`
/// (the host's databases on `--target spin`); run while the host is down.
pub fn assert_sqlite_intact(data: &Path) {
    let mut checked = 0;
    for entry in std::fs::read_dir(data).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "db") {
            let db = rusqlite::Connection::open(&path).unwrap();
            let result: String = db
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .unwrap();
            assert_eq!(result, "ok", "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 0, "no SQLite database in {}", data.display());
}

/// Keys physically present in the store (expired or not).
pub fn raw_keys(target: Target, data: &Path, prefix: &str) -> usize {
    if let (Some(redis), Target::Spin) = (kv_redis(), target) {
        return redis
            .keys()
            .iter()
            .filter(|key| key.starts_with(prefix))
            .count();
    }
    match target {
        Target::Spin => {
            let db = rusqlite::Connection::open(data.join("sqlite_key_value.db")).unwrap();
            db.query_row(
                "SELECT COUNT(*) FROM spin_key_value WHERE key LIKE ?1",
                [format!("{prefix}%")],
                |row| row.get::<_, i64>(0),
            )
            .unwrap() as usize
        }
        Target::Wasi => {
            let encoded: String = prefix.replace('/', "%2F");
            std::fs::read_dir(data.join("wasi/kv"))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&encoded))
                .count()
        }
    }
}

/// A `redis-server` of the test's own on a free 127.0.0.1 port, keeping an
/// append-only file (fsync'd at every write) in its folder so that a
/// restart keeps what was written; stopped when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

/// Debian's `redis-server`, installed with `apt-get` when missing (as the
/// browser test installs Chromium); `.ci/run` installs it up front.
fn ensure_redis_server() {
    let present = || {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if present() {
        return;
    }
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "redis-server"][..],
    ] {
        let _ = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
    }
    assert!(
        present(),
        "the Redis tests need `redis-server` (Debian package redis-server), and \
         `apt-get install -y redis-server` did not provide it (it needs root)"
    );
}

impl RedisServer {
    pub fn start(dir: &Path) -> RedisServer {
        ensure_redis_server();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer {
            child: None,
            port,
            dir: dir.to_path_buf(),
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let pong = redis::Client::open(self.url())
                .and_then(|client| client.get_connection())
                .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
            if pong.is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (its data stays in the append-only file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the data it had.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// `INFO commandstats`: which commands the server has run.
    pub fn command_stats(&self) -> String {
        let mut connection = redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("connect to redis");
        redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection)
            .unwrap()
    }

    /// Every key stored, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut connection = redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("connect to redis");
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
        keys.sort();
        keys
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A runtime configuration file in `dir` with the key-value store on
/// `redis_url`, and the `default` database at `sqlite` when given.
pub fn runtime_config(dir: &Path, redis_url: Option<&str>, sqlite: Option<&Path>) -> PathBuf {
    let mut text = String::new();
    if let Some(url) = redis_url {
        text.push_str(&format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n\n"
        ));
    }
    if let Some(path) = sqlite {
        text.push_str(&format!(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
            path.display()
        ));
    }
    let file = dir.join("runtime-config.toml");
    std::fs::write(&file, text).unwrap();
    file
}

thread_local! {
    /// Set by [`with_kv_on_redis`] for the test running on this thread.
    static KV_ON_REDIS: std::cell::RefCell<Option<(PathBuf, std::rc::Rc<RedisServer>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `test` with every spin-target host it starts keeping its key-value
/// store on a Redis of its own (`--runtime-config-file`): the same test
/// bodies check that every KV semantic the app relies on holds on Redis.
pub fn with_kv_on_redis(test: impl FnOnce()) {
    if embedded_host_only("the key-value store on Redis (--runtime-config-file)") {
        return;
    }
    let dir = data_dir("redis");
    let server = RedisServer::start(dir.path());
    let file = runtime_config(dir.path(), Some(&server.url()), None);
    KV_ON_REDIS.with(|cell| *cell.borrow_mut() = Some((file, std::rc::Rc::new(server))));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            KV_ON_REDIS.with(|cell| cell.borrow_mut().take());
        }
    }
    let _reset = Reset;
    test();
    // The store really was on Redis: the host read and wrote there.
    let server = kv_redis().expect("set above");
    let stats = server.command_stats();
    assert!(
        stats.contains("cmdstat_get:") && stats.contains("cmdstat_set:"),
        "no GET or SET reached Redis:\n{stats}"
    );
}

/// The Redis this test's key-value store lives on, if any.
pub fn kv_redis() -> Option<std::rc::Rc<RedisServer>> {
    KV_ON_REDIS.with(|cell| cell.borrow().as_ref().map(|(_, server)| server.clone()))
}

fn kv_on_redis_args(target: Target) -> Vec<String> {
    KV_ON_REDIS.with(|cell| match (&*cell.borrow(), target) {
        (Some((file, _)), Target::Spin) => vec![
            "--runtime-config-file".to_string(),
            file.display().to_string(),
        ],
        _ => Vec::new(),
    })
}
