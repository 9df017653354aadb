//! `fermyon:spin/sqlite@2.0.0` over one SQLite file per data folder.

use std::path::Path;

use anyhow::Result;
use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::Resource;

use super::SpinView;
use super::fermyon::spin::sqlite::{Error, Host, HostConnection, QueryResult, RowResult, Value};

pub const FILE: &str = "sqlite_db.db";
/// The only database Portico's manifest grants (`sqlite_databases = ["default"]`).
pub const DEFAULT_DATABASE: &str = "default";

/// An open connection handle; all handles share the backend's connection.
pub struct ConnectionHandle;

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

impl HostConnection for SpinView<'_> {
    fn open(&mut self, database: String) -> Result<Resource<ConnectionHandle>, Error> {
        if database != DEFAULT_DATABASE {
            return Err(Error::NoSuchDatabase);
        }
        self.table
            .push(ConnectionHandle)
            .map_err(|err| Error::Io(err.to_string()))
    }

    fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        self.table
            .get(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let db = self
            .backend
            .database
            .lock()
            .map_err(|_| Error::Io("database poisoned".into()))?;
        execute(&db, &statement, parameters).map_err(|err| match err {
            rusqlite::Error::SqliteFailure(code, _)
                if code.code == rusqlite::ErrorCode::DiskFull =>
            {
                Error::DatabaseFull
            }
            other => Error::Io(other.to_string()),
        })
    }

    fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
