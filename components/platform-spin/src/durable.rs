//! `portico:platform/durable` over Spin SQLite: the database `default`, or
//! the one the variable `durable_databases` maps a namespace to (data
//! locality, see `portico_storage_format::locality`).
//!
//! The schema is created on first use in each database (see [`crate::db`]).

use spin_sdk::sqlite::{QueryResult, Value};

use portico_storage_format::{envelope, names};

use crate::db::{Db, describe, int};
use crate::exports::portico::platform::durable::{Entry, Guest, Outcome};
use crate::exports::portico::platform::types::Error;
use crate::{Adapter, name_error, now_ms};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS portico_durable (
    ns TEXT NOT NULL,
    id TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (ns, id)
)";

/// Creates the record, or replaces one that has expired. Versions continue
/// from the expired record so a stale `expected` version can never match.
const INSERT: &str = "INSERT INTO portico_durable (ns, id, value, version, expires_at)
    VALUES (?1, ?2, ?3, 1, ?4)
    ON CONFLICT (ns, id) DO UPDATE
        SET value = excluded.value, version = portico_durable.version + 1, expires_at = excluded.expires_at
        WHERE portico_durable.expires_at IS NOT NULL AND portico_durable.expires_at <= ?5
    RETURNING version";

const UPDATE: &str = "UPDATE portico_durable
    SET value = ?3, version = version + 1, expires_at = ?4
    WHERE ns = ?1 AND id = ?2 AND version = ?5 AND (expires_at IS NULL OR expires_at > ?6)
    RETURNING version";

const LOAD: &str = "SELECT value, version FROM portico_durable
    WHERE ns = ?1 AND id = ?2 AND (expires_at IS NULL OR expires_at > ?3)";

const REMOVE: &str = "DELETE FROM portico_durable WHERE ns = ?1 AND id = ?2";

const SWEEP: &str = "DELETE FROM portico_durable WHERE rowid IN (
        SELECT rowid FROM portico_durable
        WHERE ns = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2
        LIMIT ?3)
    RETURNING id";

/// The database of namespace `ns`.
fn open(ns: &str) -> Result<Db, Error> {
    let locality = crate::locality()?;
    Db::open(locality.database(ns))
}

/// Runs `sql` against the durable table, creating it on first use.
fn execute(db: &Db, sql: &str, params: &[Value]) -> Result<QueryResult, Error> {
    db.execute(SCHEMA, sql, params)
}

fn check(ns: &str, id: &str) -> Result<(), Error> {
    names::check_key(ns).map_err(name_error)?;
    names::check_key(id).map_err(name_error)
}

fn first_version(result: &QueryResult) -> Result<Option<u64>, Error> {
    match result.rows.first().and_then(|row| row.values.first()) {
        None => Ok(None),
        Some(Value::Integer(v)) => Ok(Some(*v as u64)),
        Some(other) => Err(Error::Other(format!(
            "unexpected version value {}",
            describe(std::slice::from_ref(other))
        ))),
    }
}

fn load_with(db: &Db, ns: &str, id: &str, now: u64) -> Result<Option<Entry>, Error> {
    let params = [Value::Text(ns.into()), Value::Text(id.into()), int(now)];
    let result = execute(db, LOAD, &params)?;
    let Some(row) = result.rows.into_iter().next() else {
        return Ok(None);
    };
    match row.values.as_slice() {
        [Value::Blob(value), Value::Integer(version)] => Ok(Some(Entry {
            value: value.clone(),
            version: *version as u64,
        })),
        other => Err(Error::Other(format!(
            "unexpected durable row {}",
            describe(other)
        ))),
    }
}

impl Guest for Adapter {
    fn load(ns: String, id: String) -> Result<Option<Entry>, Error> {
        check(&ns, &id)?;
        load_with(&open(&ns)?, &ns, &id, now_ms())
    }

    fn compare_and_swap(
        ns: String,
        id: String,
        expected: Option<u64>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<Outcome, Error> {
        check(&ns, &id)?;
        let db = open(&ns)?;
        let now = now_ms();
        let expires_at = envelope::expiry_from_ttl(now, ttl_ms).map_or(Value::Null, int);
        let mut params = vec![
            Value::Text(ns.clone()),
            Value::Text(id.clone()),
            Value::Blob(value),
            expires_at,
        ];
        let sql = match expected {
            None => {
                params.push(int(now));
                INSERT
            }
            Some(version) => {
                params.push(int(version));
                params.push(int(now));
                UPDATE
            }
        };
        match first_version(&execute(&db, sql, &params)?)? {
            Some(version) => Ok(Outcome::Stored(version)),
            None => Ok(Outcome::Conflict(load_with(&db, &ns, &id, now)?)),
        }
    }

    fn remove(ns: String, id: String) -> Result<(), Error> {
        check(&ns, &id)?;
        let db = open(&ns)?;
        let params = [Value::Text(ns), Value::Text(id)];
        execute(&db, REMOVE, &params).map(|_| ())
    }

    fn sweep_expired(ns: String, max: u32) -> Result<u32, Error> {
        names::check_key(&ns).map_err(name_error)?;
        let db = open(&ns)?;
        db.prefer_wal();
        let params = [Value::Text(ns), int(now_ms()), int(u64::from(max))];
        let removed = execute(&db, SWEEP, &params)?.rows.len();
        Ok(u32::try_from(removed).unwrap_or(u32::MAX))
    }
}
