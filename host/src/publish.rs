//! Publishing a folder straight into an app's data folder, in the object
//! layout the `assets` component reads (`portico_assets_logic::layout`):
//! `portico up` uses it to put `pages/` on the site before serving, so a
//! fresh checkout has its login and admin pages without an upload step.
//! Like `assets sync`, only new or changed files are written, chunks first
//! and the manifest last; a replaced object's chunks are then removed.

use std::path::Path;

use anyhow::{Context, Result};
use portico_assets_logic::layout::{CHUNK_BYTES, Manifest, chunk_key, manifest_key};
use portico_assets_logic::media;

use crate::assets_sync;
use crate::kv::KvStore;

/// What [`publish`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub written: usize,
    pub unchanged: usize,
}

fn load(store: &KvStore, path: &str) -> Result<Option<Manifest>> {
    match store.get(&manifest_key(path))? {
        Some(bytes) => Ok(Manifest::from_json(&bytes).ok()),
        None => Ok(None),
    }
}

/// Writes the files of `dir` as objects `<prefix><relative path>`.
pub fn publish(store: &KvStore, dir: &Path, prefix: &str) -> Result<Published> {
    let prefix = assets_sync::normalize_prefix(prefix)?;
    let (files, skipped) = assets_sync::scan(dir, &prefix)?;
    for skip in skipped {
        eprintln!("portico: skipped {}: {}", skip.file.display(), skip.reason);
    }
    let mut done = Published::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for file in files {
        let current = load(store, &file.path)?;
        if current.as_ref().is_some_and(|m| m.etag() == file.etag) {
            done.unchanged += 1;
            continue;
        }
        let body = std::fs::read(&file.file)
            .with_context(|| format!("reading {}", file.file.display()))?;
        let mut manifest = Manifest::new(
            &file.path,
            &body,
            media::content_type_for(&file.path).to_string(),
            None,
            now,
        );
        if let Some(current) = &current {
            manifest.encodings = current.encodings.clone();
            manifest.cache_control = current.cache_control.clone();
        }
        for (index, chunk) in body.chunks(CHUNK_BYTES as usize).enumerate() {
            store.set(&chunk_key(&manifest.upload, index as u64), chunk, None)?;
        }
        store.set(&manifest_key(&manifest.path), &manifest.to_json(), None)?;
        if let Some(old) = current {
            for key in old.chunk_keys() {
                store.delete(&key)?;
            }
        }
        done.written += 1;
    }
    Ok(done)
}
