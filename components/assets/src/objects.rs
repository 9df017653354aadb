//! Objects in the KV store: a JSON manifest per object and its content in
//! fixed-size chunks written under a per-upload id.
//!
//! Why this layout:
//! - Chunks are written before the manifest that names them, so a reader
//!   that finds a manifest finds a complete object; and because every
//!   upload writes fresh chunk keys, replacing an object never changes the
//!   bytes under a manifest a reader already holds.
//! - The replaced upload's chunks are deleted right after the new manifest
//!   is stored. A reader that loaded the old manifest just before may then
//!   miss a chunk: it reports [`ReadError::Replaced`] and the caller starts
//!   again from the new manifest, so a response is always one whole version.
//! - A range read loads only the chunks that overlap it.

use portico_assets_logic::layout::{
    CHUNK_BYTES, CHUNK_PREFIX, MANIFEST_PREFIX, chunk_key, manifest_key,
};
pub use portico_assets_logic::layout::{MAX_PATH_BYTES, Manifest};
use portico_storage_format::scan;

use crate::portico::platform::kv;
use crate::portico::types::http::Problem;
use crate::problems;

/// Precompressed variants are stored next to their object under these suffixes.
pub const VARIANT_SUFFIXES: [(&str, &str); 2] = [("br", ".br"), ("gzip", ".gz")];

fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn load(path: &str) -> Result<Option<Manifest>, Problem> {
    let Some(bytes) = kv::get(&manifest_key(path)).map_err(problems::storage)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| problems::corrupt(path, err))
}

fn save(manifest: &Manifest) -> Result<(), Problem> {
    let bytes =
        serde_json::to_vec(manifest).map_err(|err| problems::corrupt(&manifest.path, err))?;
    kv::set(&manifest_key(&manifest.path), &bytes, None).map_err(problems::storage)
}

/// Deletes an upload's chunks; a failure only leaves garbage behind, which
/// is reported but does not undo the operation that made them garbage.
fn delete_chunks(manifest: &Manifest) {
    for key in manifest.chunk_keys() {
        if let Err(err) = kv::delete(&key) {
            eprintln!(
                "assets: could not delete {key} of {:?}: {err:?}",
                manifest.path
            );
        }
    }
}

/// Why reading content failed.
pub enum ReadError {
    /// A chunk is gone: the object was replaced or deleted meanwhile.
    Replaced,
    Problem(Problem),
}

/// Bytes `first..=last` of the object (`first <= last < size`).
pub fn read(manifest: &Manifest, first: u64, last: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    let chunk = manifest.chunk_bytes;
    for index in first / chunk..=last / chunk {
        let bytes = kv::get(&chunk_key(&manifest.upload, index))
            .map_err(|err| ReadError::Problem(problems::storage(err)))?
            .ok_or(ReadError::Replaced)?;
        let start = index * chunk;
        let from = first.saturating_sub(start) as usize;
        let to = ((last + 1).min(start + chunk) - start) as usize;
        let part = bytes.get(from..to).ok_or(ReadError::Replaced)?;
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// What an upload asks for besides the bytes.
pub struct Upload<'a> {
    pub path: &'a str,
    pub body: &'a [u8],
    pub content_type: String,
    pub cache_control: Option<String>,
}

/// The base object and coding of a variant path (`app.js.br` -> `app.js`, `br`).
pub fn variant_of(path: &str) -> Option<(&str, &'static str)> {
    VARIANT_SUFFIXES.iter().find_map(|(coding, suffix)| {
        path.strip_suffix(suffix)
            .filter(|base| !base.is_empty() && !base.ends_with('/'))
            .map(|base| (base, *coding))
    })
}

/// Stores an upload; the previous version, if any, is `current`.
pub fn store(upload: Upload<'_>, current: Option<&Manifest>) -> Result<Manifest, Problem> {
    let mut manifest = Manifest::new(
        upload.path,
        upload.body,
        upload.content_type,
        upload.cache_control,
        now(),
    );
    manifest.encodings = match current {
        Some(current) => current.encodings.clone(),
        None if variant_of(upload.path).is_some() => Vec::new(),
        None => stored_variants(upload.path)?,
    };
    if let Some(current) = current
        && current.sha256 == manifest.sha256
    {
        // Same bytes: keep the chunks (and the validators, so caches keep
        // their copies) and only record changed metadata.
        let updated = Manifest {
            content_type: manifest.content_type,
            cache_control: manifest.cache_control,
            ..current.clone()
        };
        if &updated != current {
            save(&updated)?;
        }
        return Ok(updated);
    }
    for (index, bytes) in upload.body.chunks(CHUNK_BYTES as usize).enumerate() {
        if let Err(err) = kv::set(&chunk_key(&manifest.upload, index as u64), bytes, None) {
            // Nothing names this upload yet: take back what was written.
            delete_chunks(&Manifest {
                size: index as u64 * CHUNK_BYTES,
                ..manifest.clone()
            });
            return Err(problems::storage(err));
        }
    }
    if let Err(problem) = save(&manifest) {
        delete_chunks(&manifest);
        return Err(problem);
    }
    if let Some(old) = current {
        delete_chunks(old);
    } else if let Some((base, coding)) = variant_of(upload.path) {
        set_variant(base, coding, true)?;
    }
    Ok(manifest)
}

/// Removes an object and its chunks.
pub fn remove(manifest: &Manifest) -> Result<(), Problem> {
    kv::delete(&manifest_key(&manifest.path)).map_err(problems::storage)?;
    delete_chunks(manifest);
    if let Some((base, coding)) = variant_of(&manifest.path) {
        set_variant(base, coding, false)?;
    }
    Ok(())
}

/// The codings for which a variant of `path` is stored.
fn stored_variants(path: &str) -> Result<Vec<String>, Problem> {
    let mut found = Vec::new();
    for (coding, suffix) in VARIANT_SUFFIXES {
        if kv::get(&manifest_key(&format!("{path}{suffix}")))
            .map_err(problems::storage)?
            .is_some()
        {
            found.push(coding.to_string());
        }
    }
    Ok(found)
}

/// Records in the base object's manifest that a variant exists (or not).
fn set_variant(base: &str, coding: &str, present: bool) -> Result<(), Problem> {
    let Some(mut manifest) = load(base)? else {
        return Ok(());
    };
    let listed = manifest.encodings.iter().any(|c| c == coding);
    if listed == present {
        return Ok(());
    }
    if present {
        manifest.encodings.push(coding.to_string());
    } else {
        manifest.encodings.retain(|c| c != coding);
    }
    save(&manifest)
}

/// Manifests whose path starts with `prefix`, in path order.
pub fn list(prefix: &str) -> Result<Vec<Manifest>, Problem> {
    let keys = kv::list_keys(&manifest_key(prefix)).map_err(problems::storage)?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let path = &key[MANIFEST_PREFIX.len()..];
        // Deleted between listing and loading: not an error, just gone.
        if let Some(manifest) = load(path)? {
            out.push(manifest);
        }
    }
    Ok(out)
}

/// Uploads younger than this may still be writing their chunks.
const COMPACT_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The start time encoded in an upload id (`<sha prefix>-<nanos hex>`).
fn upload_started(upload: &str) -> Option<std::time::Duration> {
    let nanos = u128::from_str_radix(upload.rsplit('-').next()?, 16).ok()?;
    Some(std::time::Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// What [`compact`] did.
pub struct Compaction {
    pub scanned: u32,
    pub removed: u32,
    pub next: Option<String>,
}

/// Deletes orphaned chunks among the first `max` chunk keys after `cursor`.
pub fn compact(cursor: Option<&str>, max: u32) -> Result<Compaction, Problem> {
    let referenced: std::collections::HashSet<String> =
        list("")?.into_iter().map(|m| m.upload).collect();
    let keys = kv::list_keys(CHUNK_PREFIX).map_err(problems::storage)?;
    let batch = scan::batch(keys, CHUNK_PREFIX, cursor, max as usize);
    let now = now();
    let mut done = Compaction {
        scanned: batch.keys.len() as u32,
        removed: 0,
        next: batch.next.clone(),
    };
    for key in &batch.keys {
        let upload = key[CHUNK_PREFIX.len()..]
            .split('/')
            .next()
            .unwrap_or_default();
        let young = upload_started(upload)
            .is_none_or(|started| now.saturating_sub(started) < COMPACT_MIN_AGE);
        if referenced.contains(upload) || young {
            continue;
        }
        kv::delete(key).map_err(problems::storage)?;
        done.removed += 1;
    }
    Ok(done)
}
