//! `fermyon:spin/key-value@2.0.0` over SQLite, in the table layout of Spin's
//! own SQLite key-value provider, so the file reads like `.spin/sqlite_key_value.db`.
//!
//! It behaves as Spin's (`spin-key-value-spin`) does: one connection for the
//! whole app behind a mutex, SQLite's defaults (no PRAGMA), and each call
//! run in place on the async worker thread (`block_in_place`).

use std::path::Path;

use anyhow::Result;
use rusqlite::OptionalExtension;
use wasmtime::component::Resource;

use super::SpinView;
use super::fermyon::spin::key_value::{Error, Host, HostStore};

pub const FILE: &str = "sqlite_key_value.db";
/// The only store Portico's manifest grants (`key_value_stores = ["default"]`).
pub const DEFAULT_STORE: &str = "default";

/// An open store: just its label, since all stores share one database.
pub struct StoreHandle {
    label: String,
}

pub fn open(path: &Path) -> Result<rusqlite::Connection> {
    let connection = super::open_sqlite(path)?;
    connection.execute(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        )",
        [],
    )?;
    Ok(connection)
}

fn other(err: impl std::fmt::Display) -> Error {
    Error::Other(err.to_string())
}

impl SpinView<'_> {
    fn label(&self, store: &Resource<StoreHandle>) -> Result<String, Error> {
        self.table
            .get(store)
            .map(|handle| handle.label.clone())
            .map_err(other)
    }

    fn with_db<R>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<R, Error> {
        tokio::task::block_in_place(|| {
            let db = self
                .backend
                .key_value
                .lock()
                .map_err(|_| other("key-value store poisoned"))?;
            f(&db).map_err(other)
        })
    }
}

impl Host for SpinView<'_> {}

impl HostStore for SpinView<'_> {
    fn open(&mut self, label: String) -> Result<Resource<StoreHandle>, Error> {
        if label != DEFAULT_STORE {
            return Err(Error::NoSuchStore);
        }
        self.table.push(StoreHandle { label }).map_err(other)
    }

    fn get(&mut self, store: Resource<StoreHandle>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let label = self.label(&store)?;
        self.with_db(|db| {
            db.query_row(
                "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                (label, key),
                |row| row.get(0),
            )
            .optional()
        })
    }

    fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let label = self.label(&store)?;
        self.with_db(|db| {
            db.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                (label, key, value),
            )
            .map(drop)
        })
    }

    fn delete(&mut self, store: Resource<StoreHandle>, key: String) -> Result<(), Error> {
        let label = self.label(&store)?;
        self.with_db(|db| {
            db.execute(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                (label, key),
            )
            .map(drop)
        })
    }

    fn exists(&mut self, store: Resource<StoreHandle>, key: String) -> Result<bool, Error> {
        let label = self.label(&store)?;
        self.with_db(|db| {
            db.query_row(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
                (label, key),
                |row| row.get(0),
            )
        })
    }

    fn get_keys(&mut self, store: Resource<StoreHandle>) -> Result<Vec<String>, Error> {
        let label = self.label(&store)?;
        self.with_db(|db| {
            let mut statement =
                db.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            let keys = statement.query_map([label], |row| row.get(0))?;
            keys.collect()
        })
    }

    fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
