//! Secondary cache keys from `Vary` (RFC 9111 4.1; RFC 9110 12.5.5).
//!
//! The secondary key is a canonical string built from the request field values
//! nominated by the stored response's `Vary`. Two requests get equal keys iff
//! they match under RFC 9111 4.1 with the normalisation below.
//!
//! Choices and why:
//! * `Vary: *` (anywhere in any line) gives `None`: it never matches (4.1).
//! * Nominated names are compared case-insensitively, de-duplicated and sorted,
//!   so `Vary: Accept, accept-encoding` and `Vary: Accept-Encoding, Accept`
//!   give the same key (order of nominated fields does not change meaning).
//! * Normalisation (4.1 allows "adding or removing whitespace where allowed"
//!   and combining lines per RFC 9110 5.3): each line is trimmed, runs of
//!   SP/HTAB collapse to one SP, optional whitespace around commas becomes
//!   exactly ", ", repeated lines are joined with ", ". Text inside
//!   quoted-strings is kept verbatim (it is data). No other rewriting (no
//!   lower-casing of values, no reordering of list members): RFC 9111 leaves
//!   it to field-specific knowledge we do not have.
//! * An absent field differs from a present-but-empty one (4.1: absent only
//!   matches absent).
//! * The key is injective: `name:value` or bare `name` (absent) per nominated
//!   field, joined by `\n`, with `%`, `:`, controls, DEL and non-ASCII bytes in
//!   names and values percent-encoded, so hostile values cannot forge another
//!   key. No `Vary` at all gives `Some("")`.

use crate::util;

/// Lower-cased, de-duplicated, sorted field names nominated by `Vary`, or
/// `None` for `*`.
pub fn nominated_fields<S: AsRef<str>>(vary_header_values: &[S]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for line in vary_header_values {
        for member in util::split_list(line.as_ref()) {
            if member == "*" {
                return None;
            }
            names.push(member.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// Normalised combined value of `name` in `headers`; `None` when absent.
pub fn normalized_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let mut lines = util::values(headers, name).peekable();
    lines.peek()?;
    Some(lines.map(normalize_line).collect::<Vec<_>>().join(", "))
}

fn normalize_line(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut in_quotes = false;
    let mut escaped = false;
    let mut pending_space = false;
    for c in v.chars() {
        if in_quotes {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' => pending_space = true,
            ',' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push_str(", ");
                pending_space = false;
            }
            c => {
                if pending_space && !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
                pending_space = false;
                if c == '"' {
                    in_quotes = true;
                }
                out.push(c);
            }
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

fn escape_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b == b'%' || b == b':' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
}

/// Secondary key for `request_headers` under a response's `Vary` lines;
/// `None` for `Vary: *`.
pub fn secondary_key<S: AsRef<str>>(
    vary_header_values: &[S],
    request_headers: &[(String, String)],
) -> Option<String> {
    let names = nominated_fields(vary_header_values)?;
    let mut key = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            key.push('\n');
        }
        escape_into(&mut key, name);
        if let Some(v) = normalized_value(request_headers, name) {
            key.push(':');
            escape_into(&mut key, &v);
        }
    }
    Some(key)
}

/// RFC 9111 4.1: does a new request match the request that produced a stored
/// response? `stored_request_values` holds (at least) the nominated fields of
/// the original request. `Vary: *` never matches.
pub fn matches<S: AsRef<str>>(
    stored_vary: &[S],
    stored_request_values: &[(String, String)],
    new_request_headers: &[(String, String)],
) -> bool {
    match nominated_fields(stored_vary) {
        None => false,
        Some(names) => names.iter().all(|n| {
            normalized_value(stored_request_values, n) == normalized_value(new_request_headers, n)
        }),
    }
}
