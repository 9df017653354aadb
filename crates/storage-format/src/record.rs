//! The file format of a durable record on `wasmtime serve`: the version and
//! the expiry (unix ms, `0` = never) as big-endian `u64`s, then the value.
//! (On Spin the same three fields are columns of one SQLite table.)

const HEADER_LEN: usize = 16;

/// A decoded durable record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub version: u64,
    pub expires_at_ms: Option<u64>,
    pub value: &'a [u8],
}

impl Record<'_> {
    /// Whether the record still exists at `now_ms` (expiry is exclusive).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

pub fn encode(version: u64, expires_at_ms: Option<u64>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&expires_at_ms.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// `None` when the bytes are too short to be a record (a torn or foreign file).
pub fn decode(bytes: &[u8]) -> Option<Record<'_>> {
    let (header, value) = bytes.split_first_chunk::<HEADER_LEN>()?;
    let (version, expiry) = header.split_at(8);
    let version = u64::from_be_bytes(version.try_into().ok()?);
    let expires_at_ms = match u64::from_be_bytes(expiry.try_into().ok()?) {
        0 => None,
        at => Some(at),
    };
    Some(Record {
        version,
        expires_at_ms,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let bytes = encode(7, Some(99), b"state");
        assert_eq!(
            decode(&bytes),
            Some(Record {
                version: 7,
                expires_at_ms: Some(99),
                value: b"state"
            })
        );
    }

    #[test]
    fn short_bytes_are_not_a_record() {
        assert_eq!(decode(&[0u8; 15]), None);
    }
}
