//! `portico:platform/kv`: one file per key under `/data/kv`.

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::PathBuf;

use portico_storage_format::{envelope, names, scan};

use crate::exports::portico::platform::kv::{Guest, Sweep};
use crate::exports::portico::platform::types::Error;
use crate::{Adapter, files, now_ms};

fn dir() -> PathBuf {
    PathBuf::from(files::ROOT).join("kv")
}

/// The stored bytes (envelope and value) under `key`.
fn stored(key: &str) -> Result<Option<Vec<u8>>, Error> {
    files::read_optional(&files::entry_path(&dir(), key)?)
}

impl Guest for Adapter {
    fn get(key: String) -> Result<Option<Vec<u8>>, Error> {
        let bytes = stored(&key)?;
        Ok(bytes.and_then(|bytes| envelope::live_value(&bytes, now_ms()).map(<[u8]>::to_vec)))
    }

    fn set(key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), Error> {
        let path = files::entry_path(&dir(), &key)?;
        let expires_at = envelope::expiry_from_ttl(now_ms(), ttl_ms);
        files::write_atomic(&path, &envelope::encode(&value, expires_at))
    }

    fn delete(key: String) -> Result<(), Error> {
        files::remove_optional(&files::entry_path(&dir(), &key)?)
    }

    fn list_keys(prefix: String) -> Result<Vec<String>, Error> {
        let entries = match fs::read_dir(dir()) {
            Ok(entries) => entries,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(crate::io_error("list", err)),
        };
        let now = now_ms();
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| crate::io_error("list", e))?;
            let Some(key) = entry.file_name().to_str().and_then(names::from_file_name) else {
                continue;
            };
            if key.starts_with(&prefix) && is_live(&entry.path(), now) {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Examines the first `max` keys after `cursor` in key order (one
    /// directory listing and one header read each). An expired entry is
    /// moved aside atomically before it is deleted: if a writer replaced it
    /// in the meantime, the new value is put back (unless an even newer one
    /// has landed), so a sweep never loses a write.
    fn sweep_expired(prefix: String, cursor: Option<String>, max: u32) -> Result<Sweep, Error> {
        if max == 0 {
            return Err(Error::Other("sweep-expired: max must be at least 1".into()));
        }
        let entries = match fs::read_dir(dir()) {
            Ok(entries) => entries,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Ok(Sweep {
                    scanned: 0,
                    removed: 0,
                    next: None,
                });
            }
            Err(err) => return Err(crate::io_error("sweep", err)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                // Removed by a concurrent sweep between listing and reading.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(crate::io_error("sweep", err)),
            };
            let Some(key) = entry.file_name().to_str().and_then(names::from_file_name) else {
                continue;
            };
            keys.push(key);
        }
        let batch = scan::batch(keys, &prefix, cursor.as_deref(), max as usize);
        let now = now_ms();
        let mut removed = 0u32;
        for key in &batch.keys {
            let path = dir().join(names::to_file_name(key));
            if !matches!(expiry(&path), Some(Some(at)) if at <= now) {
                continue;
            }
            let Some(aside) = files::take_aside(&path)? else {
                continue;
            };
            match expiry(&aside) {
                Some(Some(at)) if at <= now_ms() => {
                    files::remove_optional(&aside)?;
                    removed += 1;
                }
                // Written again since the check: the live value goes back.
                _ => files::put_back(&aside, &path)?,
            }
        }
        Ok(Sweep {
            scanned: batch.keys.len() as u32,
            removed,
            next: batch.next,
        })
    }
}

/// The expiry in the envelope header of the file at `path`: `None` when the
/// file cannot be read (deleted meanwhile), `Some(None)` when it never expires.
fn expiry(path: &std::path::Path) -> Option<Option<u64>> {
    let mut header = Vec::with_capacity(envelope::header_len());
    fs::File::open(path)
        .and_then(|file| {
            file.take(envelope::header_len() as u64)
                .read_to_end(&mut header)
        })
        .ok()?;
    Some(envelope::decode(&header).expires_at_ms)
}

/// Reads only the envelope header, so listing does not load every value.
fn is_live(path: &std::path::Path, now: u64) -> bool {
    // Deleted between listing and reading: not live.
    expiry(path).is_some_and(|at| at.is_none_or(|at| now < at))
}

impl crate::exports::portico::streaming::kv_copy::Guest for Adapter {
    fn copy_to(
        key: String,
        from: u64,
        to: u64,
        out: &wasip2::io::streams::OutputStream,
    ) -> Result<bool, Error> {
        let Some(bytes) = stored(&key)? else {
            return Ok(false);
        };
        // Written from the stored bytes in place (no copy of the value).
        let Some(value) = envelope::live_value(&bytes, now_ms()) else {
            return Ok(false);
        };
        portico_output_stream::write_range(out, value, from, to)
            .map_err(|err| Error::Other(portico_output_stream::describe(&err)))?;
        Ok(true)
    }
}
