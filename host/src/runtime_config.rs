//! Spin's runtime configuration file (`spin up --runtime-config-file`), for
//! the parts Portico uses: where the `default` key-value store lives (a
//! SQLite file, or Redis) and where each SQLite database lives. With it,
//! several `portico serve` processes share state as several Spin nodes do:
//! one Redis and one SQLite file (or one data folder) for all of them.
//!
//! ```toml
//! [key_value_store.default]
//! type = "redis"                  # or type = "spin", path = "kv.db"
//! url = "redis://127.0.0.1:6379"
//!
//! [sqlite_database.default]
//! type = "spin"
//! path = "/srv/portico/sqlite_db.db"
//! ```
//!
//! Relative paths are relative to the file's own folder, as Spin reads
//! them. Anything else is refused with its name: a table, a field, or a
//! type (Spin's `libsql`, `azure_cosmos`, ... say that Spin has them and
//! this host does not), so a file written for Spin never half-applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Where the `default` key-value store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueStore {
    /// A SQLite file in Spin's layout (`type = "spin"`).
    Sqlite(PathBuf),
    /// A Redis server (`type = "redis"`, `url`).
    Redis(String),
}

/// What the file says; empty when no file is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `[key_value_store.default]`; `None`: the data folder's file.
    pub key_value: Option<KeyValueStore>,
    /// `[sqlite_database.<label>]` with `type = "spin"`: the file of each.
    pub sqlite_databases: BTreeMap<String, PathBuf>,
}

/// Types Spin implements that this host does not.
const SPIN_ONLY_KV: [&str; 3] = ["azure_cosmos", "aws_dynamo", "cosmos"];

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        RuntimeConfig::parse(&text, base)
            .with_context(|| format!("runtime config {}", path.display()))
    }

    pub fn parse(text: &str, base: &Path) -> Result<RuntimeConfig> {
        let table: toml::Table = text.parse().context("not valid TOML")?;
        let mut config = RuntimeConfig::default();
        for (section, value) in &table {
            let entries = value
                .as_table()
                .with_context(|| format!("`{section}` must be a table of named entries"))?;
            match section.as_str() {
                "key_value_store" => {
                    for (label, entry) in entries {
                        if label != "default" {
                            bail!(
                                "[key_value_store.{label}]: the app opens only the `default` store"
                            );
                        }
                        config.key_value = Some(key_value_store(label, entry, base)?);
                    }
                }
                "sqlite_database" => {
                    for (label, entry) in entries {
                        let path = sqlite_database(label, entry, base)?;
                        config.sqlite_databases.insert(label.clone(), path);
                    }
                }
                other => bail!(
                    "[{other}]: not supported by the embedded host (it reads \
                     [key_value_store.default] and [sqlite_database.<label>])"
                ),
            }
        }
        Ok(config)
    }
}

/// The fields of one entry, checked against the ones its type takes.
fn fields<'a>(
    name: &str,
    entry: &'a toml::Value,
    allowed: &[&str],
) -> Result<BTreeMap<&'a str, &'a str>> {
    let table = entry
        .as_table()
        .with_context(|| format!("[{name}] must be a table"))?;
    let mut found = BTreeMap::new();
    for (key, value) in table {
        if !allowed.contains(&key.as_str()) {
            bail!(
                "[{name}]: unknown field `{key}` (this type takes {})",
                allowed.join(", ")
            );
        }
        let text = value
            .as_str()
            .with_context(|| format!("[{name}] `{key}` must be a string"))?;
        found.insert(key.as_str(), text);
    }
    Ok(found)
}

fn type_of<'a>(name: &str, entry: &'a toml::Value) -> Result<&'a str> {
    entry
        .get("type")
        .and_then(toml::Value::as_str)
        .with_context(|| format!("[{name}] needs a `type`"))
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The file of a `type = "spin"` entry (its only other field is `path`).
fn spin_path(name: &str, entry: &toml::Value, base: &Path) -> Result<PathBuf> {
    let found = fields(name, entry, &["type", "path"])?;
    let path = found
        .get("path")
        .with_context(|| format!("[{name}] type \"spin\" needs a `path`"))?;
    Ok(resolve(base, path))
}

fn key_value_store(label: &str, entry: &toml::Value, base: &Path) -> Result<KeyValueStore> {
    let name = format!("key_value_store.{label}");
    match type_of(&name, entry)? {
        "spin" => Ok(KeyValueStore::Sqlite(spin_path(&name, entry, base)?)),
        "redis" => {
            let found = fields(&name, entry, &["type", "url"])?;
            let url = found
                .get("url")
                .with_context(|| format!("[{name}] type \"redis\" needs a `url`"))?;
            redis::parse_redis_url(url)
                .with_context(|| format!("[{name}] url {url:?} is not a Redis URL"))?;
            Ok(KeyValueStore::Redis(url.to_string()))
        }
        other if SPIN_ONLY_KV.contains(&other) => bail!(
            "[{name}] type {other:?}: Spin supports it, the embedded host does not \
             (it supports \"spin\" and \"redis\")"
        ),
        other => bail!("[{name}] unknown type {other:?} (expected \"spin\" or \"redis\")"),
    }
}

fn sqlite_database(label: &str, entry: &toml::Value, base: &Path) -> Result<PathBuf> {
    let name = format!("sqlite_database.{label}");
    if !portico_storage_format::locality::is_label(label) {
        bail!(
            "[{name}]: {label:?} is not a database label (lower-case letters, digits, `_` and `-`, starting with a letter)"
        );
    }
    match type_of(&name, entry)? {
        "spin" => spin_path(&name, entry, base),
        "libsql" => bail!(
            "[{name}] type \"libsql\": Spin supports it (libSQL / Turso), the embedded host \
             does not; give every instance the same SQLite file with type = \"spin\" and a `path`"
        ),
        other => bail!("[{name}] unknown type {other:?} (expected \"spin\")"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfig> {
        RuntimeConfig::parse(text, Path::new("/etc/portico"))
    }

    #[test]
    fn reads_redis_and_sqlite_paths_relative_to_the_file() {
        let config = parse(
            r#"
            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1:6379"

            [sqlite_database.default]
            type = "spin"
            path = "db/main.db"

            [sqlite_database.eu]
            type = "spin"
            path = "/srv/eu.db"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.key_value,
            Some(KeyValueStore::Redis("redis://127.0.0.1:6379".into()))
        );
        assert_eq!(
            config.sqlite_databases["default"],
            Path::new("/etc/portico/db/main.db")
        );
        assert_eq!(config.sqlite_databases["eu"], Path::new("/srv/eu.db"));
    }

    #[test]
    fn a_spin_key_value_file() {
        let config =
            parse("[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n").unwrap();
        assert_eq!(
            config.key_value,
            Some(KeyValueStore::Sqlite("/etc/portico/kv.db".into()))
        );
    }

    #[test]
    fn an_empty_file_changes_nothing() {
        assert_eq!(parse("").unwrap(), RuntimeConfig::default());
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://x\"\n",
                "Spin supports it (libSQL / Turso), the embedded host does not",
            ),
            (
                "[key_value_store.default]\ntype = \"azure_cosmos\"\n",
                "Spin supports it, the embedded host does not",
            ),
            (
                "[key_value_store.default]\ntype = \"memcached\"\n",
                "unknown type \"memcached\"",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"\npassword = \"p\"\n",
                "unknown field `password`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\n",
                "needs a `url`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"http://x\"\n",
                "is not a Redis URL",
            ),
            (
                "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://x\"\n",
                "only the `default` store",
            ),
            (
                "[llm_compute]\ntype = \"spin\"\n",
                "[llm_compute]: not supported",
            ),
            (
                "[sqlite_database.Bad]\ntype = \"spin\"\npath = \"x\"\n",
                "not a database label",
            ),
            (
                "[sqlite_database.default]\npath = \"x\"\n",
                "needs a `type`",
            ),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
