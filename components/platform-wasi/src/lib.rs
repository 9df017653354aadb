//! `portico:platform` for stock `wasmtime serve`: storage in files under a
//! preopened directory mounted at `/data`, settings from environment variables.
//!
//! It imports nothing but standard WASI, so a component composed on top of it
//! runs with
//!
//! ```text
//! wasmtime serve -S cli --dir ./data::/data --env JWT_SECRET=... dist/portico-wasi.wasm
//! ```
//!
//! and on Node.js with `jco serve` and `examples/jco/setup.mjs` (which
//! preopens the folder and passes the variables, as `--dir` and `--env` do).
//!
//! Layout under `/data` (file names made by `portico_storage_format::names`):
//!
//! - `kv/<key>`: a KV value in the TTL envelope (`portico_storage_format::envelope`);
//! - `durable/<ns>/<id>`: a durable record (`portico_storage_format::record`);
//! - `durable/<ns>/<id>.lock/`: held while a compare-and-swap is in flight;
//! - `db/<label>/durable/<ns>/...`: the same for a namespace the variable
//!   `durable_databases` (environment variable `DURABLE_DATABASES`) maps to
//!   database `label` (`default` is the layout above), so the operator can
//!   mount that folder from storage in another place;
//! - `counters/<ns>/j-<segment>`: counter journal segments, appended to
//!   without a lock, and `counters/<ns>/base` (with its `.lock/` while a
//!   `read` folds old segments into it); shard files `0` to `7` of the
//!   format before journals are still read
//!   (`portico_storage_format::counters`);
//! - `tmp/`: files being written, renamed into place when complete, and
//!   expired KV entries a sweep has moved aside before deleting them.
//!
//! Each request runs in its own instance, possibly concurrently with others,
//! so everything shared lives in the filesystem: writes are atomic renames and
//! compare-and-swap is serialised by a lock directory (see [`files::Lock`]).

mod config;
mod counters;
mod durable;
mod files;
mod kv;
mod wasi_fs;

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

/// Maps filesystem failures to the contract's error variants.
fn io_error(context: &str, err: std::io::Error) -> Error {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => Error::AccessDenied,
        std::io::ErrorKind::NotFound => Error::Unavailable(format!(
            "{context}: {err} (is a data directory preopened at /data? e.g. `wasmtime serve --dir ./data::/data`, or `jco serve --jco-import examples/jco/setup.mjs`)"
        )),
        _ => Error::Other(format!("{context}: {err}")),
    }
}

fn name_error(err: portico_storage_format::names::NameError) -> Error {
    Error::Other(format!("invalid key: {err}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The namespace -> database mapping (`DURABLE_DATABASES`), read once per
/// instance (each request has its own). Unset or empty: every namespace uses
/// the default layout. A mistake fails every durable call with a message
/// naming it, rather than quietly writing data to the wrong place.
fn locality() -> Result<&'static Locality, Error> {
    static LOCALITY: OnceLock<Locality> = OnceLock::new();
    if let Some(locality) = LOCALITY.get() {
        return Ok(locality);
    }
    let text = <Adapter as exports::portico::platform::config::Guest>::get(
        "durable_databases".to_string(),
    )?
    .unwrap_or_default();
    let locality = Locality::parse(&text).map_err(|err| Error::Other(err.to_string()))?;
    Ok(LOCALITY.get_or_init(|| locality))
}
