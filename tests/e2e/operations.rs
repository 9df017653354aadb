//! Operations through the composed app: structured request logs without
//! secrets, Prometheus metrics that count a known request mix, the
//! maintenance tasks (exact, resumable, scheduled), the personalisation
//! context, and durable data locality.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use portico::serve::Target;
use serde_json::{Value, json};

use crate::harness::{Host, HostConfig, Reply, client, data_dir, get, target_name, workspace};
use crate::origin::{Origin, OriginResponse};

const ADMIN_PASSWORD: &str = "ops-Password-7q";
const MAINTENANCE_TOKEN: &str = "maint-6a1f0c2e9d";

fn config(target: Target, data: &Path) -> HostConfig {
    let mut config = crate::harness::app_with_admin(target, data, "root", ADMIN_PASSWORD);
    config
        .vars
        .push(("maintenance_token".into(), MAINTENANCE_TOKEN.into()));
    config
}

fn login(host: &Host) -> String {
    crate::harness::login_token(host, "root", ADMIN_PASSWORD)
}

fn admin(host: &Host, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let url = format!("{}{path}", host.url);
    let auth = format!("Bearer {token}");
    let response = match (method, body) {
        ("GET", _) => client().get(&url).header("authorization", &auth).call(),
        ("POST", Some(body)) => client()
            .post(&url)
            .header("authorization", &auth)
            .send(body.to_string()),
        ("POST", None) => client()
            .post(&url)
            .header("authorization", &auth)
            .send_empty(),
        ("PUT", Some(body)) => client()
            .put(&url)
            .header("authorization", &auth)
            .send(body.to_string()),
        other => panic!("unsupported {other:?}"),
    };
    Reply::from(response.unwrap())
}

fn portico(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--workspace")
        .arg(workspace())
        .args(args)
        .output()
        .unwrap()
}

/// The JSON access-log lines in the host's stderr.
fn log_lines(host: &Host) -> Vec<Value> {
    host.stderr()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("request_id").is_some() && value.get("status").is_some())
        .collect()
}

on_both_targets!(request_logs_are_structured_and_never_hold_secrets);
fn request_logs_are_structured_and_never_hold_secrets(target: Target) {
    let origin = Origin::start(|_| OriginResponse::ok("upstream"));
    let data = data_dir("ops-logs");
    let mut config = config(target, data.path());
    let upstreams = json!({"routes": [{"name": "up", "prefix": "/up/", "origin": origin.url()}]});
    config
        .vars
        .push(("upstreams".into(), upstreams.to_string()));
    let host = Host::start(&config);
    let token = login(&host);
    let user = Reply::from(
        client()
            .get(&format!(
                "{}/api/user?access_token=query-secret-91",
                host.url
            ))
            .header("cookie", format!("session={token}; other=cookie-secret-55"))
            .call()
            .unwrap(),
    );
    assert_eq!(user.status, 200);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let proxied = Reply::from(
        client()
            .get(&format!("{}/up/x", host.url))
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
            .call()
            .unwrap(),
    );
    assert_eq!(proxied.status, 200);
    // The trace continues upstream, with this request's span as the parent.
    let sent = origin.last("/up/x");
    let traceparent = sent
        .header("traceparent")
        .expect("traceparent sent upstream");
    assert!(
        traceparent.starts_with(&format!("00-{trace}-")),
        "{traceparent}"
    );
    assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");

    host.stderr_when(|text| {
        text.lines()
            .filter(|line| line.contains("\"request_id\"") && line.contains("\"status\""))
            .count()
            >= 3
    });
    let lines = log_lines(&host);
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        for field in [
            "time",
            "request_id",
            "trace_id",
            "method",
            "path",
            "status",
            "duration_ms",
            "bytes",
            "client",
            "subject",
            "rate_limit",
            "cache",
            "variants",
            "route",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32, "{line}");
    }
    let user_line = lines.iter().find(|l| l["path"] == "/api/user").unwrap();
    assert_eq!(user_line["subject"], "root");
    assert_eq!(user_line["status"], 200);
    assert_eq!(user_line["rate_limit"], "allowed");
    assert_eq!(user_line["bytes"].as_u64(), Some(user.body.len() as u64));
    let proxied_line = lines.iter().find(|l| l["path"] == "/up/x").unwrap();
    assert_eq!(proxied_line["trace_id"], trace);
    assert!(
        proxied_line["cache"]
            .as_str()
            .unwrap()
            .starts_with("portico;"),
        "{proxied_line}"
    );
    let stderr = host.stderr();
    for secret in [
        crate::harness::JWT_SECRET,
        ADMIN_PASSWORD,
        MAINTENANCE_TOKEN,
        token.as_str(),
        "query-secret-91",
        "cookie-secret-55",
    ] {
        assert!(
            !stderr.contains(secret),
            "a secret reached the log: {secret}"
        );
    }
}

/// Parses the Prometheus text format: every sample line is
/// `name{labels} value`, every family has a TYPE.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.push(parts.next().unwrap().to_string());
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "{line}");
        }
        assert!(
            typed.iter().any(|family| name.starts_with(family.as_str())),
            "{name} has no TYPE"
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

on_both_targets!(metrics_count_a_known_request_mix);
fn metrics_count_a_known_request_mix(target: Target) {
    let data = data_dir("ops-metrics");
    let host = Host::start(&config(target, data.path()));
    let token = login(&host);
    for _ in 0..5 {
        assert_eq!(get(&format!("{}/healthz", host.url)).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/api/nope", host.url)).status, 404);
    }
    let flags = json!({"flags": {"beta": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}});
    assert_eq!(
        admin(&host, &token, "PUT", "/admin/flags", Some(flags)).status,
        204
    );
    for _ in 0..2 {
        assert_eq!(get(&format!("{}/api/config", host.url)).status, 200);
    }
    // Metrics are written after each response is sent; give the last ones
    // a moment, then expect the exact counts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let reply = admin(&host, &token, "GET", "/admin/metrics", None);
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        let samples = parse_metrics(&reply.text());
        let config_count = samples
            .get("portico_requests_total{route=\"/api/config\",status=\"2xx\"}")
            .copied();
        if config_count == Some(2.0) || Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let count = |series: &str| samples.get(series).copied().unwrap_or(0.0);
    // The liveness probe is logged but never counted: it touches no storage.
    assert_eq!(
        count("portico_requests_total{route=\"/healthz\",status=\"2xx\"}"),
        0.0
    );
    assert_eq!(
        count("portico_requests_total{route=\"unmatched\",status=\"4xx\"}"),
        3.0
    );
    assert_eq!(
        count("portico_requests_total{route=\"/api/config\",status=\"2xx\"}"),
        2.0
    );
    assert_eq!(
        count("portico_requests_total{route=\"/api/login\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        count("portico_flag_evaluations_total{reason=\"STATIC\"}"),
        2.0
    );
    // 3 unmatched + 1 login + 1 flags PUT + 2 config (the 5 probes are not
    // counted), plus earlier metrics reads.
    let total = count("portico_request_duration_seconds_count");
    assert!(total >= 7.0, "{total}");
    assert_eq!(
        count("portico_request_duration_seconds_bucket{le=\"+Inf\"}"),
        total
    );
    let mut previous = 0.0;
    for bound in [
        "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
    ] {
        let value = count(&format!(
            "portico_request_duration_seconds_bucket{{le=\"{bound}\"}}"
        ));
        assert!(value >= previous, "buckets are cumulative: {bound}");
        previous = value;
    }
    let requests: f64 = samples
        .iter()
        .filter(|(k, _)| k.starts_with("portico_requests_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(requests, total);
    // Without admin rights, no metrics.
    assert_eq!(get(&format!("{}/admin/metrics", host.url)).status, 401);
}

fn sweep(host: &Host, max: u32) -> (u64, u64, usize) {
    let mut cursor: Option<String> = None;
    let (mut removed, mut scanned, mut calls) = (0, 0, 0);
    for _ in 0..100 {
        let mut path = format!("/admin/maintenance/sweep-expired?max={max}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", urlencode(cursor)));
        }
        let reply = admin(host, MAINTENANCE_TOKEN, "POST", &path, None);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let report = reply.json();
        calls += 1;
        removed += report["kv"]["removed"].as_u64().unwrap();
        scanned += report["kv"]["scanned"].as_u64().unwrap();
        match report["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return (removed, scanned, calls),
        }
    }
    panic!("the sweep never finished");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn kv(target: Target, data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["kv"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--target",
        target_name(target),
        "--data",
        data.to_str().unwrap(),
    ]);
    portico(&all)
}

on_both_targets!(sweep_removes_exactly_the_expired_entries_and_resumes);
fn sweep_removes_exactly_the_expired_entries_and_resumes(target: Target) {
    let data = data_dir("ops-sweep");
    for key in ["sweep/a", "sweep/b", "sweep/c", "sweep/d", "sweep/e"] {
        assert!(
            kv(target, data.path(), &["set", key, "x", "--ttl-ms", "1"])
                .status
                .success()
        );
    }
    for key in ["sweep/keep1", "sweep/keep2"] {
        assert!(kv(target, data.path(), &["set", key, "y"]).status.success());
    }
    assert!(
        kv(
            target,
            data.path(),
            &["set", "sweep/long", "z", "--ttl-ms", "3600000"]
        )
        .status
        .success()
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(crate::harness::raw_keys(target, data.path(), "sweep/"), 8);
    let host = Host::start(&config(target, data.path()));
    // Without the token or a session, no maintenance.
    let refused = Reply::from(
        client()
            .post(&format!("{}/admin/maintenance/sweep-expired", host.url))
            .send_empty()
            .unwrap(),
    );
    assert_eq!(refused.status, 401);
    // Small steps, resumed with the cursor: exactly the five expired go.
    let (removed, scanned, calls) = sweep(&host, 2);
    assert_eq!(removed, 5);
    assert!(calls >= 4, "{calls} calls for {scanned} keys with max=2");
    assert_eq!(crate::harness::raw_keys(target, data.path(), "sweep/"), 3);
    let listed = String::from_utf8(kv(target, data.path(), &["list", "sweep/"]).stdout).unwrap();
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["sweep/keep1", "sweep/keep2", "sweep/long"]
    );
    // Idempotent: nothing more to remove.
    assert_eq!(sweep(&host, 500).0, 0);
    // Unknown tasks are named.
    admin(
        &host,
        MAINTENANCE_TOKEN,
        "POST",
        "/admin/maintenance/defrag",
        None,
    )
    .assert_problem(404, "unknown-task");
}

on_both_targets!(compact_assets_removes_only_old_orphaned_chunks);
fn compact_assets_removes_only_old_orphaned_chunks(target: Target) {
    let data = data_dir("ops-compact");
    // An upload id is `<hash prefix>-<start time in ns, hex>`.
    let old_upload = format!("0123456789abcdef-{:x}", 1_600_000_000_000_000_000u128);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let young_upload = format!("fedcba9876543210-{now_ns:x}");
    for key in [
        format!("assets/c/{old_upload}/0"),
        format!("assets/c/{old_upload}/1"),
        format!("assets/c/{young_upload}/0"),
    ] {
        assert!(
            kv(target, data.path(), &["set", &key, "orphan"])
                .status
                .success()
        );
    }
    let host = Host::start(&config(target, data.path()));
    let token = login(&host);
    let put = Reply::from(
        client()
            .put(&format!("{}/admin/assets/kept.txt", host.url))
            .header("authorization", format!("Bearer {token}"))
            .send(&b"still here"[..])
            .unwrap(),
    );
    assert_eq!(put.status, 201);
    let mut removed = 0;
    let mut cursor = String::new();
    for _ in 0..20 {
        let reply = admin(
            &host,
            &token,
            "POST",
            &format!(
                "/admin/maintenance/compact-assets?max=1&cursor={}",
                urlencode(&cursor)
            ),
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        let report = reply.json();
        removed += report["removed"].as_u64().unwrap();
        match report["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(removed, 2);
    assert_eq!(
        crate::harness::raw_keys(target, data.path(), &format!("assets/c/{old_upload}")),
        0
    );
    assert_eq!(
        crate::harness::raw_keys(target, data.path(), &format!("assets/c/{young_upload}")),
        1
    );
    assert_eq!(
        get(&format!("{}/assets/kept.txt", host.url)).text(),
        "still here"
    );
}

on_both_targets!(warm_cache_refetches_the_configured_paths);
fn warm_cache_refetches_the_configured_paths(target: Target) {
    let origin =
        Origin::start(|_| OriginResponse::ok("warm body").header("cache-control", "max-age=300"));
    let data = data_dir("ops-warm");
    let mut config = config(target, data.path());
    let upstreams = json!({"routes": [{"name": "up", "prefix": "/up/", "origin": origin.url()}]});
    config
        .vars
        .push(("upstreams".into(), upstreams.to_string()));
    config.vars.push(("warm_urls".into(), "/up/a,/up/b".into()));
    let host = Host::start(&config);
    let reply = admin(
        &host,
        MAINTENANCE_TOKEN,
        "POST",
        "/admin/maintenance/warm-cache",
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let warmed = reply.json()["warmed"].as_array().unwrap().clone();
    assert_eq!(warmed.len(), 2);
    assert_eq!(origin.count("/up/a"), 1);
    assert_eq!(origin.count("/up/b"), 1);
    // The next client request is a hit: the origin is not asked again.
    let host_authority = host.url.trim_start_matches("http://").to_string();
    let hit = Reply::from(
        client()
            .get(&format!("{}/up/a", host.url))
            .header("host", &host_authority)
            .call()
            .unwrap(),
    );
    assert_eq!(hit.text(), "warm body");
    assert!(
        hit.header("cache-status").unwrap().contains("hit"),
        "{:?}",
        hit.header("cache-status")
    );
    assert_eq!(origin.count("/up/a"), 1);
}

#[test]
fn schedule_runs_the_tasks_on_a_timer() {
    if crate::harness::embedded_host_only("portico serve --schedule") {
        return;
    }
    let target = Target::Spin;
    let data = data_dir("ops-schedule");
    assert!(
        kv(
            target,
            data.path(),
            &["set", "sched/x", "x", "--ttl-ms", "1"]
        )
        .status
        .success()
    );
    let mut config = config(target, data.path());
    config.args = vec!["--schedule".into(), "sweep-expired=1s".into()];
    let host = Host::start(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::harness::raw_keys(target, data.path(), "sched/") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        crate::harness::raw_keys(target, data.path(), "sched/"),
        0,
        "{}",
        host.stderr()
    );
    assert!(
        host.stderr_when(|log| log.contains("maintenance sweep-expired"))
            .contains("maintenance sweep-expired"),
        "{}",
        host.stderr()
    );
    // A schedule without the token is refused at startup.
    let mut bad = HostConfig::app(target, data.path());
    bad.args = vec!["--schedule".into(), "sweep-expired=1s".into()];
    let output = bad.command().output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("maintenance_token"));
}

on_both_targets!(context_attributes_drive_targeting_and_vary);
fn context_attributes_drive_targeting_and_vary(target: Target) {
    let data = data_dir("ops-context");
    let mut config = config(target, data.path());
    config
        .vars
        .push(("country_header".into(), "cf-ipcountry".into()));
    let host = Host::start(&config);
    let token = login(&host);
    let flags = json!({"flags": {"banner": {
        "state": "ENABLED",
        "variants": {"de": "hallo", "mobile": "small", "fr": "bonjour", "plain": "hello"},
        "defaultVariant": "plain",
        "targeting": {"if": [
            {"==": [{"var": "country"}, "DE"]}, "de",
            {"==": [{"var": "device"}, "mobile"]}, "mobile",
            {"==": [{"var": "language"}, "fr"]}, "fr",
            null
        ]}
    }}});
    assert_eq!(
        admin(&host, &token, "PUT", "/admin/flags", Some(flags)).status,
        204
    );
    let variant = |headers: &[(&str, &str)]| {
        let mut request = client().get(&format!("{}/api/config", host.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = Reply::from(request.call().unwrap());
        assert_eq!(reply.status, 200);
        let vary = reply.header("vary").unwrap().to_ascii_lowercase();
        for field in ["cf-ipcountry", "user-agent", "accept-language", "cookie"] {
            assert!(vary.contains(field), "vary {vary} lacks {field}");
        }
        reply.json()["flags"]["banner"]["variant"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let desktop = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36";
    assert_eq!(
        variant(&[("cf-ipcountry", "de"), ("user-agent", desktop)]),
        "de"
    );
    assert_eq!(
        variant(&[(
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"
        )]),
        "mobile"
    );
    assert_eq!(
        variant(&[
            ("user-agent", desktop),
            ("accept-language", "fr-CH, en;q=0.8")
        ]),
        "fr"
    );
    // Weights are RFC 9110 qvalues: thousandths decide, and a malformed
    // weight (`0.5e1`, which a float parser reads as 5) is no preference.
    assert_eq!(
        variant(&[
            ("user-agent", desktop),
            ("accept-language", "en;q=0.12, fr;q=0.125")
        ]),
        "fr"
    );
    assert_eq!(
        variant(&[
            ("user-agent", desktop),
            ("accept-language", "fr;q=0.5e1, en;q=0.1")
        ]),
        "plain"
    );
    assert_eq!(variant(&[("user-agent", desktop)]), "plain");
    // An unknown country code is no country.
    assert_eq!(
        variant(&[("cf-ipcountry", "XX"), ("user-agent", desktop)]),
        "plain"
    );
}

#[test]
fn durable_namespaces_live_in_their_mapped_database() {
    if crate::harness::embedded_host_only("the spin target's SQLite databases") {
        return;
    }
    let target = Target::Spin;
    let data = data_dir("ops-locality");
    // The app's manifest, granted a second database `eu`.
    let manifest = data.path().join("spin.toml");
    let text = std::fs::read_to_string(workspace().join("spin.toml")).unwrap();
    let granted = text.replace(
        "sqlite_databases = [\"default\"]",
        "sqlite_databases = [\"default\", \"eu\"]",
    );
    assert_ne!(text, granted, "spin.toml grants sqlite_databases");
    std::fs::write(&manifest, granted).unwrap();
    let mut config = config(target, data.path());
    config.manifest = manifest;
    config
        .vars
        .push(("durable_databases".into(), "revoked=eu".into()));
    let host = Host::start(&config);
    let token = login(&host);
    // Logging out writes the revocation (durable namespace `revoked`).
    let logout = Reply::from(
        client()
            .post(&format!("{}/api/logout", host.url))
            .header("authorization", format!("Bearer {token}"))
            .send_empty()
            .unwrap(),
    );
    assert_eq!(logout.status, 204);
    let rows = |file: &str, ns: &str| -> i64 {
        let db = rusqlite::Connection::open(data.path().join(file)).unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM portico_durable WHERE ns = ?1",
            [ns],
            |row| row.get(0),
        )
        .unwrap_or(0)
    };
    assert_eq!(rows("sqlite_db_eu.db", "revoked"), 1);
    assert_eq!(rows("sqlite_db.db", "revoked"), 0);
    // Other namespaces stay in `default` (the limiter wrote there).
    assert!(rows("sqlite_db.db", "ratelimit") >= 1);
    // The revoked token is refused: the app reads from the mapped database.
    let after = Reply::from(
        client()
            .get(&format!("{}/api/user", host.url))
            .header("authorization", format!("Bearer {token}"))
            .call()
            .unwrap(),
    );
    assert_eq!(after.status, 401);
}
