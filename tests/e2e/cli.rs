//! The `portico` command line: startup errors are clear, signals stop it
//! cleanly, `portico kv` reads what the app wrote.

use std::process::Stdio;
use std::time::Duration;

use portico::serve::Target;

use crate::harness::{Host, HostConfig, artifacts, data_dir, get, portico_kv};

#[test]
fn missing_required_variable_is_a_startup_error() {
    if crate::harness::embedded_host_only("portico serve's own startup check") {
        return;
    }
    let data = data_dir("novar");
    let mut config = HostConfig::app(Target::Spin, data.path());
    config.vars.clear();
    let output = config
        .command()
        .env_remove("SPIN_VARIABLE_JWT_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("jwt_secret"), "{stderr}");
    assert!(stderr.contains("SPIN_VARIABLE_JWT_SECRET"), "{stderr}");
}

#[test]
fn variables_come_from_the_environment_too() {
    if crate::harness::embedded_host_only("SPIN_VARIABLE_* is read by portico serve") {
        return;
    }
    let data = data_dir("envvar");
    let mut config = HostConfig::probe(Target::Wasi, data.path());
    config.vars.clear();
    let mut command = config.command();
    command.env("SPIN_VARIABLE_API_TOKEN", "from-env");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .next()
        .unwrap()
        .unwrap();
    let url = &line[line.find("http://").unwrap()..];
    let reply = get(&format!("{url}/config/api_token"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reply.text(), "from-env");
}

#[test]
fn wasi_target_refuses_a_component_that_needs_spin() {
    if crate::harness::embedded_host_only("portico serve's own startup check") {
        return;
    }
    let data = data_dir("mismatch");
    let mut config = HostConfig::app(Target::Wasi, data.path());
    config.component = artifacts().app_spin.clone();
    let output = config.command().stdin(Stdio::null()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--target spin"), "{stderr}");
}

#[test]
fn sigint_stops_the_server_cleanly() {
    if crate::harness::embedded_host_only("portico serve's signal handling") {
        return;
    }
    let data = data_dir("sigint");
    let host = Host::start(&HostConfig::app(Target::Spin, data.path()));
    assert_eq!(get(&format!("{}/healthz", host.url)).status, 200);
    let killed = std::process::Command::new("kill")
        .args(["-INT", &host.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = host
        .wait(Duration::from_secs(20))
        .expect("exits after SIGINT");
    assert!(status.success(), "{status:?}");
}

#[test]
fn kv_command_round_trips_on_both_targets() {
    if crate::harness::embedded_host_only("the portico kv command alone, no runtime") {
        return;
    }
    for target in [Target::Spin, Target::Wasi] {
        let data = data_dir("kvcli");
        let set = portico_kv(
            target,
            data.path(),
            &["set", "users/ada", "{\"name\":\"Ada\"}"],
        );
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
        let got = portico_kv(target, data.path(), &["get", "users/ada"]);
        assert_eq!(got.stdout, b"{\"name\":\"Ada\"}");
        let listed = portico_kv(target, data.path(), &["list", "users/"]);
        assert_eq!(String::from_utf8_lossy(&listed.stdout), "users/ada\n");
        assert!(
            portico_kv(target, data.path(), &["delete", "users/ada"])
                .status
                .success()
        );
        let gone = portico_kv(target, data.path(), &["get", "users/ada"]);
        assert!(!gone.status.success());
    }
}

/// `portico users add grace [extra args]` on `data`, with `password` on
/// standard input.
fn users_add(
    target: Target,
    data: &std::path::Path,
    extra: &[&str],
    password: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["users", "add", "grace", "--iterations", "1000"])
        .args(extra)
        .args(["--target", crate::harness::target_name(target)])
        .arg("--data")
        .arg(data)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(password).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn users_add_creates_a_user_the_app_can_log_in() {
    for target in crate::harness::targets().iter().copied() {
        let data = data_dir("usersadd");
        // A password under the minimum length is refused, saying the rule.
        let output = users_add(target, data.path(), &[], b"hopper\n");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("at least 12 characters"), "{stderr}");
        let output = users_add(
            target,
            data.path(),
            &["--role", "admin"],
            b"hopper-1906-cobol\n",
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("existed"), "a new user: {stderr}");
        // Replacing a user: the old sessions cannot be ended from here, and
        // the command says how to end them.
        let output = users_add(
            target,
            data.path(),
            &["--role", "admin"],
            b"hopper-1906-cobol\n",
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(
            stderr.contains("DELETE /admin/users/grace/sessions"),
            "{stderr}"
        );
        let host = Host::start(&HostConfig::app(target, data.path()));
        let login = crate::harness::Reply::from(
            crate::harness::client()
                .post(&format!("{}/api/login", host.url))
                .send(r#"{"username":"grace","password":"hopper-1906-cobol"}"#)
                .unwrap(),
        );
        assert_eq!(login.status, 200, "{}", login.text());
        assert_eq!(login.json()["roles"], serde_json::json!(["admin"]));
    }
}

#[test]
fn publish_writes_pages_the_app_serves_and_skips_unchanged_files() {
    for target in crate::harness::targets().iter().copied() {
        let data = data_dir("publish");
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("app")).unwrap();
        std::fs::write(folder.path().join("login.html"), "<h1>login</h1>").unwrap();
        std::fs::write(folder.path().join("app/index.html"), "<h1>app</h1>").unwrap();
        let publish = || {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
                .arg("publish")
                .arg(folder.path())
                .args(["--prefix", "site/"])
                .args(["--target", crate::harness::target_name(target)])
                .arg("--data")
                .arg(data.path())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(output.status.success(), "{stderr}");
            stderr
        };
        let first = publish();
        assert!(first.contains("2 written, 0 unchanged"), "{first}");
        let second = publish();
        assert!(second.contains("0 written, 2 unchanged"), "{second}");
        std::fs::write(folder.path().join("login.html"), "<h1>login v2</h1>").unwrap();
        let third = publish();
        assert!(third.contains("1 written, 1 unchanged"), "{third}");

        let host = Host::start(&HostConfig::app(target, data.path()));
        let login = get(&format!("{}/login", host.url));
        assert_eq!(login.status, 200);
        assert_eq!(login.text(), "<h1>login v2</h1>");
        assert_eq!(
            login.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        // The object store sees them as it sees uploads, but serves the
        // site's protected pages only at their own paths.
        let page = get(&format!("{}/assets/site/login.html", host.url));
        assert_eq!(page.text(), "<h1>login v2</h1>");
        get(&format!("{}/assets/site/app/index.html", host.url)).assert_problem(404, "not-found");
    }
}

/// The compiled-component cache is keyed by the component's bytes: serving
/// another component from the same path with the same cache folder (the
/// suite's shared one) runs the new one, never the stale compilation.
#[test]
fn the_compile_cache_follows_the_component() {
    if crate::harness::embedded_host_only("portico serve's compile cache") {
        return;
    }
    let data = data_dir("compile-cache");
    let served = data.path().join("served.wasm");
    let artifacts = crate::harness::artifacts();
    let answer = |component: &std::path::Path| {
        std::fs::copy(component, &served).unwrap();
        let mut config = HostConfig::app(Target::Wasi, data.path());
        config.component = served.clone();
        let host = Host::start(&config);
        let reply = get(&format!("{}/", host.url));
        (reply.status, reply.text())
    };
    assert_eq!(answer(&artifacts.misbehaving), (200, "ok".to_string()));
    assert_eq!(
        answer(&artifacts.hello),
        (200, r#"{"status":"ok"}"#.to_string())
    );
    assert_eq!(answer(&artifacts.misbehaving), (200, "ok".to_string()));
}

/// `portico up` on a fresh data folder: the landing page at `/`, a demo
/// flag set (a 50/50 experiment and a boolean) that OFREP evaluates, and
/// the line that creates the admin. Started again over flags the operator
/// stored (here: none at all), it seeds nothing; `--no-demo` and
/// `portico serve` never seed.
#[test]
fn up_greets_a_first_run_with_a_landing_page_and_demo_flags() {
    if crate::harness::embedded_host_only("portico up") {
        return;
    }
    use serde_json::json;
    let target = Target::Wasi;
    let data = data_dir("first-run");
    let up = |extra: &[&str]| {
        let mut config = HostConfig::app(target, data.path());
        config.subcommand = "up";
        config.vars.clear();
        config.args = extra.iter().map(|a| a.to_string()).collect();
        Host::start(&config)
    };
    let evaluate = |host: &Host, flag: &str, user: &str| {
        crate::harness::Reply::from(
            crate::harness::client()
                .post(&format!("{}/ofrep/v1/evaluate/flags/{flag}", host.url))
                .header("content-type", "application/json")
                .send(
                    json!({"context": {"targetingKey": user}})
                        .to_string()
                        .as_bytes(),
                )
                .unwrap(),
        )
    };
    let host = up(&[]);
    let stderr = host.stderr_when(|log| log.contains("no admin yet"));
    assert!(stderr.contains("seeded a demo flag set"), "{stderr}");
    assert!(
        stderr.contains("users add admin --role admin"),
        "the first run says how to create the admin: {stderr}"
    );
    let home = get(&format!("{}/", host.url));
    assert_eq!(home.status, 200, "{}", home.text());
    assert!(
        home.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for link in [
        "href=\"/login\"",
        "href=\"/app/\"",
        "href=\"/admin/\"",
        "href=\"/api/config\"",
    ] {
        assert!(home.text().contains(link), "the landing page links {link}");
    }
    assert_eq!(get(&format!("{}/static/home.js", host.url)).status, 200);
    let mut variants = std::collections::BTreeSet::new();
    for n in 0..40 {
        let answer = evaluate(&host, "new-checkout", &format!("user-{n}"));
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["reason"], "SPLIT");
        assert_eq!(answer.json()["metadata"]["demo"], true);
        variants.insert(answer.json()["variant"].as_str().unwrap().to_string());
    }
    assert_eq!(variants.into_iter().collect::<Vec<_>>(), ["off", "on"]);
    let banner = evaluate(&host, "maintenance-banner", "user-1").json();
    assert_eq!(
        (banner["value"].clone(), banner["variant"].clone()),
        (json!(false), json!("hidden"))
    );
    drop(host);

    // The operator's own set (empty) is never replaced by the demo.
    let stored = crate::harness::portico_kv(
        target,
        data.path(),
        &["set", "flags/definitions", r#"{"flags":{}}"#],
    );
    assert!(stored.status.success());
    let host = up(&[]);
    let config = get(&format!("{}/api/config", host.url)).json();
    assert_eq!(config["flags"], json!({}), "{config}");
    assert!(!host.stderr().contains("seeded a demo flag set"));
    drop(host);

    // `--no-demo`, and `portico serve`, on fresh folders: no flags.
    // With an admin stored, `up` does not ask for one.
    let fresh = data_dir("first-run-no-demo");
    let added = users_add(
        target,
        fresh.path(),
        &["--role", "admin"],
        b"a-long-password\n",
    );
    assert!(added.status.success(), "{added:?}");
    let mut config = HostConfig::app(target, fresh.path());
    config.subcommand = "up";
    config.vars.clear();
    config.args = vec!["--no-demo".into()];
    let host = Host::start(&config);
    assert_eq!(
        get(&format!("{}/api/config", host.url)).json()["flags"],
        json!({})
    );
    assert!(!host.stderr().contains("no admin yet"), "{}", host.stderr());
    drop(host);
    let served = data_dir("first-run-serve");
    let host = Host::start(&HostConfig::app(target, served.path()));
    assert_eq!(
        get(&format!("{}/api/config", host.url)).json()["flags"],
        json!({})
    );
    assert!(
        !host.stderr().contains("no admin yet"),
        "only `up` prints the hint"
    );
}

/// A runtime configuration the host cannot honour stops `portico serve` at
/// startup, naming what it cannot do; one it can is reported on startup.
#[test]
fn runtime_config_mistakes_stop_the_server_naming_them() {
    if crate::harness::embedded_host_only("portico serve's own startup check") {
        return;
    }
    let data = data_dir("rtconfig");
    for (text, says) in [
        (
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://db.example\"\n",
            "type \"libsql\": Spin supports it",
        ),
        (
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:1\"\nuser = \"x\"\n",
            "unknown field `user`",
        ),
        (
            "[llm_compute]\ntype = \"spin\"\n",
            "[llm_compute]: not supported",
        ),
    ] {
        let file = data.path().join("runtime-config.toml");
        std::fs::write(&file, text).unwrap();
        let mut config = HostConfig::app(Target::Spin, data.path());
        config.args = vec!["--runtime-config-file".into(), file.display().to_string()];
        let output = config.command().stdin(Stdio::null()).output().unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{text}: {stderr}");
        assert!(stderr.contains("runtime-config.toml"), "{stderr}");
    }
}
