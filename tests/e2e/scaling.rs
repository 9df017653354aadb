//! Several `portico serve` processes sharing one state, as several Spin
//! nodes behind a load balancer do: the key-value store on one Redis and
//! the durable records in one SQLite file (`--runtime-config-file`), or
//! simply one data folder. A rate limit is one limit across them, a logout
//! is seen by every one on the next request, a flag or an asset written
//! through one is served by the others at once; and a Redis restart costs
//! clear `503`s while it is down, not a restart of the hosts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use portico::serve::Target;
use serde_json::{Value, json};

use crate::harness::{
    Host, HostConfig, RedisServer, Reply, client, data_dir, embedded_host_only, login_token,
    runtime_config,
};

const ADMIN: &str = "ops";
const ADMIN_PASSWORD: &str = "ops-password-123";
/// The policy the burst runs into: 100 requests an hour to `/api/config`.
const BURST_LIMIT: usize = 100;

/// How the instances share their state.
#[derive(Clone, Copy, Debug)]
enum Sharing {
    /// One Redis for the key-value store, one SQLite file for the databases.
    RedisAndSqlite,
    /// One data folder (its SQLite files) for all.
    DataFolder,
}

struct Cluster {
    hosts: Vec<Host>,
    redis: Option<RedisServer>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(sharing: Sharing, instances: usize) -> Cluster {
        let dir = data_dir("cluster");
        let (redis, file) = match sharing {
            Sharing::RedisAndSqlite => {
                let redis_dir = dir.path().join("redis");
                std::fs::create_dir_all(&redis_dir).unwrap();
                let redis = RedisServer::start(&redis_dir);
                let file = runtime_config(
                    dir.path(),
                    Some(&redis.url()),
                    Some(&dir.path().join("shared/sqlite_db.db")),
                );
                (Some(redis), Some(file))
            }
            Sharing::DataFolder => (None, None),
        };
        let configs: Vec<HostConfig> = (0..instances)
            .map(|i| {
                // With a runtime configuration each instance keeps only its
                // compile cache in a folder of its own.
                let data = match sharing {
                    Sharing::RedisAndSqlite => dir.path().join(format!("instance-{i}")),
                    Sharing::DataFolder => dir.path().join("shared"),
                };
                let mut config = HostConfig::app(Target::Spin, &data);
                for (name, value) in [
                    ("bootstrap_admin", format!("{ADMIN}:{ADMIN_PASSWORD}")),
                    ("password_iterations", "1000".to_string()),
                    (
                        "rate_limit_policies",
                        format!("default=1000000/1s, burst={BURST_LIMIT}/1h"),
                    ),
                    ("rate_limit_routes", "/api/config=burst".to_string()),
                ] {
                    config.vars.push((name.into(), value));
                }
                if let Some(file) = &file {
                    config.args.push("--runtime-config-file".into());
                    config.args.push(file.display().to_string());
                }
                config
            })
            .collect();
        // Started side by side: each compiles (or loads) the component.
        let hosts = std::thread::scope(|scope| {
            let started: Vec<_> = configs
                .iter()
                .map(|config| scope.spawn(|| Host::start(config)))
                .collect();
            started.into_iter().map(|h| h.join().unwrap()).collect()
        });
        Cluster {
            hosts,
            redis,
            _dir: dir,
        }
    }

    fn url(&self, instance: usize, path: &str) -> String {
        format!("{}{path}", self.hosts[instance % self.hosts.len()].url)
    }

    fn stderr(&self) -> String {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, host)| format!("--- instance {i} ---\n{}", host.stderr()))
            .collect()
    }
}

fn send(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> Reply {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("cookie", format!("session={token}"));
    }
    let agent = client();
    let response = match body {
        Some(bytes) => agent.run(
            request
                .header("content-type", "application/json")
                .body(bytes.to_vec())
                .unwrap(),
        ),
        None => agent.run(request.body(()).unwrap()),
    };
    Reply::from(response.unwrap_or_else(|err| panic!("{method} {url}: {err}")))
}

/// 300 requests from 32 connections, spread round-robin over every
/// instance, against a limit of 100: exactly 100 are admitted.
fn a_burst_admits_exactly_the_limit(cluster: &Cluster) {
    const REQUESTS: usize = 300;
    const CONNECTIONS: usize = 32;
    let next = AtomicUsize::new(0);
    let statuses = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CONNECTIONS {
            scope.spawn(|| {
                let agent = client();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        break;
                    }
                    let reply = Reply::from(
                        agent
                            .get(&cluster.url(i, "/api/config"))
                            .call()
                            .expect("GET /api/config"),
                    );
                    if reply.status == 429 {
                        assert!(
                            reply.header("retry-after").is_some(),
                            "429 without Retry-After"
                        );
                    }
                    statuses
                        .lock()
                        .unwrap()
                        .push((i % cluster.hosts.len(), reply.status));
                }
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    let admitted = statuses.iter().filter(|(_, s)| *s == 200).count();
    let limited = statuses.iter().filter(|(_, s)| *s == 429).count();
    let per_instance: Vec<usize> = (0..cluster.hosts.len())
        .map(|n| {
            statuses
                .iter()
                .filter(|(i, s)| *i == n && *s == 200)
                .count()
        })
        .collect();
    assert_eq!(
        (admitted, limited),
        (BURST_LIMIT, REQUESTS - BURST_LIMIT),
        "admitted per instance: {per_instance:?}; other statuses: {:?}\n{}",
        statuses
            .iter()
            .filter(|(_, s)| *s != 200 && *s != 429)
            .collect::<Vec<_>>(),
        cluster.stderr()
    );
    // Every instance admitted some: the limit is shared, not one per node.
    assert!(
        per_instance.iter().all(|&n| n > 0),
        "admitted per instance: {per_instance:?}"
    );
}

/// A session revoked through one instance is refused by the others on the
/// next request.
fn a_logout_is_seen_everywhere(cluster: &Cluster) {
    let token = login_token(&cluster.hosts[0], ADMIN, ADMIN_PASSWORD);
    for i in 0..cluster.hosts.len() {
        let user = send("GET", &cluster.url(i, "/api/user"), Some(&token), None);
        assert_eq!(user.status, 200, "instance {i}: {}", user.text());
    }
    let last = cluster.hosts.len() - 1;
    let out = send(
        "POST",
        &cluster.url(last, "/api/logout"),
        Some(&token),
        None,
    );
    assert_eq!(out.status, 204, "{}", out.text());
    for i in 0..cluster.hosts.len() {
        send("GET", &cluster.url(i, "/api/user"), Some(&token), None)
            .assert_problem(401, "invalid-token");
    }
}

/// A flag set through one instance is evaluated by every other at once.
fn a_flag_write_is_seen_everywhere(cluster: &Cluster) {
    let token = login_token(&cluster.hosts[0], ADMIN, ADMIN_PASSWORD);
    let evaluate = |i: usize| -> Value {
        let reply = send(
            "POST",
            &cluster.url(i, "/ofrep/v1/evaluate/flags/shared-banner"),
            None,
            Some(br#"{"context": {"targetingKey": "someone"}}"#),
        );
        assert_eq!(reply.status, 200, "instance {i}: {}", reply.text());
        reply.json()["value"].clone()
    };
    for (writer, default) in [(0, "one"), (1, "two"), (2, "one")] {
        let writer = writer % cluster.hosts.len();
        let set = send(
            "PUT",
            &cluster.url(writer, "/admin/flags"),
            Some(&token),
            Some(
                json!({"flags": {"shared-banner": {
                    "state": "ENABLED",
                    "variants": {"one": "first", "two": "second"},
                    "defaultVariant": default
                }}})
                .to_string()
                .as_bytes(),
            ),
        );
        assert!(set.status < 300, "PUT /admin/flags: {}", set.text());
        let expected = if default == "one" { "first" } else { "second" };
        for i in 0..cluster.hosts.len() {
            assert_eq!(
                evaluate(i),
                json!(expected),
                "instance {i} after a write through {writer}"
            );
        }
    }
}

/// An asset uploaded through one instance is served whole by the others.
fn an_asset_upload_is_served_everywhere(cluster: &Cluster) {
    let token = login_token(&cluster.hosts[0], ADMIN, ADMIN_PASSWORD);
    // Several 256 KiB chunks and a partial one.
    let body: Vec<u8> = (0..(3 << 20) + 12345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let put = Reply::from(
        client()
            .put(&cluster.url(1, "/admin/assets/shared/blob.bin"))
            .header("cookie", format!("session={token}"))
            .header("content-type", "application/octet-stream")
            .send(&body[..])
            .unwrap(),
    );
    assert!(put.status < 300, "upload: {}", put.text());
    for i in 0..cluster.hosts.len() {
        let got = send(
            "GET",
            &cluster.url(i, "/assets/shared/blob.bin"),
            None,
            None,
        );
        assert_eq!(got.status, 200, "instance {i}");
        assert!(got.body == body, "instance {i} served other bytes");
    }
}

fn instances_share_one_state(sharing: Sharing) {
    if embedded_host_only("several portico serve processes with --runtime-config-file") {
        return;
    }
    let cluster = Cluster::start(sharing, 3);
    a_burst_admits_exactly_the_limit(&cluster);
    a_logout_is_seen_everywhere(&cluster);
    a_flag_write_is_seen_everywhere(&cluster);
    an_asset_upload_is_served_everywhere(&cluster);
    if let Some(redis) = &cluster.redis {
        // The shared state really is in Redis: the flags and the asset.
        let keys = redis.keys();
        assert!(keys.iter().any(|k| k == "flags/definitions"), "{keys:?}");
        assert!(keys.iter().any(|k| k.starts_with("assets/")), "{keys:?}");
    }
}

#[test]
fn three_instances_on_redis_and_one_sqlite_file_share_one_state() {
    instances_share_one_state(Sharing::RedisAndSqlite);
}

#[test]
fn three_instances_on_one_data_folder_share_one_state() {
    instances_share_one_state(Sharing::DataFolder);
}

/// Redis stops under two instances: what needs the key-value store answers
/// `503 #storage-unavailable` (a problem, at once, never a hang), what
/// does not (`/healthz`, the rate limiter's durable records in SQLite)
/// goes on; Redis comes back with its data and both instances serve again,
/// without a restart, the same session still valid.
#[test]
fn a_redis_restart_costs_503s_while_down_and_service_resumes() {
    if embedded_host_only("portico serve with --runtime-config-file") {
        return;
    }
    let mut cluster = Cluster::start(Sharing::RedisAndSqlite, 2);
    let token = login_token(&cluster.hosts[0], ADMIN, ADMIN_PASSWORD);
    let config_before = send("GET", &cluster.url(1, "/api/config"), None, None);
    assert_eq!(config_before.status, 200, "{}", config_before.text());

    let redis = cluster.redis.as_mut().expect("a Redis");
    redis.stop();
    for i in 0..2 {
        assert_eq!(
            send("GET", &cluster.url(i, "/healthz"), None, None).status,
            200
        );
        send("GET", &cluster.url(i, "/api/config"), None, None)
            .assert_problem(503, "storage-unavailable");
        send("GET", &cluster.url(i, "/api/user"), Some(&token), None)
            .assert_problem(503, "storage-unavailable");
        send("GET", &cluster.url(i, "/assets/anything.txt"), None, None)
            .assert_problem(503, "storage-unavailable");
    }

    cluster.redis.as_mut().unwrap().restart();
    for i in 0..2 {
        let config = send("GET", &cluster.url(i, "/api/config"), None, None);
        assert_eq!(config.status, 200, "instance {i}: {}", config.text());
        let user = send("GET", &cluster.url(i, "/api/user"), Some(&token), None);
        assert_eq!(user.status, 200, "instance {i}: {}", user.text());
        assert_eq!(user.json()["name"], ADMIN);
    }
}
