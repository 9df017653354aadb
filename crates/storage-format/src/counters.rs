//! Counters (`portico:platform/counters`): the rules for counter names, the
//! arithmetic both adapters share, and the file format of one counter shard
//! on `wasmtime serve`.
//!
//! A shard file is UTF-8 text: the line `PCT1`, then one line per counter,
//! `<value>\t<name>`, in name order. Names cannot contain control characters
//! (tab and newline included), so no escaping is needed. On Spin the same
//! counters are rows of one SQLite table.
//!
//! Totals saturate at the bounds of `i64` instead of wrapping.

use std::collections::BTreeMap;

use crate::names::NameError;

const MAGIC: &str = "PCT1";

/// Counter names are longer than KV keys may be (a metric series with its
/// labels), but bounded.
pub const MAX_NAME_BYTES: usize = 1024;

/// A counter name: 1..=1024 bytes, no control characters.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(())
}

/// The deltas of one `add` call with repeated names folded together, in
/// name order.
pub fn merge_deltas<'a>(deltas: impl IntoIterator<Item = (&'a str, i64)>) -> BTreeMap<String, i64> {
    let mut merged = BTreeMap::new();
    apply(&mut merged, deltas);
    merged
}

/// Adds each delta to its counter in `totals` (a new counter starts at 0).
pub fn apply<'a>(
    totals: &mut BTreeMap<String, i64>,
    deltas: impl IntoIterator<Item = (&'a str, i64)>,
) {
    for (name, delta) in deltas {
        match totals.get_mut(name) {
            Some(total) => *total = total.saturating_add(delta),
            None => {
                totals.insert(name.to_string(), delta);
            }
        }
    }
}

/// The totals over several shards: each counter summed across them.
pub fn sum<'a>(
    shards: impl IntoIterator<Item = &'a BTreeMap<String, i64>>,
) -> BTreeMap<String, i64> {
    let mut totals = BTreeMap::new();
    for shard in shards {
        apply(&mut totals, shard.iter().map(|(n, v)| (n.as_str(), *v)));
    }
    totals
}

/// Encodes one shard.
pub fn encode(counters: &BTreeMap<String, i64>) -> Vec<u8> {
    let mut out = String::with_capacity(8 + counters.len() * 32);
    out.push_str(MAGIC);
    out.push('\n');
    for (name, value) in counters {
        out.push_str(&value.to_string());
        out.push('\t');
        out.push_str(name);
        out.push('\n');
    }
    out.into_bytes()
}

/// Decodes a shard; `None` for bytes that are not one (a foreign or corrupt
/// file: writes are atomic renames, so a torn shard cannot exist).
pub fn decode(bytes: &[u8]) -> Option<BTreeMap<String, i64>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split_terminator('\n');
    if lines.next()? != MAGIC {
        return None;
    }
    let mut counters = BTreeMap::new();
    for line in lines {
        let (value, name) = line.split_once('\t')?;
        check_name(name).ok()?;
        let value: i64 = value.parse().ok()?;
        apply(&mut counters, [(name, value)]);
    }
    Some(counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn shards_round_trip() {
        for counters in [
            map(&[]),
            map(&[("requests", 3)]),
            map(&[
                ("http_requests_total{route=\"/api/\",class=\"2xx\"}", 42),
                ("neg", -7),
                ("max", i64::MAX),
                ("min", i64::MIN),
                ("ü = \" ,", 1),
            ]),
        ] {
            assert_eq!(decode(&encode(&counters)), Some(counters));
        }
    }

    #[test]
    fn foreign_bytes_are_not_a_shard() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"PCT2\n"), None);
        assert_eq!(decode(b"PCT1\nnot-a-number\tx\n"), None);
        assert_eq!(decode(b"PCT1\n12\n"), None);
        assert_eq!(decode(b"PCT1\n12\t\n"), None);
        assert_eq!(decode(&[0xff, 0xfe]), None);
    }

    #[test]
    fn shard_totals_sum_every_counter() {
        let shards = [
            map(&[("a", 1), ("b", 10)]),
            map(&[]),
            map(&[("b", 5), ("c", -2)]),
            map(&[("a", 1), ("c", 2)]),
        ];
        assert_eq!(sum(&shards), map(&[("a", 2), ("b", 15), ("c", 0)]));
    }

    #[test]
    fn totals_saturate() {
        let shards = [map(&[("x", i64::MAX)]), map(&[("x", 1)])];
        assert_eq!(sum(&shards)["x"], i64::MAX);
        let shards = [map(&[("x", i64::MIN)]), map(&[("x", -1)])];
        assert_eq!(sum(&shards)["x"], i64::MIN);
    }

    #[test]
    fn repeated_names_in_one_call_are_folded() {
        let merged = merge_deltas([("a", 1), ("b", 2), ("a", 3)]);
        assert_eq!(merged, map(&[("a", 4), ("b", 2)]));
    }

    #[test]
    fn name_rules() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert!(check_name(&"n".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(matches!(
            check_name(&"n".repeat(MAX_NAME_BYTES + 1)),
            Err(NameError::TooLong { .. })
        ));
        assert_eq!(check_name("a\tb"), Err(NameError::ControlCharacter));
        assert_eq!(check_name("a\nb"), Err(NameError::ControlCharacter));
    }
}
