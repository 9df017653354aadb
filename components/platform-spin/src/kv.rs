//! `portico:platform/kv` over the Spin key-value store `default`.

use portico_storage_format::{envelope, names, scan};
use spin_sdk::key_value::{self, Store};

use crate::exports::portico::platform::kv::{Guest, Sweep};
use crate::exports::portico::platform::types::Error;
use crate::{Adapter, name_error, now_ms};

fn store_error(err: key_value::Error) -> Error {
    match err {
        key_value::Error::AccessDenied => Error::AccessDenied,
        key_value::Error::NoSuchStore => Error::Unavailable(
            "no key-value store `default`: add key_value_stores = [\"default\"] to the component in spin.toml".into(),
        ),
        key_value::Error::StoreTableFull => Error::Unavailable("key-value store table full".into()),
        key_value::Error::Other(reason) => Error::Other(reason),
    }
}

fn open() -> Result<Store, Error> {
    Store::open_default().map_err(store_error)
}

/// The stored bytes (envelope and value) under `key`.
fn stored(key: &str) -> Result<Option<Vec<u8>>, Error> {
    names::check_key(key).map_err(name_error)?;
    open()?.get(key).map_err(store_error)
}

impl Guest for Adapter {
    fn get(key: String) -> Result<Option<Vec<u8>>, Error> {
        let bytes = stored(&key)?;
        Ok(bytes.and_then(|bytes| envelope::live_value(&bytes, now_ms()).map(<[u8]>::to_vec)))
    }

    fn set(key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), Error> {
        names::check_key(&key).map_err(name_error)?;
        let expires_at = envelope::expiry_from_ttl(now_ms(), ttl_ms);
        open()?
            .set(&key, &envelope::encode(&value, expires_at))
            .map_err(store_error)
    }

    fn delete(key: String) -> Result<(), Error> {
        names::check_key(&key).map_err(name_error)?;
        open()?.delete(&key).map_err(store_error)
    }

    /// Spin lists every key of a store, so the prefix is applied here; expiry
    /// needs each candidate's envelope, which costs one read per match.
    fn list_keys(prefix: String) -> Result<Vec<String>, Error> {
        let store = open()?;
        let now = now_ms();
        let mut keys = Vec::new();
        for key in store.get_keys().map_err(store_error)? {
            if !key.starts_with(&prefix) {
                continue;
            }
            let live = store
                .get(&key)
                .map_err(store_error)?
                .is_some_and(|bytes| envelope::decode(&bytes).is_live(now));
            if live {
                keys.push(key);
            }
        }
        // Unstable is the same order for strings (equal ones are identical)
        // and compiles to less code (about 1 KB gzip less here).
        keys.sort_unstable();
        Ok(keys)
    }

    /// Spin lists every key of a store (unordered, with no range query), so
    /// the prefix, the cursor and the order are applied here, and each of
    /// the `max` keys examined costs one read.
    ///
    /// Spin's KV has no conditional delete: a value set again in the instant
    /// between the read that finds it expired and the delete is lost. The
    /// window is one host call wide, and KV is a cache-like, eventually
    /// consistent store; durable records have an exact sweep.
    fn sweep_expired(prefix: String, cursor: Option<String>, max: u32) -> Result<Sweep, Error> {
        if max == 0 {
            return Err(Error::Other("sweep-expired: max must be at least 1".into()));
        }
        let store = open()?;
        let batch = scan::batch(
            store.get_keys().map_err(store_error)?,
            &prefix,
            cursor.as_deref(),
            max as usize,
        );
        let now = now_ms();
        let mut removed = 0u32;
        for key in &batch.keys {
            let expired = store
                .get(key)
                .map_err(store_error)?
                .is_some_and(|bytes| !envelope::decode(&bytes).is_live(now));
            if expired {
                store.delete(key).map_err(store_error)?;
                removed += 1;
            }
        }
        Ok(Sweep {
            scanned: batch.keys.len() as u32,
            removed,
            next: batch.next,
        })
    }
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
