//! Atomic file writes and the lock directory that serialises read-modify-write.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use portico_storage_format::names::{self, MAX_FILE_NAME_BYTES};

use crate::exports::portico::platform::types::Error;
use crate::wasi_fs;

pub const ROOT: &str = "/data";

/// A lock older than this was left by a request that crashed or timed out:
/// no compare-and-swap holds its lock for more than a few milliseconds.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// How long a writer waits for a contended lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// The file for `key` inside `dir`, refusing names the filesystem would not take.
pub fn entry_path(dir: &Path, key: &str) -> Result<PathBuf, Error> {
    names::check_key(key).map_err(crate::name_error)?;
    let name = names::to_file_name(key);
    if name.len() > MAX_FILE_NAME_BYTES - 5 {
        // Room for the `.lock` suffix; Spin's own limit is 255 bytes of key.
        return Err(Error::TooLarge);
    }
    Ok(dir.join(name))
}

/// Reads a whole file; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match wasi_fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(crate::io_error("read", err)),
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content,
/// never a mix: write a unique temporary file, then rename it over `path`.
///
/// There is no fsync: like SQLite in WAL mode with `synchronous=NORMAL` (the
/// host's Spin storage), a write survives a crash of the process but the
/// last writes may be lost if the machine itself loses power. An fsync per
/// write would cap a contended record at a few hundred writes a second.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    Prepared::write(bytes)?.publish(path)
}

/// Content written to a temporary file, not yet anywhere a reader looks:
/// [`Prepared::publish`] renames it into place, dropping it removes it. A
/// compare-and-swap writes first and takes its lock after, so the lock is
/// held for a read and a rename only.
pub struct Prepared {
    tmp: Option<PathBuf>,
}

impl Prepared {
    pub fn write(bytes: &[u8]) -> Result<Prepared, Error> {
        let tmp = tmp_path("tmp");
        let write = |tmp: &Path| wasi_fs::write_new(tmp, bytes);
        if let Err(err) = write(&tmp) {
            if err.kind() != ErrorKind::NotFound {
                return Err(crate::io_error("write", err));
            }
            let tmp_dir = Path::new(ROOT).join("tmp");
            fs::create_dir_all(&tmp_dir).map_err(|e| crate::io_error("create tmp dir", e))?;
            write(&tmp).map_err(|e| crate::io_error("write", e))?;
        }
        Ok(Prepared { tmp: Some(tmp) })
    }

    /// Renames the content into place at `path`, atomically.
    pub fn publish(mut self, path: &Path) -> Result<(), Error> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        let rename = || wasi_fs::rename(&tmp, path);
        let renamed = match rename() {
            Err(err) if err.kind() == ErrorKind::NotFound => match path.parent() {
                Some(parent) => fs::create_dir_all(parent).and_then(|()| rename()),
                None => Err(err),
            },
            other => other,
        };
        renamed.map_err(|err| {
            let _ = wasi_fs::remove_file(&tmp);
            crate::io_error("rename", err)
        })
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = wasi_fs::remove_file(&tmp);
        }
    }
}

/// A fresh name in `/data/tmp` (the same preopened directory, so renames
/// between it and the data are atomic).
fn tmp_path(suffix: &str) -> PathBuf {
    Path::new(ROOT).join("tmp").join(format!(
        "{:016x}.{suffix}",
        wasip2::random::random::get_random_u64()
    ))
}

/// Moves the file at `path` aside, atomically, into `/data/tmp`: whatever
/// version was there at that instant is now only at the returned path.
/// `None` when there was no file.
pub fn take_aside(path: &Path) -> Result<Option<PathBuf>, Error> {
    let aside = tmp_path("aside");
    match fs::rename(path, &aside) {
        Ok(()) => Ok(Some(aside)),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            if fs::metadata(path).is_err() {
                return Ok(None);
            }
            // The file exists, so it was `/data/tmp` that was missing.
            fs::create_dir_all(aside.parent().unwrap_or(Path::new(ROOT)))
                .map_err(|e| crate::io_error("create tmp dir", e))?;
            match fs::rename(path, &aside) {
                Ok(()) => Ok(Some(aside)),
                Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
                Err(err) => Err(crate::io_error("rename", err)),
            }
        }
        Err(err) => Err(crate::io_error("rename", err)),
    }
}

/// Undoes [`take_aside`] unless a newer file has been written to `path`
/// since (which then wins): a hard link fails when the name exists, so no
/// write is ever overwritten.
pub fn put_back(aside: &Path, path: &Path) -> Result<(), Error> {
    let restored = match fs::hard_link(aside, path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(_) if fs::metadata(path).is_ok() => Ok(()),
        // No hard links on this filesystem: a rename, which could only
        // overwrite a write landing in the same instant.
        Err(_) => fs::rename(aside, path),
    };
    let _ = fs::remove_file(aside);
    restored.map_err(|e| crate::io_error("restore", e))
}

/// Removes a file; a missing file is fine.
pub fn remove_optional(path: &Path) -> Result<(), Error> {
    match wasi_fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(crate::io_error("remove", err)),
        _ => Ok(()),
    }
}

/// An exclusive lock on one record, held while the value is alive.
///
/// `create_dir` is atomic and fails when the directory exists, which makes a
/// directory the one lock primitive stock WASI offers (there is no `flock`).
/// A crashed request leaves its directory behind; one older than
/// [`STALE_LOCK`] is taken over.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Waits (up to [`LOCK_WAIT`]) for the lock on `record`.
    ///
    /// A holder keeps a lock for a read and a rename, so waiters poll
    /// briefly (100 µs, growing to at most 1 ms, each pause jittered so
    /// waiters do not wake in step) and check whether the lock was left
    /// behind by a crash on the first miss and then every half second.
    pub fn acquire(record: &Path) -> Result<Lock, Error> {
        let started = SystemTime::now();
        let deadline = started + LOCK_WAIT;
        let mut pause = Duration::from_micros(100);
        let mut next_stale_check = started;
        loop {
            let check_stale = SystemTime::now() >= next_stale_check;
            if check_stale {
                next_stale_check = SystemTime::now() + Duration::from_millis(500);
            }
            if let Some(lock) = Self::try_acquire_checking(record, check_stale)? {
                return Ok(lock);
            }
            if SystemTime::now() > deadline {
                return Err(Error::Unavailable(format!(
                    "record lock {} still held after {}s",
                    Self::path_for(record).display(),
                    LOCK_WAIT.as_secs()
                )));
            }
            let jitter = 0.5 + (wasip2::random::random::get_random_u64() % 1000) as f64 / 1000.0;
            std::thread::sleep(pause.mul_f64(jitter));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// The lock on `record` if nobody holds it (a stale lock is taken over);
    /// `None` when it is held.
    pub fn try_acquire(record: &Path) -> Result<Option<Lock>, Error> {
        Self::try_acquire_checking(record, true)
    }

    fn try_acquire_checking(record: &Path, check_stale: bool) -> Result<Option<Lock>, Error> {
        let path = Self::path_for(record);
        loop {
            match wasi_fs::create_dir(&path) {
                Ok(()) => return Ok(Some(Lock { path })),
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    let parent = record.parent().unwrap_or(Path::new(ROOT));
                    fs::create_dir_all(parent).map_err(|e| crate::io_error("create dir", e))?;
                }
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                    let stale = if check_stale {
                        Self::stale_age(&path)
                    } else {
                        None
                    };
                    let Some(age) = stale else {
                        return Ok(None);
                    };
                    eprintln!(
                        "{{\"level\":\"warn\",\"component\":\"platform-wasi\",\"msg\":\"taking over a stale lock\",\"lock\":{:?},\"age_ms\":{}}}",
                        path.display().to_string(),
                        age.as_millis()
                    );
                    let _ = wasi_fs::remove_dir(&path);
                }
                Err(err) => return Err(crate::io_error("lock", err)),
            }
        }
    }

    fn path_for(record: &Path) -> PathBuf {
        let mut path = record.as_os_str().to_owned();
        path.push(".lock");
        PathBuf::from(path)
    }

    fn stale_age(path: &Path) -> Option<Duration> {
        let modified = wasi_fs::modified_ns(path).ok()??;
        let modified = SystemTime::UNIX_EPOCH
            + Duration::new(
                u64::try_from(modified / 1_000_000_000).ok()?,
                (modified % 1_000_000_000) as u32,
            );
        SystemTime::now()
            .duration_since(modified)
            .ok()
            .filter(|age| *age > STALE_LOCK)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = wasi_fs::remove_dir(&self.path);
    }
}
