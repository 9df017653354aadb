//! `fermyon:spin/key-value@2.0.0` over SQLite, in the table layout of Spin's
//! own SQLite key-value provider, so the file reads like `.spin/sqlite_key_value.db`;
//! or over Redis when the runtime configuration says so
//! ([`super::key_value_redis`]).
//!
//! On SQLite it behaves as Spin's (`spin-key-value-spin`) does: one
//! connection for the whole app behind a mutex, SQLite's defaults (no
//! PRAGMA), and each call run in place on the async worker thread
//! (`block_in_place`).

use std::path::Path;

use anyhow::Result;
use rusqlite::OptionalExtension;
use wasmtime::component::Resource;

use super::SpinView;
use super::fermyon::spin::key_value::{Error, Host, HostStore};
use super::key_value_redis::RedisStore;

pub const FILE: &str = "sqlite_key_value.db";
/// The only store Portico's manifest grants (`key_value_stores = ["default"]`).
pub const DEFAULT_STORE: &str = "default";

/// An open store: just its label, since all stores share one database.
pub struct StoreHandle {
    label: String,
}

/// Where the `default` store lives.
pub enum Backend {
    Sqlite(std::sync::Mutex<rusqlite::Connection>),
    Redis(RedisStore),
}

impl Backend {
    pub fn open(store: &crate::runtime_config::KeyValueStore) -> Result<Backend> {
        use crate::runtime_config::KeyValueStore;
        Ok(match store {
            KeyValueStore::Sqlite(path) => Backend::Sqlite(std::sync::Mutex::new(open(path)?)),
            KeyValueStore::Redis(url) => Backend::Redis(RedisStore::new(url)?),
        })
    }

    /// Where it lives, for the startup line.
    pub fn describe(store: &crate::runtime_config::KeyValueStore) -> String {
        use crate::runtime_config::KeyValueStore;
        match store {
            KeyValueStore::Sqlite(path) => path.display().to_string(),
            KeyValueStore::Redis(url) => redis_address(url),
        }
    }
}

/// A Redis URL without its password, for logs.
fn redis_address(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        None => "redis".to_string(),
    }
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

    /// Runs one call on whichever store the app has.
    fn with_store<R>(
        &self,
        sqlite: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
        redis: impl AsyncFnOnce(&RedisStore) -> redis::RedisResult<R>,
    ) -> Result<R, Error> {
        tokio::task::block_in_place(|| match &self.backend.key_value {
            Backend::Sqlite(connection) => {
                let db = connection
                    .lock()
                    .map_err(|_| other("key-value store poisoned"))?;
                sqlite(&db).map_err(other)
            }
            Backend::Redis(store) => tokio::runtime::Handle::current()
                .block_on(redis(store))
                .map_err(|err| other(format!("redis: {err}"))),
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
        self.with_store(
            |db| {
                db.query_row(
                    "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    (label, &key),
                    |row| row.get(0),
                )
                .optional()
            },
            async |redis| redis.get(&key).await,
        )
    }

    fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let label = self.label(&store)?;
        self.with_store(
            |db| {
                db.execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    (label, &key, &value),
                )
                .map(drop)
            },
            async |redis| redis.set(&key, &value).await,
        )
    }

    fn delete(&mut self, store: Resource<StoreHandle>, key: String) -> Result<(), Error> {
        let label = self.label(&store)?;
        self.with_store(
            |db| {
                db.execute(
                    "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    (label, &key),
                )
                .map(drop)
            },
            async |redis| redis.delete(&key).await,
        )
    }

    fn exists(&mut self, store: Resource<StoreHandle>, key: String) -> Result<bool, Error> {
        let label = self.label(&store)?;
        self.with_store(
            |db| {
                db.query_row(
                    "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
                    (label, &key),
                    |row| row.get(0),
                )
            },
            async |redis| redis.exists(&key).await,
        )
    }

    fn get_keys(&mut self, store: Resource<StoreHandle>) -> Result<Vec<String>, Error> {
        let label = self.label(&store)?;
        self.with_store(
            |db| {
                let mut statement = db.prepare_cached(
                    "SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key",
                )?;
                let keys = statement.query_map([label], |row| row.get(0))?;
                keys.collect()
            },
            async |redis| redis.keys().await,
        )
    }

    fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
