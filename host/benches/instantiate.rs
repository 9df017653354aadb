//! What a request costs before and after the guest runs: a store, a fresh
//! instance of the component from the pooling allocator, and dropping both.
//! Compares the composed app on each target with the hello fixture (the
//! runtime floor), on the engine configuration `portico serve` uses.
//!
//! ```sh
//! cargo run --release -- build          # dist/*.wasm
//! cargo bench -p portico --bench instantiate
//! ```
//!
//! The hello fixture is built here (`target/wasm`) when missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portico::serve::{PoolTuning, ServeOptions, Target, prepare_with};

const ROUNDS: usize = 9;
const PER_ROUND: u32 = 2_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn hello(ws: &Path) -> PathBuf {
    let path = portico::build::compiled(ws, "hello");
    if !path.exists() {
        portico::build::compile(ws, &["hello"]).expect("building the hello fixture");
    }
    path
}

fn options(target: Target, component: PathBuf, data: &Path, cache: &Path) -> ServeOptions {
    let mut variables = BTreeMap::new();
    variables.insert(
        "jwt_secret".to_string(),
        "bench-secret-0123456789abcdef0123456789abcdef".to_string(),
    );
    ServeOptions {
        target,
        listen: "127.0.0.1:0".parse().unwrap(),
        data: data.to_path_buf(),
        component,
        cache_dir: cache.to_path_buf(),
        variables,
        sqlite_databases: portico::spin::sqlite::Databases {
            granted: vec!["default".into()],
            defined: vec!["default".into()],
        },
        runtime_config: Default::default(),
        schedule: Vec::new(),
        limits: Default::default(),
        max_instances: 256,
        request_limits: Default::default(),
    }
}

fn main() {
    let ws = workspace();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = std::env::temp_dir().join(format!("portico-bench-{}", std::process::id()));
    // Compiled components are cached across runs, as `portico serve` does.
    let cache = ws.join("target/bench-cache");
    let rows = [
        (
            "hello (wasi)",
            Target::Wasi,
            hello(&ws),
            PoolTuning::Resident,
        ),
        (
            "app, --target spin",
            Target::Spin,
            ws.join("dist/portico-spin.wasm"),
            PoolTuning::Resident,
        ),
        (
            "app, --target wasi",
            Target::Wasi,
            ws.join("dist/portico-wasi.wasm"),
            PoolTuning::Resident,
        ),
        (
            "hello, pool defaults",
            Target::Wasi,
            hello(&ws),
            PoolTuning::Decommit,
        ),
        (
            "app spin, pool defaults",
            Target::Spin,
            ws.join("dist/portico-spin.wasm"),
            PoolTuning::Decommit,
        ),
    ];
    let servers: Vec<_> = rows
        .iter()
        .map(|(_, target, component, tuning)| {
            prepare_with(&options(*target, component.clone(), &data, &cache), *tuning)
                .expect("preparing the component")
        })
        .collect();
    // Rounds interleave the rows, so load from elsewhere weighs on all alike.
    let mut times = vec![Vec::new(); rows.len()];
    for _ in 0..ROUNDS {
        for (server, times) in servers.iter().zip(&mut times) {
            let started = Instant::now();
            runtime.block_on(async {
                for _ in 0..PER_ROUND {
                    server.instantiate_and_drop().await.expect("instantiating");
                }
            });
            times.push(started.elapsed() / PER_ROUND);
        }
    }
    println!("instantiate + drop, median of {ROUNDS} interleaved rounds of {PER_ROUND}:");
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let floor = median(&mut times[0].clone());
    for ((label, ..), times) in rows.iter().zip(&mut times) {
        let time = median(times);
        println!(
            "  {label:<24} {:>8.1} µs  ({:.1}x hello)",
            time.as_secs_f64() * 1e6,
            time.as_secs_f64() / floor.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}
