//! `portico:platform/durable`: one file per record under `/data/durable/<ns>`
//! (or `/data/db/<label>/durable/<ns>` for a namespace `durable_databases`
//! maps to database `label`), compare-and-swap under the record's lock
//! directory.

use std::path::PathBuf;

use portico_storage_format::locality::DEFAULT_DATABASE;
use portico_storage_format::{envelope, names, record};

use crate::exports::portico::platform::durable::{Entry, Guest, Outcome};
use crate::exports::portico::platform::types::Error;
use crate::files::{self, Lock};
use crate::{Adapter, now_ms};

fn namespace_dir(ns: &str) -> Result<PathBuf, Error> {
    names::check_key(ns).map_err(crate::name_error)?;
    let root = match crate::locality()?.database(ns) {
        DEFAULT_DATABASE => PathBuf::from(files::ROOT),
        label => PathBuf::from(files::ROOT).join("db").join(label),
    };
    Ok(root.join("durable").join(names::to_file_name(ns)))
}

fn record_path(ns: &str, id: &str) -> Result<PathBuf, Error> {
    files::entry_path(&namespace_dir(ns)?, id)
}

fn is_expired(path: &std::path::Path, now: u64) -> Result<bool, Error> {
    Ok(files::read_optional(path)?
        .and_then(|bytes| record::decode(&bytes).map(|rec| !rec.is_live(now)))
        .unwrap_or(false))
}

/// The record at `path`, live or expired, and whether it is still live. A
/// torn or foreign file cannot exist (writes are renames), so an undecodable
/// file is reported, not ignored.
fn read_record(path: &std::path::Path, now: u64) -> Result<Option<(Entry, bool)>, Error> {
    let Some(bytes) = files::read_optional(path)? else {
        return Ok(None);
    };
    let rec = record::decode(&bytes)
        .ok_or_else(|| Error::Other(format!("corrupt durable record {}", path.display())))?;
    let entry = Entry {
        value: rec.value.to_vec(),
        version: rec.version,
    };
    Ok(Some((entry, rec.is_live(now))))
}

impl Guest for Adapter {
    fn load(ns: String, id: String) -> Result<Option<Entry>, Error> {
        let path = record_path(&ns, &id)?;
        Ok(read_record(&path, now_ms())?.and_then(|(entry, live)| live.then_some(entry)))
    }

    fn compare_and_swap(
        ns: String,
        id: String,
        expected: Option<u64>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<Outcome, Error> {
        let path = record_path(&ns, &id)?;
        // Replacing a known version (the common case: the rate limiter's
        // every decision) writes the new record before taking the lock, so
        // the lock is held for one read and one rename.
        let prepared = match expected {
            Some(version) => Some((
                version + 1,
                files::Prepared::write(&record::encode(
                    version + 1,
                    envelope::expiry_from_ttl(now_ms(), ttl_ms),
                    &value,
                ))?,
            )),
            None => None,
        };
        let _lock = Lock::acquire(&path)?;
        let now = now_ms();
        let stored = read_record(&path, now)?;
        // The highest version the record has had, live or expired: a record
        // recreated after expiry continues from it, so a stale `expected`
        // version can never match a newer record (no ABA).
        let last_version = stored.as_ref().map_or(0, |(entry, _)| entry.version);
        let current = stored.and_then(|(entry, live)| live.then_some(entry));
        let matches = match (&current, expected) {
            (None, None) => true,
            (Some(entry), Some(want)) => entry.version == want,
            _ => false,
        };
        if !matches {
            return Ok(Outcome::Conflict(current));
        }
        let version = last_version + 1;
        match prepared {
            Some((prepared_version, prepared)) if prepared_version == version => {
                prepared.publish(&path)?
            }
            _ => {
                let expires_at = envelope::expiry_from_ttl(now, ttl_ms);
                files::write_atomic(&path, &record::encode(version, expires_at, &value))?
            }
        }
        Ok(Outcome::Stored(version))
    }

    fn remove(ns: String, id: String) -> Result<(), Error> {
        let path = record_path(&ns, &id)?;
        let _lock = Lock::acquire(&path)?;
        files::remove_optional(&path)
    }

    fn sweep_expired(ns: String, max: u32) -> Result<u32, Error> {
        let entries = match std::fs::read_dir(namespace_dir(&ns)?) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(crate::io_error("sweep", err)),
        };
        let now = now_ms();
        let mut removed = 0;
        for entry in entries {
            if removed >= max {
                break;
            }
            let entry = match entry {
                Ok(entry) => entry,
                // Removed by a concurrent sweep between listing and reading.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(crate::io_error("sweep", err)),
            };
            // Record files only: lock directories and foreign files are skipped.
            let is_record = entry.file_type().is_ok_and(|t| t.is_file())
                && entry
                    .file_name()
                    .to_str()
                    .and_then(names::from_file_name)
                    .is_some();
            if !is_record || !is_expired(&entry.path(), now)? {
                continue;
            }
            // Re-check under the lock: a writer may have renewed it meanwhile.
            let _lock = Lock::acquire(&entry.path())?;
            if is_expired(&entry.path(), now_ms())? {
                files::remove_optional(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
