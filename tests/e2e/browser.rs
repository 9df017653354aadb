//! The pages in `pages/` and CORS as a real browser sees them: the app is
//! started with a `cors` rule for a second origin (served here by a tiny HTTP
//! server), the pages are published with `portico assets sync`, and
//! `tests/browser/run.mjs` drives Debian's Chromium through Playwright:
//! cross-origin `fetch()` from the allowed and from a disallowed origin, then
//! uploaded SVG and XHTML objects whose script must not run in the site's
//! origin, then sign-in, the app page, the admin page (flag toggle, invalid
//! save, upload) and log-out, saving screenshots under
//! `target/e2e/screenshots/`.
//!
//! What is missing (Chromium, the Node modules) is installed; when that is
//! impossible the test fails saying so, it never skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Host, HostConfig, Reply, client, data_dir, workspace};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "root-password-1";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The boolean flag the browser toggles (ENABLED, value `true`).
const BOOLEAN_FLAG: &str = "beta";
/// The request header the `cors` rule allows besides `content-type`; the
/// gateway echoes a client's `x-request-id`, so the browser can see that the
/// header reached the server.
const CUSTOM_HEADER: &str = "x-request-id";
/// The longest the browser run may take.
const NODE_LIMIT: Duration = Duration::from_secs(300);

/// Runs `command` in a process group of its own with a time limit; `None`
/// when it could not start or had to be killed (with its whole group, so a
/// browser it started cannot keep the output pipes open).
fn run_bounded(command: &mut Command, limit: Duration) -> Option<std::process::Output> {
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout.read_to_end(&mut buffer);
        buffer
    });
    let err = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer);
        buffer
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    })
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Debian's Chromium, installed with apt when missing; fails when it cannot be.
fn ensure_chromium() {
    if Path::new(CHROMIUM).exists() {
        return;
    }
    let install = |what: &[&str]| {
        run_bounded(
            Command::new("apt-get")
                .args(what)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            Duration::from_secs(900),
        )
    };
    let mut log = String::new();
    for attempt in [
        &["install", "-y", "--no-install-recommends", "chromium"][..],
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "chromium"][..],
    ] {
        match install(attempt) {
            Some(output) => log.push_str(&format!(
                "apt-get {}: {}\n",
                attempt.join(" "),
                describe(&output)
            )),
            None => log.push_str(&format!(
                "apt-get {}: could not run or timed out\n",
                attempt.join(" ")
            )),
        }
        if Path::new(CHROMIUM).exists() {
            return;
        }
    }
    panic!(
        "the browser test needs Chromium at {CHROMIUM}, and `apt-get install -y chromium` \
         did not provide it (it needs root and Debian's package archive):\n{log}"
    );
}

/// Node (>= 20, for playwright-core) and `tests/browser/node_modules`,
/// installed from the committed lock file with `npm ci` when missing.
fn ensure_node_modules(project: &Path) {
    let version = run_bounded(
        Command::new("node").arg("--version"),
        Duration::from_secs(30),
    )
    .filter(|output| output.status.success())
    .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    .unwrap_or_else(|| panic!("the browser test needs Node.js (>= 20) as `node` on PATH"));
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "the browser test needs Node.js >= 20 for playwright-core; `node --version` is {version}"
    );
    if project
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let output = run_bounded(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(project),
        Duration::from_secs(600),
    )
    .unwrap_or_else(|| {
        panic!(
            "`npm ci` in {} could not run or timed out",
            project.display()
        )
    });
    assert!(
        output.status.success(),
        "`npm ci` in {} failed: {}",
        project.display(),
        describe(&output)
    );
}

/// A page origin other than the gateway: `GET /` answers a small HTML page,
/// anything else `404`. Serves until dropped (at most `LIFETIME`).
struct OriginServer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OriginServer {
    const LIFETIME: Duration = Duration::from_secs(900);

    fn start(name: &'static str) -> OriginServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an origin server");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Self::LIFETIME;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, name),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        OriginServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OriginServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 exchange, then the connection is closed.
fn answer(mut stream: TcpStream, name: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while head.len() < 16 * 1024 && !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("");
    // `/cached`: what the console's purge check stores at the edge.
    if target == "/cached" {
        let body = format!("{name} cached\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             cache-control: public, max-age=600\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
        return;
    }
    let (status, body) = if target == "/" {
        (
            "200 OK",
            format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>{name} origin</title></head>\
                 <body><h1>{name} origin</h1><p>This page calls the gateway with fetch().</p>\
                 </body></html>\n"
            ),
        )
    } else {
        ("404 Not Found", "not found\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// The flag set: a boolean flag and the `new-checkout` experiment.
fn flag_definitions() -> serde_json::Value {
    json!({"flags": {
        BOOLEAN_FLAG: {
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "on"
        },
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"control": "classic", "treatment": "one-page"},
            "defaultVariant": "control",
            "targeting": {"fractional": [["control", 50], ["treatment", 50]]}
        },
        "greeting": {
            "state": "ENABLED",
            "variants": {"formal": "Good day", "casual": "Hi"},
            "defaultVariant": "casual"
        }
    }})
}

/// Logs in with JSON and returns the session token.
fn session(host: &Host) -> String {
    crate::harness::login_token(host, ADMIN, ADMIN_PASSWORD)
}

fn screenshot_dir() -> PathBuf {
    workspace().join("target").join("e2e").join("screenshots")
}

/// What `run.mjs` saves under `target/`: every page, the console's sections
/// and the console on a 360 px wide screen.
const SCREENSHOTS: [&str; 8] = [
    "login.png",
    "app.png",
    "admin.png",
    "home.png",
    "console-overview.png",
    "console-users.png",
    "console-upstreams.png",
    "console-narrow.png",
];

#[test]
fn browser_pages_and_cors() {
    ensure_chromium();
    let project = workspace().join("tests").join("browser");
    ensure_node_modules(&project);

    // The console's metrics arithmetic, on its own first.
    let unit = run_bounded(
        Command::new("node")
            .args(["--test", "metrics.test.mjs"])
            .current_dir(&project),
        Duration::from_secs(60),
    )
    .expect("node --test metrics.test.mjs ran within 60 s");
    assert!(
        unit.status.success(),
        "node --test metrics.test.mjs: {}",
        describe(&unit)
    );

    let second = OriginServer::start("Second");
    let third = OriginServer::start("Third");
    let cors = json!({"rules": [{
        "prefix": "/api/",
        "origins": [second.url],
        "methods": ["GET", "POST", "PUT"],
        "headers": ["content-type", CUSTOM_HEADER],
        "expose": ["x-request-id"],
        "credentials": true,
        "max_age": 600,
        "private_network": false
    }]});

    let data = data_dir("browser");
    let mut config = HostConfig::app(crate::harness::one_target(), data.path());
    for (name, value) in [
        ("bootstrap_admin", format!("{ADMIN}:{ADMIN_PASSWORD}")),
        ("password_iterations", "1000".to_string()),
        // `strict` gives the console's rejections chart some 429s.
        (
            "rate_limit_policies",
            "default=1000000/1s, strict=2/60s".to_string(),
        ),
        ("rate_limit_routes", "/api/ab/rl-=strict".to_string()),
        ("cors", cors.to_string()),
        (
            "upstreams",
            json!({"routes": [{"name": "edge", "prefix": "/edge/", "origin": second.url,
                "strip_prefix": true, "cache": true}]})
            .to_string(),
        ),
    ] {
        config.vars.push((name.into(), value));
    }
    let host = Host::start(&config);
    let admin = session(&host);

    let seeded = Reply::from(
        client()
            .put(&format!("{}/admin/flags", host.url))
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .send(flag_definitions().to_string())
            .unwrap(),
    );
    assert!(
        (200..300).contains(&seeded.status),
        "seeding the flags: {} {}",
        seeded.status,
        seeded.text()
    );

    // Objects a less careful admin might upload: script inside SVG and
    // XHTML, run by the browser when opened (the run checks it is not).
    let mut stored_scripts = Vec::new();
    for (name, content_type, body) in [
        (
            "stored/x.svg",
            "image/svg+xml",
            r#"<svg xmlns="http://www.w3.org/2000/svg"><script>document.documentElement.setAttribute("data-ran","yes")</script></svg>"#,
        ),
        (
            "stored/x.xhtml",
            "application/xhtml+xml",
            r#"<html xmlns="http://www.w3.org/1999/xhtml"><body><script>document.documentElement.setAttribute("data-ran","yes")</script></body></html>"#,
        ),
    ] {
        let put = Reply::from(
            client()
                .put(&format!("{}/admin/assets/{name}", host.url))
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", content_type)
                .send(body)
                .unwrap(),
        );
        assert!(
            (200..300).contains(&put.status),
            "uploading {name}: {}",
            put.text()
        );
        stored_scripts.push(format!("/assets/{name}"));
    }

    let sync = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["assets", "sync"])
            .arg(workspace().join("pages"))
            .args(["--prefix", "site", "--url", &host.url])
            .env("PORTICO_TOKEN", &admin),
        Duration::from_secs(120),
    )
    .expect("portico assets sync ran within 120 s");
    assert!(
        sync.status.success(),
        "portico assets sync pages: {}",
        describe(&sync)
    );

    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).unwrap();
    for name in SCREENSHOTS {
        let _ = std::fs::remove_file(screenshots.join(name));
    }
    let output = run_bounded(
        Command::new("node")
            .arg(project.join("run.mjs"))
            .current_dir(&project)
            .env("PORTICO_URL", &host.url)
            .env("SECOND_ORIGIN", &second.url)
            .env("THIRD_ORIGIN", &third.url)
            .env("ADMIN_USER", ADMIN)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SCREENSHOT_DIR", &screenshots)
            .env("BOOLEAN_FLAG", BOOLEAN_FLAG)
            .env("CUSTOM_HEADER", CUSTOM_HEADER)
            .env("STORED_SCRIPTS", stored_scripts.join(","))
            .env("CHROMIUM", CHROMIUM),
        NODE_LIMIT,
    )
    .unwrap_or_else(|| {
        panic!(
            "node tests/browser/run.mjs did not finish within {NODE_LIMIT:?}; gateway stderr:\n{}",
            host.stderr()
        )
    });
    assert!(
        output.status.success(),
        "node tests/browser/run.mjs failed: {}\n--- gateway stderr ---\n{}",
        describe(&output),
        host.stderr()
    );
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    for name in SCREENSHOTS {
        let path = screenshots.join(name);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("screenshot {}: {err}", path.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
    }
}
