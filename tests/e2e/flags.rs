//! Feature flags through the composed app: admin writes with validation,
//! OFREP single and bulk evaluation (every variant type, each custom
//! operator, shared evaluators, disabled and missing flags, ETag/304),
//! `/api/config` for a caller, deterministic A/B bucketing checked against an
//! independent MurmurHash3, and concurrent admin writes.

use std::collections::BTreeMap;

use portico::serve::Target;
use serde_json::{Value, json};

use crate::harness::{Host, Reply, client, data_dir, get, workspace};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "root-password-1";

struct App {
    host: Host,
    admin: String,
    _data: tempfile::TempDir,
}

fn start(target: Target) -> App {
    let data = data_dir("flags");
    let config = crate::harness::app_with_admin(target, data.path(), ADMIN, ADMIN_PASSWORD);
    let host = Host::start(&config);
    let login = Reply::from(
        client()
            .post(&format!("{}/api/login", host.url))
            .send(json!({"username": ADMIN, "password": ADMIN_PASSWORD}).to_string())
            .unwrap(),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let admin = login.json()["jti"].as_str().map(|_| {
        let cookie = login.header("set-cookie").unwrap();
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("session=")
            .to_string()
    });
    App {
        host,
        admin: admin.unwrap(),
        _data: data,
    }
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host.url)
    }

    fn admin_send(&self, method: &str, path: &str, body: &str) -> Reply {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {}", self.admin))
            .header("content-type", "application/json")
            .body(body.to_string())
            .unwrap();
        Reply::from(client().run(request).unwrap())
    }

    fn ofrep(&self, key: &str, context: Value) -> Reply {
        Reply::from(
            client()
                .post(&self.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
                .send(json!({"context": context}).to_string())
                .unwrap(),
        )
    }
}

fn fixture() -> String {
    std::fs::read_to_string(workspace().join("crates/flags-logic/tests/fixtures/flags.json"))
        .unwrap()
}

on_both_targets!(
    definitions_are_validated_stored_and_evaluated_over_ofrep,
    numbers_and_strings_convert_as_in_javascript,
    costly_evaluations_are_bounded,
    a_held_write_lease_makes_a_single_flag_write_409_after_3_s,
);

fn definitions_are_validated_stored_and_evaluated_over_ofrep(target: Target) {
    let app = start(target);
    assert_eq!(
        app.admin_send("PUT", "/admin/flags", &fixture()).status,
        204
    );
    let stored = app.admin_send("GET", "/admin/flags", "").json();
    assert_eq!(stored["flags"]["bool-static"]["defaultVariant"], "on");

    // (flag, context, value, variant, reason)
    let cases = [
        (
            "bool-static",
            json!({"targetingKey": "u1"}),
            json!(true),
            "on",
            "STATIC",
        ),
        (
            "string-static",
            json!({"targetingKey": "u1"}),
            json!("#00f"),
            "blue",
            "STATIC",
        ),
        ("int-static", json!({}), json!(10), "ten", "STATIC"),
        ("float-static", json!({}), json!(0.5), "half", "STATIC"),
        (
            "object-static",
            json!({}),
            json!({"limit": 5, "tags": ["x"]}),
            "small",
            "STATIC",
        ),
        (
            "bool-targeted",
            json!({"tier": "gold"}),
            json!(true),
            "true",
            "TARGETING_MATCH",
        ),
        (
            "bool-targeted",
            json!({"tier": "silver"}),
            json!(false),
            "false",
            "TARGETING_MATCH",
        ),
        (
            "starts-with",
            json!({"ip": "10.1.2.3"}),
            json!("internal"),
            "internal",
            "TARGETING_MATCH",
        ),
        (
            "starts-with",
            json!({"ip": "192.0.2.1"}),
            json!("external"),
            "external",
            "DEFAULT",
        ),
        (
            "ends-with",
            json!({"email": "ada@example.com"}),
            json!(1),
            "staff",
            "TARGETING_MATCH",
        ),
        (
            "ends-with",
            json!({"email": "ada@example.org"}),
            json!(0),
            "public",
            "TARGETING_MATCH",
        ),
        (
            "semver",
            json!({"appVersion": "2.3.0"}),
            json!("new"),
            "new",
            "TARGETING_MATCH",
        ),
        (
            "semver",
            json!({"appVersion": "v2.0.7"}),
            json!("patch"),
            "patch",
            "TARGETING_MATCH",
        ),
        (
            "semver",
            json!({"appVersion": "1.9.0"}),
            json!("old"),
            "old",
            "DEFAULT",
        ),
        (
            "ref-flag",
            json!({"email": "x@example.com", "appVersion": "3.2.0"}),
            json!(true),
            "on",
            "TARGETING_MATCH",
        ),
        (
            "ref-flag",
            json!({"email": "x@example.com", "appVersion": "4.0.0"}),
            json!(false),
            "off",
            "DEFAULT",
        ),
        (
            "timestamp-flag",
            json!({}),
            json!("after"),
            "after",
            "TARGETING_MATCH",
        ),
        (
            "flagkey-flag",
            json!({}),
            json!("yes"),
            "yes",
            "TARGETING_MATCH",
        ),
    ];
    for (flag, context, value, variant, reason) in cases {
        let reply = app.ofrep(flag, context.clone());
        assert_eq!(reply.status, 200, "{flag} {context}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["key"], flag);
        assert_eq!(body["value"], value, "{flag} {context}: {body}");
        assert_eq!(body["variant"], variant, "{flag} {context}: {body}");
        assert_eq!(body["reason"], reason, "{flag} {context}: {body}");
    }
    let metadata = app.ofrep("string-static", json!({})).json();
    assert_eq!(metadata["metadata"]["owner"], "web");

    let disabled = app.ofrep("disabled-flag", json!({}));
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.json()["reason"], "DISABLED");
    assert!(disabled.json().get("value").is_none());

    let missing = app.ofrep("no-such-flag", json!({}));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errorCode"], "FLAG_NOT_FOUND");

    let bad_context = Reply::from(
        client()
            .post(&app.url("/ofrep/v1/evaluate/flags/bool-static"))
            .send(r#"{"context": [1]}"#)
            .unwrap(),
    );
    assert_eq!(bad_context.status, 400);
    assert_eq!(bad_context.json()["errorCode"], "INVALID_CONTEXT");
    let not_json = Reply::from(
        client()
            .post(&app.url("/ofrep/v1/evaluate/flags/bool-static"))
            .send("{")
            .unwrap(),
    );
    assert_eq!(
        (not_json.status, not_json.json()["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );

    // Bulk, with an entity tag that turns a repeat into 304.
    let bulk_url = app.url("/ofrep/v1/evaluate/flags");
    let bulk = Reply::from(
        client()
            .post(&bulk_url)
            .send(r#"{"context":{"targetingKey":"u1"}}"#)
            .unwrap(),
    );
    assert_eq!(bulk.status, 200);
    let flags = bulk.json()["flags"].as_array().unwrap().len();
    assert_eq!(flags, stored["flags"].as_object().unwrap().len());
    let etag = bulk.header("etag").unwrap().to_string();
    let again = Reply::from(
        client()
            .post(&bulk_url)
            .header("if-none-match", &etag)
            .send(r#"{"context":{"targetingKey":"u1"}}"#)
            .unwrap(),
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = Reply::from(
        client()
            .post(&bulk_url)
            .header("if-none-match", &etag)
            .send(r#"{"context":{"targetingKey":"u1","tier":"gold"}}"#)
            .unwrap(),
    );
    assert_eq!(other.status, 200, "a different answer has a different tag");

    // Invalid definitions are refused, pointing at the flag and field, and
    // the previous set stays in force.
    let mut broken: Value = serde_json::from_str(&fixture()).unwrap();
    broken["flags"]["bool-static"]["defaultVariant"] = json!("maybe");
    let refused = app.admin_send("PUT", "/admin/flags", &broken.to_string());
    let body = refused.assert_problem(400, "invalid-flag-definitions");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("bool-static") && detail.contains("defaultVariant"),
        "{detail}"
    );
    for bad in [
        "not json",
        "[]",
        r#"{"flags":{"x":{"state":"ON","variants":{"a":1},"defaultVariant":"a"}}}"#,
    ] {
        app.admin_send("PUT", "/admin/flags", bad)
            .assert_problem(400, "invalid-flag-definitions");
    }
    let mixed_types =
        json!({"state": "ENABLED", "variants": {"a": 1, "b": "two"}, "defaultVariant": "a"});
    app.admin_send("PATCH", "/admin/flags/mixed", &mixed_types.to_string())
        .assert_problem(400, "invalid-flag-definitions");
    assert_eq!(
        app.ofrep("bool-static", json!({})).json()["value"],
        json!(true)
    );

    // One flag can be changed or removed on its own.
    let off = json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"});
    assert_eq!(
        app.admin_send("PATCH", "/admin/flags/bool-static", &off.to_string())
            .status,
        204
    );
    assert_eq!(
        app.ofrep("bool-static", json!({})).json()["value"],
        json!(false)
    );
    assert_eq!(
        app.admin_send("PATCH", "/admin/flags/bool-static", "null")
            .status,
        204
    );
    assert_eq!(app.ofrep("bool-static", json!({})).status, 404);

    // Flag administration is for admins only.
    let anonymous = Reply::from(
        client()
            .put(&app.url("/admin/flags"))
            .send(fixture())
            .unwrap(),
    );
    anonymous.assert_problem(401, "unauthenticated");
}

/// MurmurHash3 x86 32-bit, written here from the reference algorithm,
/// independent of the implementation under test.
fn murmur3(data: &[u8], seed: u32) -> u32 {
    let (c1, c2) = (0xcc9e_2d51u32, 0x1b87_3593u32);
    let mut h = seed;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let mut k = 0u32;
    for (i, byte) in tail.iter().enumerate() {
        k |= u32::from(*byte) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// flagd's rule: bucket = (hash * total) >> 32 against cumulative weights.
fn expected_variant(bucketing: &str, weights: &[(&'static str, u64)]) -> &'static str {
    let total: u64 = weights.iter().map(|(_, w)| w).sum();
    let bucket = (u64::from(murmur3(bucketing.as_bytes(), 0)) * total) >> 32;
    let mut cumulative = 0;
    for (name, weight) in weights {
        cumulative += weight;
        if bucket < cumulative {
            return name;
        }
    }
    unreachable!("bucket {bucket} beyond total {total}")
}

#[test]
fn fractional_assignment_is_deterministic_and_matches_the_weights() {
    let app = start(crate::harness::one_target());
    let definitions = json!({"flags": {
        "checkout": {
            "state": "ENABLED",
            "variants": {"red": "red", "green": "green", "blue": "blue"},
            "defaultVariant": "red",
            "targeting": {"fractional": [["red", 10], ["green", 20], ["blue", 70]]}
        },
        "edges": {
            "state": "ENABLED",
            "variants": {"lower": "lower", "upper": "upper"},
            "defaultVariant": "lower",
            "targeting": {"fractional": [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]}
        }
    }});
    assert_eq!(
        app.admin_send("PUT", "/admin/flags", &definitions.to_string())
            .status,
        204
    );

    // Keys whose MurmurHash3 is exactly a bucket boundary (flagd-testbed).
    for (key, hash) in [
        ("ejOoVL", 0u32),
        ("SI7p-", 0x7fff_ffff),
        ("6LvT0", 0x8000_0000),
        ("ceQdGm", 0xffff_ffff),
    ] {
        assert_eq!(murmur3(key.as_bytes(), 0), hash, "{key}");
        let want = expected_variant(key, &[("lower", 50), ("upper", 50)]);
        let got = app.ofrep("edges", json!({"targetingKey": key})).json();
        assert_eq!(got["variant"], want, "{key}");
        assert_eq!(got["reason"], "SPLIT");
    }

    let weights = [("red", 10), ("green", 20), ("blue", 70)];
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let agent = client();
    let url = app.url("/ofrep/v1/evaluate/flags/checkout");
    for i in 0..10_000 {
        let user = format!("user-{i}");
        let reply = Reply::from(
            agent
                .post(&url)
                .send(json!({"context": {"targetingKey": user}}).to_string())
                .unwrap(),
        );
        let variant = reply.json()["variant"].as_str().unwrap().to_string();
        // Bucketing is on flag key + targeting key.
        assert_eq!(
            variant,
            expected_variant(&format!("checkout{user}"), &weights),
            "{user}"
        );
        *counts.entry(variant).or_default() += 1;
    }
    for (name, weight) in weights {
        let share = f64::from(counts[name]) / 10_000.0;
        assert!(
            (share - weight as f64 / 100.0).abs() < 0.02,
            "{name}: {share} vs {weight}%"
        );
    }
    // The same key always lands in the same bucket.
    let first = app
        .ofrep("checkout", json!({"targetingKey": "user-42"}))
        .json()["variant"]
        .clone();
    for _ in 0..5 {
        assert_eq!(
            app.ofrep("checkout", json!({"targetingKey": "user-42"}))
                .json()["variant"],
            first
        );
    }
}

#[test]
fn api_config_and_ab_evaluate_for_the_caller() {
    let app = start(Target::Wasi);
    let definitions = json!({"flags": {
        "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "targetingKey"}, ADMIN]}, "on", null]}},
        "banner": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a",
            "targeting": {"fractional": [["a", 50], ["b", 50]]}}
    }});
    assert_eq!(
        app.admin_send("PUT", "/admin/flags", &definitions.to_string())
            .status,
        204
    );

    // Anonymous: a stable id cookie is handed out and used as targeting key.
    let first = get(&app.url("/api/config"));
    assert_eq!(first.status, 200, "{}", first.text());
    let cookie = first.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.starts_with("pid=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pid = cookie.split(';').next().unwrap().to_string();
    let body = first.json();
    assert_eq!(body["flags"]["new-checkout"]["value"], json!(false));
    let key = body["targetingKey"].as_str().unwrap().to_string();
    let again = Reply::from(
        client()
            .get(&app.url("/api/config"))
            .header("cookie", &pid)
            .call()
            .unwrap(),
    );
    assert_eq!(again.json()["targetingKey"], key.as_str());
    assert!(again.header("set-cookie").is_none());
    let ab = Reply::from(
        client()
            .get(&app.url("/api/ab/banner"))
            .header("cookie", &pid)
            .call()
            .unwrap(),
    );
    assert_eq!(ab.status, 200);
    let want = expected_variant(&format!("banner{key}"), &[("a", 50), ("b", 50)]);
    assert_eq!(ab.json()["variant"], want);
    assert_eq!(ab.json()["value"], want.to_uppercase());

    // With a session the subject is the targeting key.
    let mine = Reply::from(
        client()
            .get(&app.url("/api/config"))
            .header("authorization", format!("Bearer {}", app.admin))
            .call()
            .unwrap(),
    );
    assert_eq!(mine.json()["targetingKey"], ADMIN);
    assert_eq!(mine.json()["flags"]["new-checkout"]["value"], json!(true));
    assert!(mine.header("vary").unwrap().contains("cookie"));

    get(&app.url("/api/ab/no-such-experiment")).assert_problem(404, "experiment-unavailable");
}

#[test]
fn concurrent_admin_writes_lose_nothing() {
    let app = start(Target::Wasi);
    assert_eq!(
        app.admin_send("PUT", "/admin/flags", r#"{"flags":{}}"#)
            .status,
        204
    );
    std::thread::scope(|scope| {
        for i in 0..12 {
            let app = &app;
            scope.spawn(move || {
                let flag = json!({"state": "ENABLED", "variants": {"v": i}, "defaultVariant": "v"});
                // Bounded: a lease that never frees fails the test instead
                // of hanging the suite.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                loop {
                    let reply =
                        app.admin_send("PATCH", &format!("/admin/flags/f{i}"), &flag.to_string());
                    match reply.status {
                        204 => break,
                        409 if std::time::Instant::now() < deadline => {
                            std::thread::sleep(std::time::Duration::from_millis(20))
                        }
                        409 => panic!("f{i}: still 409 after 60 s: {}", reply.text()),
                        other => panic!("unexpected {other}: {}", reply.text()),
                    }
                }
            });
        }
    });
    let stored = app.admin_send("GET", "/admin/flags", "").json();
    let keys: Vec<&String> = stored["flags"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 12, "{keys:?}");
    for i in 0..12 {
        assert_eq!(
            app.ofrep(&format!("f{i}"), json!({})).json()["value"],
            json!(i)
        );
    }
}

#[test]
fn sticky_overrides_force_a_variant_until_removed_or_expired() {
    let app = start(crate::harness::one_target());
    let definitions = json!({"flags": {
        "banner": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a",
            "targeting": {"fractional": [["a", 50], ["b", 50]]}}
    }});
    assert_eq!(
        app.admin_send("PUT", "/admin/flags", &definitions.to_string())
            .status,
        204
    );
    let user = "user-override-1";
    let natural = expected_variant(&format!("banner{user}"), &[("a", 50), ("b", 50)]);
    let forced = if natural == "a" { "b" } else { "a" };
    let variant_of = |app: &App| app.ofrep("banner", json!({"targetingKey": user})).json();
    assert_eq!(variant_of(&app)["variant"], natural);

    let path = format!("/admin/ab/banner/{user}");
    assert_eq!(
        app.admin_send("PUT", &path, &json!({"variant": forced}).to_string())
            .status,
        204
    );
    let answer = variant_of(&app);
    assert_eq!(answer["variant"], forced);
    assert_eq!(answer["value"], forced.to_uppercase());
    assert_eq!(answer["metadata"]["override"], json!(true));
    let bulk = Reply::from(
        client()
            .post(&app.url("/ofrep/v1/evaluate/flags"))
            .send(json!({"context": {"targetingKey": user}}).to_string())
            .unwrap(),
    )
    .json();
    assert_eq!(bulk["flags"][0]["variant"], forced);
    // Other callers are not affected.
    assert_eq!(
        app.ofrep("banner", json!({"targetingKey": "someone-else"}))
            .json()["variant"],
        expected_variant("bannersomeone-else", &[("a", 50), ("b", 50)])
    );

    app.admin_send("PUT", &path, &json!({"variant": "zzz"}).to_string())
        .assert_problem(400, "invalid-flag-definitions");
    assert_eq!(app.admin_send("DELETE", &path, "").status, 204);
    assert_eq!(variant_of(&app)["variant"], natural);

    // An override with a TTL lapses by itself: 3 s, read back well within
    // it, then the lapse waited for (bounded), not slept for.
    let written = std::time::Instant::now();
    assert_eq!(
        app.admin_send(
            "PUT",
            &path,
            &json!({"variant": forced, "ttl_seconds": 3}).to_string()
        )
        .status,
        204
    );
    assert_eq!(variant_of(&app)["variant"], forced);
    assert!(
        written.elapsed() < std::time::Duration::from_secs(3),
        "read back too late"
    );
    let deadline = written + std::time::Duration::from_secs(15);
    while variant_of(&app)["variant"] != natural && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(variant_of(&app)["variant"], natural);
    assert!(
        written.elapsed() >= std::time::Duration::from_secs(3),
        "lapsed early"
    );
}

#[test]
fn flags_command_changes_a_running_server() {
    let app = start(Target::Wasi);
    let dir = data_dir("flags-cli");
    let file = dir.path().join("flags.json");
    std::fs::write(&file, fixture()).unwrap();
    let portico = |args: &[&str], token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("flags")
            .args(args)
            .args(["--url", &app.host.url])
            .env("PORTICO_TOKEN", token)
            .output()
            .unwrap()
    };
    let set = portico(&["set", file.to_str().unwrap()], &app.admin);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(
        app.ofrep("bool-static", json!({})).json()["reason"],
        "STATIC"
    );
    let disable = portico(&["disable", "bool-static"], &app.admin);
    assert!(
        disable.status.success(),
        "{}",
        String::from_utf8_lossy(&disable.stderr)
    );
    assert_eq!(
        app.ofrep("bool-static", json!({})).json()["reason"],
        "DISABLED"
    );
    let listed = portico(&["get"], &app.admin);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["flags"]["bool-static"]["state"], "DISABLED");
    let enable = portico(&["enable", "bool-static"], &app.admin);
    assert!(enable.status.success());
    assert_eq!(
        app.ofrep("bool-static", json!({})).json()["reason"],
        "STATIC"
    );
    // Without admin rights the command fails and says why.
    let refused = portico(&["get"], "not-a-token");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// JSONLogic's coercions are JavaScript's, through the component: a number
/// becomes the string `String(x)` gives (`1e-7`, `1.5e+21`), and a string
/// the number `Number(s)` gives (`+1.7e1` is 17, `18px` is NaN).
fn numbers_and_strings_convert_as_in_javascript(target: Target) {
    let app = start(target);
    let flags = json!({"flags": {"coerce": {
        "state": "ENABLED",
        "variants": {"tiny": "tiny", "huge": "huge", "minor": "minor", "plain": "plain"},
        "defaultVariant": "plain",
        "targeting": {"if": [
            {"==": [{"cat": [{"var": "score"}]}, "1e-7"]}, "tiny",
            {"==": [{"cat": [{"var": "score"}]}, "1.5e+21"]}, "huge",
            {"<": [{"var": "age"}, 18]}, "minor",
            "plain"
        ]}
    }}});
    let put = app.admin_send("PUT", "/admin/flags", &flags.to_string());
    assert_eq!(put.status, 204, "{}", put.text());
    for (context, variant) in [
        (json!({"score": 1e-7, "age": 30}), "tiny"),
        (json!({"score": 1.5e21, "age": 30}), "huge"),
        (json!({"score": 0.25, "age": "+1.7e1"}), "minor"),
        (json!({"score": 0.25, "age": " 17 "}), "minor"),
        (json!({"score": 0.25, "age": "18px"}), "plain"),
        (json!({"score": 0.25, "age": "1e400"}), "plain"),
    ] {
        let reply = app.ofrep("coerce", context.clone());
        assert_eq!(reply.status, 200, "{context}: {}", reply.text());
        assert_eq!(reply.json()["variant"], variant, "{context}");
    }
}

/// A public OFREP call cannot buy seconds of CPU: contexts are capped in
/// size and attributes, a bulk evaluation shares one work budget across its
/// flags, and a rule that merges a growing accumulator over a public array
/// (quadratic work in few rule nodes) runs out of budget instead of the CPU.
/// Every answer is a clear one, and the server keeps serving.
fn costly_evaluations_are_bounded(target: Target) {
    let app = start(target);
    let mut flags = serde_json::Map::new();
    for i in 0..49 {
        flags.insert(
            format!("plain-{i:02}"),
            json!({
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"in": ["needle", {"var": "xs"}]}, "on", "off"]}
            }),
        );
    }
    flags.insert(
        "quadratic".into(),
        json!({
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"if": [
                {"reduce": [
                    {"var": "xs"},
                    {"merge": [{"var": "accumulator"}, [{"var": "current"}]]},
                    []
                ]},
                "on", "off"
            ]}
        }),
    );
    let put = app.admin_send("PUT", "/admin/flags", &json!({"flags": flags}).to_string());
    assert!(put.status == 200 || put.status == 204, "{}", put.text());

    // The largest context the endpoint takes: a ~60 KiB public array.
    let xs: Vec<Value> = (0..12_000).map(|i| json!(i)).collect();
    let body = json!({"context": {"targetingKey": "u", "xs": xs}}).to_string();
    assert!(body.len() < 64 * 1024, "{}", body.len());
    let quadratic = app.ofrep("quadratic", json!({"targetingKey": "u", "xs": xs}));
    assert_eq!(quadratic.status, 400, "{}", quadratic.text());
    let answer = quadratic.json();
    assert_eq!(answer["errorCode"], "GENERAL", "{answer}");
    assert!(
        answer["errorDetails"]
            .as_str()
            .is_some_and(|d| d.contains("budget")),
        "{answer}"
    );

    let bulk = Reply::from(
        client()
            .post(&app.url("/ofrep/v1/evaluate/flags"))
            .send(body.clone())
            .unwrap(),
    );
    assert_eq!(bulk.status, 200, "{}", bulk.text());
    let results = bulk.json()["flags"].as_array().cloned().unwrap();
    assert_eq!(results.len(), 50);
    let answered = results
        .iter()
        .filter(|r| r["value"] == json!(false) && r.get("errorCode").is_none())
        .count();
    let out_of_budget = results
        .iter()
        .filter(|r| {
            r["errorDetails"]
                .as_str()
                .is_some_and(|d| d.contains("budget"))
        })
        .count();
    assert!(answered > 0, "some flags are answered: {results:?}");
    assert!(out_of_budget > 0, "the shared budget ran out: {results:?}");
    assert_eq!(answered + out_of_budget, 50, "{results:?}");

    // Too many attributes: a clear 400, not an evaluation.
    let many: serde_json::Map<String, Value> =
        (0..300).map(|i| (format!("a{i}"), json!(i))).collect();
    let refused = app.ofrep("plain-00", Value::Object(many));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["errorCode"], "INVALID_CONTEXT");

    let health = get(&app.url("/healthz"));
    assert_eq!(health.status, 200);
    let config = get(&app.url("/api/config"));
    assert_eq!(config.status, 200, "{}", config.text());
}

/// Holds the flag set's write lease (durable `flags/write-lease`) as a
/// writer that is still working would, for `ttl_ms`, written straight into
/// the data folder in the adapter's own format. Returns when it expires
/// (Unix ms).
fn hold_flag_lease(target: Target, data: &std::path::Path, ttl_ms: u64) -> u64 {
    let now_ms = unix_ms();
    match target {
        Target::Spin => {
            let db = rusqlite::Connection::open(data.join("sqlite_db.db")).unwrap();
            db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            db.execute(
                "INSERT OR REPLACE INTO portico_durable (ns, id, value, version, expires_at) \
                 VALUES ('flags', 'write-lease', x'', 1000, ?1)",
                [(now_ms + ttl_ms) as i64],
            )
            .unwrap();
        }
        Target::Wasi => {
            use portico_storage_format::names::to_file_name;
            let dir = data.join("wasi/durable").join(to_file_name("flags"));
            std::fs::create_dir_all(&dir).unwrap();
            let record = portico_storage_format::record::encode(1000, Some(now_ms + ttl_ms), b"");
            std::fs::write(dir.join(to_file_name("write-lease")), record).unwrap();
        }
    }
    now_ms + ttl_ms
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A single-flag write waits for the lease another writer holds, for 3 s,
/// then answers `409 #flag-write-in-progress`; once the lease is gone
/// (here: it expires) the write goes through.
fn a_held_write_lease_makes_a_single_flag_write_409_after_3_s(target: Target) {
    let app = start(target);
    let flag = json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"});
    let patch = || app.admin_send("PATCH", "/admin/flags/leased", &flag.to_string());
    assert_eq!(
        patch().status,
        204,
        "a first write creates the durable store"
    );
    let expires_at = hold_flag_lease(target, app._data.path(), 8_000);
    let began = std::time::Instant::now();
    patch().assert_problem(409, "flag-write-in-progress");
    let waited = began.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(3),
        "answered 409 after {waited:?}, before its 3 s wait"
    );
    // The held lease expires by itself (8 s); then the write succeeds.
    let deadline = began + std::time::Duration::from_secs(30);
    let mut status = patch().status;
    while status == 409 && std::time::Instant::now() < deadline {
        status = patch().status;
    }
    assert_eq!(status, 204);
    let now = unix_ms();
    assert!(
        now >= expires_at,
        "the write went through {} ms before the held lease expired",
        expires_at - now
    );
}

on_both_targets!(the_flag_evaluator_serves_a_component_of_its_own);

/// Reuse: `examples/reuse-flags`, a Spin SDK HTTP component that imports
/// only `portico:flags/evaluator`, served with its own `spin.toml` and the
/// evaluator plugged in as Spin plugs a dependency: an invalid flag set is
/// refused naming the flag, a 50/50 experiment gives each user one variant
/// (the same every time) and splits 400 users near evenly, a static flag
/// answers its default, and an unknown flag is OFREP's `FLAG_NOT_FOUND`.
fn the_flag_evaluator_serves_a_component_of_its_own(target: Target) {
    let data = data_dir("flags-reuse");
    let mut config = crate::harness::HostConfig::app(target, data.path());
    let reuse = &crate::harness::artifacts().reuse_flags;
    config.component = match target {
        Target::Spin => reuse[0].clone(),
        Target::Wasi => reuse[1].clone(),
    };
    config.manifest = workspace().join("examples/reuse-flags/spin.toml");
    config.vars = Vec::new();
    let host = Host::start(&config);
    let put = |document: &Value| {
        Reply::from(
            client()
                .put(&format!("{}/flags", host.url))
                .header("content-type", "application/json")
                .send(document.to_string().as_bytes())
                .unwrap(),
        )
    };
    let invalid = json!({"flags": {"broken": {
        "state": "ENABLED", "variants": {"on": true}, "defaultVariant": "missing"}}});
    let refused = put(&invalid);
    refused.assert_problem(400, "invalid-flag-definitions");
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "the problem names the flag: {}",
        refused.text()
    );
    let set = json!({"flags": {
        "new-checkout": {
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"fractional": [["on", 50], ["off", 50]]}
        },
        "dark-mode": {"state": "ENABLED", "variants": {"yes": true, "no": false}, "defaultVariant": "yes"}
    }});
    assert_eq!(put(&set).status, 204);
    let variant = |flag: &str, user: &str| {
        Reply::from(
            client()
                .get(&format!("{}/variant?flag={flag}&user={user}", host.url))
                .call()
                .unwrap(),
        )
    };
    let mut on = 0;
    for n in 0..400 {
        let user = format!("user-{n}");
        let reply = variant("new-checkout", &user);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let answer = reply.json();
        let chosen = answer["variant"].as_str().unwrap().to_string();
        assert_eq!(answer["value"], json!(chosen == "on"), "{answer}");
        // OpenFeature: a pseudorandom assignment is reason SPLIT.
        assert_eq!(answer["reason"], "SPLIT", "{answer}");
        if n % 40 == 0 {
            let again = variant("new-checkout", &user).json();
            assert_eq!(
                again["variant"], answer["variant"],
                "{user} keeps one variant"
            );
        }
        on += usize::from(chosen == "on");
    }
    assert!((160..=240).contains(&on), "{on} of 400 users got \"on\"");
    let dark = variant("dark-mode", "user-1").json();
    assert_eq!(
        (
            dark["value"].clone(),
            dark["variant"].clone(),
            dark["reason"].clone()
        ),
        (json!(true), json!("yes"), json!("STATIC"))
    );
    let missing = variant("nope", "user-1");
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(missing.json()["errorCode"], "FLAG_NOT_FOUND");
}
