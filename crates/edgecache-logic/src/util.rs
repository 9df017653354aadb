//! Small shared helpers: header look-up over `&[(String, String)]`, HTTP-date
//! and delta-seconds parsing, and quote-aware list splitting.
//!
//! Every function here is total: hostile input yields `None` or an empty
//! result, never a panic. Header names are compared ASCII-case-insensitively
//! even though callers are asked to pass lower-case names (defence in depth).

use std::time::{Duration, UNIX_EPOCH};

/// RFC 9111 1.2.2: a delta-seconds value too large to represent, or an
/// overflowing calculation, is taken as 2^31.
pub const DELTA_SECONDS_CAP: u64 = 1 << 31;

/// Latest instant `httpdate` can format (9999-12-31T23:59:59Z).
const MAX_HTTP_DATE: u64 = 253_402_300_799;

/// All field line values for `name`, in order.
pub(crate) fn values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// First field line value for `name`.
pub(crate) fn first<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// `delta-seconds = 1*DIGIT` (RFC 9111 1.2.2). Anything else (sign, space,
/// decimal point, empty) is invalid. Values above 2^31, including digit
/// strings too long for any integer type, are capped at 2^31.
pub fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v * 10 + u64::from(b - b'0');
        if v > DELTA_SECONDS_CAP {
            return Some(DELTA_SECONDS_CAP);
        }
    }
    Some(v)
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime; RFC 9110 5.6.7)
/// into unix seconds. Invalid dates yield `None`.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// Formats unix seconds as an IMF-fixdate, clamped to the range `httpdate`
/// can represent (it panics beyond year 9999; we never let it).
pub fn format_http_date(secs: u64) -> String {
    let secs = secs.min(MAX_HTTP_DATE);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// First field line of `name` parsed as an HTTP-date.
pub(crate) fn date_header(headers: &[(String, String)], name: &str) -> Option<u64> {
    first(headers, name).and_then(parse_http_date)
}

/// Splits a comma-separated list (RFC 9110 5.6.1) at commas that are not
/// inside a quoted-string; members are trimmed of OWS and empty members are
/// dropped.
pub(crate) fn split_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            push_trimmed(&mut out, &s[start..i]);
            start = i + 1;
        }
    }
    push_trimmed(&mut out, &s[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let t = s.trim_matches(|c| c == ' ' || c == '\t');
    if !t.is_empty() {
        out.push(t);
    }
}

/// `tchar` from RFC 9110 5.6.2.
pub(crate) fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_delta_seconds("0"), Some(0));
        assert_eq!(parse_delta_seconds("007"), Some(7));
        assert_eq!(parse_delta_seconds("2147483648"), Some(DELTA_SECONDS_CAP));
        assert_eq!(parse_delta_seconds("2147483649"), Some(DELTA_SECONDS_CAP));
        assert_eq!(
            parse_delta_seconds("99999999999999999999999999999999999999"),
            Some(DELTA_SECONDS_CAP)
        );
        for bad in ["", "-1", "+1", "1.5", " 1", "1 ", "abc", "１"] {
            assert_eq!(parse_delta_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("0"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT\u{e9}"), None);
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(format_http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn list_splitting_respects_quotes() {
        assert_eq!(
            split_list(r#" a , "b,\"c" ,, d "#),
            vec!["a", r#""b,\"c""#, "d"]
        );
        assert_eq!(
            split_list(r#""unterminated, x"#),
            vec![r#""unterminated, x"#]
        );
    }
}
