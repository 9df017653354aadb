//! The platform conformance suite: the same operations against
//! `platform-spin` (Spin KV + SQLite in the host) and `platform-wasi` (files
//! under a preopened directory), through the probe fixture: KV (with TTL and
//! `sweep-expired`), durable records (with data locality), counters, config.

use std::time::Duration;

use portico::serve::Target;

use crate::harness::{API_TOKEN, Host, HostConfig, Reply, client, data_dir, get};

fn probe(target: Target) -> (Host, tempfile::TempDir) {
    let data = data_dir("probe");
    let host = Host::start(&HostConfig::probe(target, data.path()));
    (host, data)
}

/// The probe with `durable_databases` set to `mapping`.
fn probe_with_locality(target: Target, mapping: &str) -> (Host, tempfile::TempDir) {
    let data = data_dir("locality");
    let mut config = HostConfig::probe(target, data.path());
    config
        .vars
        .push(("durable_databases".into(), mapping.into()));
    (Host::start(&config), data)
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
    kv_sweep_removes_exactly_the_expired_entries,
    kv_sweep_resumes_from_its_cursor,
    counters_concurrent_adds_sum_exactly,
    durable_namespace_lives_in_its_mapped_database,
    durable_databases_mistakes_are_reported,
    config_reads_variables,
    data_survives_a_restart,
);

// The key-value part of the conformance suite again, with the store on Redis.
with_kv_on_redis!(
    kv_set_get_delete,
    kv_ttl_expires_entries,
    kv_lists_live_keys_by_prefix,
    kv_round_trips_a_one_mebibyte_value,
    kv_sweep_removes_exactly_the_expired_entries,
    kv_sweep_resumes_from_its_cursor,
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
    // 3 s: long enough that a loaded machine still reads it back in time;
    // the lapse is then waited for, not slept for.
    let written = std::time::Instant::now();
    assert_eq!(
        put(&format!("{short}?ttl_ms=3000"), b"soon gone").status,
        204
    );
    assert_eq!(put(&format!("{long}?ttl_ms=600000"), b"stays").status, 204);
    assert_eq!(get(&short).body, b"soon gone");
    assert!(
        written.elapsed() < Duration::from_millis(3000),
        "read back too late to tell"
    );
    assert!(
        wait_until(|| get(&short).status == 404),
        "expired entry must read as absent"
    );
    assert!(
        written.elapsed() >= Duration::from_millis(3000),
        "expired early"
    );
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
    let written = std::time::Instant::now();
    let created = post(&format!("{record}?expected=none&ttl_ms=3000"), b"tat");
    assert_eq!(created.status, 200);
    assert_eq!(get(&record).status, 200);
    assert!(
        written.elapsed() < Duration::from_millis(3000),
        "read back too late to tell"
    );
    assert!(
        wait_until(|| get(&record).status == 404),
        "expired record must read as absent"
    );
    assert!(
        written.elapsed() >= Duration::from_millis(3000),
        "expired early"
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

/// One `kv.sweep-expired` call through the probe.
struct Swept {
    scanned: u64,
    removed: u64,
    next: Option<String>,
}

fn kv_sweep(host: &Host, prefix: &str, cursor: Option<&str>, max: u32) -> Swept {
    let mut url = format!("{}/kv?sweep={max}&prefix={prefix}", host.url);
    if let Some(cursor) = cursor {
        url.push_str(&format!("&cursor={cursor}"));
    }
    let reply = post(&url, b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    Swept {
        scanned: body["scanned"].as_u64().unwrap(),
        removed: body["removed"].as_u64().unwrap(),
        next: body["next"].as_str().map(str::to_string),
    }
}

/// The keys stored for the probe, live or expired: what a sweep reclaims.
fn stored_kv_keys(target: Target, data: &std::path::Path) -> Vec<String> {
    if let (Some(redis), Target::Spin) = (crate::harness::kv_redis(), target) {
        return redis.keys();
    }
    let mut keys: Vec<String> = match target {
        Target::Spin => {
            let db = rusqlite::Connection::open(data.join("sqlite_key_value.db")).unwrap();
            let mut statement = db
                .prepare("SELECT key FROM spin_key_value WHERE store = 'default'")
                .unwrap();
            statement
                .query_map([], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        Target::Wasi => std::fs::read_dir(data.join("wasi/kv"))
            .unwrap()
            .map(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                portico_storage_format::names::from_file_name(&name).unwrap()
            })
            .collect(),
    };
    keys.sort();
    keys
}

/// Entries set with a 1 ms TTL are deleted from storage; permanent ones and
/// those with a long TTL stay, and so do expired entries outside the prefix.
fn kv_sweep_removes_exactly_the_expired_entries(target: Target) {
    let (host, data) = probe(target);
    let set = |key: &str, ttl: Option<u64>| {
        let url = match ttl {
            Some(ttl) => format!("{}/kv/{key}?ttl_ms={ttl}", host.url),
            None => format!("{}/kv/{key}", host.url),
        };
        assert_eq!(put(&url, key.as_bytes()).status, 204);
    };
    for key in ["sweep/a", "sweep/c", "sweep/e/1", "sweep/e/2"] {
        set(key, Some(1));
    }
    set("sweep/b", None);
    set("sweep/d", Some(3_600_000));
    set("sweep/f", None);
    // Expired too, but outside the prefix (`sweepx` only shares its start).
    set("sweepx", Some(1));
    set("other/z", Some(1));
    std::thread::sleep(Duration::from_millis(50));

    let swept = kv_sweep(&host, "sweep/", None, 100);
    assert_eq!(
        (swept.scanned, swept.removed, swept.next),
        (7, 4, None),
        "one call over the whole prefix"
    );
    assert_eq!(
        stored_kv_keys(target, data.path()),
        ["other/z", "sweep/b", "sweep/d", "sweep/f", "sweepx"],
        "exactly the expired entries under the prefix are gone from storage"
    );
    for (key, status) in [("sweep/b", 200), ("sweep/d", 200), ("sweep/f", 200)] {
        assert_eq!(get(&format!("{}/kv/{key}", host.url)).status, status);
    }
    // Sweeping again finds nothing to remove.
    let again = kv_sweep(&host, "sweep/", None, 100);
    assert_eq!((again.scanned, again.removed), (3, 0));
    // The empty prefix covers everything left.
    let all = kv_sweep(&host, "", None, 100);
    assert_eq!((all.scanned, all.removed, all.next), (5, 2, None));
    assert_eq!(
        stored_kv_keys(target, data.path()),
        ["sweep/b", "sweep/d", "sweep/f"]
    );
    // A prefix with no keys, and a bad `max`.
    let none = kv_sweep(&host, "nothing/", None, 10);
    assert_eq!((none.scanned, none.removed, none.next), (0, 0, None));
    assert_eq!(
        post(&format!("{}/kv?sweep=0&prefix=sweep/", host.url), b"").status,
        500
    );
}

/// With a small `max`, each call examines at most `max` keys in ascending
/// order after the cursor, and the calls together cover the prefix once.
fn kv_sweep_resumes_from_its_cursor(target: Target) {
    let (host, data) = probe(target);
    let mut expired = Vec::new();
    for i in 0..11 {
        let key = format!("batch/{i:02}");
        // Every third entry is permanent, one has a long TTL.
        let ttl = match i {
            _ if i % 3 == 0 => String::new(),
            7 => "?ttl_ms=3600000".into(),
            _ => {
                expired.push(key.clone());
                "?ttl_ms=1".into()
            }
        };
        assert_eq!(
            put(&format!("{}/kv/{key}{ttl}", host.url), b"v").status,
            204
        );
    }
    assert_eq!(
        put(&format!("{}/kv/batcx?ttl_ms=1", host.url), b"v").status,
        204
    );
    std::thread::sleep(Duration::from_millis(50));

    let mut cursor: Option<String> = None;
    let mut calls = Vec::new();
    loop {
        let swept = kv_sweep(&host, "batch/", cursor.as_deref(), 4);
        assert!(swept.scanned <= 4, "examined {} > max", swept.scanned);
        if let (Some(before), Some(next)) = (&cursor, &swept.next) {
            assert!(next > before, "cursor must advance: {before} -> {next}");
        }
        calls.push((swept.scanned, swept.removed, swept.next.clone()));
        match swept.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(calls.len() < 10, "no end: {calls:?}");
    }
    // 11 keys by 4: batch/00..03, 04..07, 08..10; `next` is the last examined.
    let scanned: Vec<_> = calls.iter().map(|c| (c.0, c.2.clone())).collect();
    assert_eq!(
        scanned,
        [
            (4, Some("batch/03".to_string())),
            (4, Some("batch/07".to_string())),
            (3, None),
        ]
    );
    let removed: u64 = calls.iter().map(|c| c.1).sum();
    assert_eq!(removed, expired.len() as u64);
    // 01, 02 | 04, 05 | 08, 10 expired.
    assert_eq!(
        calls.iter().map(|c| c.1).collect::<Vec<_>>(),
        [2, 2, 2],
        "{calls:?}"
    );
    let left = stored_kv_keys(target, data.path());
    assert_eq!(
        left,
        [
            "batch/00", "batch/03", "batch/06", "batch/07", "batch/09", "batcx"
        ]
    );
    // A cursor past the last key: nothing left to examine.
    let past = kv_sweep(&host, "batch/", Some("batch/99"), 4);
    assert_eq!((past.scanned, past.next), (0, None));
}

fn counters_read(host: &Host, ns: &str) -> Vec<(String, i64)> {
    let reply = get(&format!("{}/counters/{ns}", host.url));
    assert_eq!(reply.status, 200, "{}", reply.text());
    serde_json::from_slice(&reply.body).unwrap()
}

/// 8 clients each make 25 `add` calls touching several counters (one of
/// them twice in the same call): the totals are exact, in name order.
fn counters_concurrent_adds_sum_exactly(target: Target) {
    let (host, data) = probe(target);
    assert_eq!(counters_read(&host, "metrics"), []);
    const CLIENTS: usize = 8;
    const ADDS: i64 = 25;
    std::thread::scope(|scope| {
        for client_id in 0..CLIENTS {
            let host = &host;
            scope.spawn(move || {
                let agent = client();
                let url = format!("{}/counters/metrics", host.url);
                for _ in 0..ADDS {
                    let deltas = serde_json::json!([
                        ["requests_total", 1],
                        ["bytes_total", 1000],
                        [format!("client{{id=\"{client_id}\"}}"), 1],
                        ["twice", 1],
                        ["twice", 2],
                        ["down", -1],
                    ]);
                    let reply = Reply::from(
                        agent
                            .post(&url)
                            .send(deltas.to_string().as_bytes())
                            .unwrap(),
                    );
                    assert_eq!(reply.status, 204, "{}", reply.text());
                }
            });
        }
    });
    let n = CLIENTS as i64 * ADDS;
    let mut want: Vec<(String, i64)> = vec![
        ("bytes_total".into(), 1000 * n),
        ("down".into(), -n),
        ("requests_total".into(), n),
        ("twice".into(), 3 * n),
    ];
    for client_id in 0..CLIENTS {
        want.push((format!("client{{id=\"{client_id}\"}}"), ADDS));
    }
    want.sort();
    assert_eq!(counters_read(&host, "metrics"), want);
    // Namespaces are separate, and an empty add is fine.
    assert_eq!(
        post(
            &format!("{}/counters/other", host.url),
            b"[[\"requests_total\", 5]]"
        )
        .status,
        204
    );
    assert_eq!(
        post(&format!("{}/counters/other", host.url), b"[]").status,
        204
    );
    assert_eq!(
        counters_read(&host, "other"),
        [("requests_total".to_string(), 5)]
    );
    assert_eq!(counters_read(&host, "metrics").len(), want.len());
    // Many counters in one call (more than one SQLite statement holds), and
    // totals saturate instead of wrapping.
    let many: Vec<(String, i64)> = (0..450).map(|i| (format!("c{i:03}"), i)).collect();
    let url = format!("{}/counters/many", host.url);
    for _ in 0..2 {
        let body = serde_json::to_vec(&many).unwrap();
        assert_eq!(post(&url, &body).status, 204);
    }
    let doubled: Vec<(String, i64)> = many.iter().map(|(n, v)| (n.clone(), 2 * v)).collect();
    assert_eq!(counters_read(&host, "many"), doubled);
    let url = format!("{}/counters/big", host.url);
    for delta in [i64::MAX, i64::MAX] {
        assert_eq!(
            post(&url, format!("[[\"x\", {delta}]]").as_bytes()).status,
            204
        );
    }
    assert_eq!(counters_read(&host, "big"), [("x".to_string(), i64::MAX)]);
    // A name with a control character is refused.
    assert_eq!(
        post(&format!("{}/counters/other", host.url), b"[[\"a\\nb\", 1]]").status,
        500
    );
    if target == Target::Wasi {
        // Appended to journal segments (10 s each, so one to a few for this
        // test), with no lock left behind.
        let dir = data.path().join("wasi/counters/metrics");
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.is_empty() && names.len() <= 4, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("j-") || n == "base"),
            "{names:?}"
        );
    }
}

/// On `wasmtime serve`, `read` folds journal segments old enough to get no
/// more appends into the base and deletes them, counting each line once;
/// a line cut short is not counted; shard files of the format before
/// journals still count.
#[test]
fn counters_fold_old_segments_once_and_read_old_shards() {
    let (host, data) = probe(Target::Wasi);
    let dir = data.path().join("wasi/counters/metrics");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0"), "PCT1\n5\tlegacy\n").unwrap();
    // Segment 1 (ten seconds after the epoch): long past its grace.
    let old = dir.join("j-000000000001");
    std::fs::write(&old, "2\ta\t1\tb\n7\ta").unwrap();
    assert_eq!(
        post(&format!("{}/counters/metrics", host.url), b"[[\"a\", 10]]").status,
        204
    );
    let want = vec![
        ("a".to_string(), 12),
        ("b".to_string(), 1),
        ("legacy".to_string(), 5),
    ];
    assert_eq!(counters_read(&host, "metrics"), want);
    assert!(!old.exists(), "the old segment was folded and deleted");
    let base = std::fs::read_to_string(dir.join("base")).unwrap();
    assert!(base.starts_with("PCB1 "), "{base}");
    assert!(base.contains("2\ta\n") && base.contains("1\tb\n"), "{base}");
    // Read again: nothing counted twice.
    assert_eq!(counters_read(&host, "metrics"), want);
    // A segment the base already includes (left by a fold that stopped
    // before deleting it) is ignored, and deleted.
    std::fs::write(&old, "100\ta\n").unwrap();
    assert_eq!(counters_read(&host, "metrics"), want);
    assert!(!old.exists());
}

/// The host's Spin SQLite sets nothing (a new file is in SQLite's default
/// rollback-journal mode, as on Spin); the app switches the file to WAL when
/// it creates its table, and a file made earlier in the default mode on its
/// next durable sweep.
#[test]
fn sqlite_is_switched_to_wal_by_the_app_not_the_host() {
    if crate::harness::embedded_host_only("the spin target's SQLite databases") {
        return;
    }
    let journal_mode = |path: &std::path::Path| -> String {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    };
    let (host, data) = probe(Target::Spin);
    let file = data.path().join("sqlite_db.db");
    assert_eq!(get(&format!("{}/kv/x", host.url)).status, 404);
    assert_eq!(journal_mode(&file), "delete");
    assert_eq!(
        post(&format!("{}/durable/walns/r?expected=none", host.url), b"v").status,
        200
    );
    assert_eq!(journal_mode(&file), "wal");
    drop(host);

    // A database whose table exists in the default mode already.
    let data = data_dir("probe-old-db");
    let file = data.path().join("sqlite_db.db");
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(
            "CREATE TABLE portico_durable (ns TEXT NOT NULL, id TEXT NOT NULL, value BLOB NOT NULL,
             version INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (ns, id))",
        )
        .unwrap();
    let host = Host::start(&HostConfig::probe(Target::Spin, data.path()));
    assert_eq!(
        post(&format!("{}/durable/walns/r?expected=none", host.url), b"v").status,
        200
    );
    assert_eq!(journal_mode(&file), "delete");
    assert_eq!(
        post(&format!("{}/durable/walns?sweep=10", host.url), b"").status,
        200
    );
    assert_eq!(journal_mode(&file), "wal");
}

/// The durable rows of namespace `ns` in the SQLite file `file`.
fn durable_rows(data: &std::path::Path, file: &str, ns: &str) -> i64 {
    let db = rusqlite::Connection::open(data.join(file)).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM portico_durable WHERE ns = ?1",
        [ns],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// `durable_databases=probe-ns=eu`: records of `probe-ns` are written to the
/// database `eu` (and nowhere else), other namespaces stay in `default`.
fn durable_namespace_lives_in_its_mapped_database(target: Target) {
    let (host, data) = probe_with_locality(target, "probe-ns=eu");
    let record = format!("{}/durable/probe-ns/rec", host.url);
    assert_eq!(post(&format!("{record}?expected=none"), b"v1").status, 200);
    let updated = post(&format!("{record}?expected=1"), b"in eu");
    assert_eq!((updated.status, version(&updated)), (200, Some(2)));
    let stale = post(&format!("{record}?expected=1"), b"lost");
    assert_eq!(stale.status, 409);
    let loaded = get(&record);
    assert_eq!(
        (loaded.status, loaded.body.as_slice()),
        (200, &b"in eu"[..])
    );
    let other = format!("{}/durable/other-ns/rec", host.url);
    assert_eq!(post(&format!("{other}?expected=none"), b"home").status, 200);
    // Sweeping a mapped namespace works in its database.
    assert_eq!(
        post(
            &format!("{}/durable/probe-ns/short?expected=none&ttl_ms=1", host.url),
            b"x"
        )
        .status,
        200
    );
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        post(&format!("{}/durable/probe-ns?sweep=10", host.url), b"").text(),
        "1"
    );
    match target {
        Target::Spin => {
            let dir = data.path();
            assert_eq!(durable_rows(dir, "sqlite_db_eu.db", "probe-ns"), 1);
            assert_eq!(durable_rows(dir, "sqlite_db.db", "probe-ns"), 0);
            assert_eq!(durable_rows(dir, "sqlite_db.db", "other-ns"), 1);
            assert_eq!(durable_rows(dir, "sqlite_db_eu.db", "other-ns"), 0);
            let db = rusqlite::Connection::open(dir.join("sqlite_db_eu.db")).unwrap();
            let value: Vec<u8> = db
                .query_row(
                    "SELECT value FROM portico_durable WHERE ns = 'probe-ns' AND id = 'rec'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(value, b"in eu");
        }
        Target::Wasi => {
            let wasi = data.path().join("wasi");
            let eu = wasi.join("db/eu/durable/probe-ns");
            let files: Vec<String> = std::fs::read_dir(&eu)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(files, ["rec"]);
            assert!(!wasi.join("durable/probe-ns").exists());
            assert!(wasi.join("durable/other-ns/rec").exists());
            assert!(!wasi.join("db/eu/durable/other-ns").exists());
        }
    }
    // The data stays where it is across a restart with the same mapping.
    drop(host);
    let mut config = HostConfig::probe(target, data.path());
    config
        .vars
        .push(("durable_databases".into(), "probe-ns=eu".into()));
    let host = Host::start(&config);
    let loaded = get(&format!("{}/durable/probe-ns/rec", host.url));
    assert_eq!((loaded.status, version(&loaded)), (200, Some(2)));
}

/// A malformed `durable_databases` fails durable calls with a message naming
/// the entry; on Spin a database the component is not granted is named too,
/// with what to add to spin.toml.
fn durable_databases_mistakes_are_reported(target: Target) {
    let (host, _data) = probe_with_locality(target, "probe-ns=eu, broken");
    let reply = post(
        &format!("{}/durable/other-ns/x?expected=none", host.url),
        b"x",
    );
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply.text().contains("durable_databases") && reply.text().contains("broken"),
        "{}",
        reply.text()
    );
    // KV does not depend on the mapping.
    assert_eq!(
        put(&format!("{}/kv/still/works", host.url), b"v").status,
        204
    );
    drop(host);

    let (host, data) = probe_with_locality(target, "probe-ns=asia");
    let reply = post(
        &format!("{}/durable/probe-ns/x?expected=none", host.url),
        b"x",
    );
    match target {
        Target::Spin => {
            assert_eq!(reply.status, 500, "{}", reply.text());
            let text = reply.text();
            assert!(
                text.contains("`asia`") && text.contains("sqlite_databases"),
                "{text}"
            );
            assert!(!data.path().join("sqlite_db_asia.db").exists());
        }
        // On files any label is a folder of its own.
        Target::Wasi => {
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert!(data.path().join("wasi/db/asia/durable/probe-ns/x").exists());
        }
    }
}

fn config_reads_variables(target: Target) {
    let (host, _data) = probe(target);
    let greeting = get(&format!("{}/config/greeting", host.url));
    // `greeting` has a default in the probe's spin.toml only: Spin and the
    // embedded host resolve it, stock wasmtime serve (which has no
    // manifest) leaves it unset, which is why the app's own variables all
    // have their defaults in code too.
    let expected = match crate::harness::runtime() {
        crate::harness::Runtime::Embedded => (200, "hello"),
        crate::harness::Runtime::WasmtimeServe | crate::harness::Runtime::JcoServe => {
            (404, "unset")
        }
    };
    assert_eq!((greeting.status, greeting.text().as_str()), expected);
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
        host.stderr_when(|log| log.contains("taking over a stale lock"))
            .contains("taking over a stale lock"),
        "{}",
        host.stderr()
    );
}

/// While a writer keeps replacing an expired entry with a live value, a
/// concurrent sweep never loses the live value: on files the sweep moves an
/// entry aside atomically and puts back one that turned out to be live (a
/// reader may miss it for that instant, so each value is polled for briefly).
/// Spin's KV has no conditional delete, so this holds on `--target wasi` only.
#[test]
fn wasi_kv_sweep_never_loses_a_write() {
    let (host, _data) = probe(Target::Wasi);
    let key = format!("{}/kv/race/k", host.url);
    let done = std::sync::atomic::AtomicBool::new(false);
    let sweeps = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let agent = client();
            let url = format!("{}/kv?sweep=10&prefix=race/", host.url);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = Reply::from(agent.post(&url).send(&b""[..]).unwrap());
                assert_eq!(reply.status, 200, "{}", reply.text());
                sweeps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // Stops the sweeper however the writer ends, a failed assertion included.
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&done);
        let agent = client();
        let read = |agent: &ureq::Agent| Reply::from(agent.get(&key).call().unwrap());
        for i in 0..300 {
            let old = agent.put(format!("{key}?ttl_ms=1")).send(&b"old"[..]);
            assert_eq!(old.unwrap().status(), 204);
            std::thread::sleep(Duration::from_millis(2));
            let live = format!("live-{i}");
            let set = agent.put(&key).send(live.as_bytes());
            assert_eq!(set.unwrap().status(), 204);
            let seen = (0..50).any(|_| {
                let reply = read(&agent);
                reply.body == live.as_bytes() || {
                    std::thread::sleep(Duration::from_millis(1));
                    false
                }
            });
            assert!(seen, "{live} was lost to a concurrent sweep");
        }
    });
    assert_eq!(get(&key).text(), "live-299");
    assert!(sweeps.into_inner() > 10);
}

/// Polls `done` every 100 ms for up to 15 s.
fn wait_until(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
