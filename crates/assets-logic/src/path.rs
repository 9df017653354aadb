//! Request-path normalisation and confinement: turns the path of a request
//! target into an object-store key, or says precisely why it cannot.
//!
//! RFC sections followed: RFC 9110 §4.1 and §7.1 (the path of the target
//! URI), RFC 3986 §2.1 (percent-encoding), §3.3 (path segments) and §5.2.4
//! (dot segments, which we reject instead of resolving), RFC 3629 (UTF-8,
//! including rejection of overlong forms) and RFC 9457 (each error has a
//! stable [`PathError::code`] and message for a 400 problem+json).
//!
//! Choices, and why:
//! - Input is the path (optionally with `?query`, cut at the first raw `?`)
//!   and must start with `/`. Raw `/` is the only separator.
//! - Percent-decoding happens exactly once, per segment. A `%` left in the
//!   result (from `%25`) is a literal character: `%252e%252e` becomes the
//!   harmless key `%2e%2e`, which the store must never decode again.
//! - Rejected outright (no repair): `%2F` (encoded slash: would smuggle a
//!   separator), `%5C` and raw `\` (backslash: a separator on other
//!   systems), `.` and `..` segments, raw or encoded (`%2e%2e`, `.%2E`; a
//!   client that normalises per RFC 3986 never sends them, so they are
//!   traversal attempts), NUL and every other control character (C0, DEL
//!   and C1, raw or encoded), malformed `%` escapes, and bytes that are not
//!   UTF-8 after decoding (overlong `%C0%AE` included).
//! - Empty segments (`a//b`, `//a`, `a//`) are rejected, not collapsed:
//!   collapsing would give one object many URLs (cache-key aliasing) and
//!   hide broken links; a 400 is unambiguous. The single trailing `/` of a
//!   directory path is not an empty segment.
//! - Limits are on the decoded key: at most [`MAX_KEY_BYTES`] (1024) bytes in
//!   total including an appended `index.html`, and [`MAX_SEGMENT_BYTES`]
//!   (255) per segment. A raw path longer than 3 x 1024 + 1 bytes is refused
//!   before decoding, bounding the work.
//! - `/` and any path ending in `/` map to `<dir>/index.html`. `/docs` stays
//!   `docs`; redirecting it to `/docs/` is the caller's business.
//! - No Unicode normalisation, case folding or dot-file filtering: keys are
//!   byte-exact names in the object store.

use std::fmt;

/// Maximum length of a key in bytes (after decoding).
pub const MAX_KEY_BYTES: usize = 1024;
/// Maximum length of one path segment in bytes (after decoding).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Object served for a directory path.
pub const INDEX_DOCUMENT: &str = "index.html";

/// Why a request path cannot name an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    BadPercentEncoding,
    EncodedSlash,
    EncodedBackslash,
    Backslash,
    NulByte,
    ControlCharacter,
    DotSegment,
    DotDotSegment,
    EncodedDotSegment,
    EmptySegment,
    SegmentTooLong,
    KeyTooLong,
    InvalidUtf8,
}

impl PathError {
    /// Stable machine-readable code, e.g. for a problem+json `type` suffix.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotAbsolute => "path-not-absolute",
            Self::BadPercentEncoding => "bad-percent-encoding",
            Self::EncodedSlash => "encoded-slash",
            Self::EncodedBackslash => "encoded-backslash",
            Self::Backslash => "backslash",
            Self::NulByte => "nul-byte",
            Self::ControlCharacter => "control-character",
            Self::DotSegment => "dot-segment",
            Self::DotDotSegment => "dot-dot-segment",
            Self::EncodedDotSegment => "encoded-dot-segment",
            Self::EmptySegment => "empty-segment",
            Self::SegmentTooLong => "segment-too-long",
            Self::KeyTooLong => "path-too-long",
            Self::InvalidUtf8 => "invalid-utf8",
        }
    }

    /// Human-readable explanation (the problem+json `detail`).
    pub const fn message(self) -> &'static str {
        match self {
            Self::NotAbsolute => "the request path must start with '/'",
            Self::BadPercentEncoding => "'%' must be followed by two hexadecimal digits",
            Self::EncodedSlash => "an encoded slash (%2F) is not allowed in a path",
            Self::EncodedBackslash => "an encoded backslash (%5C) is not allowed in a path",
            Self::Backslash => "a backslash is not allowed in a path",
            Self::NulByte => "a NUL byte is not allowed in a path",
            Self::ControlCharacter => "control characters are not allowed in a path",
            Self::DotSegment => "'.' path segments are not allowed",
            Self::DotDotSegment => "'..' path segments are not allowed",
            Self::EncodedDotSegment => "percent-encoded '.' or '..' path segments are not allowed",
            Self::EmptySegment => "empty path segments ('//') are not allowed",
            Self::SegmentTooLong => "a path segment is longer than 255 bytes",
            Self::KeyTooLong => "the path is longer than 1024 bytes",
            Self::InvalidUtf8 => "the decoded path is not valid UTF-8",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PathError {}

/// Maps a request path such as `/docs/a%20b.html?x=1` to a canonical object
/// key without leading slash (`docs/a b.html`); `/docs/` gives
/// `docs/index.html`.
pub fn object_key(path: &str) -> Result<String, PathError> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if rest.len() > 3 * MAX_KEY_BYTES {
        return Err(PathError::KeyTooLong);
    }
    let body = if rest.is_empty() {
        ""
    } else if let Some(dir) = rest.strip_suffix('/') {
        if dir.is_empty() {
            return Err(PathError::EmptySegment);
        }
        dir
    } else {
        rest
    };
    let is_directory = rest.is_empty() || rest.ends_with('/');

    let mut key = String::with_capacity(body.len() + INDEX_DOCUMENT.len() + 1);
    if !body.is_empty() {
        for (index, raw) in body.split('/').enumerate() {
            let segment = decode_segment(raw)?;
            if index > 0 {
                key.push('/');
            }
            key.push_str(&segment);
            if key.len() > MAX_KEY_BYTES {
                return Err(PathError::KeyTooLong);
            }
        }
    }
    if is_directory {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(INDEX_DOCUMENT);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(PathError::KeyTooLong);
    }
    Ok(key)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn check_byte(b: u8) -> Result<(), PathError> {
    match b {
        0 => Err(PathError::NulByte),
        0x01..=0x1f | 0x7f => Err(PathError::ControlCharacter),
        _ => Ok(()),
    }
}

/// Decodes and validates one raw segment.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::EmptySegment);
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut iter = raw.bytes();
    while let Some(b) = iter.next() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let high = iter.next().and_then(hex_value);
                let low = iter.next().and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let decoded = high << 4 | low;
                match decoded {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    _ => check_byte(decoded)?,
                }
                bytes.push(decoded);
            }
            _ => {
                check_byte(b)?;
                bytes.push(b);
            }
        }
    }
    match (raw, bytes.as_slice()) {
        (".", _) => return Err(PathError::DotSegment),
        ("..", _) => return Err(PathError::DotDotSegment),
        (_, b"." | b"..") => return Err(PathError::EncodedDotSegment),
        _ => {}
    }
    if bytes.len() > MAX_SEGMENT_BYTES {
        return Err(PathError::SegmentTooLong);
    }
    let segment = String::from_utf8(bytes).map_err(|_| PathError::InvalidUtf8)?;
    if segment.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathError::*;

    #[test]
    fn object_key_table() {
        let seg255 = format!("/{}", "a".repeat(255));
        let seg256 = format!("/{}", "a".repeat(256));
        let seg255_encoded = format!("/{}", "%61".repeat(255));
        let seg256_encoded = format!("/{}", "%61".repeat(256));
        let key1024 = format!(
            "/{}/{}/{}/{}/e",
            "a".repeat(255),
            "b".repeat(255),
            "c".repeat(255),
            "d".repeat(254)
        );
        let key1025 = format!("{key1024}e");
        let dir_too_long = format!(
            "/{}/{}/{}/{}/",
            "a".repeat(255),
            "b".repeat(255),
            "c".repeat(255),
            "d".repeat(250)
        );
        let raw_huge = format!("/{}", "a/".repeat(100_000));
        let key1024_expected = key1024.trim_start_matches('/').to_string();
        assert_eq!(key1024_expected.len(), MAX_KEY_BYTES);

        let rows: Vec<(&str, &str, Result<&str, PathError>)> = vec![
            ("root", "/", Ok("index.html")),
            ("file", "/index.html", Ok("index.html")),
            (
                "nested",
                "/assets/app.3f2a9c1b.js",
                Ok("assets/app.3f2a9c1b.js"),
            ),
            ("directory", "/docs/", Ok("docs/index.html")),
            (
                "nested directory",
                "/docs/guide/",
                Ok("docs/guide/index.html"),
            ),
            ("no trailing slash", "/docs", Ok("docs")),
            ("query cut", "/a.css?v=1/../..", Ok("a.css")),
            ("query on dir", "/docs/?x", Ok("docs/index.html")),
            ("space decoded", "/a%20b.txt", Ok("a b.txt")),
            ("utf8 decoded", "/caf%C3%A9.html", Ok("caf\u{e9}.html")),
            ("raw utf8", "/caf\u{e9}.html", Ok("caf\u{e9}.html")),
            ("lowercase hex", "/%7euser", Ok("~user")),
            ("decoded once", "/%252e%252e/x", Ok("%2e%2e/x")),
            ("percent literal", "/100%25.html", Ok("100%.html")),
            ("encoded question mark", "/what%3F.txt", Ok("what?.txt")),
            ("three dots", "/.../x", Ok(".../x")),
            (
                "dot file",
                "/.well-known/security.txt",
                Ok(".well-known/security.txt"),
            ),
            ("dotted name", "/a..b", Ok("a..b")),
            ("segment 255", &seg255, Ok(&seg255[1..])),
            ("encoded segment 255", &seg255_encoded, Ok(&seg255[1..])),
            ("key 1024", &key1024, Ok(&key1024_expected)),
            ("empty", "", Err(NotAbsolute)),
            ("relative", "docs/a", Err(NotAbsolute)),
            ("absolute form", "http://x/a", Err(NotAbsolute)),
            ("query only", "?/a", Err(NotAbsolute)),
            ("dotdot", "/../etc/passwd", Err(DotDotSegment)),
            ("dotdot middle", "/a/../b", Err(DotDotSegment)),
            ("dotdot end", "/a/..", Err(DotDotSegment)),
            ("dotdot dir", "/a/../", Err(DotDotSegment)),
            ("dot", "/a/./b", Err(DotSegment)),
            ("dot dir", "/./", Err(DotSegment)),
            (
                "encoded dotdot",
                "/%2e%2e/etc/passwd",
                Err(EncodedDotSegment),
            ),
            ("encoded dotdot upper", "/%2E%2E/x", Err(EncodedDotSegment)),
            ("half encoded dotdot", "/.%2e/x", Err(EncodedDotSegment)),
            ("encoded dot", "/a/%2e/b", Err(EncodedDotSegment)),
            ("encoded slash", "/a%2fb", Err(EncodedSlash)),
            ("encoded slash upper", "/a%2Fb", Err(EncodedSlash)),
            ("dotdot encoded slash", "/..%2f..%2fetc", Err(EncodedSlash)),
            ("encoded backslash", "/a%5cb", Err(EncodedBackslash)),
            ("backslash", "/a\\b", Err(Backslash)),
            ("backslash traversal", "/..\\..\\x", Err(Backslash)),
            ("nul raw", "/a\0b", Err(NulByte)),
            ("nul encoded", "/a%00b", Err(NulByte)),
            ("newline encoded", "/a%0Ab", Err(ControlCharacter)),
            ("cr raw", "/a\rb", Err(ControlCharacter)),
            ("tab raw", "/a\tb", Err(ControlCharacter)),
            ("del encoded", "/a%7Fb", Err(ControlCharacter)),
            ("c1 encoded", "/a%C2%85b", Err(ControlCharacter)),
            ("c1 raw", "/a\u{9b}b", Err(ControlCharacter)),
            ("double slash", "/a//b", Err(EmptySegment)),
            ("leading double slash", "//a", Err(EmptySegment)),
            ("only double slash", "//", Err(EmptySegment)),
            ("trailing double slash", "/a//", Err(EmptySegment)),
            ("bad percent short", "/a%2", Err(BadPercentEncoding)),
            ("bad percent end", "/a%", Err(BadPercentEncoding)),
            ("bad percent non-hex", "/a%zz", Err(BadPercentEncoding)),
            ("bad percent unicode", "/a%\u{e9}", Err(BadPercentEncoding)),
            ("bad percent sign", "/a%+1", Err(BadPercentEncoding)),
            ("invalid utf8", "/%ff", Err(InvalidUtf8)),
            ("overlong dot", "/%C0%AE%C0%AE/x", Err(InvalidUtf8)),
            ("truncated utf8", "/%C3", Err(InvalidUtf8)),
            ("surrogate", "/%ED%A0%80", Err(InvalidUtf8)),
            ("segment 256", &seg256, Err(SegmentTooLong)),
            ("encoded segment 256", &seg256_encoded, Err(SegmentTooLong)),
            ("key 1025", &key1025, Err(KeyTooLong)),
            ("dir index too long", &dir_too_long, Err(KeyTooLong)),
            ("raw huge", &raw_huge, Err(KeyTooLong)),
        ];
        for (name, input, expected) in rows {
            let got = object_key(input);
            assert_eq!(got, expected.map(String::from), "{name}: {input:?}");
        }
    }

    #[test]
    fn messages_are_distinct() {
        let all = [
            NotAbsolute,
            BadPercentEncoding,
            EncodedSlash,
            EncodedBackslash,
            Backslash,
            NulByte,
            ControlCharacter,
            DotSegment,
            DotDotSegment,
            EncodedDotSegment,
            EmptySegment,
            SegmentTooLong,
            KeyTooLong,
            InvalidUtf8,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                assert_ne!(a.code(), b.code());
                assert_ne!(a.to_string(), b.to_string());
            }
        }
    }

    #[test]
    fn output_is_always_confined() {
        let alphabet = [
            "/", ".", "..", "%2e", "%2f", "%5c", "\\", "a", "%", "%00", "\u{e9}", "%c3%a9", "?",
            "%25",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut input = String::from("/");
            let mut x = state;
            for _ in 0..(state % 12) {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1442695040888963407);
                input.push_str(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            if let Ok(key) = object_key(&input) {
                assert!(
                    !key.starts_with('/') && !key.contains('\\') && !key.contains("//"),
                    "{input:?}"
                );
                assert!(
                    key.split('/')
                        .all(|s| s != "." && s != ".." && !s.is_empty()),
                    "{input:?}"
                );
                assert!(!key.chars().any(char::is_control), "{input:?}");
            }
        }
    }
}
