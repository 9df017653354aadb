//! Byte-range requests: parsing `Range`, formatting `Content-Range`, and
//! building `multipart/byteranges` bodies whose length is known up front.
//!
//! RFC sections followed: RFC 9110 §14.1 (range units, `ranges-specifier`
//! grammar, byte-range semantics and satisfiability), §14.2 (`Range`: when a
//! server may or must ignore it), §14.4 (`Content-Range`), §14.6 and
//! §15.3.7.2 (`multipart/byteranges`, coalescing, part order), §15.5.17
//! (416 carries `bytes */size`), §5.6.1.2 (empty list elements, OWS around
//! commas), and RFC 2046 §5.1.1 (boundary syntax and delimiter layout).
//!
//! Choices, and why:
//! - An absent header, a unit other than `bytes` (compared case-insensitively)
//!   or any syntactically invalid `range-spec` (including `last < first`, as in
//!   `bytes=1-0`, and `bytes=` with no ranges) gives [`RangeOutcome::Full`]:
//!   §14.2 lets a server ignore such a header, and a 200 is always correct.
//!   One bad spec voids the whole header rather than being skipped.
//! - Numbers may be arbitrarily long: values saturate at `u64::MAX`, which is
//!   exact for satisfiability (no representation is that large), while the
//!   `first <= last` validity check compares the decimal digits exactly.
//! - Satisfiable specs are kept, unsatisfiable ones dropped; if none is
//!   satisfiable the answer is [`RangeOutcome::Unsatisfiable`] (416).
//! - A zero-length representation makes every range unsatisfiable. §14.1.1
//!   calls a non-zero suffix satisfiable there, but no `Content-Range` can
//!   describe an empty range, so 416 with `bytes */0` is the only
//!   well-formed partial answer.
//! - Abuse: more than [`MAX_RANGES`] (16) non-empty specs gives `Full`, which
//!   §14.2 allows and which also stops scanning early (a 10,000-range header
//!   costs at most 17 spec parses). Overlapping or adjacent ranges are
//!   coalesced (§15.3.7.2 allows this regardless of order), so the bytes
//!   sent never exceed the representation plus 16 part headers. Groups keep
//!   the position of their earliest member, so non-coalesced parts stay in
//!   request order as §15.3.7.2 recommends.
//! - Only SP and HTAB count as OWS; it is accepted around every list
//!   element (so also right after `=`) and at the ends of the value, while
//!   whitespace inside a spec or before `=` is invalid.
//! - The multipart layout is `--B CRLF headers CRLF CRLF data` per part,
//!   parts joined by `CRLF --B CRLF`, closed by `CRLF --B-- CRLF`. The
//!   boundary is restricted to 1..=70 characters of `A-Za-z0-9'+_.-` so it
//!   is valid for RFC 2046 and is a `token` needing no quotes in
//!   `Content-Type`. A part `Content-Type` line is omitted when the content
//!   type is empty; CR, LF and other controls in it are rejected (header
//!   injection). A single part is allowed: §15.3.7.2 permits it when several
//!   ranges were asked for and coalesced to one; the caller must use a plain
//!   206 when the client asked for only one range.

use std::cmp::Ordering;
use std::fmt;

/// Maximum number of non-empty `range-spec`s honoured; more gives `Full`.
pub const MAX_RANGES: usize = 16;

/// Maximum boundary length allowed by RFC 2046.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// An inclusive byte range `first..=last`, as produced by [`evaluate_range`]
/// (always `first <= last < size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range (saturating; 1 if `last < first`).
    pub fn length(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }
}

/// What to do with a request's `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole representation (200): no header, an unknown unit, an
    /// invalid header, or one ignored as abusive.
    Full,
    /// Send these ranges (206); one range means a single-part response.
    Partial(Vec<ByteRange>),
    /// No range overlaps the representation (416 with `bytes */size`).
    Unsatisfiable,
}

/// Evaluates a `Range` header against a representation of `size` bytes.
pub fn evaluate_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(header) = header else {
        return RangeOutcome::Full;
    };
    let header = trim_ows(header.as_bytes());
    let Some(eq) = header.iter().position(|&b| b == b'=') else {
        return RangeOutcome::Full;
    };
    let (unit, set) = header.split_at(eq);
    let set = set.get(1..).unwrap_or_default();
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return RangeOutcome::Full;
    }
    let mut satisfiable = Vec::new();
    let mut count = 0usize;
    for element in set.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return RangeOutcome::Full;
        }
        let Some(spec) = parse_spec(element) else {
            return RangeOutcome::Full;
        };
        if let Some(range) = resolve(&spec, size) {
            satisfiable.push(range);
        }
    }
    if count == 0 {
        return RangeOutcome::Full;
    }
    if satisfiable.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial(coalesce(satisfiable))
}

/// `Content-Range` value for a 206 part: `bytes first-last/size`.
pub fn content_range(range: ByteRange, size: u64) -> String {
    format!("bytes {}-{}/{}", range.first, range.last, size)
}

/// `Content-Range` value for a 416: `bytes */size`.
pub fn content_range_unsatisfied(size: u64) -> String {
    format!("bytes */{size}")
}

/// A decimal number: digits without leading zeros, and saturated value.
struct Decimal<'a> {
    digits: &'a [u8],
    value: u64,
}

fn parse_decimal(s: &[u8]) -> Option<Decimal<'_>> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let start = s.iter().position(|&b| b != b'0').unwrap_or(s.len());
    let digits = s.get(start..).unwrap_or_default();
    let value = digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Decimal { digits, value })
}

fn cmp_decimal(a: &Decimal<'_>, b: &Decimal<'_>) -> Ordering {
    a.digits
        .len()
        .cmp(&b.digits.len())
        .then_with(|| a.digits.cmp(b.digits))
}

enum Spec<'a> {
    Int {
        first: Decimal<'a>,
        last: Option<Decimal<'a>>,
    },
    Suffix(Decimal<'a>),
}

fn parse_spec(element: &[u8]) -> Option<Spec<'_>> {
    let dash = element.iter().position(|&b| b == b'-')?;
    let (first, rest) = element.split_at(dash);
    let last = rest.get(1..).unwrap_or_default();
    if first.is_empty() {
        return parse_decimal(last).map(Spec::Suffix);
    }
    let first = parse_decimal(first)?;
    let last = if last.is_empty() {
        None
    } else {
        let last = parse_decimal(last)?;
        if cmp_decimal(&last, &first) == Ordering::Less {
            return None;
        }
        Some(last)
    };
    Some(Spec::Int { first, last })
}

fn resolve(spec: &Spec<'_>, size: u64) -> Option<ByteRange> {
    let max = size.checked_sub(1)?;
    match spec {
        Spec::Int { first, last } => {
            if first.value >= size {
                return None;
            }
            let last = last.as_ref().map_or(max, |l| l.value.min(max));
            Some(ByteRange {
                first: first.value,
                last,
            })
        }
        Spec::Suffix(length) => {
            if length.value == 0 {
                return None;
            }
            let length = length.value.min(size);
            Some(ByteRange {
                first: size - length,
                last: max,
            })
        }
    }
}

fn touches(a: ByteRange, b: ByteRange) -> bool {
    a.first <= b.last.saturating_add(1) && b.first <= a.last.saturating_add(1)
}

/// Merges overlapping or adjacent ranges; a merged group takes the place of
/// its earliest member. At most [`MAX_RANGES`] inputs, so the cubic worst
/// case is a few thousand comparisons.
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    'restart: loop {
        for i in 0..ranges.len() {
            for j in i + 1..ranges.len() {
                if touches(ranges[i], ranges[j]) {
                    let other = ranges.remove(j);
                    let merged = &mut ranges[i];
                    merged.first = merged.first.min(other.first);
                    merged.last = merged.last.max(other.last);
                    continue 'restart;
                }
            }
        }
        return ranges;
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Why a multipart body could not be described or built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// Boundary empty, longer than 70, or outside `A-Za-z0-9'+_.-`.
    InvalidBoundary,
    /// Content type contains a control character (CR/LF injection).
    InvalidContentType,
    /// No ranges were given.
    NoRanges,
    /// A range has `last < first` or reaches past the representation.
    InvalidRange(ByteRange),
    /// The total length does not fit in `u64`/`usize`, or memory for it
    /// could not be reserved.
    TooLarge,
    /// The accessor returned `None` for this range.
    SourceUnavailable(ByteRange),
    /// The accessor returned the wrong number of bytes for this range.
    LengthMismatch {
        range: ByteRange,
        expected: u64,
        actual: u64,
    },
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidBoundary => f.write_str(
                "multipart boundary must be 1 to 70 characters of A-Z a-z 0-9 ' + _ . -",
            ),
            Self::InvalidContentType => {
                f.write_str("part content type contains a control character")
            }
            Self::NoRanges => f.write_str("a multipart body needs at least one range"),
            Self::InvalidRange(r) => {
                write!(
                    f,
                    "range {}-{} is empty or outside the representation",
                    r.first, r.last
                )
            }
            Self::TooLarge => f.write_str("multipart body is too large"),
            Self::SourceUnavailable(r) => {
                write!(f, "bytes {}-{} could not be read", r.first, r.last)
            }
            Self::LengthMismatch {
                range,
                expected,
                actual,
            } => write!(
                f,
                "bytes {}-{}: expected {expected} bytes, got {actual}",
                range.first, range.last
            ),
        }
    }
}

impl std::error::Error for MultipartError {}

/// A validated description of a `multipart/byteranges` body.
///
/// Use [`Multipart::length`] for `Content-Length`, then either
/// [`Multipart::body`] for the whole body, or stream it as
/// `part_header(0, r0)`, bytes of `r0`, `part_header(1, r1)`, ..., `trailer()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multipart<'a> {
    boundary: &'a str,
    content_type: &'a str,
    size: u64,
}

impl<'a> Multipart<'a> {
    /// Validates the boundary and the parts' content type (may be empty, in
    /// which case parts carry no `Content-Type` line).
    pub fn new(
        boundary: &'a str,
        content_type: &'a str,
        size: u64,
    ) -> Result<Self, MultipartError> {
        let boundary_ok = !boundary.is_empty()
            && boundary.len() <= MAX_BOUNDARY_LEN
            && boundary.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'\'' | b'+' | b'_' | b'.' | b'-')
            });
        if !boundary_ok {
            return Err(MultipartError::InvalidBoundary);
        }
        if content_type.chars().any(|c| c.is_control() && c != '\t') {
            return Err(MultipartError::InvalidContentType);
        }
        Ok(Self {
            boundary,
            content_type,
            size,
        })
    }

    /// Response `Content-Type`: `multipart/byteranges; boundary=B`.
    pub fn content_type_header(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// Delimiter and headers that precede part `index` (0-based).
    pub fn part_header(&self, index: usize, range: ByteRange) -> String {
        let lead = if index == 0 { "" } else { "\r\n" };
        let mut out = format!("{lead}--{}\r\n", self.boundary);
        if !self.content_type.is_empty() {
            out.push_str("Content-Type: ");
            out.push_str(self.content_type);
            out.push_str("\r\n");
        }
        out.push_str("Content-Range: ");
        out.push_str(&content_range(range, self.size));
        out.push_str("\r\n\r\n");
        out
    }

    /// Close delimiter that ends the body.
    pub fn trailer(&self) -> String {
        format!("\r\n--{}--\r\n", self.boundary)
    }

    fn check(&self, ranges: &[ByteRange]) -> Result<(), MultipartError> {
        if ranges.is_empty() {
            return Err(MultipartError::NoRanges);
        }
        match ranges
            .iter()
            .find(|r| r.first > r.last || r.last >= self.size)
        {
            Some(bad) => Err(MultipartError::InvalidRange(*bad)),
            None => Ok(()),
        }
    }

    /// Exact byte length of the body [`Multipart::body`] produces.
    pub fn length(&self, ranges: &[ByteRange]) -> Result<u64, MultipartError> {
        self.check(ranges)?;
        let mut total = self.trailer().len() as u64;
        for (index, range) in ranges.iter().enumerate() {
            total = total
                .checked_add(self.part_header(index, *range).len() as u64)
                .and_then(|t| t.checked_add(range.length()))
                .ok_or(MultipartError::TooLarge)?;
        }
        Ok(total)
    }

    /// Builds the whole body; `read` returns the bytes of one range (or
    /// `None` if they cannot be read) and must return exactly
    /// `range.length()` bytes.
    pub fn body<F, B>(&self, ranges: &[ByteRange], mut read: F) -> Result<Vec<u8>, MultipartError>
    where
        F: FnMut(ByteRange) -> Option<B>,
        B: AsRef<[u8]>,
    {
        let total = usize::try_from(self.length(ranges)?).map_err(|_| MultipartError::TooLarge)?;
        let mut out = Vec::new();
        out.try_reserve_exact(total)
            .map_err(|_| MultipartError::TooLarge)?;
        for (index, range) in ranges.iter().enumerate() {
            out.extend_from_slice(self.part_header(index, *range).as_bytes());
            let data = read(*range).ok_or(MultipartError::SourceUnavailable(*range))?;
            let data = data.as_ref();
            if data.len() as u64 != range.length() {
                return Err(MultipartError::LengthMismatch {
                    range: *range,
                    expected: range.length(),
                    actual: data.len() as u64,
                });
            }
            out.extend_from_slice(data);
        }
        out.extend_from_slice(self.trailer().as_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn partial(ranges: &[(u64, u64)]) -> RangeOutcome {
        RangeOutcome::Partial(ranges.iter().map(|&(a, b)| r(a, b)).collect())
    }

    #[test]
    fn evaluate_range_table() {
        use RangeOutcome::{Full, Unsatisfiable};
        let huge = "9".repeat(40);
        let huge_open = format!("bytes={huge}-");
        let huge_last = format!("bytes=5-{huge}");
        let huge_suffix = format!("bytes=-{huge}");
        let huge_reversed = format!("bytes={huge}-{}", "9".repeat(39));
        let huge_equal = format!("bytes=0{huge}-{huge}");
        let ten_thousand = format!(
            "bytes={}",
            (0..10_000)
                .map(|i| format!("{}-{}", i * 2, i * 2))
                .collect::<Vec<_>>()
                .join(",")
        );
        let sixteen = format!(
            "bytes={}",
            (0..16)
                .map(|i| format!("{}-{}", i * 4, i * 4))
                .collect::<Vec<_>>()
                .join(",")
        );
        let seventeen = format!("{sixteen},80-80");
        let empties = format!("bytes={}0-0{}", ",".repeat(5000), ",".repeat(5000));
        let sixteen_expected: Vec<(u64, u64)> = (0..16).map(|i| (i * 4, i * 4)).collect();

        let rows: Vec<(&str, Option<&str>, u64, RangeOutcome)> = vec![
            ("absent", None, 100, Full),
            ("single", Some("bytes=0-9"), 100, partial(&[(0, 9)])),
            (
                "single middle",
                Some("bytes=10-19"),
                100,
                partial(&[(10, 19)]),
            ),
            (
                "last clamped",
                Some("bytes=90-1000"),
                100,
                partial(&[(90, 99)]),
            ),
            ("open", Some("bytes=95-"), 100, partial(&[(95, 99)])),
            ("open from zero", Some("bytes=0-"), 100, partial(&[(0, 99)])),
            ("suffix", Some("bytes=-10"), 100, partial(&[(90, 99)])),
            (
                "suffix longer than size",
                Some("bytes=-500"),
                100,
                partial(&[(0, 99)]),
            ),
            ("suffix zero", Some("bytes=-0"), 100, Unsatisfiable),
            ("first at size", Some("bytes=100-"), 100, Unsatisfiable),
            ("first past size", Some("bytes=200-300"), 100, Unsatisfiable),
            (
                "last equals first",
                Some("bytes=5-5"),
                100,
                partial(&[(5, 5)]),
            ),
            (
                "unit case-insensitive",
                Some("Bytes=0-0"),
                100,
                partial(&[(0, 0)]),
            ),
            ("unit upper", Some("BYTES=0-0"), 100, partial(&[(0, 0)])),
            (
                "leading zeros",
                Some("bytes=007-0009"),
                100,
                partial(&[(7, 9)]),
            ),
            (
                "outer whitespace",
                Some("  bytes=0-1 \t"),
                100,
                partial(&[(0, 1)]),
            ),
            (
                "multiple",
                Some("bytes=0-1,5-6"),
                100,
                partial(&[(0, 1), (5, 6)]),
            ),
            (
                "multiple ows",
                Some("bytes=0-1 ,\t5-6 , 8-9"),
                100,
                partial(&[(0, 1), (5, 6), (8, 9)]),
            ),
            (
                "empty elements",
                Some("bytes=,0-1,,5-6,"),
                100,
                partial(&[(0, 1), (5, 6)]),
            ),
            (
                "order kept",
                Some("bytes=50-59,0-9"),
                100,
                partial(&[(50, 59), (0, 9)]),
            ),
            (
                "overlap coalesced",
                Some("bytes=0-10,5-20"),
                100,
                partial(&[(0, 20)]),
            ),
            (
                "adjacent coalesced",
                Some("bytes=0-9,10-19"),
                100,
                partial(&[(0, 19)]),
            ),
            (
                "contained coalesced",
                Some("bytes=0-50,10-20"),
                100,
                partial(&[(0, 50)]),
            ),
            (
                "chain coalesced",
                Some("bytes=20-29,0-9,10-19"),
                100,
                partial(&[(0, 29)]),
            ),
            (
                "group keeps first slot",
                Some("bytes=50-59,0-9,55-70"),
                100,
                partial(&[(50, 70), (0, 9)]),
            ),
            (
                "repeated same",
                Some("bytes=0-0,0-0,0-0"),
                100,
                partial(&[(0, 0)]),
            ),
            (
                "suffix and open overlap",
                Some("bytes=-10,95-"),
                100,
                partial(&[(90, 99)]),
            ),
            (
                "unsatisfiable dropped",
                Some("bytes=0-1,500-600"),
                100,
                partial(&[(0, 1)]),
            ),
            (
                "all unsatisfiable",
                Some("bytes=500-600,700-"),
                100,
                Unsatisfiable,
            ),
            ("size zero int", Some("bytes=0-0"), 0, Unsatisfiable),
            ("size zero open", Some("bytes=0-"), 0, Unsatisfiable),
            ("size zero suffix", Some("bytes=-5"), 0, Unsatisfiable),
            ("size one", Some("bytes=0-10"), 1, partial(&[(0, 0)])),
            ("reversed", Some("bytes=1-0"), 100, Full),
            ("reversed in list", Some("bytes=0-1,9-3"), 100, Full),
            ("double dash", Some("bytes=--1"), 100, Full),
            ("dash only", Some("bytes=-"), 100, Full),
            ("no ranges", Some("bytes="), 100, Full),
            ("only commas", Some("bytes=, ,"), 100, Full),
            ("no equals", Some("bytes"), 100, Full),
            ("empty header", Some(""), 100, Full),
            ("unknown unit", Some("items=0-1"), 100, Full),
            ("unit with space", Some("bytes =0-1"), 100, Full),
            (
                "space after equals",
                Some("bytes= 0-1"),
                100,
                partial(&[(0, 1)]),
            ),
            ("space inside spec", Some("bytes=0 - 1"), 100, Full),
            ("three parts", Some("bytes=1-2-3"), 100, Full),
            ("negative", Some("bytes=-1-5"), 100, Full),
            ("plus sign", Some("bytes=+1-5"), 100, Full),
            ("hex", Some("bytes=0x1-5"), 100, Full),
            ("semicolon list", Some("bytes=0-1;2-3"), 100, Full),
            ("other-range", Some("bytes=abc"), 100, Full),
            ("unicode digits", Some("bytes=\u{ff10}-\u{ff11}"), 100, Full),
            ("unicode unit", Some("byt\u{e9}s=0-1"), 100, Full),
            ("nul", Some("bytes=0-1\0"), 100, Full),
            ("huge first", Some(&huge_open), 100, Unsatisfiable),
            ("huge last", Some(&huge_last), 100, partial(&[(5, 99)])),
            ("huge suffix", Some(&huge_suffix), 100, partial(&[(0, 99)])),
            ("huge reversed exact", Some(&huge_reversed), 100, Full),
            ("huge equal exact", Some(&huge_equal), 100, Unsatisfiable),
            (
                "u64 max size",
                Some("bytes=18446744073709551614-"),
                u64::MAX,
                partial(&[(u64::MAX - 1, u64::MAX - 1)]),
            ),
            (
                "u64 max first",
                Some("bytes=18446744073709551615-"),
                u64::MAX,
                Unsatisfiable,
            ),
            (
                "sixteen ranges",
                Some(&sixteen),
                1000,
                partial(&sixteen_expected),
            ),
            ("seventeen ranges", Some(&seventeen), 1000, Full),
            ("ten thousand ranges", Some(&ten_thousand), 1_000_000, Full),
            (
                "ten thousand empties",
                Some(&empties),
                100,
                partial(&[(0, 0)]),
            ),
        ];
        for (name, header, size, expected) in rows {
            assert_eq!(
                evaluate_range(header, size),
                expected,
                "{name}: {header:?} size {size}"
            );
        }
    }

    #[test]
    fn content_range_table() {
        let rows: Vec<(String, &str)> = vec![
            (content_range(r(0, 9), 100), "bytes 0-9/100"),
            (content_range(r(99, 99), 100), "bytes 99-99/100"),
            (
                content_range(r(0, u64::MAX - 1), u64::MAX),
                "bytes 0-18446744073709551614/18446744073709551615",
            ),
            (content_range_unsatisfied(100), "bytes */100"),
            (content_range_unsatisfied(0), "bytes */0"),
        ];
        for (got, expected) in rows {
            assert_eq!(got, expected);
        }
    }

    const DATA: &[u8] = b"abcdefghij";

    fn slice(range: ByteRange) -> Option<&'static [u8]> {
        let first = usize::try_from(range.first).ok()?;
        let last = usize::try_from(range.last).ok()?;
        DATA.get(first..=last)
    }

    #[test]
    fn multipart_table() {
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Vec<ByteRange>,
            Result<&'a [u8], MultipartError>,
        );
        let b71 = "b".repeat(71);
        let rows: Vec<Row<'_>> = vec![
            (
                "two parts",
                "B",
                "text/plain",
                vec![r(0, 1), r(4, 5)],
                Ok(b"--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\nab\
                     \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 4-5/10\r\n\r\nef\
                     \r\n--B--\r\n"),
            ),
            (
                "one part, no content type",
                "3d6b6a416f9b5",
                "",
                vec![r(9, 9)],
                Ok(b"--3d6b6a416f9b5\r\nContent-Range: bytes 9-9/10\r\n\r\nj\r\n--3d6b6a416f9b5--\r\n"),
            ),
            (
                "three parts with charset",
                "x'+_.-Y",
                "text/html; charset=utf-8",
                vec![r(8, 9), r(0, 0), r(3, 5)],
                Ok(b"--x'+_.-Y\r\nContent-Type: text/html; charset=utf-8\r\nContent-Range: bytes 8-9/10\r\n\r\nij\
                     \r\n--x'+_.-Y\r\nContent-Type: text/html; charset=utf-8\r\nContent-Range: bytes 0-0/10\r\n\r\na\
                     \r\n--x'+_.-Y\r\nContent-Type: text/html; charset=utf-8\r\nContent-Range: bytes 3-5/10\r\n\r\ndef\
                     \r\n--x'+_.-Y--\r\n"),
            ),
            ("empty boundary", "", "text/plain", vec![r(0, 1)], Err(MultipartError::InvalidBoundary)),
            ("boundary space", "a b", "text/plain", vec![r(0, 1)], Err(MultipartError::InvalidBoundary)),
            ("boundary crlf", "a\r\nb", "text/plain", vec![r(0, 1)], Err(MultipartError::InvalidBoundary)),
            ("boundary unicode", "\u{e9}t\u{e9}", "text/plain", vec![r(0, 1)], Err(MultipartError::InvalidBoundary)),
            ("boundary 71", &b71, "text/plain", vec![r(0, 1)], Err(MultipartError::InvalidBoundary)),
            ("header injection", "B", "text/plain\r\nSet-Cookie: x", vec![r(0, 1)], Err(MultipartError::InvalidContentType)),
            ("no ranges", "B", "text/plain", vec![], Err(MultipartError::NoRanges)),
            ("past end", "B", "text/plain", vec![r(0, 1), r(5, 10)], Err(MultipartError::InvalidRange(r(5, 10)))),
            ("reversed", "B", "text/plain", vec![r(3, 2)], Err(MultipartError::InvalidRange(r(3, 2)))),
        ];
        for (name, boundary, content_type, ranges, expected) in rows {
            let built = Multipart::new(boundary, content_type, DATA.len() as u64).and_then(|m| {
                let length = m.length(&ranges)?;
                let body = m.body(&ranges, slice)?;
                assert_eq!(length, body.len() as u64, "{name}: length");
                let mut streamed = Vec::new();
                for (i, range) in ranges.iter().enumerate() {
                    streamed.extend_from_slice(m.part_header(i, *range).as_bytes());
                    streamed.extend_from_slice(slice(*range).unwrap_or_default());
                }
                streamed.extend_from_slice(m.trailer().as_bytes());
                assert_eq!(streamed, body, "{name}: streamed");
                Ok(body)
            });
            assert_eq!(built.as_deref(), expected.as_deref(), "{name}");
        }
    }

    #[test]
    fn multipart_accessor_errors() {
        let m = Multipart::new("B", "text/plain", 10);
        assert_eq!(
            m.as_ref().map(Multipart::content_type_header),
            Ok("multipart/byteranges; boundary=B".to_string())
        );
        let Ok(m) = m else { return };
        let rows: Vec<(&str, Result<Vec<u8>, MultipartError>)> = vec![
            ("none", m.body(&[r(0, 1)], |_| None::<Vec<u8>>)),
            ("short", m.body(&[r(0, 1)], |_| Some(vec![b'a']))),
            ("owned ok", m.body(&[r(0, 0)], |_| Some(vec![b'a']))),
        ];
        let expected: Vec<Result<Vec<u8>, MultipartError>> = vec![
            Err(MultipartError::SourceUnavailable(r(0, 1))),
            Err(MultipartError::LengthMismatch { range: r(0, 1), expected: 2, actual: 1 }),
            Ok(b"--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-0/10\r\n\r\na\r\n--B--\r\n".to_vec()),
        ];
        for ((name, got), want) in rows.into_iter().zip(expected) {
            assert_eq!(got, want, "{name}");
        }
        let big = Multipart::new("B", "", u64::MAX)
            .map(|m| m.length(&[r(0, u64::MAX - 1), r(0, u64::MAX - 1)]));
        assert_eq!(big, Ok(Err(MultipartError::TooLarge)));
    }

    #[test]
    fn evaluate_range_never_panics_on_noise() {
        // Deterministic pseudo-random headers drawn from a hostile alphabet.
        let alphabet: Vec<char> = "bytes=-,0123456789 \t;*\u{0}\u{e9}\u{ff10}xB"
            .chars()
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let mut s = String::from(if state.is_multiple_of(3) {
                ""
            } else {
                "bytes="
            });
            let mut x = state;
            for _ in 0..len {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            for size in [0, 1, 7, u64::MAX] {
                if let RangeOutcome::Partial(ranges) = evaluate_range(Some(&s), size) {
                    assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES, "{s:?}");
                    for range in &ranges {
                        assert!(range.first <= range.last && range.last < size, "{s:?}");
                    }
                    for (i, a) in ranges.iter().enumerate() {
                        for b in ranges.iter().skip(i + 1) {
                            assert!(!touches(*a, *b), "{s:?}: not coalesced");
                        }
                    }
                }
            }
        }
    }
}
