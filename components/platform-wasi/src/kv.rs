//! `portico:platform/kv`: one file per key under `/data/kv`.

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::PathBuf;

use portico_storage_format::{envelope, names};

use crate::exports::portico::platform::kv::Guest;
use crate::exports::portico::platform::types::Error;
use crate::{Adapter, files, now_ms};

fn dir() -> PathBuf {
    PathBuf::from(files::ROOT).join("kv")
}

impl Guest for Adapter {
    fn get(key: String) -> Result<Option<Vec<u8>>, Error> {
        let path = files::entry_path(&dir(), &key)?;
        let Some(bytes) = files::read_optional(&path)? else {
            return Ok(None);
        };
        let stored = envelope::decode(&bytes);
        Ok(stored.is_live(now_ms()).then(|| stored.value.to_vec()))
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
}

/// Reads only the envelope header, so listing does not load every value.
fn is_live(path: &std::path::Path, now: u64) -> bool {
    let mut header = Vec::with_capacity(envelope::header_len());
    let read = fs::File::open(path).and_then(|file| {
        file.take(envelope::header_len() as u64)
            .read_to_end(&mut header)
    });
    match read {
        Ok(_) => envelope::decode(&header).is_live(now),
        // Deleted between listing and reading: not live.
        Err(_) => false,
    }
}
