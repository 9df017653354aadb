//! Writes bytes to a borrowed `wasi:io` output stream: what the components
//! that send bodies straight from storage (`assets`, the platform adapters)
//! share. `std::io::Write` is implemented for an owned stream only; these
//! components are lent one.

use wasip2::io::streams::{OutputStream, StreamError};

/// Writes all of `bytes`, as fast as the runtime takes them: each write is
/// as large as `check-write` allows, and waits only when it allows nothing.
pub fn write_all(out: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let permitted = out.check_write()?;
        if permitted == 0 {
            out.subscribe().block();
            continue;
        }
        let n = bytes
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        out.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// A stream error as text for a problem's detail.
pub fn describe(err: &StreamError) -> String {
    match err {
        StreamError::Closed => "the stream was closed".into(),
        StreamError::LastOperationFailed(err) => err.to_debug_string(),
    }
}

/// Writes bytes `from..to` of `bytes` (clamped to its length).
pub fn write_range(
    out: &OutputStream,
    bytes: &[u8],
    from: u64,
    to: u64,
) -> Result<(), StreamError> {
    let len = bytes.len() as u64;
    let (from, to) = (from.min(len) as usize, to.min(len) as usize);
    write_all(out, &bytes[from..to.max(from)])
}
