//! `portico:platform/counters` as a journal under `/data/counters/<ns>/`
//! (formats and rules in `portico_storage_format::counters`):
//!
//! - `add` appends one line to the current segment `j-<n>`: one open and one
//!   append, no lock, so concurrent adders never wait for each other. An
//!   append of one short line is a single write to a file opened for
//!   appending, which the kernel applies whole. A runtime whose appends are
//!   not atomic gets a lock around each append instead ([`LOCKED_APPEND_VAR`]).
//! - `read` sums the folded `base`, every newer segment, and the shard files
//!   `0` to `7` of the format before journals (read, never written). When
//!   segments old enough to get no more appends exist, it folds them into
//!   `base` under the base's lock (skipped when another reader holds it)
//!   and deletes them.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use portico_storage_format::counters;

use crate::exports::portico::platform::counters::Guest;
use crate::exports::portico::platform::types::Error;
use crate::files::{self, Lock};
use crate::{Adapter, now_ms, wasi_fs};

/// The most one append may carry (`blocking-write-and-flush` takes at most
/// 4096 bytes); an `add` with more deltas is several lines, each whole.
const MAX_RECORD_BYTES: usize = 4096;

/// Shard files of the format before journals, still summed by `read`.
const LEGACY_SHARDS: u64 = 8;

/// An environment variable that, set to anything non-empty, makes `add` hold
/// the segment's lock while it appends. For runtimes whose
/// `append-via-stream` is not an atomic append: jco's preview2-shim (Node.js)
/// opens files without `O_APPEND` and writes at the size it read when the
/// stream was made, so two instances appending at once (`jco serve
/// --isolate-requests worker`) can overwrite each other's line and lose
/// counts. The lock costs two calls per `add` (create and remove its
/// directory); unset, as on wasmtime, appends stay lock-free.
/// `examples/jco/setup.mjs` sets it.
const LOCKED_APPEND_VAR: &str = "PORTICO_LOCKED_APPEND";

/// Whether [`LOCKED_APPEND_VAR`] is set, read once per instance.
fn locked_append() -> bool {
    static LOCKED: OnceLock<bool> = OnceLock::new();
    *LOCKED.get_or_init(|| std::env::var_os(LOCKED_APPEND_VAR).is_some_and(|v| !v.is_empty()))
}

fn namespace_dir(ns: &str) -> Result<PathBuf, Error> {
    files::entry_path(&Path::new(files::ROOT).join("counters"), ns)
}

fn corrupt(path: &Path) -> Error {
    Error::Other(format!("corrupt counter file {}", path.display()))
}

fn append(path: &Path, lines: &[String]) -> std::io::Result<()> {
    let records: Vec<&[u8]> = lines.iter().map(|line| line.as_bytes()).collect();
    wasi_fs::append(path, &records)
}

/// The folded base: the last segment it includes and its totals.
fn read_base(dir: &Path) -> Result<(Option<u64>, BTreeMap<String, i64>), Error> {
    let path = dir.join(counters::BASE_FILE);
    match files::read_optional(&path)? {
        None => Ok((None, BTreeMap::new())),
        Some(bytes) => {
            let (through, totals) = counters::decode_base(&bytes).ok_or_else(|| corrupt(&path))?;
            Ok((Some(through), totals))
        }
    }
}

/// The journal segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<u64>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(crate::io_error("list counters", err)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            // Folded and deleted by a concurrent reader meanwhile.
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => return Err(crate::io_error("list counters", err)),
        };
        if let Some(segment) = entry
            .file_name()
            .to_str()
            .and_then(counters::parse_segment_file_name)
        {
            found.push(segment);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Adds segment `segment`'s lines to `totals` (a segment deleted by a
/// concurrent fold meanwhile is already in the base that fold wrote, which
/// the caller re-reads).
fn fold_segment(
    dir: &Path,
    segment: u64,
    totals: &mut BTreeMap<String, i64>,
) -> Result<bool, Error> {
    let path = dir.join(counters::segment_file_name(segment));
    match files::read_optional(&path)? {
        Some(bytes) => {
            counters::fold_journal(totals, &bytes);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The totals of base + newer segments, or `None` when a concurrent fold
/// moved lines from segments into the base meanwhile (read again). A fold
/// writes the base before it deletes segments, so an unchanged base mark
/// at the end means no segment this read needed was deleted.
fn total(dir: &Path) -> Result<Option<BTreeMap<String, i64>>, Error> {
    let (through, mut totals) = read_base(dir)?;
    for segment in segments(dir)? {
        if through.is_some_and(|t| segment <= t) {
            continue;
        }
        if !fold_segment(dir, segment, &mut totals)? {
            return Ok(None);
        }
    }
    let (through_now, _) = read_base(dir)?;
    Ok((through_now == through).then_some(totals))
}

/// Folds every segment up to `cutoff` into the base and deletes them.
fn compact(dir: &Path, cutoff: u64) -> Result<(), Error> {
    let base = dir.join(counters::BASE_FILE);
    let Some(_lock) = Lock::try_acquire(&base)? else {
        return Ok(()); // another reader is folding
    };
    let (through, mut totals) = read_base(dir)?;
    let pending: Vec<u64> = segments(dir)?
        .into_iter()
        .filter(|s| *s <= cutoff)
        .collect();
    let new_through = match through {
        Some(t) if t >= cutoff => t,
        _ => {
            for &segment in pending.iter().filter(|s| through.is_none_or(|t| **s > t)) {
                fold_segment(dir, segment, &mut totals)?;
            }
            files::write_atomic(&base, &counters::encode_base(cutoff, &totals))?;
            cutoff
        }
    };
    // Everything up to the base's mark is in it; delete those segments.
    for segment in pending.into_iter().filter(|s| *s <= new_through) {
        files::remove_optional(&dir.join(counters::segment_file_name(segment)))?;
    }
    Ok(())
}

fn read_legacy_shards(dir: &Path, totals: &mut BTreeMap<String, i64>) -> Result<(), Error> {
    for shard in 0..LEGACY_SHARDS {
        let path = dir.join(shard.to_string());
        if let Some(bytes) = files::read_optional(&path)? {
            let values = counters::decode(&bytes).ok_or_else(|| corrupt(&path))?;
            counters::apply(totals, values.iter().map(|(n, v)| (n.as_str(), *v)));
        }
    }
    Ok(())
}

impl Guest for Adapter {
    fn add(ns: String, deltas: Vec<(String, i64)>) -> Result<(), Error> {
        let dir = namespace_dir(&ns)?;
        for (name, _) in &deltas {
            counters::check_name(name)
                .map_err(|err| Error::Other(format!("invalid counter name: {err}")))?;
        }
        let merged = counters::merge_deltas(deltas.iter().map(|(n, d)| (n.as_str(), *d)));
        if merged.is_empty() {
            return Ok(());
        }
        let lines = counters::journal_lines(&merged, MAX_RECORD_BYTES);
        let path = dir.join(counters::segment_file_name(counters::segment_of(now_ms())));
        // The lock directory `j-<n>.lock` is no segment name, so readers skip it.
        let _lock = if locked_append() {
            Some(Lock::acquire(&path)?)
        } else {
            None
        };
        match append(&path, &lines) {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(|e| crate::io_error("create counters", e))?;
                append(&path, &lines)
            }
            other => other,
        }
        .map_err(|err| crate::io_error("append counters", err))
    }

    fn read(ns: String) -> Result<Vec<(String, i64)>, Error> {
        let dir = namespace_dir(&ns)?;
        if let Some(cutoff) = counters::foldable_through(now_ms()) {
            compact(&dir, cutoff)?;
        }
        // Folds are rare (one per segment), so this settles at once.
        let mut totals = loop {
            if let Some(totals) = total(&dir)? {
                break totals;
            }
        };
        read_legacy_shards(&dir, &mut totals)?;
        Ok(totals.into_iter().collect())
    }
}
