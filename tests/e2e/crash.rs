//! Crash safety: the host is killed (SIGKILL) in the middle of a mixed write
//! load, again and again, and restarted on the same data folder. Whatever
//! was acknowledged (a 2xx received) must be there and whole afterwards, no
//! half-written object may ever be served, SQLite must pass its integrity
//! check, and on `--target wasi` a lock the killed process left behind must
//! not block writes for longer than its takeover time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portico::serve::Target;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{Host, Reply, assert_sqlite_intact, data_dir, generation_flag_set};

on_both_targets!(acknowledged_writes_survive_kills);

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "crash-admin-password";
const KILLS: usize = 20;
const ASSET_BYTES: usize = 3 << 20;
/// How long `platform-wasi` waits before taking over a lock left by a
/// crashed writer (its `STALE_LOCK`), plus the slack of a loaded machine.
const LOCK_TAKEOVER: Duration = Duration::from_secs(10 + 5);

/// What the load got acknowledged, and what it sent.
#[derive(Default)]
struct Ledger {
    /// Asset path -> SHA-256 of the only bytes ever sent to it.
    sent_assets: BTreeMap<String, String>,
    acked_assets: Vec<String>,
    /// The highest flag-set generation acknowledged, and sent.
    acked_flags: u64,
    sent_flags: u64,
    /// Users whose creation was acknowledged (name -> password).
    acked_users: Vec<String>,
    /// Tokens whose logout was acknowledged: refused forever after.
    revoked: Vec<String>,
}

/// A client that waits long enough for a request held up by a lock the
/// killed process left (up to the takeover time).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(LOCK_TAKEOVER + Duration::from_secs(10)))
        .build()
        .into()
}

fn asset_bytes(path: &str) -> Vec<u8> {
    // Distinct, incompressible-looking bytes per path.
    let mut state = Sha256::digest(path.as_bytes()).to_vec();
    let mut bytes = Vec::with_capacity(ASSET_BYTES);
    while bytes.len() < ASSET_BYTES {
        state = Sha256::digest(&state).to_vec();
        bytes.extend_from_slice(&state);
    }
    bytes.truncate(ASSET_BYTES);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn login(url: &str, user: &str, password: &str) -> Option<String> {
    let reply = agent()
        .post(&format!("{url}/api/login"))
        .header("content-type", "application/json")
        .send(json!({"username": user, "password": password}).to_string())
        .ok()?;
    if reply.status() != 200 {
        return None;
    }
    let cookie = reply
        .headers()
        .get("set-cookie")?
        .to_str()
        .ok()?
        .to_string();
    Some(
        cookie
            .split(';')
            .next()?
            .trim()
            .strip_prefix("session=")?
            .to_string(),
    )
}

fn send(url: &str, method: &str, path: &str, token: &str, body: Vec<u8>) -> Option<u16> {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
        .ok()?;
    let reply = agent().run(request).ok()?;
    let status = reply.status().as_u16();
    // Read the answer whole: only then is it acknowledged.
    reply.into_body().read_to_vec().ok()?;
    Some(status)
}

/// Runs the mixed load against `url` until `stop`, recording what was
/// acknowledged.
fn load(url: &str, round: usize, ledger: &Arc<Mutex<Ledger>>, stop: &Arc<AtomicBool>) {
    let Some(admin) = login(url, ADMIN, ADMIN_PASSWORD) else {
        return;
    };
    let workers: Vec<std::thread::JoinHandle<()>> = (0..5)
        .map(|kind| {
            let (url, admin) = (url.to_string(), admin.clone());
            let (ledger, stop) = (ledger.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match kind {
                        0 => {
                            let path = format!("crash/r{round}-{i}.bin");
                            let bytes = asset_bytes(&path);
                            ledger
                                .lock()
                                .unwrap()
                                .sent_assets
                                .insert(path.clone(), hex(&bytes));
                            let put = format!("/admin/assets/{path}");
                            if send(&url, "PUT", &put, &admin, bytes)
                                .is_some_and(|s| (200..300).contains(&s))
                            {
                                ledger.lock().unwrap().acked_assets.push(path);
                            }
                        }
                        1 => {
                            let generation = {
                                let mut l = ledger.lock().unwrap();
                                l.sent_flags += 1;
                                l.sent_flags
                            };
                            let body = generation_flag_set(generation).into_bytes();
                            if send(&url, "PUT", "/admin/flags", &admin, body)
                                .is_some_and(|s| (200..300).contains(&s))
                            {
                                let mut l = ledger.lock().unwrap();
                                l.acked_flags = l.acked_flags.max(generation);
                            }
                        }
                        2 => {
                            let name = format!("u-r{round}-{i}");
                            let body = json!({"password": format!("{name}-password"), "roles": []});
                            let path = format!("/admin/users/{name}");
                            if send(&url, "PUT", &path, &admin, body.to_string().into_bytes())
                                == Some(204)
                            {
                                ledger.lock().unwrap().acked_users.push(name);
                            }
                        }
                        3 => {
                            if let Some(token) = login(&url, ADMIN, ADMIN_PASSWORD)
                                && send(&url, "POST", "/api/logout", &token, Vec::new())
                                    == Some(204)
                            {
                                ledger.lock().unwrap().revoked.push(token);
                            }
                        }
                        _ => {
                            let _ = send(&url, "GET", "/api/config", &admin, Vec::new());
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

/// Checks what the ledger says against the restarted server.
fn verify(url: &str, ledger: &mut Ledger, assets: &[String], target: Target) -> Duration {
    let client = agent();
    // The flag set is the newest acknowledged one, or a newer one sent.
    let flag = Reply::from(
        client
            .post(&format!("{url}/ofrep/v1/evaluate/flags/generation"))
            .send("")
            .unwrap(),
    );
    if ledger.acked_flags > 0 {
        assert_eq!(flag.status, 200, "{target:?}: {}", flag.text());
        let served = flag.json()["value"].as_u64().unwrap();
        assert!(
            (ledger.acked_flags..=ledger.sent_flags).contains(&served),
            "{target:?}: flag generation {served}, acknowledged {}",
            ledger.acked_flags
        );
    }
    // The first write after a restart may wait for a lock the killed
    // process held; it must get through within the takeover time.
    let admin = login(url, ADMIN, ADMIN_PASSWORD).expect("admin login after restart");
    let started = Instant::now();
    let mut first_write = None;
    while started.elapsed() < LOCK_TAKEOVER + Duration::from_secs(5) {
        ledger.sent_flags += 1;
        let body = generation_flag_set(ledger.sent_flags).into_bytes();
        if send(url, "PUT", "/admin/flags", &admin, body).is_some_and(|s| (200..300).contains(&s)) {
            ledger.acked_flags = ledger.sent_flags;
            first_write = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let first_write = first_write.unwrap_or_else(|| {
        panic!("{target:?}: no flag write got through within {LOCK_TAKEOVER:?} of a restart")
    });
    assert!(first_write <= LOCK_TAKEOVER, "{first_write:?}");

    for path in assets {
        let reply = Reply::from(client.get(&format!("{url}/assets/{path}")).call().unwrap());
        let acked = ledger.acked_assets.contains(path);
        match reply.status {
            200 => assert_eq!(
                hex(&reply.body),
                ledger.sent_assets[path],
                "{target:?}: {path} served with other bytes than were sent (a half object?)"
            ),
            404 => assert!(!acked, "{target:?}: acknowledged {path} is gone"),
            other => panic!("{target:?}: {path}: {other} {}", reply.text()),
        }
    }
    let config = Reply::from(client.get(&format!("{url}/api/config")).call().unwrap());
    assert_eq!(
        config.status,
        200,
        "the flag set validates: {}",
        config.text()
    );
    for name in &ledger.acked_users {
        assert!(
            login(url, name, &format!("{name}-password")).is_some(),
            "{target:?}: acknowledged user {name} cannot log in"
        );
    }
    for token in &ledger.revoked {
        let user = Reply::from(
            client
                .get(&format!("{url}/api/user"))
                .header("authorization", format!("Bearer {token}"))
                .call()
                .unwrap(),
        );
        assert_eq!(user.status, 401, "{target:?}: a revoked session is back");
    }
    first_write
}

fn acknowledged_writes_survive_kills(target: Target) {
    let data = data_dir("crash");
    let config = crate::harness::app_with_admin(target, data.path(), ADMIN, ADMIN_PASSWORD);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut slowest_recovery = Duration::ZERO;
    for round in 0..=KILLS {
        let host = Host::start(&config);
        if round > 0 {
            // What the previous round was acknowledged, and every object it
            // sent (acknowledged or not), checked on the restarted server.
            let mut l = ledger.lock().unwrap();
            let prefix = format!("crash/r{}-", round - 1);
            let assets: Vec<String> = l
                .sent_assets
                .keys()
                .filter(|p| p.starts_with(&prefix))
                .cloned()
                .collect();
            slowest_recovery = slowest_recovery.max(verify(&host.url, &mut l, &assets, target));
        }
        if round == KILLS {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let runner = {
            let (url, ledger, stop) = (host.url.clone(), ledger.clone(), stop.clone());
            std::thread::spawn(move || load(&url, round, &ledger, &stop))
        };
        // Kill at a different point of the load each round.
        std::thread::sleep(Duration::from_millis(300 + (round as u64 * 137) % 900));
        drop(host); // SIGKILL
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap();
        if target == Target::Spin {
            assert_sqlite_intact(data.path());
        }
    }
    let mut l = ledger.lock().unwrap();
    // Everything acknowledged in any round, checked once more at the end.
    let host = Host::start(&config);
    let all: Vec<String> = l.sent_assets.keys().cloned().collect();
    verify(&host.url, &mut l, &all, target);
    eprintln!(
        "{target:?}: {KILLS} kills; acknowledged {} assets of {} sent, flag generation {} of {}, \
         {} users, {} logouts; all present and whole; slowest first write after a restart {:?}",
        l.acked_assets.len(),
        l.sent_assets.len(),
        l.acked_flags,
        l.sent_flags,
        l.acked_users.len(),
        l.revoked.len(),
        slowest_recovery
    );
    assert!(
        !l.acked_assets.is_empty() && l.acked_flags > 0 && !l.revoked.is_empty(),
        "the load got writes acknowledged"
    );
}
