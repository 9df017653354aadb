//! `portico:platform/durable`: one file per record under `/data/durable/<ns>`,
//! compare-and-swap under the record's lock directory.

use std::path::PathBuf;

use portico_storage_format::{envelope, names, record};

use crate::exports::portico::platform::durable::{Entry, Guest, Outcome};
use crate::exports::portico::platform::types::Error;
use crate::files::{self, Lock};
use crate::{Adapter, now_ms};

fn record_path(ns: &str, id: &str) -> Result<PathBuf, Error> {
    names::check_key(ns).map_err(crate::name_error)?;
    let dir = PathBuf::from(files::ROOT)
        .join("durable")
        .join(names::to_file_name(ns));
    files::entry_path(&dir, id)
}

/// The live record at `path`, if any. A torn or foreign file cannot exist
/// (writes are renames), so an undecodable file is reported, not ignored.
fn load_live(path: &std::path::Path, now: u64) -> Result<Option<(u64, Entry)>, Error> {
    let Some(bytes) = files::read_optional(path)? else {
        return Ok(None);
    };
    let rec = record::decode(&bytes)
        .ok_or_else(|| Error::Other(format!("corrupt durable record {}", path.display())))?;
    let entry = Entry {
        value: rec.value.to_vec(),
        version: rec.version,
    };
    Ok(Some((rec.version, entry)).filter(|_| rec.is_live(now)))
}

/// The highest version a record at `path` has had, live or expired: a record
/// recreated after expiry continues from it, so a stale `expected` version
/// can never match a newer record (no ABA).
fn last_version(path: &std::path::Path) -> Result<u64, Error> {
    Ok(files::read_optional(path)?
        .and_then(|bytes| record::decode(&bytes).map(|rec| rec.version))
        .unwrap_or(0))
}

impl Guest for Adapter {
    fn load(ns: String, id: String) -> Result<Option<Entry>, Error> {
        let path = record_path(&ns, &id)?;
        Ok(load_live(&path, now_ms())?.map(|(_, entry)| entry))
    }

    fn compare_and_swap(
        ns: String,
        id: String,
        expected: Option<u64>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<Outcome, Error> {
        let path = record_path(&ns, &id)?;
        let _lock = Lock::acquire(&path)?;
        let now = now_ms();
        let current = load_live(&path, now)?;
        let matches = match (&current, expected) {
            (None, None) => true,
            (Some((version, _)), Some(want)) => *version == want,
            _ => false,
        };
        if !matches {
            return Ok(Outcome::Conflict(current.map(|(_, entry)| entry)));
        }
        let version = last_version(&path)? + 1;
        let expires_at = envelope::expiry_from_ttl(now, ttl_ms);
        files::write_atomic(&path, &record::encode(version, expires_at, &value))?;
        Ok(Outcome::Stored(version))
    }

    fn remove(ns: String, id: String) -> Result<(), Error> {
        let path = record_path(&ns, &id)?;
        let _lock = Lock::acquire(&path)?;
        files::remove_optional(&path)
    }
}
