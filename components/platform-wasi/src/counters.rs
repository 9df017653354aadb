//! `portico:platform/counters`: each namespace is [`SHARDS`] shard files
//! `/data/counters/<ns>/0` to `7` (`portico_storage_format::counters`). An
//! `add` updates one shard, chosen at random and skipping shards whose lock
//! is held, under that shard's lock directory (read-modify-write, atomic
//! rename); `read` sums the shards. Concurrent adders mostly take different
//! locks, and none waits unless every shard is busy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portico_storage_format::counters;

use crate::Adapter;
use crate::exports::portico::platform::counters::Guest;
use crate::exports::portico::platform::types::Error;
use crate::files::{self, Lock};

/// Shards per namespace: enough that a handful of concurrent requests rarely
/// meet on a lock, few enough that `read` stays eight small reads.
pub const SHARDS: u64 = 8;

fn namespace_dir(ns: &str) -> Result<PathBuf, Error> {
    files::entry_path(&Path::new(files::ROOT).join("counters"), ns)
}

fn shard_path(dir: &Path, shard: u64) -> PathBuf {
    dir.join(shard.to_string())
}

fn read_shard(path: &Path) -> Result<BTreeMap<String, i64>, Error> {
    match files::read_optional(path)? {
        None => Ok(BTreeMap::new()),
        Some(bytes) => counters::decode(&bytes)
            .ok_or_else(|| Error::Other(format!("corrupt counter shard {}", path.display()))),
    }
}

/// A free shard's lock, starting at a random shard; when all are held, waits
/// for the random one.
fn lock_a_shard(dir: &Path) -> Result<(PathBuf, Lock), Error> {
    let start = wasip2::random::random::get_random_u64() % SHARDS;
    for i in 0..SHARDS {
        let path = shard_path(dir, (start + i) % SHARDS);
        if let Some(lock) = Lock::try_acquire(&path)? {
            return Ok((path, lock));
        }
    }
    let path = shard_path(dir, start);
    let lock = Lock::acquire(&path)?;
    Ok((path, lock))
}

impl Guest for Adapter {
    fn add(ns: String, deltas: Vec<(String, i64)>) -> Result<(), Error> {
        let dir = namespace_dir(&ns)?;
        for (name, _) in &deltas {
            counters::check_name(name)
                .map_err(|err| Error::Other(format!("invalid counter name: {err}")))?;
        }
        if deltas.is_empty() {
            return Ok(());
        }
        let (path, _lock) = lock_a_shard(&dir)?;
        let mut shard = read_shard(&path)?;
        counters::apply(&mut shard, deltas.iter().map(|(n, d)| (n.as_str(), *d)));
        files::write_atomic(&path, &counters::encode(&shard))
    }

    fn read(ns: String) -> Result<Vec<(String, i64)>, Error> {
        let dir = namespace_dir(&ns)?;
        let shards = (0..SHARDS)
            .map(|shard| read_shard(&shard_path(&dir, shard)))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(counters::sum(&shards).into_iter().collect())
    }
}
