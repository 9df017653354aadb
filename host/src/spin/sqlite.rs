//! `fermyon:spin/sqlite@2.0.0` over one SQLite file per database label in
//! the data folder: `default` is `<data>/sqlite_db.db`, label `X` is
//! `<data>/sqlite_db_X.db`.
//!
//! It behaves as Spin's own local implementation (`spin-sqlite-inproc`)
//! does, so that what the app costs here is what it costs on `spin up`:
//! every guest `open` gets a connection of its own, opened at its first
//! statement with SQLite's defaults (rollback journal, `synchronous=FULL`,
//! rusqlite's 5 s busy timeout) and no PRAGMA of the host's, and every
//! statement runs on a blocking thread (`spawn_blocking`). Whatever tuning
//! the database gets, the app asks for it through `execute`, as on Spin.
//!
//! Like Spin, a component may open only the databases its manifest entry
//! grants (`sqlite_databases = ["default", "eu"]`); any other label is
//! `access-denied` when the app defines that database (for another component,
//! or `default`, which Spin always defines) and `no-such-database` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Result, bail};
use portico_storage_format::locality;
use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::Resource;

use super::SpinView;
use super::fermyon::spin::sqlite::{Error, Host, HostConnection, QueryResult, RowResult, Value};

pub const FILE: &str = "sqlite_db.db";
/// The database every Spin app has (Portico's manifest grants it).
pub const DEFAULT_DATABASE: &str = "default";

/// The file of database `label` in the data folder.
pub fn file_name(label: &str) -> String {
    if label == DEFAULT_DATABASE {
        FILE.to_string()
    } else {
        format!("sqlite_db_{label}.db")
    }
}

/// The SQLite databases of an app, from its manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Databases {
    /// The labels granted to the component served (`sqlite_databases`).
    pub granted: Vec<String>,
    /// Every label some component of the app names.
    pub defined: Vec<String>,
}

/// The databases a component may use (by file), and the ones it may not.
pub struct Opened {
    files: BTreeMap<String, PathBuf>,
    defined: BTreeSet<String>,
}

impl Opened {
    /// Checks that each granted database can be opened (creating its file
    /// if needed), so a bad data folder fails at startup. A database is the
    /// file `placed` names (the runtime configuration's `path`), else its
    /// file under `data_dir`.
    pub fn open(
        data_dir: &Path,
        databases: &Databases,
        placed: &BTreeMap<String, PathBuf>,
    ) -> Result<Opened> {
        let mut files = BTreeMap::new();
        for label in &databases.granted {
            if !locality::is_label(label) {
                bail!(
                    "sqlite_databases: {label:?} is not a database label (lower-case letters, digits, `_` and `-`, starting with a letter)"
                );
            }
            let path: PathBuf = placed
                .get(label)
                .cloned()
                .unwrap_or_else(|| data_dir.join(file_name(label)));
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder)
                    .map_err(|err| anyhow::anyhow!("creating {}: {err}", folder.display()))?;
            }
            drop(open(&path)?);
            files.insert(label.clone(), path);
        }
        let mut defined: BTreeSet<String> = databases.defined.iter().cloned().collect();
        defined.insert(DEFAULT_DATABASE.to_string());
        Ok(Opened { files, defined })
    }

    fn check(&self, label: &str) -> Result<&Path, Error> {
        if let Some(path) = self.files.get(label) {
            Ok(path)
        } else if self.defined.contains(label) {
            Err(Error::AccessDenied)
        } else {
            Err(Error::NoSuchDatabase)
        }
    }
}

/// A guest's connection: its own SQLite connection, opened at the first
/// statement (as Spin does) and closed when the guest drops the handle or
/// the request's store goes away.
pub struct ConnectionHandle {
    path: PathBuf,
    connection: Arc<OnceLock<Mutex<rusqlite::Connection>>>,
}

/// Opens `path` with SQLite's defaults, as Spin does: no PRAGMA at all.
pub fn open(path: &Path) -> Result<rusqlite::Connection> {
    super::open_sqlite(path)
}

fn to_sql(value: Value) -> SqlValue {
    match value {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(r) => SqlValue::Real(r),
        Value::Text(t) => SqlValue::Text(t),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}

fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Null => Value::Null,
    }
}

fn execute(
    db: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> rusqlite::Result<QueryResult> {
    let mut prepared = db.prepare_cached(statement)?;
    let columns: Vec<String> = prepared
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let params: Vec<SqlValue> = parameters.into_iter().map(to_sql).collect();
    let mut rows = prepared.query(rusqlite::params_from_iter(params))?;
    let mut results = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for index in 0..columns.len() {
            values.push(from_sql(row.get_ref(index)?));
        }
        results.push(RowResult { values });
    }
    Ok(QueryResult {
        columns,
        rows: results,
    })
}

impl Host for SpinView<'_> {}

fn io_error(err: rusqlite::Error) -> Error {
    match err {
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::DiskFull => {
            Error::DatabaseFull
        }
        other => Error::Io(other.to_string()),
    }
}

impl HostConnection for SpinView<'_> {
    fn open(&mut self, database: String) -> Result<Resource<ConnectionHandle>, Error> {
        let path = self.backend.databases.check(&database)?.to_path_buf();
        self.table
            .push(ConnectionHandle {
                path,
                connection: Arc::new(OnceLock::new()),
            })
            .map_err(|err| Error::Io(err.to_string()))
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let handle = self
            .table
            .get(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let (path, cell) = (handle.path.clone(), handle.connection.clone());
        tokio::task::spawn_blocking(move || {
            if cell.get().is_none() {
                let opened = open(&path).map_err(|err| Error::Io(format!("{err:#}")))?;
                // A lost race only means one connection too many, dropped here.
                let _ = cell.set(Mutex::new(opened));
            }
            let db = cell
                .get()
                .ok_or_else(|| Error::Io("connection not opened".into()))?
                .lock()
                .map_err(|_| Error::Io("connection poisoned".into()))?;
            execute(&db, &statement, parameters).map_err(io_error)
        })
        .await
        .map_err(|err| Error::Io(format!("query task failed: {err}")))?
    }

    fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn databases(granted: &[&str], defined: &[&str]) -> Databases {
        Databases {
            granted: granted.iter().map(|s| s.to_string()).collect(),
            defined: defined.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn each_granted_label_is_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Opened::open(
            dir.path(),
            &databases(&["default", "eu"], &["default", "eu"]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(opened.check("default").is_ok());
        assert!(opened.check("eu").is_ok());
        assert!(dir.path().join("sqlite_db.db").exists());
        assert!(dir.path().join("sqlite_db_eu.db").exists());
    }

    #[test]
    fn ungranted_is_denied_and_undefined_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Opened::open(
            dir.path(),
            &databases(&["eu"], &["eu", "us"]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(opened.check("eu").is_ok());
        assert!(matches!(opened.check("us"), Err(Error::AccessDenied)));
        // Spin always defines `default`; this component was not granted it.
        assert!(matches!(opened.check("default"), Err(Error::AccessDenied)));
        assert!(matches!(opened.check("asia"), Err(Error::NoSuchDatabase)));
        assert!(!dir.path().join("sqlite_db.db").exists());
    }

    #[test]
    fn a_label_that_cannot_name_a_file_is_refused_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let err = Opened::open(dir.path(), &databases(&["../x"], &[]), &BTreeMap::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("../x"), "{err}");
    }
}
