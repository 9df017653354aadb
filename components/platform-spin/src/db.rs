//! Spin SQLite connections shared by `durable` and `counters`: opening a
//! database by label, error mapping, tuning, and schema creation on first use.
//!
//! Statements run optimistically and a table is created only when SQLite
//! reports it missing, so the common path costs one statement.
//!
//! Spin opens a new connection for every `open` with SQLite's defaults: a
//! rollback journal and `synchronous=FULL`, so each write is several
//! fsyncs. The app asks for better itself, through ordinary statements:
//! - one connection per database for the whole request (an instance serves
//!   one request), so a request opens each database once;
//! - `PRAGMA synchronous=NORMAL` on that connection (a per-connection
//!   setting): in WAL mode a commit then needs no fsync, only checkpoints do;
//! - `PRAGMA journal_mode=WAL` when a table is created and on every durable
//!   sweep (the rate limiter sweeps about once in 64 writes), since the mode
//!   is stored in the database file: a new database is WAL from its first
//!   table, and one made by an older version is switched soon after.
//!
//! A database that refuses PRAGMAs (libSQL/Turso through Spin's runtime
//! configuration) keeps working: the refusals are ignored.

use std::cell::RefCell;
use std::rc::Rc;

use spin_sdk::sqlite::{self, Connection, QueryResult, Value};

use portico_storage_format::locality::DEFAULT_DATABASE;

use crate::exports::portico::platform::types::Error;

/// Maps a Spin SQLite error on database `label`; a database the component
/// may not use is reported with what to change in `spin.toml`.
pub fn db_error(label: &str, err: sqlite::Error) -> Error {
    match err {
        sqlite::Error::AccessDenied if label == DEFAULT_DATABASE => Error::AccessDenied,
        sqlite::Error::NoSuchDatabase if label == DEFAULT_DATABASE => Error::Unavailable(
            "no SQLite database `default`: add sqlite_databases = [\"default\"] to the component in spin.toml".into(),
        ),
        sqlite::Error::AccessDenied | sqlite::Error::NoSuchDatabase => Error::Other(format!(
            "SQLite database `{label}` (named in the variable durable_databases) is not available to this component: add \"{label}\" to sqlite_databases of the component in spin.toml (on Spin, also define it in the runtime configuration file)"
        )),
        sqlite::Error::DatabaseFull => Error::TooLarge,
        sqlite::Error::InvalidConnection => Error::Unavailable("invalid SQLite connection".into()),
        sqlite::Error::Io(reason) => Error::Other(reason),
    }
}

thread_local! {
    /// This instance's connections by label: an instance serves one request,
    /// so nothing outlives it.
    static OPEN: RefCell<Vec<(String, Rc<Connection>)>> = const { RefCell::new(Vec::new()) };
}

/// A connection to the database labelled `label`.
pub struct Db {
    label: String,
    connection: Rc<Connection>,
}

impl Db {
    /// This request's connection to `label`, opened and tuned on first use.
    pub fn open(label: &str) -> Result<Db, Error> {
        let cached = OPEN.with_borrow(|open| {
            open.iter()
                .find(|(l, _)| l == label)
                .map(|(_, connection)| connection.clone())
        });
        let connection = match cached {
            Some(connection) => connection,
            None => {
                let connection =
                    Rc::new(Connection::open(label).map_err(|err| db_error(label, err))?);
                // Per connection; refused by some databases, which is fine.
                let _ = connection.execute("PRAGMA synchronous=NORMAL", &[]);
                OPEN.with_borrow_mut(|open| open.push((label.to_string(), connection.clone())));
                connection
            }
        };
        Ok(Db {
            label: label.to_string(),
            connection,
        })
    }

    /// Switches the database file to WAL (a no-op once it is; it persists
    /// in the file). Refusals are ignored: the database then keeps its mode.
    pub fn prefer_wal(&self) {
        let _ = self.connection.execute("PRAGMA journal_mode=WAL", &[]);
    }

    pub fn open_default() -> Result<Db, Error> {
        Db::open(DEFAULT_DATABASE)
    }

    /// Runs `sql`; when SQLite reports a missing table, runs `schema` (a
    /// `CREATE TABLE IF NOT EXISTS`) and retries once.
    pub fn execute(&self, schema: &str, sql: &str, params: &[Value]) -> Result<QueryResult, Error> {
        let fail = |err| db_error(&self.label, err);
        match self.connection.execute(sql, params) {
            Err(sqlite::Error::Io(reason)) if reason.contains("no such table") => {
                self.prefer_wal();
                self.connection.execute(schema, &[]).map_err(fail)?;
                self.connection.execute(sql, params).map_err(fail)
            }
            other => other.map_err(fail),
        }
    }
}

/// SQLite integers are signed; times and versions stay far below `i64::MAX`,
/// and saturate rather than wrap if a caller passes something absurd.
pub fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// SQLite's type names for an unexpected row, for an error message. The
/// values themselves are left out: `{:?}` on them would pull the float
/// formatting machinery (about 8 KB gzip) into the component for a message
/// that only a schema mismatch can produce, and a blob could be large.
pub fn describe(values: &[Value]) -> String {
    let types: Vec<&str> = values
        .iter()
        .map(|value| match value {
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
            Value::Null => "null",
        })
        .collect();
    format!("({})", types.join(", "))
}
