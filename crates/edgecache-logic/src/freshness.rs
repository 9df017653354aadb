//! Storability, freshness lifetime, age and reuse decisions for a SHARED cache.
//!
//! RFC sections followed:
//! * RFC 9111 3 (storing), 3.5 (`Authorization`), 4.1 (`Vary: *`),
//!   4.2.1 (lifetime: s-maxage > max-age > Expires - Date), 4.2.2 (heuristics),
//!   4.2.3 (age, formula reproduced literally in [`current_age`]),
//!   4.2.4 (serving stale), 5.2.1 / 5.2.2 (directive semantics),
//!   5.2.2.3 (`must-understand`), 5.2.2.10 (`s-maxage` implies
//!   `proxy-revalidate`), 5.3 (invalid `Expires` means expired).
//! * RFC 9213: a targeted field (`CDN-Cache-Control`) replaces `Cache-Control`
//!   and `Expires` (see [`crate::cache_control`]).
//! * RFC 5861: `stale-while-revalidate`, `stale-if-error`.
//! * RFC 9110 6.6.1: a response without `Date` gets one at receipt
//!   ([`stamp_date`]).
//!
//! Choices and why:
//! * Methods are case-sensitive (RFC 9110 9.1): only `GET` and `HEAD` store.
//! * "Understood" statuses are a whitelist ([`understood_status`]) that leaves
//!   out 206/416 (no range assembly here), 304/412 (conditional outcomes, not
//!   representations), 1xx and codes whose meaning depends on the connection
//!   or credentials (401, 407, 408, 421, 429).
//! * Storing needs `max-age`, `s-maxage`, `Expires`, `public`, or a
//!   heuristically cacheable status WITH a validator (`ETag`/`Last-Modified`).
//!   RFC 9111 3 never makes a validator alone sufficient, so it only counts
//!   together with a heuristically cacheable status; such a status with
//!   neither validator has nothing to compute freshness from or revalidate
//!   with, and storing is only ever a MAY, so we decline.
//! * Heuristic freshness (10% of Date - Last-Modified, capped at 86 400 s)
//!   applies to heuristically cacheable statuses and, as RFC 9111 4.2.2
//!   allows, to responses marked `public`. [`freshness_lifetime`] therefore
//!   takes the status as well as the headers.
//! * `Expires` without a usable `Date` gives lifetime 0 (stale); callers should
//!   [`stamp_date`] at receipt. Expires - Date is capped at 2^31 s.
//! * Duplicate `Date`/`Expires`/`Last-Modified` lines: the first line is
//!   used (RFC 9111 4.2.1).
//! * `Age` ([`age_is_invalid`]): anything but one field line holding one
//!   delta-seconds (`Age: old, 0`, `Age: -1`, two `Age` lines) makes the
//!   response stale: its freshness lifetime is 0, so it is revalidated
//!   before use (and may still be served stale where the directives allow).
//!   RFC 9111 5.1 has a cache use the first member of a list-based value and
//!   ignore an invalid one; we take the stricter reading 4.2.1 encourages
//!   ("consider responses that have invalid freshness information ... to be
//!   stale"): an Age we cannot trust could hide any amount of age, and a
//!   revalidation is always allowed. [`current_age`] itself still reads the
//!   first line (0 when invalid), for the `Age` the cache sends on.
//! * Directive conflicts resolve to the most restrictive (RFC 9111 4.2.1):
//!   response `no-cache` and request `no-cache` always give
//!   [`Freshness::MustRevalidate`], even with `stale-if-error`.
//! * Stale responses with `must-revalidate`/`proxy-revalidate` can never be
//!   served stale (not for swr, sie or max-stale). `s-maxage` implies
//!   `proxy-revalidate` for a shared cache (5.2.2.10), and 4.2.4 names "an
//!   applicable s-maxage" among the directives that forbid generating a
//!   stale response, so it blocks `stale-while-revalidate` and
//!   `stale-if-error` too, even in the same response (the
//!   `s-maxage=N, stale-while-revalidate=M` idiom some CDNs honour is not
//!   honoured here; use `max-age` for the shared lifetime to get it).
//! * A fresh response that fails the client's `max-age`/`min-fresh` gives
//!   `MustRevalidate`. A request with `min-fresh`, or with `max-age` but no
//!   `max-stale`, does not want stale content (5.2.1.1), so `within_swr` is
//!   false for it; `within_sie` ignores client freshness wishes ("regardless of
//!   other freshness information", RFC 5861 4). The sie window is the larger of
//!   the response and request values: either party may permit stale (4.2.4).
//! * `Freshness::Stale` carries an extra `within_max_stale` (the client's
//!   `max-stale` accepts this staleness): without it `max-stale` could not be
//!   honoured. Windows are inclusive: staleness <= N.
//! * Request `Pragma: no-cache` is not consulted (RFC 9111 5.4: deprecated, MAY).
//! * All arithmetic saturates; clocks going backwards never panic.

use std::fmt;

use crate::cache_control::{CacheControl, ResponseDirectives, response_directives};
use crate::util::{self, DELTA_SECONDS_CAP};

/// Upper bound of a heuristic freshness lifetime (RFC 9111 4.2.2 example).
pub const HEURISTIC_CAP: u64 = 86_400;

/// Why a response may not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Method other than `GET`/`HEAD`.
    Method,
    /// 1xx or outside 100..=599.
    StatusNotFinal,
    /// Final but outside [`understood_status`].
    StatusNotUnderstood,
    RequestNoStore,
    ResponseNoStore,
    Private,
    /// Request had `Authorization` and response lacks public/s-maxage/must-revalidate.
    Authorization,
    VaryStar,
    /// No explicit freshness, `public`, or heuristic status with a validator.
    NoCacheabilitySignal,
}

/// Error of [`storable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStorable(pub Reason);

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.0 {
            Reason::Method => "method is not cacheable",
            Reason::StatusNotFinal => "status is not final",
            Reason::StatusNotUnderstood => "status is not understood by this cache",
            Reason::RequestNoStore => "request has no-store",
            Reason::ResponseNoStore => "response has no-store",
            Reason::Private => "response is private",
            Reason::Authorization => {
                "authorized request without public, s-maxage or must-revalidate"
            }
            Reason::VaryStar => "response has Vary: *",
            Reason::NoCacheabilitySignal => "no explicit freshness, public, or validator",
        };
        f.write_str(s)
    }
}

impl std::error::Error for NotStorable {}

/// RFC 9110 15.1: statuses cacheable by default (heuristically).
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Final statuses whose caching requirements this cache implements.
pub fn understood_status(status: u16) -> bool {
    matches!(
        status,
        200 | 203
            | 204
            | 300
            | 301
            | 302
            | 303
            | 307
            | 308
            | 400
            | 403
            | 404
            | 405
            | 406
            | 410
            | 414
            | 451
            | 500
            | 501
            | 502
            | 503
            | 504
    )
}

/// RFC 9111 3, for a shared cache.
pub fn storable(
    method: &str,
    status: u16,
    request_headers: &[(String, String)],
    response_headers: &[(String, String)],
) -> Result<(), NotStorable> {
    if method != "GET" && method != "HEAD" {
        return Err(NotStorable(Reason::Method));
    }
    if !(200..=599).contains(&status) {
        return Err(NotStorable(Reason::StatusNotFinal));
    }
    if !understood_status(status) {
        return Err(NotStorable(Reason::StatusNotUnderstood));
    }
    let req = CacheControl::from_request(request_headers);
    if req.no_store {
        return Err(NotStorable(Reason::RequestNoStore));
    }
    let rd = response_directives(response_headers);
    let cc = &rd.cc;
    // 5.2.2.3: a cache that understands the status ignores no-store when
    // must-understand is present (status is understood at this point).
    if cc.no_store && !cc.must_understand {
        return Err(NotStorable(Reason::ResponseNoStore));
    }
    if cc.private {
        return Err(NotStorable(Reason::Private));
    }
    if util::has(request_headers, "authorization")
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStorable(Reason::Authorization));
    }
    if vary_star(response_headers) {
        return Err(NotStorable(Reason::VaryStar));
    }
    let explicit = cc.max_age.is_some()
        || cc.s_maxage.is_some()
        || (rd.expires_applies() && util::has(response_headers, "expires"));
    let validator =
        util::has(response_headers, "etag") || util::has(response_headers, "last-modified");
    if explicit || cc.public || (heuristically_cacheable(status) && validator) {
        Ok(())
    } else {
        Err(NotStorable(Reason::NoCacheabilitySignal))
    }
}

fn vary_star(headers: &[(String, String)]) -> bool {
    util::values(headers, "vary").any(|v| util::split_list(v).contains(&"*"))
}

/// RFC 9111 4.2.1 / 4.2.2 for a shared cache. `None`: no explicit lifetime and
/// no heuristic applies. `Some(0)` when the response's `Age` is invalid
/// ([`age_is_invalid`]): such a response is stale.
pub fn freshness_lifetime(status: u16, response_headers: &[(String, String)]) -> Option<u64> {
    lifetime_with(
        &response_directives(response_headers),
        status,
        response_headers,
    )
}

/// RFC 9111 5.1: `Age = delta-seconds`, a singleton. True when the response
/// has `Age` field lines that are not exactly one valid delta-seconds (a
/// list, a second line, a sign, text, an empty value); such a response is
/// treated as stale (freshness lifetime 0).
pub fn age_is_invalid(response_headers: &[(String, String)]) -> bool {
    let mut lines = util::values(response_headers, "age");
    match (lines.next(), lines.next()) {
        (None, _) => false,
        (Some(value), None) => {
            util::parse_delta_seconds(value.trim_matches(|c| c == ' ' || c == '\t')).is_none()
        }
        (Some(_), Some(_)) => true,
    }
}

/// The freshness lifetime, 0 when the `Age` is invalid ([`age_is_invalid`]).
fn lifetime_with(
    rd: &ResponseDirectives,
    status: u16,
    headers: &[(String, String)],
) -> Option<u64> {
    let lifetime = declared_lifetime(rd, status, headers)?;
    Some(if age_is_invalid(headers) { 0 } else { lifetime })
}

fn declared_lifetime(
    rd: &ResponseDirectives,
    status: u16,
    headers: &[(String, String)],
) -> Option<u64> {
    if let Some(s) = rd.cc.s_maxage {
        return Some(s);
    }
    if let Some(m) = rd.cc.max_age {
        return Some(m);
    }
    let date = util::date_header(headers, "date");
    if rd.expires_applies()
        && let Some(raw) = util::first(headers, "expires")
    {
        // 5.3: an invalid Expires (e.g. "0") is a time in the past.
        return Some(match (util::parse_http_date(raw), date) {
            (Some(exp), Some(date)) => exp.saturating_sub(date).min(DELTA_SECONDS_CAP),
            _ => 0,
        });
    }
    if heuristically_cacheable(status) || rd.cc.public {
        let lm = util::date_header(headers, "last-modified")?;
        let date = date?;
        if lm > date {
            return None;
        }
        return Some(((date - lm) / 10).min(HEURISTIC_CAP));
    }
    None
}

/// RFC 9111 4.2.3, literally:
/// ```text
/// apparent_age = max(0, response_time - date_value);
/// response_delay = response_time - request_time;
/// corrected_age_value = age_value + response_delay;
/// corrected_initial_age = max(apparent_age, corrected_age_value);
/// resident_time = now - response_time;
/// current_age = corrected_initial_age + resident_time;
/// ```
/// `date_value` falls back to `response_time` when `Date` is absent or invalid
/// (the Date the cache would have stamped, RFC 9110 6.6.1). Subtractions that
/// would go negative (clock skew) are 0; additions saturate.
pub fn current_age(
    response_headers: &[(String, String)],
    request_time: u64,
    response_time: u64,
    now: u64,
) -> u64 {
    let date_value = util::date_header(response_headers, "date").unwrap_or(response_time);
    let age_value = util::first(response_headers, "age")
        .and_then(|a| util::parse_delta_seconds(a.trim()))
        .unwrap_or(0);
    let apparent_age = response_time.saturating_sub(date_value);
    let response_delay = response_time.saturating_sub(request_time);
    let corrected_age_value = age_value.saturating_add(response_delay);
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now.saturating_sub(response_time);
    corrected_initial_age.saturating_add(resident_time)
}

/// Appends a `Date` (IMF-fixdate of `response_time`) when the response has no
/// valid one (RFC 9110 6.6.1); an invalid `Date` is replaced.
pub fn stamp_date(
    response_headers: &[(String, String)],
    response_time: u64,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = response_headers.to_vec();
    if util::date_header(response_headers, "date").is_none() {
        out.retain(|(n, _)| !n.eq_ignore_ascii_case("date"));
        out.push(("date".to_string(), util::format_http_date(response_time)));
    }
    out
}

/// What the cache knows about a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMeta {
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    /// When the request that produced it was sent (unix seconds).
    pub request_time: u64,
    /// When the response was received (unix seconds).
    pub response_time: u64,
}

/// Outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve from cache. `ttl` = lifetime - age (> 0).
    Fresh { age: u64, ttl: u64 },
    /// Stale. Serve it now and revalidate in the background if `within_swr`;
    /// serve it if the client accepts it (`within_max_stale`); otherwise
    /// revalidate first, and on error (5xx / unreachable) serve it if
    /// `within_sie`.
    Stale {
        age: u64,
        within_swr: bool,
        within_sie: bool,
        within_max_stale: bool,
    },
    /// Must not be served without successful validation, even on error.
    MustRevalidate,
}

/// Decides how `stored` may be used for a request at `now`.
pub fn evaluate(stored: &StoredMeta, request_headers: &[(String, String)], now: u64) -> Freshness {
    let req = CacheControl::from_request(request_headers);
    let rd = response_directives(&stored.response_headers);
    let resp = &rd.cc;
    if resp.no_cache || req.no_cache {
        return Freshness::MustRevalidate;
    }
    let lifetime = lifetime_with(&rd, stored.status, &stored.response_headers).unwrap_or(0);
    let age = current_age(
        &stored.response_headers,
        stored.request_time,
        stored.response_time,
        now,
    );
    if lifetime > age {
        let ttl = lifetime - age;
        let age_ok = req.max_age.is_none_or(|m| age <= m);
        let fresh_ok = req.min_fresh.is_none_or(|m| ttl >= m);
        return if age_ok && fresh_ok {
            Freshness::Fresh { age, ttl }
        } else {
            Freshness::MustRevalidate
        };
    }
    if resp.must_revalidate || resp.proxy_revalidate || resp.s_maxage.is_some() {
        return Freshness::MustRevalidate;
    }
    let staleness = age - lifetime;
    let client_refuses_stale =
        req.min_fresh.is_some() || (req.max_age.is_some() && req.max_stale.is_none());
    let within_swr =
        !client_refuses_stale && resp.stale_while_revalidate.is_some_and(|n| staleness <= n);
    let sie = match (resp.stale_if_error, req.stale_if_error) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let within_sie = sie.is_some_and(|n| staleness <= n);
    let within_max_stale =
        req.max_stale.is_some_and(|n| staleness <= n) && req.max_age.is_none_or(|m| age <= m);
    Freshness::Stale {
        age,
        within_swr,
        within_sie,
        within_max_stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn stored(headers: &[(&str, &str)]) -> StoredMeta {
        let mut headers = h(headers);
        headers.push(("date".into(), util::format_http_date(T)));
        StoredMeta {
            status: 200,
            response_headers: headers,
            request_time: T,
            response_time: T,
        }
    }

    #[test]
    fn age_must_be_one_delta_seconds_line() {
        for ok in [
            vec![],
            vec![("age", "0")],
            vec![("age", "30")],
            vec![("age", " 7 ")],
        ] {
            assert!(!age_is_invalid(&h(&ok)), "{ok:?}");
        }
        for bad in [
            vec![("age", "old, 0")],
            vec![("age", "7, 1000")],
            vec![("age", "-1")],
            vec![("age", "1.5")],
            vec![("age", "")],
            vec![("age", "0"), ("age", "0")],
            vec![("Age", "1"), ("age", "2")],
        ] {
            assert!(age_is_invalid(&h(&bad)), "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_age_makes_a_fresh_response_stale() {
        let none = h(&[]);
        for age in [
            vec![("age", "old, 0")],
            vec![("age", "0"), ("age", "0")],
            vec![("age", "-5")],
        ] {
            let mut fields = vec![("cache-control", "max-age=600"), ("etag", "\"a\"")];
            fields.extend(age.iter().copied());
            let meta = stored(&fields);
            assert_eq!(
                freshness_lifetime(200, &meta.response_headers),
                Some(0),
                "{age:?}"
            );
            assert!(
                matches!(evaluate(&meta, &none, T + 1), Freshness::Stale { .. }),
                "{age:?}: {:?}",
                evaluate(&meta, &none, T + 1)
            );
        }
        // With must-revalidate it cannot even be served stale.
        let meta = stored(&[
            ("cache-control", "max-age=600, must-revalidate"),
            ("age", "old, 0"),
        ]);
        assert_eq!(evaluate(&meta, &none, T + 1), Freshness::MustRevalidate);
        // Within stale-while-revalidate it is still served, then revalidated.
        let meta = stored(&[
            ("cache-control", "max-age=600, stale-while-revalidate=60"),
            ("age", "x"),
        ]);
        assert!(matches!(
            evaluate(&meta, &none, T + 1),
            Freshness::Stale {
                within_swr: true,
                ..
            }
        ));
        // A valid Age still only counts against freshness.
        let meta = stored(&[("cache-control", "max-age=600"), ("age", "30")]);
        assert_eq!(
            evaluate(&meta, &none, T + 1),
            Freshness::Fresh { age: 31, ttl: 569 }
        );
        // No lifetime stays no lifetime.
        assert_eq!(freshness_lifetime(200, &h(&[("age", "x")])), None);
    }
}
