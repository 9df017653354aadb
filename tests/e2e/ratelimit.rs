//! Rate limiting through the composed app: exactness under concurrency,
//! independence of keys, GCRA refill, the IETF header fields, route policies,
//! failure policies and configuration errors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portico::serve::Target;

use crate::harness::{Host, HostConfig, Reply, client, data_dir};

const CLIENT_HEADER: &str = "x-forwarded-for";

fn app_with(target: Target, data: &std::path::Path, vars: &[(&str, &str)]) -> Host {
    let mut config = HostConfig::app(target, data);
    config
        .vars
        .push(("rate_limit_client_header".into(), CLIENT_HEADER.into()));
    for (name, value) in vars {
        config.vars.push((name.to_string(), value.to_string()));
    }
    Host::start(&config)
}

fn get_as(agent: &ureq::Agent, url: &str, client_ip: &str) -> Reply {
    Reply::from(
        agent
            .get(url)
            .header(CLIENT_HEADER, client_ip)
            .call()
            .expect("GET"),
    )
}

/// A Structured Field list item `"name";k=v;...` (RFC 9651), parsed
/// independently of the code under test.
fn sf_item(value: &str) -> (String, BTreeMap<String, u64>) {
    let mut parts = value.trim().split(';');
    let name = parts.next().unwrap();
    assert!(
        name.starts_with('"') && name.ends_with('"') && name.len() >= 2,
        "sf-string: {value}"
    );
    let params = parts
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .unwrap_or_else(|| panic!("param {p:?} in {value}"));
            (
                k.to_string(),
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("sf-integer {v:?}")),
            )
        })
        .collect();
    (name[1..name.len() - 1].to_string(), params)
}

on_both_targets!(
    forged_client_addresses_make_no_new_keys,
    burst_admits_exactly_the_limit_under_concurrency,
    keys_are_independent_and_refill_at_the_gcra_rate,
    storage_failure_fails_open_by_default,
    storage_failure_fails_closed_when_configured,
);

/// A client cannot pick its own rate-limit key: a `spin-client-addr` it
/// sends is not the runtime's (on Spin the runtime's value comes last; on
/// `wasmtime serve` there is none, so every `spin-*` field is the client's),
/// and in a trusted `X-Forwarded-For` only the entry the proxy appended
/// (the last) counts.
fn forged_client_addresses_make_no_new_keys(target: Target) {
    let data = data_dir("rl-forged");
    let host = app_with(
        target,
        data.path(),
        &[("rate_limit_policies", "default=3/1h")],
    );
    let url = format!("{}/api/config", host.url);
    let agent = client();
    let admitted = |header: &str, value: &dyn Fn(usize) -> String| -> usize {
        (0..6)
            .filter(|i| {
                let reply = Reply::from(
                    agent
                        .get(&url)
                        .header(header, value(*i))
                        .call()
                        .expect("GET"),
                );
                assert!(
                    reply.status == 200 || reply.status == 429,
                    "{}: {}",
                    reply.status,
                    reply.text()
                );
                reply.status == 200
            })
            .count()
    };
    assert_eq!(
        admitted("spin-client-addr", &|i| format!("198.51.100.{i}:1234")),
        3,
        "rotated spin-client-addr values made new keys"
    );
    assert_eq!(
        admitted(CLIENT_HEADER, &|i| format!("203.0.113.{i}, 192.0.2.77")),
        3,
        "the client-written part of X-Forwarded-For made new keys"
    );
}

/// Limit 100 per hour, 300 requests for one key over 32 connections:
/// exactly 100 are admitted, whatever the interleaving. (GCRA frees one
/// request every window/limit; with 100 per 60 s that is every 600 ms, and a
/// burst that takes longer than that legitimately earns one more. An hour's
/// window keeps the count exact for any test duration under 36 s.)
fn burst_admits_exactly_the_limit_under_concurrency(target: Target) {
    let data = data_dir("rl-burst");
    let host = app_with(
        target,
        data.path(),
        &[("rate_limit_policies", "default=100/1h")],
    );
    let started = std::time::Instant::now();
    let url = format!("{}/api/config", host.url);
    let next = AtomicUsize::new(0);
    let (allowed, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                let agent = client();
                while next.fetch_add(1, Ordering::Relaxed) < 300 {
                    let reply = get_as(&agent, &url, "198.51.100.7");
                    match reply.status {
                        200 => allowed.fetch_add(1, Ordering::Relaxed),
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected {other}: {}", reply.text()),
                    };
                }
            });
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(36),
        "burst outlasted one emission interval"
    );
    assert_eq!(allowed.into_inner(), 100, "admitted");
    assert_eq!(refused.into_inner(), 200, "refused");
}

fn keys_are_independent_and_refill_at_the_gcra_rate(target: Target) {
    let data = data_dir("rl-refill");
    let host = app_with(
        target,
        data.path(),
        // One unit every 4 s: every check below has seconds of margin on a
        // loaded machine, and the waits come from the server's own `t`.
        &[("rate_limit_policies", "default=2/8s")],
    );
    let url = format!("{}/api/config", host.url);
    let agent = client();
    let statuses = |ip: &str, n: usize| -> Vec<u16> {
        (0..n).map(|_| get_as(&agent, &url, ip).status).collect()
    };
    let t_of = |reply: &Reply| sf_item(reply.header("ratelimit").unwrap()).1["t"];
    assert_eq!(statuses("192.0.2.1", 2), [200, 200]);
    let refused = get_as(&agent, &url, "192.0.2.1");
    assert_eq!(refused.status, 429);
    // Another client is unaffected.
    assert_eq!(statuses("192.0.2.2", 3), [200, 200, 429]);
    // A unit comes back after the wait the refusal named (at most the 4 s
    // emission interval), and only one: the next is 4 s further on.
    let wait = t_of(&refused);
    assert!((1..=4).contains(&wait), "t={wait}");
    std::thread::sleep(Duration::from_secs(wait));
    let admitted = get_as(&agent, &url, "192.0.2.1");
    assert_eq!(admitted.status, 200);
    assert_eq!(get_as(&agent, &url, "192.0.2.1").status, 429);
    // Once the quota is whole again (the admission's `t`: at most the 8 s
    // window), the burst is back.
    let full = t_of(&admitted);
    assert!((1..=8).contains(&full), "t={full}");
    std::thread::sleep(Duration::from_secs(full));
    assert_eq!(statuses("192.0.2.1", 3), [200, 200, 429]);
}

#[test]
fn headers_follow_the_ratelimit_draft() {
    let data = data_dir("rl-headers");
    let host = app_with(
        crate::harness::one_target(),
        data.path(),
        &[("rate_limit_policies", "default=5/10s")],
    );
    let url = format!("{}/api/config", host.url);
    let agent = client();
    for expected_remaining in (0..5).rev() {
        let reply = get_as(&agent, &url, "203.0.113.5");
        assert_eq!(reply.status, 200);
        let (name, policy) = sf_item(reply.header("ratelimit-policy").unwrap());
        assert_eq!(name, "default");
        assert_eq!((policy["q"], policy["w"]), (5, 10));
        let (name, limit) = sf_item(reply.header("ratelimit").unwrap());
        assert_eq!(name, "default");
        assert_eq!(limit["r"], expected_remaining);
        assert!(limit["t"] <= 10, "{limit:?}");
        assert!(reply.header("retry-after").is_none());
    }
    let refused = get_as(&agent, &url, "203.0.113.5");
    let body = refused.assert_problem(429, "quota-exceeded");
    assert_eq!(body["violated-policies"], serde_json::json!(["default"]));
    let (_, limit) = sf_item(refused.header("ratelimit").unwrap());
    assert_eq!(limit["r"], 0);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    // The README's rule: `t` is the wait until this request would be
    // admitted, and `Retry-After` equals it. One unit comes back every 2 s,
    // so the real wait is 1 or 2 s (never 0, never the 10 s full refill)...
    assert_eq!(retry_after, limit["t"], "{limit:?}");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // ...and it is the real wait: after it, the request is admitted.
    std::thread::sleep(Duration::from_secs(retry_after));
    assert_eq!(get_as(&agent, &url, "203.0.113.5").status, 200);
    // Liveness is never limited.
    let health = get_as(&agent, &format!("{}/healthz", host.url), "203.0.113.5");
    assert_eq!(health.status, 200);
    assert!(health.header("ratelimit").is_none());
}

#[test]
fn routes_choose_their_policy() {
    let data = data_dir("rl-routes");
    let host = app_with(
        Target::Wasi,
        data.path(),
        &[
            ("rate_limit_policies", "default=100/60s, strict=1/60s"),
            ("rate_limit_routes", "/api/config=strict"),
        ],
    );
    let agent = client();
    let config = format!("{}/api/config", host.url);
    assert_eq!(get_as(&agent, &config, "192.0.2.9").status, 200);
    let refused = get_as(&agent, &config, "192.0.2.9");
    let body = refused.assert_problem(429, "quota-exceeded");
    assert_eq!(body["violated-policies"], serde_json::json!(["strict"]));
    // Other routes fall under `default`.
    let other = get_as(&agent, &format!("{}/nope", host.url), "192.0.2.9");
    assert_eq!(other.status, 404);
    assert_eq!(
        sf_item(other.header("ratelimit-policy").unwrap()).0,
        "default"
    );
}

#[test]
fn invalid_policy_is_reported_as_misconfiguration() {
    let data = data_dir("rl-bad");
    let host = app_with(
        crate::harness::one_target(),
        data.path(),
        &[("rate_limit_policies", "default=0/60s")],
    );
    let reply = get_as(&client(), &format!("{}/api/config", host.url), "192.0.2.1");
    let body = reply.assert_problem(500, "rate-limit-misconfigured");
    assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
}

/// Makes durable storage fail: on Spin a `portico_durable` table of the wrong
/// shape, on wasmtime a file where the `durable` directory should be.
fn break_durable_storage(target: Target, data: &std::path::Path) {
    match target {
        Target::Spin => {
            let db = rusqlite::Connection::open(data.join("sqlite_db.db")).unwrap();
            db.execute("CREATE TABLE portico_durable (unrelated TEXT)", [])
                .unwrap();
        }
        Target::Wasi => {
            std::fs::create_dir_all(data.join("wasi")).unwrap();
            std::fs::write(data.join("wasi").join("durable"), b"not a directory").unwrap();
        }
    }
}

fn storage_failure_fails_open_by_default(target: Target) {
    let data = data_dir("rl-open");
    break_durable_storage(target, data.path());
    let host = app_with(target, data.path(), &[]);
    let reply = get_as(&client(), &format!("{}/api/config", host.url), "192.0.2.1");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("ratelimit").is_none());
    let logged = host.stderr_when(|text| text.contains("rate_limit_on_failure=open"));
    assert!(
        logged
            .lines()
            .any(|line| line.contains("rate_limit_on_failure=open")
                && serde_json::from_str::<serde_json::Value>(line).is_ok()),
        "stderr: {logged}"
    );
}

fn storage_failure_fails_closed_when_configured(target: Target) {
    let data = data_dir("rl-closed");
    break_durable_storage(target, data.path());
    let host = app_with(target, data.path(), &[("rate_limit_on_failure", "closed")]);
    let reply = get_as(&client(), &format!("{}/api/config", host.url), "192.0.2.1");
    reply.assert_problem(503, "rate-limit-unavailable");
    // Liveness stays up.
    assert_eq!(
        get_as(&client(), &format!("{}/healthz", host.url), "192.0.2.1").status,
        200
    );
}

/// A session's quota follows its subject, not its address: two users behind
/// one address have a quota each, and one user on two addresses shares one.
#[test]
fn sessions_are_limited_by_subject_not_address() {
    let data = data_dir("rl-subject");
    let host = app_with(
        crate::harness::one_target(),
        data.path(),
        &[
            ("rate_limit_policies", "default=1000/1h, profile=2/1h"),
            ("rate_limit_routes", "/api/user=profile"),
            ("bootstrap_admin", "root:root-password-1"),
            ("password_iterations", "1000"),
        ],
    );
    let agent = client();
    let login = |user: &str, password: &str| -> String {
        let reply = Reply::from(
            agent
                .post(&format!("{}/api/login", host.url))
                .header(CLIENT_HEADER, "192.0.2.50")
                .send(serde_json::json!({"username": user, "password": password}).to_string())
                .unwrap(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        let cookie = reply.header("set-cookie").unwrap();
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("session=")
            .to_string()
    };
    let root = login("root", "root-password-1");
    let created = Reply::from(
        agent
            .put(&format!("{}/admin/users/ada", host.url))
            .header("authorization", format!("Bearer {root}"))
            .send(r#"{"password":"ada-password-1"}"#)
            .unwrap(),
    );
    assert_eq!(created.status, 204, "{}", created.text());
    let ada = login("ada", "ada-password-1");
    let profile = |token: &str, ip: &str| {
        Reply::from(
            agent
                .get(&format!("{}/api/user", host.url))
                .header("authorization", format!("Bearer {token}"))
                .header(CLIENT_HEADER, ip)
                .call()
                .unwrap(),
        )
        .status
    };
    assert_eq!(
        [profile(&root, "192.0.2.50"), profile(&root, "192.0.2.50")],
        [200, 200]
    );
    assert_eq!(profile(&root, "192.0.2.50"), 429);
    // Same address, other user: a quota of its own.
    assert_eq!(profile(&ada, "192.0.2.50"), 200);
    // Same user, other address: still the same quota.
    assert_eq!(profile(&root, "198.51.100.77"), 429);
    // Anonymous callers from that address are limited by address, apart.
    let anonymous = get_as(&agent, &format!("{}/api/user", host.url), "192.0.2.50");
    anonymous.assert_problem(401, "unauthenticated");
}

on_both_targets!(the_default_key_is_what_the_runtime_knows_of_the_client);

/// Without `rate_limit_client_header`: on Spin the key is
/// `spin-client-addr` without its port, so two connections from one
/// address share a quota (and a client's own `spin-client-addr` is not
/// believed); on the wasi target, which knows nothing of clients, every
/// anonymous client shares the one documented key.
fn the_default_key_is_what_the_runtime_knows_of_the_client(target: Target) {
    let data = data_dir("rl-default-key");
    let mut config = HostConfig::app(target, data.path());
    config
        .vars
        .push(("rate_limit_policies".into(), "default=2/60s".into()));
    let host = Host::start(&config);
    let url = format!("{}/api/config", host.url);
    // A fresh connection for each request: a different source port each
    // time, and a forged address that must not become a key of its own.
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            let agent = client();
            Reply::from(
                agent
                    .get(&url)
                    .header("spin-client-addr", format!("198.51.100.{i}:4000"))
                    .call()
                    .unwrap(),
            )
            .status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    let expected = match target {
        Target::Spin => "127.0.0.1",
        Target::Wasi => "unknown-client",
    };
    let logged = host.stderr_when(|text| text.matches("\"client\"").count() >= 3);
    let keys: Vec<String> = logged
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["path"] == "/api/config")
        .map(|line| line["client"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(keys, [expected, expected, expected], "{logged}");
}

on_both_targets!(the_standalone_limiter_serves_a_component_of_its_own);

/// Reuse: `examples/reuse-rate-limiter`, a Spin SDK HTTP component that
/// imports only `portico:ratelimit/limiter`, served with its own
/// `spin.toml` and the limiter plugged in as Spin plugs a dependency, gets
/// the limiter's decisions: admitted up to the policy, then `429` with the
/// IETF fields; a cost above the burst is `400 #cost-exceeds-burst`, an
/// unknown policy `400 #unknown-policy`.
fn the_standalone_limiter_serves_a_component_of_its_own(target: Target) {
    let data = data_dir("rl-standalone");
    let mut config = HostConfig::app(target, data.path());
    let reuse = &crate::harness::artifacts().reuse_rate_limiter;
    config.component = match target {
        Target::Spin => reuse[0].clone(),
        Target::Wasi => reuse[1].clone(),
    };
    config.manifest = crate::harness::workspace().join("examples/reuse-rate-limiter/spin.toml");
    config.vars = vec![("rate_limit_policies".into(), "default=3/60s".into())];
    let host = Host::start(&config);
    let check = |query: &str| {
        Reply::from(
            client()
                .get(&format!("{}/check?{query}", host.url))
                .call()
                .unwrap(),
        )
    };
    for remaining in [2, 1, 0] {
        let reply = check("key=alice");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["remaining"], remaining);
        let (_, limit) = sf_item(reply.header("ratelimit").unwrap());
        assert_eq!(limit["r"], remaining);
    }
    let refused = check("key=alice");
    assert_eq!(refused.status, 429, "{}", refused.text());
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(wait, sf_item(refused.header("ratelimit").unwrap()).1["t"]);
    // Another key has its own quota.
    assert_eq!(check("key=bob").status, 200);
    check("key=carol&cost=10").assert_problem(400, "cost-exceeds-burst");
    check("key=carol&policy=nope").assert_problem(400, "unknown-policy");
}
