//! Media types, cache policy, fingerprint detection and precompressed
//! variant selection for static assets.
//!
//! RFC sections followed: RFC 9110 §8.3 (Content-Type, `charset`), §8.4.1
//! (content codings; `x-gzip` equals `gzip`), §12.4.2 (quality values:
//! `0`..`1` with at most three decimals, `q` case-insensitive), §12.5.3
//! (Accept-Encoding, `*`, `identity`, `q=0`), §8.8.3 (entity tags), §12.5.5
//! (Vary); RFC 9111 §5.2.2 and RFC 8246 (`no-cache`, `must-revalidate`,
//! `immutable`); RFC 9239 (`text/javascript`); RFC 7932 (br); RFC 8259
//! (JSON has no charset parameter); RFC 8081 (font/*); RFC 7303
//! (application/xml).
//!
//! Choices, and why:
//! - Types are matched on the last extension, ASCII case-insensitively;
//!   names without one (or dot-files like `.env`) and unknown extensions get
//!   `application/octet-stream`. Text types (html, css, js, txt) carry
//!   `charset=utf-8`; JSON, SVG and XML do not (their formats define it).
//!   `.map` is JSON; `.ico` is `image/x-icon` (what browsers expect).
//! - Fingerprints: the file name (last `/` segment) minus its extension is
//!   split on `.` and `-`; any segment except the first (the hash must follow
//!   a separator; a dot-file's leading `.` is not one) is a hash if it has 8..=64 chars of `[A-Za-z0-9_]`, a digit,
//!   a letter, at least two letter/digit alternations (rules out `cafe2024`,
//!   `DSC01234`, `v20240101`), and is either single-case hex (`3f2a9c1b`,
//!   `3F2A9C1B`), upper-case base32 (`ZJDWEQ7D`, esbuild), or has two or more
//!   separate digit runs (base64url such as Vite's `BXy2Kd8f`). Words with
//!   a number (`html5shiv`, `es2015polyfill`, `bootstrap5`) and version
//!   strings (`jquery-3.7.1.min.js`) are not hashes. A hash without digits,
//!   or with one digit run in lower/mixed case, is missed: a miss only costs
//!   a revalidation, a false positive would pin a mutable file for a year.
//! - Cache-Control: HTML always gets `no-cache` (entry documents must be
//!   revalidated so new fingerprinted URLs are found), even if fingerprinted;
//!   fingerprinted names get one year + `immutable`; everything else 60 s +
//!   `must-revalidate`.
//! - Accept-Encoding: an absent header selects identity (RFC 9110 allows any
//!   coding then, but clients such as curl send none and cannot decode); an
//!   empty header selects identity. A coding's weight is its own entry, else
//!   `*`'s, else 0; q=0 means "not acceptable". Duplicate entries take the
//!   lowest weight (the cautious reading). An element whose q-value is
//!   malformed (`q=2`, `q=0.5555`, `q=abc`) is skipped. Other parameters are
//!   ignored. br beats gzip at equal weight. If identity is weighted
//!   (explicitly or via `*`) strictly above the best coding, identity wins.
//! - `identity;q=0` (or `*;q=0` without an identity entry) is reported by
//!   [`identity_acceptable`]; [`choose_encoding`] still returns `None` when
//!   no available coding is acceptable, since sending identity is the
//!   §12.5.3 fallback and beats a 406 for static files. Callers must send
//!   `Vary: Accept-Encoding` on every response of a negotiated resource.
//! - Each encoded variant gets its own strong ETag, `"<opaque>-br"` or
//!   `"<opaque>-gzip"` (weakness kept), since the bytes differ (§8.8.3);
//!   characters not allowed in an entity tag are dropped from the base.

/// `Cache-Control` for fingerprinted (content-hashed) assets.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` for other non-HTML assets.
pub const CACHE_REVALIDATE: &str = "public, max-age=60, must-revalidate";
/// `Cache-Control` for HTML documents.
pub const CACHE_HTML: &str = "no-cache";
/// Default media type.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// `Vary` value to send with every negotiated response.
pub const VARY_ACCEPT_ENCODING: &str = "Accept-Encoding";

const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("wasm", "application/wasm"),
    ("txt", "text/plain; charset=utf-8"),
    ("xml", "application/xml"),
    ("pdf", "application/pdf"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
];

/// A precompressed content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Br,
    Gzip,
}

impl Encoding {
    /// Token for `Content-Encoding`.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Gzip => "gzip",
        }
    }

    /// Suffix of the precompressed object's key (`app.js.br`).
    pub const fn file_suffix(self) -> &'static str {
        match self {
            Self::Br => ".br",
            Self::Gzip => ".gz",
        }
    }
}

/// The file name's extension (after the last `.`), if any; a leading dot
/// (`.env`) does not start an extension.
pub fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit('/').next().unwrap_or(name);
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext),
        _ => None,
    }
}

/// Media type for a file name or key, defaulting to `application/octet-stream`.
pub fn content_type_for(name: &str) -> &'static str {
    extension(name)
        .and_then(|ext| {
            TYPES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(ext))
        })
        .map_or(OCTET_STREAM, |(_, media_type)| media_type)
}

fn is_html(name: &str) -> bool {
    extension(name)
        .is_some_and(|ext| ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm"))
}

/// `Cache-Control` for a file: `no-cache` for HTML, one year immutable if
/// fingerprinted, else 60 s with revalidation.
pub fn cache_control_for(name: &str, fingerprinted: bool) -> &'static str {
    if is_html(name) {
        CACHE_HTML
    } else if fingerprinted {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    }
}

/// Whether the file name carries a content hash (see module docs).
pub fn is_fingerprinted(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    let file = file.strip_prefix('.').unwrap_or(file);
    let Some((stem, ext)) = file.rsplit_once('.') else {
        return false;
    };
    if stem.is_empty() || ext.is_empty() {
        return false;
    }
    stem.split(['.', '-']).skip(1).any(is_hash_segment)
}

fn is_hash_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if !(8..=64).contains(&bytes.len())
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return false;
    }
    let count = |f: fn(&u8) -> bool| bytes.iter().filter(|b| f(b)).count();
    let digits = count(u8::is_ascii_digit);
    let lower = count(u8::is_ascii_lowercase);
    let upper = count(u8::is_ascii_uppercase);
    if digits == 0 || lower + upper == 0 {
        return false;
    }
    // Alternations between letters and digits, ignoring '_'.
    let classes: Vec<bool> = bytes
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::is_ascii_digit)
        .collect();
    let alternations = classes.windows(2).filter(|w| w[0] != w[1]).count();
    if alternations < 2 {
        return false;
    }
    let digit_runs = classes
        .iter()
        .enumerate()
        .filter(|&(i, &is_digit)| is_digit && (i == 0 || !classes[i - 1]))
        .count();
    let hex = bytes.iter().all(u8::is_ascii_hexdigit);
    let single_case = lower == 0 || upper == 0;
    let base32_upper = lower == 0 && !bytes.contains(&b'_');
    (hex && single_case) || base32_upper || digit_runs >= 2
}

/// Weights in thousandths, as parsed from Accept-Encoding.
#[derive(Debug, Default, Clone, Copy)]
struct Weights {
    br: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

fn merge(slot: &mut Option<u16>, q: u16) {
    *slot = Some(slot.map_or(q, |old| old.min(q)));
}

/// Parses an RFC 9110 qvalue (`0`, `0.5`, `1.000`...) into thousandths;
/// `None` for anything else (`0.5e1`, `2`, `.5`). Exact, with no float
/// parser: the gateway reads `Accept-Language` weights with it too.
pub fn parse_qvalue(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

fn parse_accept_encoding(header: &str) -> Weights {
    let mut weights = Weights::default();
    for element in header.split(',') {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim_matches([' ', '\t']);
        if coding.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let param = param.trim_matches([' ', '\t']);
            if let Some((name, value)) = param.split_once('=')
                && name.eq_ignore_ascii_case("q")
            {
                q = parse_qvalue(value);
            }
        }
        let Some(q) = q else { continue };
        let slot = if coding.eq_ignore_ascii_case("br") {
            &mut weights.br
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut weights.gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut weights.identity
        } else if coding == "*" {
            &mut weights.any
        } else {
            continue;
        };
        merge(slot, q);
    }
    weights
}

/// Picks the precompressed variant to serve, or `None` for identity.
pub fn choose_encoding(accept_encoding: Option<&str>, available: &[Encoding]) -> Option<Encoding> {
    let weights = parse_accept_encoding(accept_encoding?);
    let mut best: Option<(Encoding, u16)> = None;
    for (encoding, own) in [(Encoding::Br, weights.br), (Encoding::Gzip, weights.gzip)] {
        if !available.contains(&encoding) {
            continue;
        }
        let q = own.or(weights.any).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((encoding, q));
        }
    }
    let (encoding, q) = best?;
    match weights.identity.or(weights.any) {
        Some(identity_q) if identity_q > q => None,
        _ => Some(encoding),
    }
}

/// False when the header rules out an unencoded response (`identity;q=0`,
/// or `*;q=0` without an identity entry); the caller may then answer 406
/// instead of falling back to identity.
pub fn identity_acceptable(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_none_or(|header| {
        let weights = parse_accept_encoding(header);
        weights.identity.or(weights.any).is_none_or(|q| q > 0)
    })
}

/// Strong ETag of an encoded variant: `"abc"` + br gives `"abc-br"`.
pub fn etag_for_encoding(base: &str, encoding: Option<Encoding>) -> String {
    let Some(encoding) = encoding else {
        return base.to_string();
    };
    let base = base.trim_matches([' ', '\t']);
    let (weak, rest) = match base.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", base),
    };
    let opaque = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(rest);
    let opaque: String = opaque
        .chars()
        .filter(|&c| c == '!' || ('#'..='~').contains(&c) || !c.is_ascii())
        .collect();
    format!("{weak}\"{opaque}-{}\"", encoding.token())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Br, Gzip};

    #[test]
    fn qvalues_follow_rfc_9110() {
        for (text, expected) in [
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.125", Some(125)),
            ("1.001", None),
            ("0.1234", None),
            ("2", None),
            (".5", None),
            ("0.5e1", None),
            ("inf", None),
            ("", None),
        ] {
            assert_eq!(parse_qvalue(text), expected, "{text:?}");
        }
    }

    #[test]
    fn content_type_table() {
        let rows: Vec<(&str, &str)> = vec![
            ("index.html", "text/html; charset=utf-8"),
            ("docs/INDEX.HTM", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("app.3f2a9c1b.js", "text/javascript; charset=utf-8"),
            ("m.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json"),
            ("app.js.map", "application/json"),
            ("logo.svg", "image/svg+xml"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.JPEG", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.webp", "image/webp"),
            ("a.avif", "image/avif"),
            ("favicon.ico", "image/x-icon"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.ttf", "font/ttf"),
            ("f.otf", "font/otf"),
            ("m.wasm", "application/wasm"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("sitemap.xml", "application/xml"),
            ("doc.pdf", "application/pdf"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("s.mp3", "audio/mpeg"),
            ("archive.tar.gz", OCTET_STREAM),
            ("README", OCTET_STREAM),
            (".env", OCTET_STREAM),
            ("dir.html/file", OCTET_STREAM),
            ("trailing.", OCTET_STREAM),
            ("", OCTET_STREAM),
            ("\u{e9}.\u{e9}", OCTET_STREAM),
        ];
        for (name, expected) in rows {
            assert_eq!(content_type_for(name), expected, "{name:?}");
        }
    }

    #[test]
    fn fingerprint_table() {
        let rows: Vec<(&str, bool)> = vec![
            ("app.3f2a9c1b.js", true),
            ("main-3F2A9C1B.css", true),
            ("chunk.a1b2c3d4e5f6.mjs", true),
            ("assets/index-BXy2Kd8f.js", true),
            ("chunk-ZJDWEQ7D.js", true),
            ("vendor.k7pq3mzr.js", true),
            ("app.3f2a9c1b.min.js", true),
            ("static/js/main.8a1f0c2e4b6d9f3a.chunk.js", true),
            ("font_a1b2c3d4.woff2", false),
            ("jquery-3.7.1.min.js", false),
            ("favicon.ico", false),
            ("index.html", false),
            ("3f2a9c1b.js", false),
            ("app.deadbeef.js", false),
            ("app.3f2a9c1.js", false),
            ("report-20240101.pdf", false),
            ("app-v20240101.js", false),
            ("html5shiv-printshiv.min.js", false),
            ("vendor.es2015polyfill.js", false),
            ("lib-bootstrap5.js", false),
            ("trip-DSC01234.jpg", false),
            ("menu.cafe2024.css", false),
            ("mixed.3f2A9c1B.js", true),
            ("app.3f2a9c1b", false),
            (".3f2a9c1b.js", false),
            ("dir.3f2a9c1b/app.js", false),
            ("a.3f2a9c1b\u{e9}.js", false),
            ("a.3\u{ff46}2a9c1b.js", false),
            ("", false),
        ];
        for (name, expected) in rows {
            assert_eq!(is_fingerprinted(name), expected, "{name:?}");
        }
    }

    #[test]
    fn cache_control_table() {
        let rows: Vec<(&str, bool, &str)> = vec![
            ("app.3f2a9c1b.js", true, CACHE_IMMUTABLE),
            ("app.js", false, CACHE_REVALIDATE),
            ("index.html", false, CACHE_HTML),
            ("index.3f2a9c1b.html", true, CACHE_HTML),
            ("page.HTM", false, CACHE_HTML),
            ("README", false, CACHE_REVALIDATE),
        ];
        for (name, fingerprinted, expected) in rows {
            assert_eq!(cache_control_for(name, fingerprinted), expected, "{name}");
        }
        assert_eq!(CACHE_IMMUTABLE, "public, max-age=31536000, immutable");
        assert_eq!(CACHE_REVALIDATE, "public, max-age=60, must-revalidate");
    }

    #[test]
    fn choose_encoding_table() {
        let both: &[Encoding] = &[Gzip, Br];
        let gzip: &[Encoding] = &[Gzip];
        let none: &[Encoding] = &[];
        let long = format!("{}br", "x;q=0.1, ".repeat(10_000));
        type Row<'a> = (&'a str, Option<&'a str>, &'a [Encoding], Option<Encoding>);
        let rows: Vec<Row<'_>> = vec![
            ("absent", None, both, None),
            ("empty", Some(""), both, None),
            (
                "both equal prefers br",
                Some("gzip, deflate, br"),
                both,
                Some(Br),
            ),
            ("browser", Some("gzip, deflate, br, zstd"), both, Some(Br)),
            ("gzip only offered", Some("gzip, br"), gzip, Some(Gzip)),
            ("nothing available", Some("gzip, br"), none, None),
            ("gzip only accepted", Some("gzip"), both, Some(Gzip)),
            ("x-gzip alias", Some("x-gzip"), both, Some(Gzip)),
            ("case-insensitive", Some("GZIP, Br"), both, Some(Br)),
            (
                "higher gzip q",
                Some("br;q=0.5, gzip;q=0.8"),
                both,
                Some(Gzip),
            ),
            ("br q=0", Some("br;q=0, gzip"), both, Some(Gzip)),
            ("all q=0", Some("br;q=0, gzip;q=0.000"), both, None),
            ("star", Some("*"), both, Some(Br)),
            ("star with br excluded", Some("*, br;q=0"), both, Some(Gzip)),
            ("star q=0", Some("*;q=0"), both, None),
            (
                "star q=0 explicit gzip",
                Some("*;q=0, gzip;q=0.1"),
                both,
                Some(Gzip),
            ),
            ("identity preferred", Some("br;q=0.5, identity"), both, None),
            (
                "identity equal keeps br",
                Some("br, identity"),
                both,
                Some(Br),
            ),
            ("identity q=0", Some("identity;q=0"), both, None),
            (
                "identity q=0 with gzip",
                Some("gzip, identity;q=0"),
                both,
                Some(Gzip),
            ),
            (
                "ows around semicolon",
                Some("br ; q=0.9 ,\tgzip ;q=1"),
                both,
                Some(Gzip),
            ),
            ("uppercase Q", Some("br;Q=0.2, gzip;q=0.1"), both, Some(Br)),
            ("q=1.000", Some("br;q=1.000"), both, Some(Br)),
            ("q=1.", Some("gzip;q=1."), both, Some(Gzip)),
            (
                "q too precise skipped",
                Some("br;q=0.5555, gzip;q=0.1"),
                both,
                Some(Gzip),
            ),
            (
                "q above one skipped",
                Some("br;q=2, gzip;q=0.1"),
                both,
                Some(Gzip),
            ),
            ("q=1.5 skipped", Some("br;q=1.5"), both, None),
            ("q garbage skipped", Some("br;q=abc"), both, None),
            ("q empty skipped", Some("br;q="), both, None),
            ("q negative skipped", Some("br;q=-1"), both, None),
            ("duplicate takes lowest", Some("br, br;q=0"), both, None),
            ("other params ignored", Some("br;level=5"), both, Some(Br)),
            ("unknown only", Some("compress, zstd"), both, None),
            ("empty elements", Some(",, ,br,"), both, Some(Br)),
            ("unicode", Some("br\u{e9}, g\u{fc}zip"), both, None),
            ("long hostile", Some(&long), both, Some(Br)),
        ];
        for (name, header, available, expected) in rows {
            assert_eq!(choose_encoding(header, available), expected, "{name}");
        }
    }

    #[test]
    fn identity_acceptable_table() {
        let rows: Vec<(Option<&str>, bool)> = vec![
            (None, true),
            (Some(""), true),
            (Some("gzip"), true),
            (Some("identity;q=0"), false),
            (Some("*;q=0"), false),
            (Some("*;q=0, identity;q=0.1"), true),
            (Some("identity;q=0.001"), true),
        ];
        for (header, expected) in rows {
            assert_eq!(identity_acceptable(header), expected, "{header:?}");
        }
    }

    #[test]
    fn etag_table() {
        let rows: Vec<(&str, Option<Encoding>, &str)> = vec![
            ("\"abc\"", None, "\"abc\""),
            ("\"abc\"", Some(Br), "\"abc-br\""),
            ("\"abc\"", Some(Gzip), "\"abc-gzip\""),
            ("W/\"abc\"", Some(Br), "W/\"abc-br\""),
            ("abc", Some(Br), "\"abc-br\""),
            ("\"a\"b c\"", Some(Gzip), "\"abc-gzip\""),
            ("\"\"", Some(Br), "\"-br\""),
        ];
        for (base, encoding, expected) in rows {
            assert_eq!(
                etag_for_encoding(base, encoding),
                expected,
                "{base} {encoding:?}"
            );
        }
        let rows: Vec<(Encoding, &str, &str)> = vec![(Br, "br", ".br"), (Gzip, "gzip", ".gz")];
        for (encoding, token, suffix) in rows {
            assert_eq!((encoding.token(), encoding.file_suffix()), (token, suffix));
        }
    }
}
