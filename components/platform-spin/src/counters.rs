//! `portico:platform/counters` over the Spin SQLite database `default`: one
//! table, and each `add` is one multi-row upsert that adds every delta to
//! the stored value, so concurrent adders never conflict (SQLite serialises
//! the writes and each is relative).

use spin_sdk::sqlite::Value;

use portico_storage_format::{counters, names};

use crate::db::{Db, describe};
use crate::exports::portico::platform::counters::Guest;
use crate::exports::portico::platform::types::Error;
use crate::{Adapter, name_error};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS portico_counters (
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (ns, name)
)";

const READ: &str = "SELECT name, value FROM portico_counters WHERE ns = ?1 ORDER BY name";

/// Counters per statement: 2 parameters each plus the namespace stays under
/// the 999 parameters of SQLite builds older than 3.32. A larger `add` (rare:
/// a request touches a few dozen) takes one statement per this many.
const ROWS_PER_STATEMENT: usize = 400;

/// `INSERT ... VALUES (?1, ?2, ?3), (?1, ?4, ?5), ... ON CONFLICT ... DO UPDATE`
/// for `rows` counters.
fn upsert(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO portico_counters (ns, name, value) VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let name = 2 + 2 * row;
        sql.push_str(&format!("(?1, ?{name}, ?{})", name + 1));
    }
    sql.push_str(
        " ON CONFLICT (ns, name) DO UPDATE SET value = portico_counters.value + excluded.value",
    );
    sql
}

fn check(ns: &str, deltas: &[(String, i64)]) -> Result<(), Error> {
    names::check_key(ns).map_err(name_error)?;
    for (name, _) in deltas {
        counters::check_name(name)
            .map_err(|err| Error::Other(format!("invalid counter name: {err}")))?;
    }
    Ok(())
}

impl Guest for Adapter {
    fn add(ns: String, deltas: Vec<(String, i64)>) -> Result<(), Error> {
        check(&ns, &deltas)?;
        let merged = counters::merge_deltas(deltas.iter().map(|(n, d)| (n.as_str(), *d)));
        if merged.is_empty() {
            return Ok(());
        }
        let db = Db::open_default()?;
        let merged: Vec<(String, i64)> = merged.into_iter().collect();
        for chunk in merged.chunks(ROWS_PER_STATEMENT) {
            let mut params = Vec::with_capacity(1 + 2 * chunk.len());
            params.push(Value::Text(ns.clone()));
            for (name, delta) in chunk {
                params.push(Value::Text(name.clone()));
                params.push(Value::Integer(*delta));
            }
            db.execute(SCHEMA, &upsert(chunk.len()), &params)?;
        }
        Ok(())
    }

    fn read(ns: String) -> Result<Vec<(String, i64)>, Error> {
        names::check_key(&ns).map_err(name_error)?;
        let db = Db::open_default()?;
        let result = db.execute(SCHEMA, READ, &[Value::Text(ns)])?;
        result
            .rows
            .into_iter()
            .map(|row| match row.values.as_slice() {
                [Value::Text(name), Value::Integer(value)] => Ok((name.clone(), *value)),
                // SQLite turns an integer overflow into a real: saturate.
                [Value::Text(name), Value::Real(value)] => Ok((name.clone(), *value as i64)),
                other => Err(Error::Other(format!(
                    "unexpected counter row {}",
                    describe(other)
                ))),
            })
            .collect()
    }
}
