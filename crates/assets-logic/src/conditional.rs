//! Conditional requests: entity-tag lists, HTTP dates, and the evaluation
//! order of the five precondition header fields.
//!
//! RFC sections followed: RFC 9110 §8.8.3 (entity tags, `W/`, strong and
//! weak comparison), §8.8.2.2 (when Last-Modified is strong), §13.1.1
//! (`If-Match`), §13.1.2 (`If-None-Match`), §13.1.3 (`If-Modified-Since`),
//! §13.1.4 (`If-Unmodified-Since`), §13.1.5 (`If-Range`), §13.2.1 (methods
//! for which preconditions are ignored), §13.2.2 (precedence), §14.2 (range
//! handling is defined for GET only), §5.6.7 (HTTP-date formats) and §5.6.1
//! (list syntax, empty elements).
//!
//! Choices, and why:
//! - Precedence is §13.2.2 verbatim: If-Match, else If-Unmodified-Since
//!   (412); then If-None-Match (304 for GET/HEAD, else 412), else
//!   If-Modified-Since for GET/HEAD only (304); If-Range only decides whether
//!   a Range header is honoured ([`Preconditions::range_applies`]).
//!   The "unless the state change already succeeded" escape of step 1/2 does
//!   not apply to a read-only object store and is not modelled.
//! - Methods are case-sensitive (§9.1). CONNECT, OPTIONS and TRACE ignore all
//!   preconditions (§13.2.1). Only exact `GET`/`HEAD` can get a 304.
//! - Entity-tag lists are scanned without allocation; `"a,b"` is one tag
//!   (a comma is a legal `etagc`); `W/` is case-sensitive (`%s"W/"`), so
//!   `w/"x"` is malformed; `*` must stand alone; empty list elements are
//!   skipped; at least one tag is required. Repeated header lines must be
//!   joined with `, ` by the caller.
//! - Malformed If-Match fails closed: no tag can match, so 412. It guards
//!   against acting on a stale state, and guessing would defeat that.
//! - Malformed If-None-Match (e.g. an unquoted `abc`) is treated as "no tag
//!   matched", i.e. the condition is true and the full response is sent: a
//!   304 is never produced from garbage. The field is still present, so
//!   If-Modified-Since stays ignored (§13.1.3 keys on presence).
//! - The representation's own ETag is parsed with the same grammar; if it is
//!   invalid, no listed tag matches it (only `*` does).
//! - A date field that is not exactly one valid HTTP-date (including a list
//!   of dates) is ignored, as §13.1.3/§13.1.4 require. Dates come from the
//!   `httpdate` crate, which accepts IMF-fixdate, RFC 850 and asctime,
//!   case-sensitively (§5.6.7); it also rejects a weekday that does not
//!   match the date and years before 1970 or after 9999, so such values are
//!   ignored too. RFC 850 two-digit years use the fixed pivot 00-69 -> 20xx,
//!   70-99 -> 19xx: this module has no clock for the "50 years" rule.
//!   No "date in the future" check is made, for the same reason.
//! - [`format_http_date`] clamps to 9999-12-31T23:59:59Z (the largest
//!   IMF-fixdate) instead of panicking.
//! - If-Range: an entity tag must be strong and strongly equal to the
//!   current ETag; a weak tag or malformed value never matches (the Range is
//!   then ignored and a 200 sent). A date must equal Last-Modified exactly;
//!   the store's Last-Modified is treated as strong because the origin
//!   compares it with the current value and objects are published atomically
//!   (§8.8.2.2 first bullet), so it cannot change twice in that second.
//! - Range handling applies to GET only (§14.2); for HEAD and others the
//!   Range header is ignored. If-Range without Range has no effect.

use std::time::{Duration, UNIX_EPOCH};

/// Largest timestamp [`format_http_date`] can express (9999-12-31 23:59:59).
pub const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// Result of evaluating the preconditions of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Carry on with the request.
    Proceed,
    /// 304 Not Modified (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// The precondition header fields of a request (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

impl Preconditions<'_> {
    /// Evaluates the preconditions in RFC 9110 §13.2.2 order against the
    /// current strong `etag` (e.g. `"abc"`) and `last_modified` (unix secs).
    pub fn evaluate(&self, method: &str, etag: &str, last_modified: u64) -> Condition {
        evaluate_preconditions(method, self, etag, last_modified)
    }

    /// Whether a Range header on this request should be honoured: the method
    /// is GET and If-Range is absent or matches (§13.2.2 step 5, §14.2).
    pub fn range_applies(&self, method: &str, etag: &str, last_modified: u64) -> bool {
        method == "GET"
            && self
                .if_range
                .is_none_or(|value| if_range_matches(value, etag, last_modified))
    }
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` in RFC 9110 §13.2.2 order.
pub fn evaluate_preconditions(
    method: &str,
    headers: &Preconditions<'_>,
    etag: &str,
    last_modified: u64,
) -> Condition {
    if matches!(method, "CONNECT" | "OPTIONS" | "TRACE") {
        return Condition::Proceed;
    }
    let current = EntityTag::parse(etag);
    let get_or_head = matches!(method, "GET" | "HEAD");

    if let Some(value) = headers.if_match {
        let passes = match scan_tags(value, |tag| current.is_some_and(|c| c.strong_eq(&tag))) {
            TagList::Any => true,
            TagList::Matched(found) => found,
            TagList::Malformed => false,
        };
        if !passes {
            return Condition::PreconditionFailed;
        }
    } else if let Some(date) = headers.if_unmodified_since.and_then(parse_http_date)
        && last_modified > date
    {
        return Condition::PreconditionFailed;
    }

    if let Some(value) = headers.if_none_match {
        let passes = match scan_tags(value, |tag| current.is_some_and(|c| c.weak_eq(&tag))) {
            TagList::Any => false,
            TagList::Matched(found) => !found,
            TagList::Malformed => true,
        };
        if !passes {
            return if get_or_head {
                Condition::NotModified
            } else {
                Condition::PreconditionFailed
            };
        }
    } else if get_or_head
        && let Some(date) = headers.if_modified_since.and_then(parse_http_date)
        && last_modified <= date
    {
        return Condition::NotModified;
    }
    Condition::Proceed
}

/// Evaluates an `If-Range` value (§13.1.5): a strong entity tag strongly
/// equal to `etag`, or an HTTP-date exactly equal to `last_modified`.
pub fn if_range_matches(if_range: &str, etag: &str, last_modified: u64) -> bool {
    let value = if_range.trim_matches([' ', '\t']);
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), EntityTag::parse(etag)) {
            (Some(tag), Some(current)) => tag.strong_eq(&current),
            _ => false,
        };
    }
    parse_http_date(value) == Some(last_modified)
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime) to unix seconds.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(value).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Formats unix seconds as IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`
/// (clamped to [`MAX_HTTP_DATE_SECS`]).
pub fn format_http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs.min(MAX_HTTP_DATE_SECS)))
}

/// One entity tag; `opaque` excludes the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// Parses exactly one entity tag (surrounding SP/HTAB allowed).
    pub fn parse(value: &'a str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        match parse_tag_prefix(value) {
            Some((tag, "")) => Some(tag),
            _ => None,
        }
    }

    /// Strong comparison: both strong and identical opaque tags.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: identical opaque tags, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

fn is_etagc(c: char) -> bool {
    c == '!' || ('#'..='~').contains(&c) || !c.is_ascii()
}

/// Parses a tag at the start of `s`; returns it and the rest of `s`.
fn parse_tag_prefix(s: &str) -> Option<(EntityTag<'_>, &str)> {
    let (weak, s) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = s.strip_prefix('"')?;
    let end = body.find(|c: char| !is_etagc(c))?;
    let (opaque, rest) = body.split_at(end);
    let rest = rest.strip_prefix('"')?;
    Some((EntityTag { weak, opaque }, rest))
}

enum TagList {
    Any,
    Matched(bool),
    Malformed,
}

/// Scans `"*" / 1#entity-tag`, calling `matches` on each tag, without
/// allocating; any syntax error makes the whole list malformed.
fn scan_tags(value: &str, mut matches: impl FnMut(EntityTag<'_>) -> bool) -> TagList {
    let trimmed = value.trim_matches([' ', '\t']);
    if trimmed == "*" {
        return TagList::Any;
    }
    let mut rest = trimmed;
    let mut count = 0usize;
    let mut found = false;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let Some((tag, after)) = parse_tag_prefix(rest) else {
            return TagList::Malformed;
        };
        count += 1;
        found = found || matches(tag);
        rest = after.trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return TagList::Malformed;
        }
    }
    if count == 0 {
        TagList::Malformed
    } else {
        TagList::Matched(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Condition::{NotModified as N304, PreconditionFailed as P412, Proceed as OK};

    const ETAG: &str = "\"abc\"";
    /// Sun, 06 Nov 1994 08:49:37 GMT
    const LM: u64 = 784_111_777;
    const LM_STR: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    #[derive(Default, Clone, Copy)]
    struct H {
        im: Option<&'static str>,
        inm: Option<&'static str>,
        ims: Option<&'static str>,
        ius: Option<&'static str>,
    }

    #[test]
    fn precondition_table() {
        let none = H::default();
        let rows: Vec<(&str, &str, H, Condition)> = vec![
            ("no headers", "GET", none, OK),
            // If-Match (strong comparison)
            (
                "im match",
                "GET",
                H {
                    im: Some(ETAG),
                    ..none
                },
                OK,
            ),
            (
                "im list match",
                "PUT",
                H {
                    im: Some("\"x\", \"abc\""),
                    ..none
                },
                OK,
            ),
            (
                "im mismatch",
                "GET",
                H {
                    im: Some("\"x\""),
                    ..none
                },
                P412,
            ),
            (
                "im weak never strong",
                "GET",
                H {
                    im: Some("W/\"abc\""),
                    ..none
                },
                P412,
            ),
            (
                "im star",
                "DELETE",
                H {
                    im: Some("*"),
                    ..none
                },
                OK,
            ),
            (
                "im malformed unquoted",
                "GET",
                H {
                    im: Some("abc"),
                    ..none
                },
                P412,
            ),
            (
                "im empty",
                "GET",
                H {
                    im: Some(""),
                    ..none
                },
                P412,
            ),
            (
                "im star in list",
                "GET",
                H {
                    im: Some("*, \"abc\""),
                    ..none
                },
                P412,
            ),
            (
                "im beats ius",
                "GET",
                H {
                    im: Some(ETAG),
                    ius: Some(BEFORE),
                    ..none
                },
                OK,
            ),
            // If-Unmodified-Since
            (
                "ius equal",
                "GET",
                H {
                    ius: Some(LM_STR),
                    ..none
                },
                OK,
            ),
            (
                "ius later",
                "POST",
                H {
                    ius: Some(AFTER),
                    ..none
                },
                OK,
            ),
            (
                "ius earlier",
                "GET",
                H {
                    ius: Some(BEFORE),
                    ..none
                },
                P412,
            ),
            (
                "ius invalid ignored",
                "GET",
                H {
                    ius: Some("yesterday"),
                    ..none
                },
                OK,
            ),
            (
                "ius list ignored",
                "GET",
                H {
                    ius: Some("Sun, 06 Nov 1994 08:49:36 GMT, Sun, 06 Nov 1994 08:49:36 GMT"),
                    ..none
                },
                OK,
            ),
            // If-None-Match (weak comparison)
            (
                "inm match get",
                "GET",
                H {
                    inm: Some(ETAG),
                    ..none
                },
                N304,
            ),
            (
                "inm match head",
                "HEAD",
                H {
                    inm: Some(ETAG),
                    ..none
                },
                N304,
            ),
            (
                "inm weak match",
                "GET",
                H {
                    inm: Some("W/\"abc\""),
                    ..none
                },
                N304,
            ),
            (
                "inm list match",
                "GET",
                H {
                    inm: Some("\"x\" , W/\"y\",\"abc\""),
                    ..none
                },
                N304,
            ),
            (
                "inm empty elements",
                "GET",
                H {
                    inm: Some(", ,\"abc\",,"),
                    ..none
                },
                N304,
            ),
            (
                "inm mismatch",
                "GET",
                H {
                    inm: Some("\"x\""),
                    ..none
                },
                OK,
            ),
            (
                "inm match put",
                "PUT",
                H {
                    inm: Some(ETAG),
                    ..none
                },
                P412,
            ),
            (
                "inm star get",
                "GET",
                H {
                    inm: Some("*"),
                    ..none
                },
                N304,
            ),
            (
                "inm star post",
                "POST",
                H {
                    inm: Some("*"),
                    ..none
                },
                P412,
            ),
            (
                "inm malformed ignored",
                "GET",
                H {
                    inm: Some("abc"),
                    ..none
                },
                OK,
            ),
            (
                "inm lowercase w",
                "GET",
                H {
                    inm: Some("w/\"abc\""),
                    ..none
                },
                OK,
            ),
            (
                "inm unterminated",
                "GET",
                H {
                    inm: Some("\"abc"),
                    ..none
                },
                OK,
            ),
            (
                "inm garbage after match",
                "GET",
                H {
                    inm: Some("\"abc\" x"),
                    ..none
                },
                OK,
            ),
            (
                "inm comma inside tag",
                "GET",
                H {
                    inm: Some("\"a,b\""),
                    ..none
                },
                OK,
            ),
            (
                "inm unicode obs-text",
                "GET",
                H {
                    inm: Some("\"\u{e9}\", \"abc\""),
                    ..none
                },
                N304,
            ),
            (
                "inm control char",
                "GET",
                H {
                    inm: Some("\"a\u{1}\", \"abc\""),
                    ..none
                },
                OK,
            ),
            (
                "inm malformed keeps ims ignored",
                "GET",
                H {
                    inm: Some("abc"),
                    ims: Some(AFTER),
                    ..none
                },
                OK,
            ),
            (
                "inm mismatch beats ims",
                "GET",
                H {
                    inm: Some("\"x\""),
                    ims: Some(AFTER),
                    ..none
                },
                OK,
            ),
            // If-Modified-Since
            (
                "ims equal",
                "GET",
                H {
                    ims: Some(LM_STR),
                    ..none
                },
                N304,
            ),
            (
                "ims later",
                "HEAD",
                H {
                    ims: Some(AFTER),
                    ..none
                },
                N304,
            ),
            (
                "ims earlier",
                "GET",
                H {
                    ims: Some(BEFORE),
                    ..none
                },
                OK,
            ),
            (
                "ims rfc850",
                "GET",
                H {
                    ims: Some("Sunday, 06-Nov-94 08:49:37 GMT"),
                    ..none
                },
                N304,
            ),
            (
                "ims asctime",
                "GET",
                H {
                    ims: Some("Sun Nov  6 08:49:37 1994"),
                    ..none
                },
                N304,
            ),
            (
                "ims ignored for post",
                "POST",
                H {
                    ims: Some(AFTER),
                    ..none
                },
                OK,
            ),
            (
                "ims invalid",
                "GET",
                H {
                    ims: Some("06 Nov 1994"),
                    ..none
                },
                OK,
            ),
            (
                "ims wrong weekday",
                "GET",
                H {
                    ims: Some("Mon, 06 Nov 1994 08:49:37 GMT"),
                    ..none
                },
                OK,
            ),
            (
                "ims lowercase",
                "GET",
                H {
                    ims: Some("sun, 06 nov 1994 08:49:37 gmt"),
                    ..none
                },
                OK,
            ),
            (
                "ims unicode",
                "GET",
                H {
                    ims: Some("Sun, 06 Nov 1994 08:49:37 GMT\u{e9}"),
                    ..none
                },
                OK,
            ),
            // Precedence
            (
                "im fail beats inm",
                "GET",
                H {
                    im: Some("\"x\""),
                    inm: Some(ETAG),
                    ..none
                },
                P412,
            ),
            (
                "ius fail beats inm",
                "GET",
                H {
                    ius: Some(BEFORE),
                    inm: Some(ETAG),
                    ..none
                },
                P412,
            ),
            (
                "ius fail beats ims",
                "GET",
                H {
                    ius: Some(BEFORE),
                    ims: Some(AFTER),
                    ..none
                },
                P412,
            ),
            (
                "im ok then inm",
                "GET",
                H {
                    im: Some(ETAG),
                    inm: Some(ETAG),
                    ..none
                },
                N304,
            ),
            // Methods
            (
                "options ignores",
                "OPTIONS",
                H {
                    im: Some("\"x\""),
                    ..none
                },
                OK,
            ),
            (
                "trace ignores",
                "TRACE",
                H {
                    inm: Some("*"),
                    ..none
                },
                OK,
            ),
            (
                "method case-sensitive",
                "get",
                H {
                    inm: Some(ETAG),
                    ..none
                },
                P412,
            ),
        ];
        for (name, method, h, expected) in rows {
            let pre = Preconditions {
                if_match: h.im,
                if_none_match: h.inm,
                if_modified_since: h.ims,
                if_unmodified_since: h.ius,
                if_range: None,
            };
            assert_eq!(pre.evaluate(method, ETAG, LM), expected, "{name}");
        }
    }

    #[test]
    fn if_range_table() {
        let rows: Vec<(&str, &str, &str, bool)> = vec![
            ("same strong", ETAG, ETAG, true),
            ("ows", " \"abc\" ", ETAG, true),
            ("different", "\"x\"", ETAG, false),
            ("weak in if-range", "W/\"abc\"", ETAG, false),
            ("weak current", ETAG, "W/\"abc\"", false),
            ("list not allowed", "\"abc\", \"x\"", ETAG, false),
            ("unquoted", "abc", ETAG, false),
            ("star", "*", ETAG, false),
            ("empty", "", ETAG, false),
            ("date exact", LM_STR, ETAG, true),
            ("date later", AFTER, ETAG, false),
            ("date earlier", BEFORE, ETAG, false),
            ("date rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", ETAG, true),
            ("garbage", "\u{0}\u{ffff}", ETAG, false),
        ];
        for (name, value, etag, expected) in rows {
            assert_eq!(if_range_matches(value, etag, LM), expected, "{name}");
        }
    }

    #[test]
    fn range_applies_table() {
        let rows: Vec<(&str, &str, Option<&str>, bool)> = vec![
            ("get no if-range", "GET", None, true),
            ("get matching", "GET", Some(ETAG), true),
            ("get stale", "GET", Some("\"old\""), false),
            ("head", "HEAD", None, false),
            ("post", "POST", None, false),
        ];
        for (name, method, if_range, expected) in rows {
            let pre = Preconditions {
                if_range,
                ..Preconditions::default()
            };
            assert_eq!(pre.range_applies(method, ETAG, LM), expected, "{name}");
        }
    }

    #[test]
    fn http_date_table() {
        let rows: Vec<(&str, Option<u64>)> = vec![
            (LM_STR, Some(LM)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(LM)),
            ("Sun Nov  6 08:49:37 1994", Some(LM)),
            ("  Sun, 06 Nov 1994 08:49:37 GMT ", Some(LM)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_HTTP_DATE_SECS)),
            ("Wed, 31 Dec 1969 23:59:59 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("Sun, 31 Feb 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37", None),
            ("", None),
            ("99999999999999999999", None),
            ("Wednesday, 99-Nov-94 08:49:37 GMT", None),
            ("Sun,\u{a0}06 Nov 1994 08:49:37 GMT", None),
        ];
        for (value, expected) in rows {
            assert_eq!(parse_http_date(value), expected, "{value:?}");
        }
        let formats: Vec<(u64, &str)> = vec![
            (LM, LM_STR),
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (MAX_HTTP_DATE_SECS, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, expected) in formats {
            assert_eq!(format_http_date(secs), expected, "{secs}");
        }
    }

    #[test]
    fn entity_tag_table() {
        let rows: Vec<(&str, Option<(bool, &str)>)> = vec![
            ("\"abc\"", Some((false, "abc"))),
            ("W/\"abc\"", Some((true, "abc"))),
            ("\"\"", Some((false, ""))),
            ("\"a,b\"", Some((false, "a,b"))),
            ("w/\"abc\"", None),
            ("abc", None),
            ("\"a b\"", None),
            ("\"a\"b\"", None),
            ("W/", None),
            ("\"", None),
        ];
        for (value, expected) in rows {
            let got = EntityTag::parse(value).map(|t| (t.weak, t.opaque));
            assert_eq!(got, expected, "{value:?}");
        }
    }

    #[test]
    fn hostile_lists_do_not_panic() {
        let long_match = format!("{}\"abc\"", "\"x\", ".repeat(50_000));
        let long_commas = ",".repeat(100_000);
        let long_quote = format!("\"{}", "a".repeat(100_000));
        let rows: Vec<(&str, Condition)> =
            vec![(&long_match, N304), (&long_commas, OK), (&long_quote, OK)];
        for (value, expected) in rows {
            let pre = Preconditions {
                if_none_match: Some(value),
                ..Preconditions::default()
            };
            assert_eq!(pre.evaluate("GET", ETAG, LM), expected);
        }
    }
}
