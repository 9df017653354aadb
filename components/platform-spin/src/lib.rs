//! `portico:platform` on Spin: the key-value store `default`, the SQLite
//! database `default` and Spin variables (`fermyon:spin/*@2.0.0`, through
//! `spin-sdk`).
//!
//! Only the `default` store and database are used unless the operator maps
//! durable namespaces to other databases (`durable_databases`), because
//! Fermyon Cloud grants no others; components keep apart by key prefix and
//! namespace.
//!
//! - `kv`: Spin KV has no TTL, so values are wrapped in the expiry envelope of
//!   `portico_storage_format::envelope` and expired entries read as absent;
//!   `sweep-expired` reclaims them.
//! - `durable`: one SQLite table keyed by `(ns, id)` with a version column;
//!   compare-and-swap is a single conditional statement, so SQLite's write
//!   serialisation guarantees that two concurrent writers never both win. A
//!   namespace named in `durable_databases` lives in that database instead.
//! - `counters`: one SQLite table keyed by `(ns, name)`; an `add` is one
//!   multi-row upsert that adds to the stored values.
//! - `config`: Spin variables, declared in `spin.toml`.

mod config;
mod counters;
mod db;
mod durable;
mod kv;

wit_bindgen::generate!({
    path: [
        "../../wit/deps/wasi-io",
        "../../wit/types",
        "../../wit/platform",
        "../../wit/streaming",
    ],
    world: "portico:streaming/adapter",
    // The streams the caller lends are the runtime's own (`wasip2`'s types).
    with: {
        "wasi:io/streams@0.2.4": wasip2::io::streams,
        "wasi:io/error@0.2.4": wasip2::io::error,
        "wasi:io/poll@0.2.4": wasip2::io::poll,
    },
    generate_all,
});

use std::sync::OnceLock;

use exports::portico::platform::types::Error;
use portico_storage_format::locality::Locality;

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

/// The variable that maps durable namespaces to databases.
const DURABLE_DATABASES: &str = "durable_databases";

/// The namespace -> database mapping, read once per instance (each request
/// has its own). Undeclared or empty: every namespace uses `default`. A
/// mistake fails every durable call with a message naming it, rather than
/// quietly writing a jurisdiction's data to the wrong database.
fn locality() -> Result<&'static Locality, Error> {
    static LOCALITY: OnceLock<Locality> = OnceLock::new();
    if let Some(locality) = LOCALITY.get() {
        return Ok(locality);
    }
    let text =
        <Adapter as exports::portico::platform::config::Guest>::get(DURABLE_DATABASES.to_string())?
            .unwrap_or_default();
    let locality = Locality::parse(&text).map_err(|err| Error::Other(err.to_string()))?;
    Ok(LOCALITY.get_or_init(|| locality))
}
