//! The platform conformance suite: the same operations against
//! `platform-spin` (Spin KV + SQLite in the host) and `platform-wasi` (files
//! under a preopened directory), through the probe fixture.

use std::time::Duration;

use portico::serve::Target;

use crate::harness::{API_TOKEN, Host, HostConfig, Reply, client, data_dir, get};

fn probe(target: Target) -> (Host, tempfile::TempDir) {
    let data = data_dir("probe");
    let host = Host::start(&HostConfig::probe(target, data.path()));
    (host, data)
}

fn put(url: &str, body: &[u8]) -> Reply {
    Reply::from(client().put(url).send(body).expect("PUT"))
}

fn post(url: &str, body: &[u8]) -> Reply {
    Reply::from(client().post(url).send(body).expect("POST"))
}

fn delete(url: &str) -> Reply {
    Reply::from(client().delete(url).call().expect("DELETE"))
}

fn version(reply: &Reply) -> Option<u64> {
    reply.header("x-version").map(|v| v.parse().unwrap())
}

on_both_targets!(
    kv_set_get_delete,
    kv_ttl_expires_entries,
    kv_lists_live_keys_by_prefix,
    kv_round_trips_a_one_mebibyte_value,
    durable_compare_and_swap_creates_updates_and_conflicts,
    durable_record_with_ttl_expires_and_can_be_recreated,
    durable_concurrent_increments_lose_no_update,
    durable_sweep_removes_only_expired_records,
    config_reads_variables,
    data_survives_a_restart,
);

fn kv_set_get_delete(target: Target) {
    let (host, _data) = probe(target);
    let url = format!("{}/kv/users/ada", host.url);
    assert_eq!(get(&url).status, 404);
    assert_eq!(put(&url, b"first").status, 204);
    assert_eq!(get(&url).body, b"first");
    assert_eq!(put(&url, b"second").status, 204);
    assert_eq!(get(&url).body, b"second");
    assert_eq!(delete(&url).status, 204);
    assert_eq!(get(&url).status, 404);
    // Deleting what is not there is not an error.
    assert_eq!(delete(&url).status, 204);
}

fn kv_ttl_expires_entries(target: Target) {
    let (host, _data) = probe(target);
    let short = format!("{}/kv/cache/short", host.url);
    let long = format!("{}/kv/cache/long", host.url);
    assert_eq!(
        put(&format!("{short}?ttl_ms=400"), b"soon gone").status,
        204
    );
    assert_eq!(put(&format!("{long}?ttl_ms=600000"), b"stays").status, 204);
    assert_eq!(get(&short).body, b"soon gone");
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(get(&short).status, 404, "expired entry must read as absent");
    assert_eq!(get(&long).body, b"stays");
    let keys = get(&format!("{}/kv?prefix=cache/", host.url)).json();
    assert_eq!(keys, serde_json::json!(["cache/long"]));
    // Setting again without a TTL makes it permanent.
    assert_eq!(put(&short, b"back").status, 204);
    assert_eq!(get(&short).body, b"back");
}

fn kv_lists_live_keys_by_prefix(target: Target) {
    let (host, _data) = probe(target);
    for key in ["flags/b", "flags/a", "users/x", "flagsx", "flags/c/d"] {
        assert_eq!(
            put(&format!("{}/kv/{key}", host.url), key.as_bytes()).status,
            204
        );
    }
    let keys = get(&format!("{}/kv?prefix=flags/", host.url)).json();
    assert_eq!(keys, serde_json::json!(["flags/a", "flags/b", "flags/c/d"]));
    let all = get(&format!("{}/kv?prefix=", host.url)).json();
    assert_eq!(all.as_array().unwrap().len(), 5);
    assert_eq!(
        get(&format!("{}/kv?prefix=none/", host.url)).json(),
        serde_json::json!([])
    );
}

fn kv_round_trips_a_one_mebibyte_value(target: Target) {
    let (host, _data) = probe(target);
    let value: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let url = format!("{}/kv/assets/big", host.url);
    assert_eq!(put(&url, &value).status, 204);
    let back = get(&url);
    assert_eq!(back.status, 200);
    assert_eq!(back.body.len(), value.len());
    assert!(back.body == value, "1 MiB value changed in storage");
}

fn durable_compare_and_swap_creates_updates_and_conflicts(target: Target) {
    let (host, _data) = probe(target);
    let record = format!("{}/durable/counters/c1", host.url);
    assert_eq!(get(&record).status, 404);

    let created = post(&format!("{record}?expected=none"), b"v1");
    assert_eq!(created.status, 200);
    assert_eq!(version(&created), Some(1));

    // Creating again conflicts and reports the current record.
    let again = post(&format!("{record}?expected=none"), b"other");
    assert_eq!(again.status, 409);
    assert_eq!(version(&again), Some(1));
    assert_eq!(again.body, b"v1");

    let updated = post(&format!("{record}?expected=1"), b"v2");
    assert_eq!(updated.status, 200);
    assert_eq!(version(&updated), Some(2));

    // A stale version loses.
    let stale = post(&format!("{record}?expected=1"), b"lost");
    assert_eq!(stale.status, 409);
    assert_eq!(version(&stale), Some(2));
    assert_eq!(stale.body, b"v2");

    let loaded = get(&record);
    assert_eq!((loaded.status, version(&loaded)), (200, Some(2)));
    assert_eq!(loaded.body, b"v2");

    // Updating a record that does not exist conflicts with nothing.
    let missing = post(
        &format!("{}/durable/counters/none?expected=3", host.url),
        b"x",
    );
    assert_eq!(missing.status, 409);
    assert_eq!(version(&missing), None);

    assert_eq!(delete(&record).status, 204);
    assert_eq!(get(&record).status, 404);
    assert_eq!(post(&format!("{record}?expected=none"), b"v3").status, 200);
}

fn durable_record_with_ttl_expires_and_can_be_recreated(target: Target) {
    let (host, _data) = probe(target);
    let record = format!("{}/durable/limits/k", host.url);
    let created = post(&format!("{record}?expected=none&ttl_ms=400"), b"tat");
    assert_eq!(created.status, 200);
    assert_eq!(get(&record).status, 200);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        get(&record).status,
        404,
        "expired record must read as absent"
    );
    // The old version no longer matches: the record is gone.
    assert_eq!(post(&format!("{record}?expected=1"), b"late").status, 409);
    let recreated = post(&format!("{record}?expected=none"), b"fresh");
    assert_eq!(recreated.status, 200);
    // Versions continue past the expired record, so no stale writer can match.
    assert!(version(&recreated).unwrap() > 1);
}

/// 8 clients each add 1 to one record 50 times with load + compare-and-swap
/// retries: the total is exactly 400, whatever the interleaving.
fn durable_concurrent_increments_lose_no_update(target: Target) {
    let (host, _data) = probe(target);
    let record = format!("{}/durable/counters/shared", host.url);
    assert_eq!(post(&format!("{record}?expected=none"), b"0").status, 200);
    let conflicts = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let agent = client();
                for _ in 0..50 {
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts < 1000, "no progress");
                        let current = Reply::from(agent.get(&record).call().unwrap());
                        assert_eq!(current.status, 200, "{}", current.text());
                        let n: u64 = current.text().parse().unwrap();
                        let url = format!("{record}?expected={}", version(&current).unwrap());
                        let next = (n + 1).to_string();
                        let swapped = Reply::from(agent.post(&url).send(next.as_bytes()).unwrap());
                        match swapped.status {
                            200 => break,
                            409 => {
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            other => panic!("unexpected {other}: {}", swapped.text()),
                        }
                    }
                }
            });
        }
    });
    let last = get(&record);
    assert_eq!(last.text(), "400", "lost updates");
    assert_eq!(version(&last), Some(401));
    eprintln!(
        "{target:?}: 400 increments, {} conflicts retried",
        conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn durable_sweep_removes_only_expired_records(target: Target) {
    let (host, data) = probe(target);
    let ns = format!("{}/durable/sweepns", host.url);
    assert_eq!(
        post(&format!("{ns}/short?expected=none&ttl_ms=300"), b"a").status,
        200
    );
    assert_eq!(
        post(&format!("{ns}/long?expected=none&ttl_ms=3600000"), b"b").status,
        200
    );
    assert_eq!(
        post(&format!("{ns}/forever?expected=none"), b"c").status,
        200
    );
    assert_eq!(
        post(
            &format!(
                "{}/durable/otherns/short?expected=none&ttl_ms=300",
                host.url
            ),
            b"d"
        )
        .status,
        200
    );
    std::thread::sleep(Duration::from_millis(700));
    let swept = post(&format!("{ns}?sweep=100"), b"");
    assert_eq!((swept.status, swept.text().as_str()), (200, "1"));
    assert_eq!(get(&format!("{ns}/long")).status, 200);
    assert_eq!(get(&format!("{ns}/forever")).status, 200);
    assert_eq!(post(&format!("{ns}?sweep=100"), b"").text(), "0");
    // The expired record is gone from storage, not just hidden.
    match target {
        Target::Spin => {
            let db = rusqlite::Connection::open(data.path().join("sqlite_db.db")).unwrap();
            let rows: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM portico_durable WHERE ns = 'sweepns'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(rows, 2);
        }
        Target::Wasi => {
            let dir = data.path().join("wasi/durable/sweepns");
            let files = std::fs::read_dir(dir).unwrap().count();
            assert_eq!(files, 2);
        }
    }
    // Other namespaces are untouched by a sweep of this one.
    assert_eq!(
        post(&format!("{}/durable/otherns?sweep=100", host.url), b"").text(),
        "1"
    );
}

fn config_reads_variables(target: Target) {
    let (host, _data) = probe(target);
    let greeting = get(&format!("{}/config/greeting", host.url));
    assert_eq!((greeting.status, greeting.text().as_str()), (200, "hello"));
    let token = get(&format!("{}/config/api_token", host.url));
    assert_eq!((token.status, token.text().as_str()), (200, API_TOKEN));
    assert_eq!(get(&format!("{}/config/undeclared", host.url)).status, 404);
    // An invalid name is an error, not a lookup of something else.
    assert_eq!(get(&format!("{}/config/Bad-Name", host.url)).status, 500);
}

fn data_survives_a_restart(target: Target) {
    let data = data_dir("restart");
    let config = HostConfig::probe(target, data.path());
    {
        let host = Host::start(&config);
        assert_eq!(
            put(&format!("{}/kv/keep/me", host.url), b"kept").status,
            204
        );
        assert_eq!(
            post(
                &format!("{}/durable/ns/id?expected=none", host.url),
                b"durable"
            )
            .status,
            200
        );
    }
    let host = Host::start(&config);
    assert_eq!(get(&format!("{}/kv/keep/me", host.url)).body, b"kept");
    let record = get(&format!("{}/durable/ns/id", host.url));
    assert_eq!(
        (record.status, record.body.as_slice()),
        (200, &b"durable"[..])
    );
}

/// A lock directory left by a crashed request (older than 10 s) is taken
/// over, and the takeover is logged; the write then succeeds.
#[test]
fn wasi_adapter_recovers_a_stale_lock() {
    let data = data_dir("stale-lock");
    let dir = data.path().join("wasi/durable/locks");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = dir.join("held.lock");
    std::fs::create_dir(&lock).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let host = Host::start(&HostConfig::probe(Target::Wasi, data.path()));
    let started = std::time::Instant::now();
    let created = post(
        &format!("{}/durable/locks/held?expected=none", host.url),
        b"after crash",
    );
    assert_eq!(created.status, 200, "{}", created.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!lock.exists(), "the lock is released after the write");
    assert!(
        host.stderr().contains("taking over a stale lock"),
        "{}",
        host.stderr()
    );
}
