//! Storage faults: the data folder is a small tmpfs, filled up while the app
//! runs. Every write then answers `503 #storage-unavailable` (a clear
//! problem, never a trap or a hang), reads keep working, the rate limiter
//! follows `rate_limit_on_failure`, and once space is back everything stored
//! before is intact and writes work again.
//!
//! Mounting needs root (CI runs as root); without it the test fails saying
//! so, it never skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use portico::serve::Target;
use serde_json::json;

use crate::harness::{Host, Reply, assert_sqlite_intact, client, data_dir, generation_flag_set};

on_both_targets!(a_full_disk_answers_503_and_damages_nothing);

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "faults-admin-password";

/// A tmpfs of a few MiB, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(name: &str, mib: u32) -> SmallDisk {
        let parent = data_dir(name);
        let path = parent.path().join("disk");
        std::fs::create_dir_all(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "mounting a {mib} MiB tmpfs for the storage-fault test needs root: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk {
            path,
            _parent: parent,
        }
    }

    /// Fills the disk to the last byte; returns the filler to remove.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        // The last partial chunk, byte by byte, so nothing is left.
        while file.write_all(&[0]).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn config(target: Target, data: &Path, on_failure: &str) -> crate::harness::HostConfig {
    let mut config = crate::harness::app_with_admin(target, data, ADMIN, ADMIN_PASSWORD);
    config
        .vars
        .retain(|(name, _)| name != "rate_limit_policies");
    config
        .vars
        .push(("rate_limit_policies".into(), "default=100000/1s".into()));
    config
        .vars
        .push(("rate_limit_on_failure".into(), on_failure.into()));
    config
}

fn call(host: &Host, method: &str, path: &str, token: &str, body: &str) -> Reply {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", host.url))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap();
    Reply::from(client().run(request).unwrap())
}

fn a_full_disk_answers_503_and_damages_nothing(target: Target) {
    let disk = SmallDisk::mount("faults", 48);
    let asset: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();

    // Stored while there is room: an asset, a flag set, a user, a logout.
    let host = Host::start(&config(target, &disk.path, "open"));
    let admin = crate::harness::login_token(&host, ADMIN, ADMIN_PASSWORD);
    let put = Reply::from(
        client()
            .put(&format!("{}/admin/assets/kept.bin", host.url))
            .header("authorization", format!("Bearer {admin}"))
            .send(&asset[..])
            .unwrap(),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(
        call(
            &host,
            "PUT",
            "/admin/flags",
            &admin,
            &generation_flag_set(1)
        )
        .status,
        204
    );
    let user = json!({"password": "kept-user-password", "roles": []}).to_string();
    assert_eq!(
        call(&host, "PUT", "/admin/users/kept", &admin, &user).status,
        204
    );
    let ended = crate::harness::login_token(&host, "kept", "kept-user-password");
    assert_eq!(call(&host, "POST", "/api/logout", &ended, "").status, 204);

    let filler = disk.fill();
    // Every write is a clear 503 problem; reads go on. (The upload fits in
    // what the host reads before the component runs: a component that
    // fails on storage before it reads the body answers at once and closes
    // the connection, which a client still sending sees as a broken pipe.)
    let big = vec![9u8; 60 << 10];
    let upload = Reply::from(
        client()
            .put(&format!("{}/admin/assets/new.bin", host.url))
            .header("authorization", format!("Bearer {admin}"))
            .send(&big[..])
            .unwrap(),
    );
    upload.assert_problem(503, "storage-unavailable");
    call(
        &host,
        "PUT",
        "/admin/flags",
        &admin,
        &generation_flag_set(2),
    )
    .assert_problem(503, "storage-unavailable");
    let other = json!({"password": "other-user-password", "roles": []}).to_string();
    call(&host, "PUT", "/admin/users/other", &admin, &other)
        .assert_problem(503, "storage-unavailable");
    let kept = Reply::from(
        client()
            .get(&format!("{}/assets/kept.bin", host.url))
            .call()
            .unwrap(),
    );
    assert_eq!((kept.status, kept.body == asset), (200, true));
    // `open`: the limiter's failing storage lets requests through.
    let config_reply = Reply::from(
        client()
            .get(&format!("{}/api/config", host.url))
            .call()
            .unwrap(),
    );
    assert_eq!(config_reply.status, 200, "{}", config_reply.text());
    assert_eq!(config_reply.json()["flags"]["generation"]["value"], 1);
    drop(host);

    // `closed`: the same failure refuses the request.
    let host = Host::start(&config(target, &disk.path, "closed"));
    let refused = Reply::from(
        client()
            .get(&format!("{}/api/config", host.url))
            .call()
            .unwrap(),
    );
    refused.assert_problem(503, "rate-limit-unavailable");
    drop(host);

    // Room again: what was stored is intact, and writes work.
    std::fs::remove_file(&filler).unwrap();
    let host = Host::start(&config(target, &disk.path, "closed"));
    let kept = Reply::from(
        client()
            .get(&format!("{}/assets/kept.bin", host.url))
            .call()
            .unwrap(),
    );
    assert_eq!((kept.status, kept.body == asset), (200, true));
    assert!(
        Reply::from(
            client()
                .get(&format!("{}/assets/new.bin", host.url))
                .call()
                .unwrap()
        )
        .status
            == 404,
        "no half object of the refused upload"
    );
    let admin = crate::harness::login_token(&host, ADMIN, ADMIN_PASSWORD);
    let config_reply = Reply::from(
        client()
            .get(&format!("{}/api/config", host.url))
            .call()
            .unwrap(),
    );
    assert_eq!(config_reply.json()["flags"]["generation"]["value"], 1);
    assert!(
        call(&host, "GET", "/api/user", &ended, "").status == 401,
        "the logout stays"
    );
    crate::harness::login_token(&host, "kept", "kept-user-password");
    assert_eq!(
        call(
            &host,
            "PUT",
            "/admin/flags",
            &admin,
            &generation_flag_set(3)
        )
        .status,
        204
    );
    let put = Reply::from(
        client()
            .put(&format!("{}/admin/assets/new.bin", host.url))
            .header("authorization", format!("Bearer {admin}"))
            .send(&big[..])
            .unwrap(),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    if target == Target::Spin {
        drop(host);
        assert_sqlite_intact(&disk.path);
    }
}
