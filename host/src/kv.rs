//! `portico kv`: reads and writes the KV data of an app directly in its data
//! folder, in the same format the platform adapters use (the envelope of
//! `portico_storage_format`), for seeding and inspection like
//! `wrangler kv key put`. Safe while the server runs: SQLite serialises
//! writers on `--target spin`, and `--target wasi` writes are atomic renames.
//! With a runtime configuration that puts the store on Redis (or in another
//! SQLite file), it reads and writes there, as the server does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use portico_storage_format::{envelope, names};
use rusqlite::OptionalExtension;

use crate::runtime_config::{KeyValueStore, RuntimeConfig};
use crate::serve::Target;
use crate::spin::key_value::{self, DEFAULT_STORE};

pub struct KvStore {
    target: Target,
    data: PathBuf,
    /// `--target spin`: where the `default` store lives.
    spin: KeyValueStore,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl KvStore {
    pub fn new(target: Target, data: &Path) -> KvStore {
        KvStore::placed(target, data, &RuntimeConfig::default())
    }

    /// The store where `runtime` puts it (`--runtime-config-file`).
    pub fn placed(target: Target, data: &Path, runtime: &RuntimeConfig) -> KvStore {
        KvStore {
            target,
            data: data.to_path_buf(),
            spin: crate::spin::key_value_store(data, runtime),
        }
    }

    fn wasi_dir(&self) -> PathBuf {
        self.data.join("wasi").join("kv")
    }

    fn wasi_path(&self, key: &str) -> Result<PathBuf> {
        names::check_key(key)?;
        let name = names::to_file_name(key);
        if name.len() > names::MAX_FILE_NAME_BYTES - 5 {
            bail!("key {key:?} is too long for a file name once encoded");
        }
        Ok(self.wasi_dir().join(name))
    }

    fn sqlite(&self, path: &Path) -> Result<rusqlite::Connection> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
        key_value::open(path)
    }

    fn redis(&self, url: &str) -> Result<redis::Connection> {
        redis::Client::open(url)
            .and_then(|client| client.get_connection())
            .with_context(|| format!("connecting to the key-value store's Redis ({url})"))
    }

    /// The live value under `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        names::check_key(key)?;
        let stored: Option<Vec<u8>> = match (self.target, &self.spin) {
            (Target::Spin, KeyValueStore::Sqlite(path)) => self
                .sqlite(path)?
                .query_row(
                    "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    (DEFAULT_STORE, key),
                    |row| row.get(0),
                )
                .optional()?,
            (Target::Spin, KeyValueStore::Redis(url)) => {
                redis::cmd("GET").arg(key).query(&mut self.redis(url)?)?
            }
            (Target::Wasi, _) => match std::fs::read(self.wasi_path(key)?) {
                Ok(bytes) => Some(bytes),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err.into()),
            },
        };
        Ok(stored.and_then(|bytes| {
            let decoded = envelope::decode(&bytes);
            decoded.is_live(now_ms()).then(|| decoded.value.to_vec())
        }))
    }

    pub fn set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<()> {
        names::check_key(key)?;
        let bytes = envelope::encode(value, envelope::expiry_from_ttl(now_ms(), ttl_ms));
        match (self.target, &self.spin) {
            (Target::Spin, KeyValueStore::Sqlite(path)) => {
                self.sqlite(path)?.execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    (DEFAULT_STORE, key, bytes),
                )?;
            }
            (Target::Spin, KeyValueStore::Redis(url)) => {
                redis::cmd("SET")
                    .arg(key)
                    .arg(bytes)
                    .query::<()>(&mut self.redis(url)?)?;
            }
            (Target::Wasi, _) => {
                let path = self.wasi_path(key)?;
                let tmp_dir = self.data.join("wasi").join("tmp");
                std::fs::create_dir_all(&tmp_dir)?;
                std::fs::create_dir_all(self.wasi_dir())?;
                let tmp = tmp_dir.join(format!("cli-{}.tmp", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        names::check_key(key)?;
        match (self.target, &self.spin) {
            (Target::Spin, KeyValueStore::Sqlite(path)) => {
                self.sqlite(path)?.execute(
                    "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    (DEFAULT_STORE, key),
                )?;
            }
            (Target::Spin, KeyValueStore::Redis(url)) => {
                redis::cmd("DEL")
                    .arg(key)
                    .query::<i64>(&mut self.redis(url)?)?;
            }
            (Target::Wasi, _) => match std::fs::remove_file(self.wasi_path(key)?) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            },
        }
        Ok(())
    }

    /// Keys starting with `prefix`, sorted (expired ones included: listing is
    /// for inspection, and an expired entry is still on disk until swept).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys: Vec<String> = match (self.target, &self.spin) {
            (Target::Spin, KeyValueStore::Sqlite(path)) => {
                let db = self.sqlite(path)?;
                let mut statement =
                    db.prepare("SELECT key FROM spin_key_value WHERE store = ?1")?;
                let rows = statement.query_map([DEFAULT_STORE], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            }
            (Target::Spin, KeyValueStore::Redis(url)) => {
                // SCAN with the prefix as a pattern (its glob characters
                // escaped), never KEYS.
                let pattern: String = prefix
                    .chars()
                    .flat_map(|c| match c {
                        '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .chain(['*'])
                    .collect();
                let mut connection = self.redis(url)?;
                let iter: redis::Iter<String> = redis::cmd("SCAN")
                    .cursor_arg(0)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .clone()
                    .iter(&mut connection)?;
                let mut keys = Vec::new();
                for key in iter {
                    keys.push(key?);
                }
                keys
            }
            (Target::Wasi, _) => match std::fs::read_dir(self.wasi_dir()) {
                Ok(entries) => entries
                    .filter_map(|entry| entry.ok())
                    .filter_map(|entry| entry.file_name().to_str().and_then(names::from_file_name))
                    .collect(),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(err) => return Err(err.into()),
            },
        };
        keys.retain(|key| key.starts_with(prefix));
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}
