//! Revalidation (conditional requests, 304 merging) and invalidation after
//! unsafe requests.
//!
//! RFC sections followed:
//! * RFC 9111 4.3.1: the cache sends `If-None-Match` with the stored entity
//!   tag and `If-Modified-Since` with the stored `Last-Modified` (both when
//!   both exist).
//! * RFC 9111 3.1 / 3.2 / 4.3.4: freshening stored headers from a 304.
//! * RFC 9111 4.4: invalidation after unsafe methods; RFC 9110 4.3.1 origin;
//!   RFC 3986 5.2 reference resolution for `Location`/`Content-Location`.
//!
//! Choices and why:
//! * A malformed stored `ETag` (not `"..."` / `W/"..."` with etagc) is not
//!   sent: echoing garbage would make a malformed request. `Last-Modified` is
//!   sent verbatim (trimmed) only if it parses as an HTTP-date.
//! * [`revalidation_request`] drops the client's own conditionals, `Range` and
//!   hop-by-hop fields: the cache validates the whole stored response and
//!   answers the client's conditionals itself afterwards.
//! * [`merge_304`] replaces every stored field the 304 carries, except
//!   `Content-Length` (3.2), framing/hop-by-hop fields (`Transfer-Encoding`,
//!   `Connection` and the fields it names, `Keep-Alive`, `TE`, `Trailer`,
//!   `Upgrade`, `Proxy-Connection`), proxy-specific fields (3.1:
//!   `Proxy-Authenticate`, `Proxy-Authentication-Info`,
//!   `Proxy-Authorization`), `Content-Encoding` (the stored body bytes
//!   depend on it: 3.2 "fields the stored response depends upon") and
//!   `Content-Range` (3.2: processed by the recipient; it describes the
//!   bytes of the message that carries it, never the stored ones). Every
//!   line of a replaced field goes; the new lines take the position of its
//!   first stored occurrence; new fields are appended; fields the 304 does
//!   not carry are kept.
//! * [`freshen`] is what a cache applies: [`merge_304`] with the new
//!   response's `Date` and `Age` taken as a pair. A 304 without a valid
//!   `Date` gets its receipt time (RFC 9110 6.6.1) rather than keeping the
//!   stored, older one; a 304 without `Age` came first-hand from the origin,
//!   so the stored `Age` (which described the old message) goes. Otherwise
//!   the refreshed entry would inherit the old message's age and could be
//!   stale, or (with an invalid `Age`) never fresh again, right after a
//!   successful validation. Callers reset request/response times to the
//!   304's.
//! * [`stored_content_length`]: a stored response keeps its
//!   `Content-Length` (RFC 9110 8.6), which always states the stored body's
//!   length: the origin's line when it does, else one computed from the
//!   body (a chunked origin response); none on 1xx/204.
//! * [`selects_for_update`] follows 4.3.4 for one stored response: strong
//!   ETag must match strongly, weak ETag weakly, else Last-Modified must be
//!   equal; a 304 carrying no validator at all answers the conditional request
//!   the cache itself sent about that response, so it selects it.
//! * [`invalidates`]: any method not known to be safe (RFC 9110 9.2.1: GET,
//!   HEAD, OPTIONS, TRACE), including unknown ones (4.4 says "including
//!   methods whose safety is unknown"), with a 2xx/3xx status.
//! * `Location`/`Content-Location` are resolved against the request URI; only
//!   same-origin results (scheme, host case-insensitive, port with defaults
//!   80/443) are returned; fragments are dropped; references over 8 KiB are
//!   ignored. Returned URIs are in RFC 9110 4.2.3 normal form (lower-case
//!   scheme/host, default port, userinfo dropped, empty path as `/`), the
//!   request URI included; an unparseable request URI is returned as given.

use crate::util;

/// Framing, coding, hop-by-hop and proxy-specific fields never taken from a
/// 304 (RFC 9111 3.1, 3.2).
const NOT_UPDATED: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

/// Hop-by-hop fields (RFC 9110 7.6.1) and proxy-specific fields (RFC 9111 3.1).
const UNSTORABLE: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

const MAX_REFERENCE_LEN: usize = 8192;

/// Field names listed in `Connection` (lower-cased).
fn connection_listed(headers: &[(String, String)]) -> Vec<String> {
    util::values(headers, "connection")
        .flat_map(util::split_list)
        .map(str::to_ascii_lowercase)
        .collect()
}

fn in_list(list: &[&str], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Removes fields a cache must not store (RFC 9111 3.1): hop-by-hop fields,
/// those named in `Connection`, and proxy-specific ones.
pub fn strip_unstorable(headers: &[(String, String)]) -> Vec<(String, String)> {
    let listed = connection_listed(headers);
    headers
        .iter()
        .filter(|(n, _)| {
            !in_list(UNSTORABLE, n) && !listed.iter().any(|l| l.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect()
}

/// `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE` (RFC 9110 8.8.3). Returns
/// (weak, opaque-tag including quotes).
pub fn parse_etag(s: &str) -> Option<(bool, &str)> {
    let s = s.trim_matches(|c| c == ' ' || c == '\t');
    let (weak, tag) = match s.strip_prefix("W/") {
        Some(t) => (true, t),
        None => (false, s),
    };
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    let ok = inner
        .chars()
        .all(|c| c == '!' || ('#'..='~').contains(&c) || !c.is_ascii());
    ok.then_some((weak, tag))
}

/// Conditional request fields for revalidating one stored response.
pub fn conditional_headers(stored_response_headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(etag) = util::first(stored_response_headers, "etag")
        && parse_etag(etag).is_some()
    {
        out.push(("if-none-match".to_string(), etag.trim().to_string()));
    }
    if let Some(lm) = util::first(stored_response_headers, "last-modified")
        && util::parse_http_date(lm).is_some()
    {
        out.push(("if-modified-since".to_string(), lm.trim().to_string()));
    }
    out
}

/// Request fields that make a request conditional or partial: a cache
/// fetching whole representations for itself drops the client's.
pub const CONDITIONAL_REQUEST_FIELDS: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// The client's request headers turned into the cache's revalidation request.
pub fn revalidation_request(
    client_request_headers: &[(String, String)],
    stored_response_headers: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = strip_unstorable(client_request_headers)
        .into_iter()
        .filter(|(n, _)| !in_list(CONDITIONAL_REQUEST_FIELDS, n))
        .collect();
    out.extend(conditional_headers(stored_response_headers));
    out
}

/// RFC 9111 4.3.4 for a single stored response.
pub fn selects_for_update(
    stored_headers: &[(String, String)],
    not_modified_headers: &[(String, String)],
) -> bool {
    let new_etag = util::first(not_modified_headers, "etag").and_then(parse_etag);
    let old_etag = util::first(stored_headers, "etag").and_then(parse_etag);
    if let Some((new_weak, new_tag)) = new_etag {
        return match old_etag {
            Some((_, old_tag)) if new_weak => old_tag == new_tag,
            Some((old_weak, old_tag)) => !old_weak && old_tag == new_tag,
            None => false,
        };
    }
    if util::has(not_modified_headers, "etag") {
        return false; // present but malformed
    }
    match util::first(not_modified_headers, "last-modified") {
        Some(lm) => {
            let new = util::parse_http_date(lm);
            new.is_some() && new == util::date_header(stored_headers, "last-modified")
        }
        None => true,
    }
}

/// Stored headers freshened with a 304's headers (RFC 9111 3.2, 4.3.4).
pub fn merge_304(
    stored_headers: &[(String, String)],
    not_modified_headers: &[(String, String)],
) -> Vec<(String, String)> {
    let listed = connection_listed(not_modified_headers);
    let updatable =
        |n: &str| !in_list(NOT_UPDATED, n) && !listed.iter().any(|l| l.eq_ignore_ascii_case(n));
    let mut names: Vec<String> = Vec::new();
    for (n, _) in not_modified_headers {
        if updatable(n) && !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            names.push(n.to_ascii_lowercase());
        }
    }
    let lines_of = |name: &str| -> Vec<(String, String)> {
        not_modified_headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .cloned()
            .collect()
    };
    let mut out = Vec::with_capacity(stored_headers.len() + not_modified_headers.len());
    let mut emitted: Vec<&str> = Vec::new();
    for (n, v) in stored_headers {
        match names.iter().find(|x| x.eq_ignore_ascii_case(n)) {
            Some(name) => {
                if !emitted.contains(&name.as_str()) {
                    emitted.push(name.as_str());
                    out.extend(lines_of(name));
                }
            }
            None => out.push((n.clone(), v.clone())),
        }
    }
    for name in &names {
        if !emitted.contains(&name.as_str()) {
            out.extend(lines_of(name));
        }
    }
    out
}

/// Stored headers freshened by the response to a validation request (a
/// `304`) received at `response_time` (unix seconds): [`merge_304`], with
/// the new response's `Date` (its own, or `response_time` when it has no
/// valid one) and its `Age` (none when it has none) replacing the stored
/// ones.
pub fn freshen(
    stored_headers: &[(String, String)],
    not_modified_headers: &[(String, String)],
    response_time: u64,
) -> Vec<(String, String)> {
    let update = crate::freshness::stamp_date(not_modified_headers, response_time);
    let mut merged = merge_304(stored_headers, &update);
    if !util::has(&update, "age") {
        merged.retain(|(n, _)| !n.eq_ignore_ascii_case("age"));
    }
    merged
}

/// The headers of a stored response whose content is `body_len` bytes,
/// with a `Content-Length` that says so (RFC 9110 8.6): a single origin
/// line that already does is kept where it is; otherwise every
/// `Content-Length` line is replaced by one computed from the body. 1xx and
/// 204 responses get none.
pub fn stored_content_length(
    headers: &[(String, String)],
    status: u16,
    body_len: usize,
) -> Vec<(String, String)> {
    let wanted = body_len.to_string();
    let bodiless = matches!(status, 100..=199 | 204);
    let mut lines = util::values(headers, "content-length");
    let kept = match (lines.next(), lines.next()) {
        (Some(only), None) => only.trim_matches(|c| c == ' ' || c == '\t') == wanted,
        _ => false,
    };
    if kept && !bodiless {
        return headers.to_vec();
    }
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
        .cloned()
        .collect();
    if !bodiless {
        out.push(("content-length".to_string(), wanted));
    }
    out
}

/// RFC 9110 9.2.1 safe methods (case-sensitive).
pub fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// RFC 9111 4.4: an unsafe (or unknown) method with a non-error final status
/// (2xx or 3xx) invalidates.
pub fn invalidates(method: &str, status: u16) -> bool {
    !is_safe(method) && (200..400).contains(&status)
}

/// URIs to invalidate after `method` on `request_uri` (an absolute URI)
/// answered with `status`: the request URI, then same-origin `Location` and
/// `Content-Location` targets. Empty when nothing is invalidated.
pub fn uris_to_invalidate(
    method: &str,
    status: u16,
    request_uri: &str,
    response_headers: &[(String, String)],
) -> Vec<String> {
    if !invalidates(method, status) {
        return Vec::new();
    }
    let (Some(base), Some(base_origin)) = (
        Uri::parse(request_uri),
        Uri::parse(request_uri).and_then(|u| u.origin()),
    ) else {
        return vec![request_uri.to_string()];
    };
    let mut out = vec![base.normalized(&base_origin)];
    for field in ["location", "content-location"] {
        let Some(reference) = util::first(response_headers, field) else {
            continue;
        };
        let reference = reference.trim();
        if reference.is_empty()
            || reference.len() > MAX_REFERENCE_LEN
            || reference.chars().any(|c| c.is_control() || c == ' ')
        {
            continue;
        }
        let Some(target) = base.resolve(reference) else {
            continue;
        };
        if target.origin().as_ref() == Some(&base_origin) {
            let s = target.normalized(&base_origin);
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// A parsed URI reference (RFC 3986 3), fragment removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Uri {
    scheme: Option<String>,
    authority: Option<String>,
    path: String,
    query: Option<String>,
}

impl Uri {
    fn parse(s: &str) -> Option<Uri> {
        let s = s.split('#').next().unwrap_or_default();
        let (scheme, rest) = match s.find([':', '/', '?']) {
            Some(i) if s[i..].starts_with(':') => {
                let sc = &s[..i];
                let valid = sc.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && sc
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
                if !valid {
                    return None;
                }
                (Some(sc.to_ascii_lowercase()), &s[i + 1..])
            }
            _ => (None, s),
        };
        let (authority, rest) = match rest.strip_prefix("//") {
            Some(r) => {
                let end = r.find(['/', '?']).unwrap_or(r.len());
                (Some(r[..end].to_string()), &r[end..])
            }
            None => (None, rest),
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (rest.to_string(), None),
        };
        Some(Uri {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// RFC 3986 5.2.2 (strict), for a base with scheme and authority.
    fn resolve(&self, reference: &str) -> Option<Uri> {
        let r = Uri::parse(reference)?;
        if r.scheme.is_some() {
            return Some(Uri {
                path: remove_dot_segments(&r.path),
                ..r
            });
        }
        let scheme = self.scheme.clone();
        if r.authority.is_some() {
            return Some(Uri {
                scheme,
                authority: r.authority,
                path: remove_dot_segments(&r.path),
                query: r.query,
            });
        }
        let (path, query) = if r.path.is_empty() {
            (self.path.clone(), r.query.or_else(|| self.query.clone()))
        } else if r.path.starts_with('/') {
            (remove_dot_segments(&r.path), r.query)
        } else {
            let merged = if self.authority.is_some() && self.path.is_empty() {
                format!("/{}", r.path)
            } else {
                let dir = self.path.rfind('/').map_or("", |i| &self.path[..=i]);
                format!("{dir}{}", r.path)
            };
            (remove_dot_segments(&merged), r.query)
        };
        Some(Uri {
            scheme,
            authority: self.authority.clone(),
            path,
            query,
        })
    }

    /// (scheme, host, port) for http/https URIs with a host.
    fn origin(&self) -> Option<(String, String, u16)> {
        let scheme = self.scheme.as_deref()?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let auth = self.authority.as_deref()?;
        let hostport = auth.rsplit('@').next().unwrap_or_default();
        let (host, port) = if hostport.starts_with('[') {
            let end = hostport.find(']')?;
            (&hostport[..=end], hostport[end + 1..].strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            None | Some("") => default_port,
            Some(p) => p.parse::<u16>().ok()?,
        };
        Some((scheme.to_string(), host.to_ascii_lowercase(), port))
    }
}

impl Uri {
    /// RFC 9110 4.2.3 normal form: lower-case scheme and host, no userinfo,
    /// default port omitted, empty path as "/".
    fn normalized(&self, origin: &(String, String, u16)) -> String {
        let (scheme, host, port) = origin;
        let default = if scheme == "https" { 443 } else { 80 };
        let mut s = format!("{scheme}://{host}");
        if *port != default {
            s.push_str(&format!(":{port}"));
        }
        s.push_str(if self.path.is_empty() {
            "/"
        } else {
            &self.path
        });
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

#[cfg(test)]
impl std::fmt::Display for Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}:")?;
        }
        if let Some(a) = &self.authority {
            write!(f, "//{a}")?;
        }
        f.write_str(&self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// RFC 3986 5.2.4, segment-stack form (linear time).
fn remove_dot_segments(path: &str) -> String {
    let absolute = path.starts_with('/');
    let segs: Vec<&str> = path.split('/').collect();
    let last = segs.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::new();
    for (i, seg) in segs.iter().enumerate().skip(usize::from(absolute)) {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_304_never_changes_framing_coding_or_range_fields() {
        let stored = h(&[
            ("content-type", "text/plain"),
            ("content-length", "12"),
            ("etag", "\"a\""),
            ("x-version", "1"),
        ]);
        let not_modified = h(&[
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("transfer-encoding", "chunked"),
            ("content-range", "bytes 0-0/1"),
            ("etag", "\"a\""),
            ("x-version", "2"),
        ]);
        assert_eq!(
            merge_304(&stored, &not_modified),
            h(&[
                ("content-type", "text/plain"),
                ("content-length", "12"),
                ("etag", "\"a\""),
                ("x-version", "2"),
            ])
        );
        // A Content-Range stored with the response stays as stored.
        let ranged = h(&[("content-range", "bytes 0-11/12"), ("etag", "\"a\"")]);
        assert_eq!(merge_304(&ranged, &not_modified)[0], ranged[0]);
    }

    #[test]
    fn freshening_takes_the_new_fields_and_keeps_the_others() {
        const T: u64 = 1_700_000_000;
        let old = util::format_http_date(T - 3600);
        let stored = h(&[
            ("date", &old),
            ("age", "30"),
            ("cache-control", "max-age=1"),
            ("x-changed", "old"),
            ("x-kept", "stored"),
            ("x-changed", "older"),
            ("content-length", "12"),
        ]);
        // No Date, no Age: first-hand from the origin, received at T.
        let not_modified = h(&[
            ("cache-control", "max-age=60"),
            ("x-changed", "new"),
            ("x-added", "yes"),
            ("content-length", "0"),
        ]);
        assert_eq!(
            freshen(&stored, &not_modified, T),
            h(&[
                ("date", &util::format_http_date(T)),
                ("cache-control", "max-age=60"),
                ("x-changed", "new"),
                ("x-kept", "stored"),
                ("content-length", "12"),
                ("x-added", "yes"),
            ])
        );
        // The 304's own Date and Age win when it has them.
        let date = util::format_http_date(T - 5);
        let not_modified = h(&[("date", &date), ("age", "4")]);
        let merged = freshen(&stored, &not_modified, T);
        assert_eq!(util::first(&merged, "date"), Some(date.as_str()));
        assert_eq!(util::values(&merged, "age").collect::<Vec<_>>(), ["4"]);
        assert_eq!(util::first(&merged, "x-changed"), Some("old"));
        // An invalid Date in the 304 is replaced by the receipt time.
        let merged = freshen(&stored, &h(&[("date", "0")]), T);
        assert_eq!(
            util::first(&merged, "date"),
            Some(util::format_http_date(T).as_str())
        );
    }

    #[test]
    fn stored_responses_keep_a_content_length_that_states_the_body() {
        let with = |v: &str| h(&[("content-type", "text/plain"), ("content-length", v)]);
        assert_eq!(stored_content_length(&with("12"), 200, 12), with("12"));
        // Chunked at the origin: computed from the body.
        assert_eq!(
            stored_content_length(&h(&[("etag", "\"a\"")]), 200, 12),
            h(&[("etag", "\"a\""), ("content-length", "12")])
        );
        // A line that does not state the body is replaced, duplicates too.
        assert_eq!(
            stored_content_length(&with("99"), 200, 12),
            h(&[("content-type", "text/plain"), ("content-length", "12")])
        );
        let twice = h(&[("content-length", "12"), ("content-length", "12")]);
        assert_eq!(
            stored_content_length(&twice, 200, 12),
            h(&[("content-length", "12")])
        );
        // RFC 9110 8.6: never on a 204.
        assert_eq!(
            stored_content_length(&with("0"), 204, 0),
            h(&[("content-type", "text/plain")])
        );
        assert_eq!(stored_content_length(&h(&[]), 204, 0), h(&[]));
    }

    #[test]
    fn rfc3986_examples() {
        let base = Uri::parse("http://a/b/c/d;p?q").expect("base");
        for (r, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("./../g", "http://a/b/g"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/../y", "http://a/b/c/y"),
        ] {
            let got = base.resolve(r).map(|u| u.to_string());
            assert_eq!(got.as_deref(), Some(want), "{r}");
        }
    }
}
