//! The few filesystem operations on the request path, made with direct
//! `wasi:filesystem` calls on the `/data` preopen rather than through the
//! standard library.
//!
//! Each WASI call is a host call, and on `wasmtime serve` a hop to a
//! blocking thread, so the count per request is the cost. `std::fs::read`
//! asks for the file's metadata twice before reading (a size hint and an
//! inode) and then reads through a stream until an empty read; a write goes
//! through a stream with a flush. Here a small file is read with one
//! positional `read` (a short read of a regular file is its end) and written
//! with one positional `write`, so reading a record is two calls (open, read)
//! and writing one atomically four (open, write, rename, and the close).

use std::cell::OnceCell;
use std::io;
use std::path::Path;

use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

use crate::files::ROOT;

/// Bytes asked for per `read`: the host allocates this much per call, so it
/// stays modest; a larger file takes more calls.
const READ_CHUNK: u64 = 64 * 1024;

thread_local! {
    /// The `/data` preopen, found once per instance.
    static DATA: OnceCell<Option<Descriptor>> = const { OnceCell::new() };
}

fn io_error(code: ErrorCode) -> io::Error {
    let kind = match code {
        ErrorCode::NoEntry => io::ErrorKind::NotFound,
        ErrorCode::Exist | ErrorCode::NotEmpty => io::ErrorKind::AlreadyExists,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
            io::ErrorKind::PermissionDenied
        }
        ErrorCode::InsufficientSpace | ErrorCode::Quota => io::ErrorKind::StorageFull,
        ErrorCode::Interrupted => io::ErrorKind::Interrupted,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{code:?}"))
}

/// Runs `f` with the `/data` preopen and `path` relative to it.
fn at<R>(path: &Path, f: impl FnOnce(&Descriptor, &str) -> io::Result<R>) -> io::Result<R> {
    let relative = path
        .strip_prefix(ROOT)
        .ok()
        .and_then(Path::to_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| io::Error::other(format!("{} is not under {ROOT}", path.display())))?;
    DATA.with(|data| {
        let data = data.get_or_init(|| {
            preopens::get_directories()
                .into_iter()
                .find(|(_, name)| name == ROOT)
                .map(|(descriptor, _)| descriptor)
        });
        match data {
            Some(root) => f(root, relative),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory is preopened at {ROOT}"),
            )),
        }
    })
}

/// The whole content of the file at `path`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    at(path, |root, relative| {
        let file = root
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                relative,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(io_error)?;
        let mut content = Vec::new();
        loop {
            let (chunk, end) = file
                .read(READ_CHUNK, content.len() as u64)
                .map_err(io_error)?;
            let short = (chunk.len() as u64) < READ_CHUNK;
            content.extend_from_slice(&chunk);
            if end || short {
                return Ok(content);
            }
        }
    })
}

/// Creates (or truncates) the file at `path` with `bytes` as its content.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    at(path, |root, relative| {
        let file = root
            .open_at(
                PathFlags::empty(),
                relative,
                OpenFlags::CREATE | OpenFlags::TRUNCATE,
                DescriptorFlags::WRITE,
            )
            .map_err(io_error)?;
        let mut written = 0;
        while written < bytes.len() {
            let n = file
                .write(&bytes[written..], written as u64)
                .map_err(io_error)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write wrote nothing",
                ));
            }
            written += n as usize;
        }
        Ok(())
    })
}

/// Appends each of `records` to the file at `path` (created if missing),
/// each with a single write: the kernel applies an append whole, so
/// concurrent appenders never interleave within a record.
pub fn append(path: &Path, records: &[&[u8]]) -> io::Result<()> {
    at(path, |root, relative| {
        let file = root
            .open_at(
                PathFlags::empty(),
                relative,
                OpenFlags::CREATE,
                DescriptorFlags::WRITE,
            )
            .map_err(io_error)?;
        let stream = file.append_via_stream().map_err(io_error)?;
        for record in records {
            stream
                .blocking_write_and_flush(record)
                .map_err(|err| io::Error::other(format!("append: {err:?}")))?;
        }
        Ok(())
    })
}

/// Renames `from` to `to` (both under `/data`), replacing `to`.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    at(from, |root, from| {
        at(to, |_, to| root.rename_at(from, root, to).map_err(io_error))
    })
}

/// Creates the directory `path`; fails when it exists.
pub fn create_dir(path: &Path) -> io::Result<()> {
    at(path, |root, relative| {
        root.create_directory_at(relative).map_err(io_error)
    })
}

/// Removes the empty directory `path`.
pub fn remove_dir(path: &Path) -> io::Result<()> {
    at(path, |root, relative| {
        root.remove_directory_at(relative).map_err(io_error)
    })
}

/// Removes the file `path`.
pub fn remove_file(path: &Path) -> io::Result<()> {
    at(path, |root, relative| {
        root.unlink_file_at(relative).map_err(io_error)
    })
}

/// The last modification time of `path`, in nanoseconds since the epoch.
pub fn modified_ns(path: &Path) -> io::Result<Option<u128>> {
    at(path, |root, relative| {
        let stat = root
            .stat_at(PathFlags::empty(), relative)
            .map_err(io_error)?;
        Ok(stat
            .data_modification_timestamp
            .map(|t| u128::from(t.seconds) * 1_000_000_000 + u128::from(t.nanoseconds)))
    })
}
