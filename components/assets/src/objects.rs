//! Objects in the KV store: a JSON manifest per object and its content in
//! fixed-size chunks written under a per-upload id.
//!
//! Why this layout:
//! - Chunks are written before the manifest that names them, so a reader
//!   that finds a manifest finds a complete object; and because every
//!   upload writes fresh chunk keys, replacing an object never changes the
//!   bytes under a manifest a reader already holds.
//! - A replaced or deleted upload is *retired*, not deleted: a marker
//!   (`assets/r/<upload>`) records when, and its chunks stay readable for
//!   the grace period (`assets_replaced_grace`), so a download that started
//!   before the change finishes with the version it started. Every later
//!   write deletes a few retired uploads whose grace is over, and the
//!   `compact-assets` task deletes the rest.
//! - A range read loads only the chunks that overlap it.

use portico_assets_logic::layout::{
    CHUNK_PREFIX, MANIFEST_PREFIX, RETIRED_PREFIX, Retired, Written, chunk_key, manifest_key,
    retired_key, upload_started,
};
pub use portico_assets_logic::layout::{MAX_PATH_BYTES, Manifest};
use portico_storage_format::scan;

use crate::portico::platform::kv;
use crate::portico::types::http::Problem;
use crate::{problems, settings};

/// Precompressed variants are stored next to their object under these suffixes.
pub const VARIANT_SUFFIXES: [(&str, &str); 2] = [("br", ".br"), ("gzip", ".gz")];

/// Retired uploads deleted after each write, at most: enough to keep up
/// with the writes that retire them, few enough to keep a write quick.
const COLLECT_PER_WRITE: usize = 4;

pub fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn load(path: &str) -> Result<Option<Manifest>, Problem> {
    let Some(bytes) = kv::get(&manifest_key(path)).map_err(problems::storage)? else {
        return Ok(None);
    };
    Manifest::from_json(&bytes)
        .map(Some)
        .map_err(|err| problems::corrupt(path, err))
}

fn save(manifest: &Manifest) -> Result<(), Problem> {
    kv::set(&manifest_key(&manifest.path), &manifest.to_json(), None).map_err(problems::storage)
}

/// Deletes the first `chunks` chunks of `upload`; a failure only leaves
/// garbage behind (compaction finds it), which is reported but does not
/// undo the operation that made it garbage.
pub fn delete_chunks(upload: &str, chunks: u64) {
    for index in 0..chunks {
        let key = chunk_key(upload, index);
        if let Err(err) = kv::delete(&key) {
            eprintln!("assets: could not delete {key}: {err:?}");
        }
    }
}

/// Marks `manifest`'s upload as no longer current: its chunks are deleted
/// once the grace period is over.
fn retire(manifest: &Manifest) -> Result<(), Problem> {
    let marker = Retired {
        at: now().as_secs(),
        chunks: manifest.chunk_count(),
    };
    kv::set(&retired_key(&manifest.upload), &marker.encode(), None).map_err(problems::storage)
}

/// Deletes up to `max` retired uploads whose grace period is over; says
/// how many.
pub fn collect_retired(max: usize) -> Result<usize, Problem> {
    let grace = settings::replaced_grace_secs()?;
    let now = now().as_secs();
    let mut collected = 0;
    for key in kv::list_keys(RETIRED_PREFIX).map_err(problems::storage)? {
        if collected == max {
            break;
        }
        let upload = &key[RETIRED_PREFIX.len()..];
        let Some(marker) = kv::get(&key).map_err(problems::storage)? else {
            continue;
        };
        match Retired::decode(&marker) {
            Some(retired) if !retired.expired(now, grace) => continue,
            Some(retired) => delete_chunks(upload, retired.chunks),
            // Unreadable: compaction deletes the chunks no manifest names.
            None => {}
        }
        kv::delete(&key).map_err(problems::storage)?;
        collected += 1;
    }
    Ok(collected)
}

/// Why reading content failed.
pub enum ReadError {
    /// A chunk is gone: the object was replaced or deleted meanwhile.
    Replaced,
    Problem(Problem),
}

/// Bytes `from..to` of chunk `index` of `upload`.
pub fn read_chunk(upload: &str, index: u64, from: usize, to: usize) -> Result<Vec<u8>, ReadError> {
    let mut bytes = kv::get(&chunk_key(upload, index))
        .map_err(|err| ReadError::Problem(problems::storage(err)))?
        .ok_or(ReadError::Replaced)?;
    if to > bytes.len() || from > to {
        return Err(ReadError::Replaced);
    }
    bytes.truncate(to);
    if from > 0 {
        bytes.drain(..from);
    }
    Ok(bytes)
}

/// The base object and coding of a variant path (`app.js.br` -> `app.js`, `br`).
pub fn variant_of(path: &str) -> Option<(&str, &'static str)> {
    VARIANT_SUFFIXES.iter().find_map(|(coding, suffix)| {
        path.strip_suffix(suffix)
            .filter(|base| !base.is_empty() && !base.ends_with('/'))
            .map(|base| (base, *coding))
    })
}

/// What an upload asks for besides the bytes.
pub struct Metadata {
    pub content_type: String,
    pub cache_control: Option<String>,
}

/// Makes `written` (chunks already stored) the object at `path`; the
/// version current now, if any, is `current` and is retired.
pub fn commit(
    path: &str,
    written: Written,
    metadata: Metadata,
    current: Option<&Manifest>,
) -> Result<Manifest, Problem> {
    let chunks = written.chunks;
    let mut manifest = Manifest::written(
        path,
        written,
        metadata.content_type,
        metadata.cache_control,
        now(),
    );
    manifest.encodings = match current {
        Some(current) => current.encodings.clone(),
        None if variant_of(path).is_some() => Vec::new(),
        None => stored_variants(path)?,
    };
    if let Some(current) = current
        && current.sha256 == manifest.sha256
    {
        // Same bytes: keep the current chunks (and the validators, so
        // caches keep their copies), drop the copy just written, and only
        // record changed metadata.
        delete_chunks(&manifest.upload, chunks);
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
    if let Err(problem) = save(&manifest) {
        delete_chunks(&manifest.upload, chunks);
        return Err(problem);
    }
    if let Some(old) = current {
        if let Err(problem) = retire(old) {
            // The new version is stored; the old chunks are garbage that
            // compaction will find.
            eprintln!("assets: could not retire {:?}: {problem:?}", old.upload);
        }
    } else if let Some((base, coding)) = variant_of(path) {
        set_variant(base, coding, true)?;
    }
    after_write();
    Ok(manifest)
}

/// Removes an object; its chunks are retired.
pub fn remove(manifest: &Manifest) -> Result<(), Problem> {
    kv::delete(&manifest_key(&manifest.path)).map_err(problems::storage)?;
    if let Err(problem) = retire(manifest) {
        eprintln!(
            "assets: could not retire {:?}: {problem:?}",
            manifest.upload
        );
    }
    if let Some((base, coding)) = variant_of(&manifest.path) {
        set_variant(base, coding, false)?;
    }
    after_write();
    Ok(())
}

/// Housekeeping every write pays a little of, so retired chunks do not pile
/// up on a runtime where nothing schedules `compact-assets`.
fn after_write() {
    if let Err(problem) = collect_retired(COLLECT_PER_WRITE) {
        eprintln!("assets: retired uploads not collected: {problem:?}");
    }
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

/// What [`compact`] did.
pub struct Compaction {
    pub scanned: u32,
    pub removed: u32,
    pub next: Option<String>,
}

/// Deletes retired uploads past their grace, then orphaned chunks among the
/// first `max` chunk keys after `cursor`.
pub fn compact(cursor: Option<&str>, max: u32) -> Result<Compaction, Problem> {
    collect_retired(max as usize)?;
    let referenced: std::collections::HashSet<String> =
        list("")?.into_iter().map(|m| m.upload).collect();
    let retired: std::collections::HashSet<String> = kv::list_keys(RETIRED_PREFIX)
        .map_err(problems::storage)?
        .into_iter()
        .map(|key| key[RETIRED_PREFIX.len()..].to_string())
        .collect();
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
        // A retired upload still listed is within its grace period.
        if referenced.contains(upload) || retired.contains(upload) || young {
            continue;
        }
        kv::delete(key).map_err(problems::storage)?;
        done.removed += 1;
    }
    Ok(done)
}
