//! Counters (`portico:platform/counters`): the rules for counter names, the
//! arithmetic both adapters share, and the file formats of counters on
//! `wasmtime serve`.
//!
//! There, an `add` appends one line to a journal segment and takes no lock:
//! one file open and one append, where a read-modify-write of a shared file
//! would need a lock and half a dozen filesystem calls. A segment covers
//! [`SEGMENT_MS`] of wall time (`j-<segment number>`); `read` sums the folded
//! base and every newer segment, and folds segments that are at least
//! [`SEGMENT_GRACE`] segments old into the base (written atomically, with the
//! last segment it includes), after which they are deleted. A crash between
//! the two steps is harmless: segments the base already includes are ignored.
//!
//! - A journal line is `<delta>\t<name>` pairs joined by tabs, ending in a
//!   newline; a line without its newline (an append cut short) is ignored.
//! - The base file is the line `PCB1 <last folded segment>`, then one line per
//!   counter, `<value>\t<name>`, in name order.
//! - A shard file (`PCT1`, the format before journals, still read) is the line
//!   `PCT1`, then the same counter lines.
//!
//! Names cannot contain control characters (tab and newline included), so no
//! escaping is needed. On Spin the same counters are rows of one SQLite table.
//!
//! Totals saturate at the bounds of `i64` instead of wrapping.

use std::collections::BTreeMap;

use crate::names::NameError;

const MAGIC: &str = "PCT1";
const BASE_MAGIC: &str = "PCB1";

/// Wall time one journal segment covers.
pub const SEGMENT_MS: u64 = 10_000;
/// A segment this many segments behind the current one gets no more
/// appends (an `add` names its segment an instant before appending), so it
/// may be folded.
pub const SEGMENT_GRACE: u64 = 2;
/// The file name of the folded base.
pub const BASE_FILE: &str = "base";
const SEGMENT_PREFIX: &str = "j-";

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
    push_counter_lines(&mut out, counters);
    out.into_bytes()
}

/// One `<value>\t<name>` line per counter, in name order.
fn push_counter_lines(out: &mut String, counters: &BTreeMap<String, i64>) {
    for (name, value) in counters {
        out.push_str(&value.to_string());
        out.push('\t');
        out.push_str(name);
        out.push('\n');
    }
}

/// Decodes a shard; `None` for bytes that are not one (a foreign or corrupt
/// file: writes are atomic renames, so a torn shard cannot exist).
pub fn decode(bytes: &[u8]) -> Option<BTreeMap<String, i64>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (header, rest) = text.split_once('\n').unwrap_or((text, ""));
    if header != MAGIC {
        return None;
    }
    decode_counter_lines(rest)
}

/// The `<value>\t<name>` lines of a shard or base; `None` if any is not one.
fn decode_counter_lines(text: &str) -> Option<BTreeMap<String, i64>> {
    let mut counters = BTreeMap::new();
    for line in text.split_terminator('\n') {
        let (value, name) = line.split_once('\t')?;
        check_name(name).ok()?;
        let value: i64 = value.parse().ok()?;
        apply(&mut counters, [(name, value)]);
    }
    Some(counters)
}

/// The journal segment an `add` at `now_ms` appends to.
pub fn segment_of(now_ms: u64) -> u64 {
    now_ms / SEGMENT_MS
}

/// The newest segment that may be folded at `now_ms`, if any.
pub fn foldable_through(now_ms: u64) -> Option<u64> {
    segment_of(now_ms).checked_sub(SEGMENT_GRACE)
}

/// The file name of segment `segment` (fixed width, so names sort in order).
pub fn segment_file_name(segment: u64) -> String {
    format!("{SEGMENT_PREFIX}{segment:012}")
}

/// The segment a file name names; `None` for any other file.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One `add` as journal lines of at most `max_bytes` each (newline
/// included), so each can be appended with one write; usually one line. A
/// single delta longer than `max_bytes` (a name near [`MAX_NAME_BYTES`] with
/// a tiny limit) still gets a line of its own.
pub fn journal_lines(deltas: &BTreeMap<String, i64>, max_bytes: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for (name, delta) in deltas {
        let pair = format!("{delta}\t{name}");
        if !line.is_empty() && line.len() + 1 + pair.len() + 1 > max_bytes {
            line.push('\n');
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push('\t');
        }
        line.push_str(&pair);
    }
    if !line.is_empty() {
        line.push('\n');
        lines.push(line);
    }
    lines
}

/// Adds every complete journal line of `bytes` to `totals`; returns how
/// many lines were skipped as malformed (a line cut short has no newline
/// and is skipped without counting: its `add` never completed).
pub fn fold_journal(totals: &mut BTreeMap<String, i64>, bytes: &[u8]) -> usize {
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => return 0,
    };
    let mut malformed = 0;
    for line in complete.split(|&b| b == b'\n') {
        match parse_journal_line(line) {
            Some(pairs) => apply(totals, pairs.iter().map(|(n, d)| (*n, *d))),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_journal_line(line: &[u8]) -> Option<Vec<(&str, i64)>> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split('\t');
    let mut pairs = Vec::new();
    while let Some(delta) = fields.next() {
        let name = fields.next()?;
        check_name(name).ok()?;
        pairs.push((name, delta.parse().ok()?));
    }
    (!pairs.is_empty()).then_some(pairs)
}

/// Encodes the folded base: the totals of every segment up to and including
/// `folded_through`.
pub fn encode_base(folded_through: u64, totals: &BTreeMap<String, i64>) -> Vec<u8> {
    let mut out = format!("{BASE_MAGIC} {folded_through}\n");
    push_counter_lines(&mut out, totals);
    out.into_bytes()
}

/// Decodes a base; `None` for bytes that are not one.
pub fn decode_base(bytes: &[u8]) -> Option<(u64, BTreeMap<String, i64>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (header, rest) = text.split_once('\n')?;
    let folded_through = header
        .strip_prefix(BASE_MAGIC)?
        .strip_prefix(' ')?
        .parse()
        .ok()?;
    Some((folded_through, decode_counter_lines(rest)?))
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

    #[test]
    fn journal_lines_fold_into_totals() {
        let mut journal = Vec::new();
        journal.extend(
            journal_lines(&map(&[("a", 1), ("b{x=\"1\"}", 2)]), 4096)
                .concat()
                .bytes(),
        );
        journal.extend(
            journal_lines(&map(&[("a", 5), ("neg", -3)]), 4096)
                .concat()
                .bytes(),
        );
        let mut totals = map(&[("a", 10)]);
        assert_eq!(fold_journal(&mut totals, &journal), 0);
        assert_eq!(totals, map(&[("a", 16), ("b{x=\"1\"}", 2), ("neg", -3)]));
    }

    #[test]
    fn a_line_cut_short_is_ignored_and_a_malformed_one_counted() {
        let mut journal = journal_lines(&map(&[("a", 1)]), 4096).concat().into_bytes();
        journal.extend(b"x\ta\n");
        journal.extend(b"7\ta\t3"); // an append cut short: no newline
        let mut totals = BTreeMap::new();
        assert_eq!(fold_journal(&mut totals, &journal), 1);
        assert_eq!(totals, map(&[("a", 1)]));
        assert_eq!(fold_journal(&mut totals, b""), 0);
        assert_eq!(fold_journal(&mut totals, b"5\ta"), 0);
        assert_eq!(totals, map(&[("a", 1)]));
    }

    #[test]
    fn bases_round_trip_and_refuse_foreign_bytes() {
        let totals = map(&[("a", 3), ("max", i64::MAX), ("ü = \" ,", -1)]);
        assert_eq!(decode_base(&encode_base(42, &totals)), Some((42, totals)));
        assert_eq!(decode_base(&encode_base(0, &map(&[]))), Some((0, map(&[]))));
        assert_eq!(decode_base(b"PCT1\n"), None);
        assert_eq!(decode_base(b"PCB1 x\n"), None);
        assert_eq!(decode_base(b"PCB1 1\nnot-a-number\tx\n"), None);
    }

    #[test]
    fn segments_are_named_in_order_and_folded_after_the_grace() {
        assert_eq!(segment_of(0), 0);
        assert_eq!(segment_of(SEGMENT_MS * 7 + 1), 7);
        assert_eq!(foldable_through(SEGMENT_MS), None);
        assert_eq!(foldable_through(SEGMENT_MS * 9), Some(9 - SEGMENT_GRACE));
        let names: Vec<String> = [9, 10, 123_456]
            .iter()
            .map(|s| segment_file_name(*s))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for segment in [0, 9, 123_456_789] {
            assert_eq!(
                parse_segment_file_name(&segment_file_name(segment)),
                Some(segment)
            );
        }
        for other in ["base", "0", "j-", "j-12a", "j--1", "x-000000000001"] {
            assert_eq!(parse_segment_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_large_add_is_split_into_whole_lines_within_the_limit() {
        let deltas: BTreeMap<String, i64> = (0..200)
            .map(|i| (format!("series_{i:03}{{route=\"/x\"}}"), i64::from(i) - 100))
            .collect();
        let lines = journal_lines(&deltas, 256);
        assert!(lines.len() > 1);
        for line in &lines {
            assert!(line.len() <= 256, "{} bytes", line.len());
            assert!(line.ends_with('\n'));
        }
        let mut totals = BTreeMap::new();
        assert_eq!(fold_journal(&mut totals, lines.concat().as_bytes()), 0);
        assert_eq!(totals, deltas);
        assert!(journal_lines(&BTreeMap::new(), 4096).is_empty());
    }
}
