//! Spin SQLite connections shared by `durable` and `counters`: opening a
//! database by label, error mapping, and schema creation on first use.
//!
//! Statements run optimistically and a table is created only when SQLite
//! reports it missing, so the common path costs one statement.

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

/// A connection to the database labelled `label`.
pub struct Db {
    label: String,
    connection: Connection,
}

impl Db {
    pub fn open(label: &str) -> Result<Db, Error> {
        let connection = Connection::open(label).map_err(|err| db_error(label, err))?;
        Ok(Db {
            label: label.to_string(),
            connection,
        })
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
