//! `portico:platform` on Spin: the key-value store `default`, the SQLite
//! database `default` and Spin variables (`fermyon:spin/*@2.0.0`, through
//! `spin-sdk`).
//!
//! Only the `default` store and database are used because Fermyon Cloud
//! grants no others; components keep apart by key prefix and namespace.
//!
//! - `kv`: Spin KV has no TTL, so values are wrapped in the expiry envelope of
//!   `portico_storage_format::envelope` and expired entries read as absent.
//! - `durable`: one SQLite table keyed by `(ns, id)` with a version column;
//!   compare-and-swap is a single conditional statement, so SQLite's write
//!   serialisation guarantees that two concurrent writers never both win.
//! - `config`: Spin variables, declared in `spin.toml`.

mod config;
mod durable;
mod kv;

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform"],
    world: "portico:platform/adapter",
    generate_all,
});

use exports::portico::platform::types::Error;

struct Adapter;

export!(Adapter);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn name_error(err: portico_storage_format::names::NameError) -> Error {
    Error::Other(format!("invalid key: {err}"))
}
