//! The KV value envelope: `PKV1`, the expiry as a big-endian `u64` of unix
//! milliseconds (`0` = never), then the value.
//!
//! A binary header rather than JSON keeps 1 MiB values at 1 MiB. A value that
//! does not start with the magic (written by another Spin app sharing the
//! store, say) reads as a plain value that never expires.

const MAGIC: &[u8; 4] = b"PKV1";
const HEADER_LEN: usize = 12;

/// A decoded envelope, borrowing the value from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored<'a> {
    /// Unix milliseconds at which the value stops existing, if ever.
    pub expires_at_ms: Option<u64>,
    pub value: &'a [u8],
}

impl Stored<'_> {
    /// Whether the value still exists at `now_ms`: expiry is exclusive, so
    /// at exactly `expires_at_ms` the value is gone.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

/// Wraps `value` with its expiry.
pub fn encode(value: &[u8], expires_at_ms: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&expires_at_ms.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value in stored `bytes` if it still exists at `now_ms`.
pub fn live_value(bytes: &[u8], now_ms: u64) -> Option<&[u8]> {
    let stored = decode(bytes);
    stored.is_live(now_ms).then_some(stored.value)
}

/// Reads an envelope; bytes without the magic are a plain, permanent value.
pub fn decode(bytes: &[u8]) -> Stored<'_> {
    match bytes.split_first_chunk::<HEADER_LEN>() {
        Some((header, value)) if header.starts_with(MAGIC) => {
            let mut expiry = [0u8; 8];
            expiry.copy_from_slice(&header[4..]);
            let expires_at_ms = match u64::from_be_bytes(expiry) {
                0 => None,
                at => Some(at),
            };
            Stored {
                expires_at_ms,
                value,
            }
        }
        _ => Stored {
            expires_at_ms: None,
            value: bytes,
        },
    }
}

/// The absolute expiry for a TTL starting at `now_ms` (saturating: a huge TTL
/// means "practically never", not an overflow).
pub fn expiry_from_ttl(now_ms: u64, ttl_ms: Option<u64>) -> Option<u64> {
    ttl_ms.map(|ttl| now_ms.saturating_add(ttl).max(1))
}

/// Only the header of an envelope, for listing keys without reading values.
pub fn header_len() -> usize {
    HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_value_and_expiry() {
        for (value, expiry) in [
            (&b""[..], None),
            (&b"x"[..], Some(1)),
            (&b"hello world"[..], Some(u64::MAX)),
        ] {
            let bytes = encode(value, expiry);
            assert_eq!(
                decode(&bytes),
                Stored {
                    expires_at_ms: expiry,
                    value
                }
            );
        }
    }

    #[test]
    fn bytes_without_magic_are_a_permanent_plain_value() {
        let stored = decode(b"{\"flags\":{}}");
        assert_eq!(stored.expires_at_ms, None);
        assert_eq!(stored.value, b"{\"flags\":{}}");
        assert_eq!(decode(b"PKV").value, b"PKV");
    }

    #[test]
    fn only_a_live_value_is_read() {
        let bytes = encode(b"v", Some(10));
        assert_eq!(live_value(&bytes, 9), Some(&b"v"[..]));
        assert_eq!(live_value(&bytes, 10), None);
        assert_eq!(live_value(&encode(b"w", None), u64::MAX), Some(&b"w"[..]));
    }

    #[test]
    fn expiry_is_exclusive() {
        let stored = Stored {
            expires_at_ms: Some(10),
            value: b"",
        };
        assert!(stored.is_live(9));
        assert!(!stored.is_live(10));
        assert!(!stored.is_live(11));
    }

    #[test]
    fn ttl_saturates_instead_of_overflowing() {
        assert_eq!(expiry_from_ttl(5, Some(u64::MAX)), Some(u64::MAX));
        assert_eq!(expiry_from_ttl(5, None), None);
        assert_eq!(expiry_from_ttl(0, Some(0)), Some(1));
    }
}
