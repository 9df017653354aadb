//! The Spin host interfaces that `platform-spin` imports, implemented over
//! SQLite files in the data folder, so `portico serve --target spin` runs
//! `dist/portico-spin.wasm` with the storage `spin up` would give it:
//!
//! - [`key_value`]: `fermyon:spin/key-value@2.0.0` (`<data>/sqlite_key_value.db`,
//!   Spin's own table layout);
//! - [`sqlite`]: `fermyon:spin/sqlite@2.0.0` (`<data>/sqlite_db.db` for
//!   `default`, `<data>/sqlite_db_<label>.db` for each other database the
//!   manifest grants);
//! - [`variables`]: `fermyon:spin/variables@2.0.0` (resolved at startup by
//!   `crate::variables`).
//!
//! Each is one module with the same shape; [`add_to_linker`] wires all three.

pub mod key_value;
pub mod key_value_redis;
pub mod sqlite;
pub mod variables;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::runtime_config::{KeyValueStore, RuntimeConfig};

use anyhow::{Context, Result};
use wasmtime::component::{HasData, Linker, ResourceTable};

wasmtime::component::bindgen!({
    path: "wit/spin",
    world: "fermyon:spin/host",
    with: {
        "fermyon:spin/key-value.store": key_value::StoreHandle,
        "fermyon:spin/sqlite.connection": sqlite::ConnectionHandle,
    },
    // Spin runs each SQLite statement on a blocking thread; so does this host.
    // Every call is traced (`RUST_LOG=portico::spin=trace`), which is how
    // `bench/calls.sh` counts the storage calls a request makes.
    imports: {
        "fermyon:spin/sqlite.[method]connection.execute": async | tracing,
        default: tracing,
    },
});

/// What the Spin interfaces share across requests: the key-value store's one
/// connection (Spin, too, keeps one per store for the whole app), the
/// databases the component may open, and the resolved variables.
pub struct SpinBackend {
    pub(crate) key_value: key_value::Backend,
    pub(crate) databases: sqlite::Opened,
    pub(crate) variables: BTreeMap<String, String>,
}

impl SpinBackend {
    /// Opens (creating if needed) the key-value store and the granted SQLite
    /// databases: where `runtime` puts them, else under `data_dir`.
    pub fn open(
        data_dir: &Path,
        databases: &sqlite::Databases,
        runtime: &RuntimeConfig,
        variables: BTreeMap<String, String>,
    ) -> Result<Arc<SpinBackend>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data folder {}", data_dir.display()))?;
        Ok(Arc::new(SpinBackend {
            key_value: key_value::Backend::open(&key_value_store(data_dir, runtime))?,
            databases: sqlite::Opened::open(data_dir, databases, &runtime.sqlite_databases)?,
            variables,
        }))
    }
}

/// Where the `default` key-value store lives: the runtime configuration's
/// choice, else `<data>/sqlite_key_value.db`.
pub fn key_value_store(data_dir: &Path, runtime: &RuntimeConfig) -> KeyValueStore {
    runtime
        .key_value
        .clone()
        .unwrap_or_else(|| KeyValueStore::Sqlite(data_dir.join(key_value::FILE)))
}

/// Opens a SQLite file as Spin does: SQLite's defaults (rollback journal
/// unless the file was switched to WAL, `synchronous=FULL`) and rusqlite's
/// 5 s busy timeout, so a second connection or process waits for a lock
/// instead of failing. The host sets no PRAGMA: tuning is the app's to ask
/// for, as it must on Spin.
pub(crate) fn open_sqlite(path: &Path) -> Result<rusqlite::Connection> {
    rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))
}

/// The per-request view the generated `Host` traits are implemented for.
pub struct SpinView<'a> {
    pub backend: &'a SpinBackend,
    pub table: &'a mut ResourceTable,
}

struct Spin;

impl HasData for Spin {
    type Data<'a> = SpinView<'a>;
}

/// Store data that can lend a [`SpinView`].
pub trait SpinHost: Send {
    fn spin(&mut self) -> SpinView<'_>;
}

pub fn add_to_linker<T: SpinHost + 'static>(linker: &mut Linker<T>) -> Result<()> {
    fermyon::spin::key_value::add_to_linker::<T, Spin>(linker, T::spin)?;
    fermyon::spin::sqlite::add_to_linker::<T, Spin>(linker, T::spin)?;
    fermyon::spin::variables::add_to_linker::<T, Spin>(linker, T::spin)?;
    Ok(())
}
