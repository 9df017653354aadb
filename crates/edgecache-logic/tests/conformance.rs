//! Table-driven conformance suite: one row per rule, expected values worked
//! out by hand from the RFC formulas (comments show the arithmetic).

use portico_edgecache_logic::backoff;
use portico_edgecache_logic::breaker::{
    BreakerConfig, BreakerState, Permit, before_request, on_result,
};
use portico_edgecache_logic::cache_control::{
    CacheControl, MAX_STALE_ANY, PolicySource, response_directives,
};
use portico_edgecache_logic::cache_status::{CacheStatus, Fwd, append_to};
use portico_edgecache_logic::format_http_date;
use portico_edgecache_logic::freshness::{
    Freshness, NotStorable, Reason, StoredMeta, current_age, evaluate, freshness_lifetime,
    stamp_date, storable,
};
use portico_edgecache_logic::validation::{
    conditional_headers, invalidates, merge_304, revalidation_request, selects_for_update,
    strip_unstorable, uris_to_invalidate,
};
use portico_edgecache_logic::vary::{matches, secondary_key};

/// Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date).
const T: u64 = 784_111_777;

fn at(offset: i64) -> String {
    format_http_date(T.saturating_add_signed(offset))
}

type Headers = Vec<(String, String)>;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn check<T: PartialEq + std::fmt::Debug>(failures: &mut Vec<String>, name: &str, got: T, want: T) {
    if got != want {
        failures.push(format!("{name}: got {got:?}, want {want:?}"));
    }
}

fn finish(failures: Vec<String>) {
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn freshness_lifetime_rules() {
    let date = at(0);
    let rows: Vec<(&str, u16, Headers, Option<u64>)> = vec![
        (
            "max_age_beats_expires",
            200,
            h(&[
                ("date", &date),
                ("expires", &at(3600)),
                ("cache-control", "max-age=60"),
            ]),
            Some(60),
        ),
        (
            "s_maxage_beats_max_age_for_shared_cache",
            200,
            h(&[("cache-control", "max-age=60, s-maxage=300")]),
            Some(300),
        ),
        (
            "expires_minus_date",
            200,
            h(&[("date", &date), ("expires", &at(3600))]),
            Some(3600),
        ),
        (
            "expires_before_date_is_zero",
            200,
            h(&[("date", &date), ("expires", &at(-10))]),
            Some(0),
        ),
        (
            "invalid_expires_means_expired",
            200,
            h(&[("date", &date), ("expires", "0")]),
            Some(0),
        ),
        (
            "expires_without_date_is_expired",
            200,
            h(&[("expires", &at(3600))]),
            Some(0),
        ),
        (
            "first_expires_line_wins",
            200,
            h(&[
                ("date", &date),
                ("expires", &at(100)),
                ("expires", &at(900)),
            ]),
            Some(100),
        ),
        (
            "expires_capped_at_2_31",
            200,
            h(&[("date", &date), ("expires", &format_http_date(u64::MAX))]),
            Some(2_147_483_648),
        ),
        // (T - (T - 10000)) / 10 = 1000
        (
            "heuristic_ten_percent_of_last_modified",
            200,
            h(&[("date", &date), ("last-modified", &at(-10_000))]),
            Some(1000),
        ),
        // 2_000_000 / 10 = 200_000 > 86_400
        (
            "heuristic_capped_at_one_day",
            200,
            h(&[("date", &date), ("last-modified", &at(-2_000_000))]),
            Some(86_400),
        ),
        (
            "heuristic_not_for_non_heuristic_status",
            302,
            h(&[("date", &date), ("last-modified", &at(-10_000))]),
            None,
        ),
        (
            "heuristic_allowed_by_public",
            302,
            h(&[
                ("date", &date),
                ("last-modified", &at(-10_000)),
                ("cache-control", "public"),
            ]),
            Some(1000),
        ),
        (
            "heuristic_needs_date",
            200,
            h(&[("last-modified", &at(-10_000))]),
            None,
        ),
        (
            "heuristic_last_modified_in_future_ignored",
            200,
            h(&[("date", &date), ("last-modified", &at(50))]),
            None,
        ),
        (
            "explicit_beats_heuristic",
            200,
            h(&[
                ("date", &date),
                ("last-modified", &at(-10_000)),
                ("cache-control", "max-age=5"),
            ]),
            Some(5),
        ),
        ("no_information_is_none", 200, h(&[]), None),
        (
            "invalid_max_age_ignored_expires_used",
            200,
            h(&[
                ("date", &date),
                ("expires", &at(100)),
                ("cache-control", "max-age=abc"),
            ]),
            Some(100),
        ),
        (
            "negative_max_age_ignored",
            200,
            h(&[("cache-control", "max-age=-1")]),
            None,
        ),
        (
            "first_max_age_wins",
            200,
            h(&[("cache-control", "max-age=10, max-age=20")]),
            Some(10),
        ),
        (
            "first_valid_max_age_wins",
            200,
            h(&[
                ("cache-control", "max-age=-1"),
                ("cache-control", "max-age=20"),
            ]),
            Some(20),
        ),
        (
            "max_age_capped_at_2_31",
            200,
            h(&[("cache-control", "max-age=99999999999999999999999")]),
            Some(2_147_483_648),
        ),
        (
            "quoted_max_age_accepted",
            200,
            h(&[("cache-control", "max-age=\"30\"")]),
            Some(30),
        ),
        (
            "directive_names_case_insensitive",
            200,
            h(&[("cache-control", "Public, MAX-AGE=30")]),
            Some(30),
        ),
        (
            "commas_in_quoted_args_do_not_split",
            200,
            h(&[("cache-control", "no-cache=\"a, max-age=9\", max-age=30")]),
            Some(30),
        ),
        (
            "cdn_cache_control_overrides_cache_control",
            200,
            h(&[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "max-age=600"),
            ]),
            Some(600),
        ),
        (
            "cdn_cache_control_s_maxage",
            200,
            h(&[("cdn-cache-control", "s-maxage=50, max-age=5")]),
            Some(50),
        ),
        (
            "cdn_cache_control_ignores_expires",
            200,
            h(&[
                ("date", &date),
                ("expires", &at(3600)),
                ("cdn-cache-control", "public"),
            ]),
            None,
        ),
        (
            "invalid_cdn_cache_control_falls_back",
            200,
            h(&[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", "max-age=60,"),
            ]),
            Some(5),
        ),
        (
            "empty_cdn_cache_control_falls_back",
            200,
            h(&[("cache-control", "max-age=5"), ("cdn-cache-control", "")]),
            Some(5),
        ),
        (
            "cdn_cache_control_last_duplicate_wins",
            200,
            h(&[("cdn-cache-control", "max-age=10, max-age=20")]),
            Some(20),
        ),
        (
            "cdn_cache_control_lines_combined",
            200,
            h(&[
                ("cdn-cache-control", "public"),
                ("cdn-cache-control", "max-age=20"),
            ]),
            Some(20),
        ),
        (
            "cdn_cache_control_negative_integer_ignored",
            200,
            h(&[
                ("cache-control", "max-age=7"),
                ("cdn-cache-control", "max-age=-5"),
            ]),
            None,
        ),
        (
            "cdn_cache_control_uppercase_key_invalid",
            200,
            h(&[
                ("cache-control", "max-age=7"),
                ("cdn-cache-control", "Max-Age=60"),
            ]),
            Some(7),
        ),
    ];
    let mut failures = Vec::new();
    for (name, status, headers, want) in rows {
        check(
            &mut failures,
            name,
            freshness_lifetime(status, &headers),
            want,
        );
    }
    finish(failures);
}

#[test]
fn storability_rules() {
    use Reason::*;
    let ok: Result<(), NotStorable> = Ok(());
    let no = |r| Err(NotStorable(r));
    let ma = ("cache-control", "max-age=60");
    let auth = ("authorization", "Bearer x");
    type StorableRow = (
        &'static str,
        &'static str,
        u16,
        Headers,
        Headers,
        Result<(), NotStorable>,
    );
    let rows: Vec<StorableRow> = vec![
        (
            "get_with_max_age_is_stored",
            "GET",
            200,
            h(&[]),
            h(&[ma]),
            ok,
        ),
        ("head_is_stored", "HEAD", 200, h(&[]), h(&[ma]), ok),
        (
            "post_is_not_stored",
            "POST",
            200,
            h(&[]),
            h(&[ma]),
            no(Method),
        ),
        (
            "methods_are_case_sensitive",
            "get",
            200,
            h(&[]),
            h(&[ma]),
            no(Method),
        ),
        (
            "interim_status_is_not_stored",
            "GET",
            103,
            h(&[]),
            h(&[ma]),
            no(StatusNotFinal),
        ),
        (
            "status_above_599_is_not_stored",
            "GET",
            600,
            h(&[]),
            h(&[ma]),
            no(StatusNotFinal),
        ),
        (
            "partial_content_is_not_understood",
            "GET",
            206,
            h(&[]),
            h(&[ma]),
            no(StatusNotUnderstood),
        ),
        (
            "not_modified_is_not_stored",
            "GET",
            304,
            h(&[]),
            h(&[ma]),
            no(StatusNotUnderstood),
        ),
        (
            "unknown_status_is_not_understood",
            "GET",
            299,
            h(&[]),
            h(&[ma]),
            no(StatusNotUnderstood),
        ),
        (
            "request_no_store_is_not_stored",
            "GET",
            200,
            h(&[("cache-control", "no-store")]),
            h(&[ma]),
            no(RequestNoStore),
        ),
        (
            "response_no_store_is_not_stored",
            "GET",
            200,
            h(&[]),
            h(&[("cache-control", "max-age=60, no-store")]),
            no(ResponseNoStore),
        ),
        (
            "must_understand_overrides_no_store",
            "GET",
            200,
            h(&[]),
            h(&[("cache-control", "no-store, must-understand, max-age=60")]),
            ok,
        ),
        (
            "private_is_not_stored",
            "GET",
            200,
            h(&[]),
            h(&[("cache-control", "private, max-age=60")]),
            no(Private),
        ),
        (
            "qualified_private_is_not_stored",
            "GET",
            200,
            h(&[]),
            h(&[("cache-control", "private=\"set-cookie\", max-age=60")]),
            no(Private),
        ),
        (
            "authorization_requires_public",
            "GET",
            200,
            h(&[auth]),
            h(&[ma]),
            no(Authorization),
        ),
        (
            "authorization_with_public_is_stored",
            "GET",
            200,
            h(&[auth]),
            h(&[("cache-control", "public, max-age=60")]),
            ok,
        ),
        (
            "authorization_with_s_maxage_is_stored",
            "GET",
            200,
            h(&[auth]),
            h(&[("cache-control", "s-maxage=60")]),
            ok,
        ),
        (
            "authorization_with_must_revalidate_is_stored",
            "GET",
            200,
            h(&[auth]),
            h(&[("cache-control", "max-age=60, must-revalidate")]),
            ok,
        ),
        (
            "vary_star_is_not_stored",
            "GET",
            200,
            h(&[]),
            h(&[ma, ("vary", "accept, *")]),
            no(VaryStar),
        ),
        (
            "no_freshness_no_validator_is_not_stored",
            "GET",
            200,
            h(&[]),
            h(&[("content-type", "text/plain")]),
            no(NoCacheabilitySignal),
        ),
        (
            "validator_with_heuristic_status_is_stored",
            "GET",
            200,
            h(&[]),
            h(&[("etag", "\"a\"")]),
            ok,
        ),
        (
            "last_modified_with_heuristic_status_is_stored",
            "GET",
            404,
            h(&[]),
            h(&[("last-modified", &at(-100))]),
            ok,
        ),
        (
            "validator_alone_insufficient_for_302",
            "GET",
            302,
            h(&[]),
            h(&[("etag", "\"a\"")]),
            no(NoCacheabilitySignal),
        ),
        (
            "expires_makes_storable",
            "GET",
            302,
            h(&[]),
            h(&[("expires", &at(60))]),
            ok,
        ),
        (
            "public_makes_storable",
            "GET",
            302,
            h(&[]),
            h(&[("cache-control", "public")]),
            ok,
        ),
        (
            "cdn_cache_control_overrides_no_store",
            "GET",
            200,
            h(&[]),
            h(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ]),
            ok,
        ),
        (
            "cdn_cache_control_private_blocks",
            "GET",
            200,
            h(&[]),
            h(&[ma, ("cdn-cache-control", "private")]),
            no(Private),
        ),
        (
            "cdn_cache_control_boolean_false_is_absent",
            "GET",
            200,
            h(&[]),
            h(&[("cdn-cache-control", "private=?0, max-age=60")]),
            ok,
        ),
    ];
    let mut failures = Vec::new();
    for (name, method, status, req, resp, want) in rows {
        check(
            &mut failures,
            name,
            storable(method, status, &req, &resp),
            want,
        );
    }
    finish(failures);
}

#[test]
fn current_age_rules() {
    let t = |o: u64| T + o;
    let rows: Vec<(&str, Headers, u64, u64, u64, u64)> = vec![
        // apparent=2, delay=2, corrected_age_value=100+2, initial=102, resident=8
        (
            "age_header_increases_current_age",
            h(&[("date", &at(0)), ("age", "100")]),
            t(0),
            t(2),
            t(10),
            110,
        ),
        // apparent=60, delay=10, cav=10, initial=60, resident=10
        (
            "apparent_age_from_date",
            h(&[("date", &at(0))]),
            t(50),
            t(60),
            t(70),
            70,
        ),
        // apparent=max(0,-99)=0, delay=1, cav=1, resident=4
        (
            "date_in_future_clamped",
            h(&[("date", &at(100))]),
            t(0),
            t(1),
            t(5),
            5,
        ),
        // no Date: date_value=response_time, apparent=0, cav=30+3, resident=7
        (
            "missing_date_uses_response_time",
            h(&[("age", "30")]),
            t(0),
            t(3),
            t(10),
            40,
        ),
        (
            "invalid_age_ignored",
            h(&[("date", &at(0)), ("age", "-5")]),
            t(0),
            t(0),
            t(5),
            5,
        ),
        (
            "first_age_line_used",
            h(&[("date", &at(0)), ("age", "7"), ("age", "1000")]),
            t(0),
            t(0),
            t(0),
            7,
        ),
        // 2^31 + 1
        (
            "huge_age_capped",
            h(&[("date", &at(0)), ("age", "99999999999")]),
            t(0),
            t(0),
            t(1),
            2_147_483_649,
        ),
        // apparent=10, delay=10, resident=max(0,-10)=0
        (
            "now_before_response_time",
            h(&[("date", &at(0))]),
            t(0),
            t(10),
            t(0),
            10,
        ),
        (
            "response_before_request_time",
            h(&[("date", &at(0))]),
            t(10),
            t(0),
            t(0),
            0,
        ),
        (
            "saturates_instead_of_overflowing",
            h(&[("age", "2147483648")]),
            0,
            0,
            u64::MAX,
            u64::MAX,
        ),
    ];
    let mut failures = Vec::new();
    for (name, headers, req_t, resp_t, now, want) in rows {
        check(
            &mut failures,
            name,
            current_age(&headers, req_t, resp_t, now),
            want,
        );
    }
    finish(failures);
}

type EvalRow<'a> = (&'a str, StoredMeta, Vec<(&'a str, &'a str)>, u64, Freshness);

fn stale(age: u64, within_swr: bool, within_sie: bool, within_max_stale: bool) -> Freshness {
    Freshness::Stale {
        age,
        within_swr,
        within_sie,
        within_max_stale,
    }
}

#[test]
fn evaluate_rules() {
    use Freshness::*;
    let meta = |status: u16, extra: &[(&str, &str)]| {
        let mut headers = h(&[("date", &at(0))]);
        headers.extend(h(extra));
        StoredMeta {
            status,
            response_headers: headers,
            request_time: T,
            response_time: T,
        }
    };
    let cc = |v: &'static str| vec![("cache-control", v)];
    let none: Vec<(&str, &str)> = vec![];
    let lm = at(-10_000);
    #[rustfmt::skip]
    let rows: Vec<EvalRow> = vec![
        ("fresh_within_max_age", meta(200, &cc("max-age=100")), none.clone(), 40, Fresh { age: 40, ttl: 60 }),
        ("stale_when_age_equals_lifetime", meta(200, &cc("max-age=100")), none.clone(), 100, stale(100, false, false, false)),
        ("no_cache_response_requires_revalidation", meta(200, &cc("max-age=100, no-cache")), none.clone(), 1, MustRevalidate),
        ("no_cache_beats_stale_if_error", meta(200, &cc("no-cache, stale-if-error=600")), none.clone(), 1, MustRevalidate),
        ("qualified_no_cache_treated_as_unqualified", meta(200, &cc("max-age=100, no-cache=\"set-cookie\"")), none.clone(), 1, MustRevalidate),
        ("request_no_cache_requires_revalidation", meta(200, &cc("max-age=100")), cc("no-cache"), 1, MustRevalidate),
        ("request_max_age_zero_requires_revalidation", meta(200, &cc("max-age=100")), cc("max-age=0"), 1, MustRevalidate),
        ("request_max_age_satisfied", meta(200, &cc("max-age=100")), cc("max-age=50"), 40, Fresh { age: 40, ttl: 60 }),
        // ttl = 100 - 40 = 60 < 70
        ("min_fresh_unsatisfied", meta(200, &cc("max-age=100")), cc("min-fresh=70"), 40, MustRevalidate),
        ("min_fresh_satisfied", meta(200, &cc("max-age=100")), cc("min-fresh=60"), 40, Fresh { age: 40, ttl: 60 }),
        // staleness = 130 - 100 = 30 <= 30
        ("swr_window", meta(200, &cc("max-age=100, stale-while-revalidate=30")), none.clone(), 130, stale(130, true, false, false)),
        ("swr_window_closed", meta(200, &cc("max-age=100, stale-while-revalidate=30")), none.clone(), 131, stale(131, false, false, false)),
        // staleness = 160 - 100 = 60 <= 60
        ("sie_window", meta(200, &cc("max-age=100, stale-if-error=60")), none.clone(), 160, stale(160, false, true, false)),
        ("sie_window_closed", meta(200, &cc("max-age=100, stale-if-error=60")), none.clone(), 161, stale(161, false, false, false)),
        ("request_stale_if_error", meta(200, &cc("max-age=100")), cc("stale-if-error=20"), 120, stale(120, false, true, false)),
        ("sie_larger_of_request_and_response", meta(200, &cc("max-age=100, stale-if-error=10")), cc("stale-if-error=50"), 150, stale(150, false, true, false)),
        ("must_revalidate_forbids_stale", meta(200, &cc("max-age=100, must-revalidate, stale-while-revalidate=60, stale-if-error=60")), cc("max-stale"), 110, MustRevalidate),
        ("must_revalidate_allows_fresh", meta(200, &cc("max-age=100, must-revalidate")), none.clone(), 50, Fresh { age: 50, ttl: 50 }),
        ("proxy_revalidate_forbids_stale", meta(200, &cc("max-age=100, proxy-revalidate, stale-if-error=60")), none.clone(), 110, MustRevalidate),
        // staleness 10 <= 20
        ("max_stale_accepts", meta(200, &cc("max-age=100")), cc("max-stale=20"), 110, stale(110, false, false, true)),
        ("max_stale_exceeded", meta(200, &cc("max-age=100")), cc("max-stale=20"), 121, stale(121, false, false, false)),
        ("bare_max_stale_accepts_any", meta(200, &cc("max-age=100")), cc("max-stale"), 100_000, stale(100_000, false, false, true)),
        // RFC 9111 5.2.2.10 + 4.2.4: s-maxage implies proxy-revalidate in a shared cache.
        ("s_maxage_blocks_client_max_stale", meta(200, &cc("s-maxage=100")), cc("max-stale=20"), 110, MustRevalidate),
        ("s_maxage_forbids_origin_swr", meta(200, &cc("s-maxage=100, stale-while-revalidate=30")), none.clone(), 110, MustRevalidate),
        ("s_maxage_forbids_stale_if_error", meta(200, &cc("s-maxage=100, stale-if-error=60")), none.clone(), 110, MustRevalidate),
        ("request_max_age_disables_swr", meta(200, &cc("max-age=100, stale-while-revalidate=30")), cc("max-age=600"), 110, stale(110, false, false, false)),
        ("request_min_fresh_disables_swr", meta(200, &cc("max-age=100, stale-while-revalidate=30")), cc("min-fresh=1"), 110, stale(110, false, false, false)),
        // lifetime = 10000 / 10 = 1000
        ("heuristic_freshness_used", meta(200, &[("last-modified", &lm)]), none.clone(), 500, Fresh { age: 500, ttl: 500 }),
        ("no_freshness_information_is_stale", meta(200, &[("etag", "\"a\"")]), none.clone(), 0, stale(0, false, false, false)),
        // age = 90 + 5 = 95, ttl = 5
        ("age_header_counts_against_freshness", meta(200, &[("cache-control", "max-age=100"), ("age", "90")]), none.clone(), 5, Fresh { age: 95, ttl: 5 }),
        // CDN-Cache-Control replaces Cache-Control (its no-cache is ignored)
        ("cdn_cache_control_swr", meta(200, &[("cache-control", "no-cache"), ("cdn-cache-control", "max-age=10, stale-while-revalidate=20")]), none.clone(), 25, stale(25, true, false, false)),
    ];
    let mut failures = Vec::new();
    for (name, stored, req, offset, want) in rows {
        check(
            &mut failures,
            name,
            evaluate(&stored, &h(&req), T + offset),
            want,
        );
    }
    finish(failures);
}

#[test]
fn cache_control_parsing_rules() {
    let cc = CacheControl::parse(["max-stale, min-fresh=5, only-if-cached", "x-ext=\"v\""]);
    assert_eq!(cc.max_stale, Some(MAX_STALE_ANY));
    assert_eq!(cc.min_fresh, Some(5));
    assert!(cc.only_if_cached);
    assert_eq!(cc.extensions.len(), 1);
    let rd = response_directives(&h(&[("cdn-cache-control", "max-age=1")]));
    assert_eq!(
        rd.source,
        PolicySource::Targeted("cdn-cache-control".into())
    );
    // hostile input never panics
    for v in [
        "=",
        ",,,",
        "\"",
        "max-age=\"",
        "\u{0}\u{ff}é=é",
        "a=\"\\",
        "max-age==5",
    ] {
        let _ = CacheControl::parse([v]);
        let _ = response_directives(&h(&[("cdn-cache-control", v), ("expires", v), ("date", v)]));
        let _ = freshness_lifetime(200, &h(&[("cache-control", v), ("last-modified", v)]));
    }
}

#[test]
fn stamp_date_rule() {
    let stamped = stamp_date(&h(&[("date", "garbage")]), T);
    assert_eq!(stamped, h(&[("date", "Sun, 06 Nov 1994 08:49:37 GMT")]));
    let kept = stamp_date(&h(&[("date", &at(5))]), T);
    assert_eq!(kept, h(&[("date", &at(5))]));
}

#[test]
fn vary_rules() {
    let rows: Vec<(&str, Vec<&str>, Headers, Option<&str>)> = vec![
        (
            "no_vary_gives_empty_key",
            vec![],
            h(&[("accept", "x")]),
            Some(""),
        ),
        ("vary_star_gives_none", vec!["accept, *"], h(&[]), None),
        (
            "names_case_insensitive_sorted_deduped",
            vec!["Accept-Encoding, ACCEPT", "accept"],
            h(&[("accept", "text/html"), ("accept-encoding", "gzip")]),
            Some("accept:text/html\naccept-encoding:gzip"),
        ),
        (
            "absent_field_differs_from_empty",
            vec!["accept"],
            h(&[]),
            Some("accept"),
        ),
        (
            "empty_field_is_present",
            vec!["accept"],
            h(&[("accept", "")]),
            Some("accept:"),
        ),
        (
            "whitespace_normalised",
            vec!["accept-encoding"],
            h(&[("accept-encoding", "  gzip ,\tbr   x  ")]),
            Some("accept-encoding:gzip, br x"),
        ),
        (
            "repeated_lines_combined",
            vec!["accept-encoding"],
            h(&[("accept-encoding", "gzip"), ("accept-encoding", " br")]),
            Some("accept-encoding:gzip, br"),
        ),
        (
            "request_names_case_insensitive",
            vec!["accept"],
            h(&[("Accept", "a")]),
            Some("accept:a"),
        ),
        (
            "quoted_whitespace_preserved",
            vec!["x-q"],
            h(&[("x-q", "\"a  b\"  c")]),
            Some("x-q:\"a  b\" c"),
        ),
        (
            "hostile_values_escaped",
            vec!["x"],
            h(&[("x", "a\nb:c%é")]),
            Some("x:a%0Ab%3Ac%25%C3%A9"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, vary, req, want) in rows {
        check(
            &mut failures,
            name,
            secondary_key(&vary, &req),
            want.map(str::to_string),
        );
    }
    let same_lines = secondary_key(
        &["accept-encoding"],
        &h(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]),
    );
    let one_line = secondary_key(&["accept-encoding"], &h(&[("accept-encoding", "gzip,br")]));
    check(
        &mut failures,
        "combined_lines_equal_single_line",
        same_lines,
        one_line,
    );

    let stored = h(&[("accept-encoding", "gzip, br"), ("accept", "*/*")]);
    let match_rows: Vec<(&str, Vec<&str>, Headers, bool)> = vec![
        (
            "same_values_match",
            vec!["Accept-Encoding"],
            h(&[("accept-encoding", "gzip,br"), ("user-agent", "z")]),
            true,
        ),
        (
            "different_values_do_not_match",
            vec!["accept-encoding"],
            h(&[("accept-encoding", "gzip")]),
            false,
        ),
        ("absent_matches_absent", vec!["cookie"], h(&[]), true),
        (
            "present_does_not_match_absent",
            vec!["cookie"],
            h(&[("cookie", "a=1")]),
            false,
        ),
        ("star_never_matches", vec!["*"], stored.clone(), false),
        ("no_vary_always_matches", vec![], h(&[]), true),
    ];
    for (name, vary, new_req, want) in match_rows {
        check(&mut failures, name, matches(&vary, &stored, &new_req), want);
    }
    finish(failures);
}

#[test]
fn validation_rules() {
    let mut failures = Vec::new();
    let lm = at(-100);
    check(
        &mut failures,
        "conditional_uses_etag_and_last_modified",
        conditional_headers(&h(&[("etag", " W/\"v1\" "), ("last-modified", &lm)])),
        h(&[("if-none-match", "W/\"v1\""), ("if-modified-since", &lm)]),
    );
    check(
        &mut failures,
        "malformed_validators_not_sent",
        conditional_headers(&h(&[
            ("etag", "v1\r\nx: y"),
            ("last-modified", "yesterday"),
        ])),
        h(&[]),
    );
    check(
        &mut failures,
        "revalidation_request_replaces_client_conditionals",
        revalidation_request(
            &h(&[
                ("accept", "*/*"),
                ("if-none-match", "\"zz\""),
                ("range", "bytes=0-1"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ]),
            &h(&[("etag", "\"v1\"")]),
        ),
        h(&[("accept", "*/*"), ("if-none-match", "\"v1\"")]),
    );
    check(
        &mut failures,
        "strip_unstorable_removes_hop_by_hop",
        strip_unstorable(&h(&[
            ("connection", "close, x-a"),
            ("x-a", "1"),
            ("keep-alive", "5"),
            ("proxy-authenticate", "Basic"),
            ("etag", "\"1\""),
        ])),
        h(&[("etag", "\"1\"")]),
    );
    let stored = h(&[
        ("content-type", "text/html"),
        ("content-length", "10"),
        ("cache-control", "max-age=60"),
        ("etag", "\"a\""),
        ("date", &at(0)),
        ("x-a", "1"),
        ("x-a", "2"),
        ("content-encoding", "br"),
    ]);
    let not_modified = h(&[
        ("cache-control", "max-age=120"),
        ("date", &at(500)),
        ("content-length", "0"),
        ("x-a", "3"),
        ("x-new", "y"),
        ("connection", "x-hop"),
        ("x-hop", "z"),
        ("transfer-encoding", "chunked"),
        ("content-encoding", "gzip"),
        ("etag", "\"a\""),
    ]);
    check(
        &mut failures,
        "merge_304_updates_all_but_framing",
        merge_304(&stored, &not_modified),
        h(&[
            ("content-type", "text/html"),
            ("content-length", "10"),
            ("cache-control", "max-age=120"),
            ("etag", "\"a\""),
            ("date", &at(500)),
            ("x-a", "3"),
            ("content-encoding", "br"),
            ("x-new", "y"),
        ]),
    );
    let select_rows: Vec<(&str, Headers, Headers, bool)> = vec![
        (
            "strong_etag_must_match",
            h(&[("etag", "\"a\"")]),
            h(&[("etag", "\"a\"")]),
            true,
        ),
        (
            "strong_etag_mismatch",
            h(&[("etag", "\"a\"")]),
            h(&[("etag", "\"b\"")]),
            false,
        ),
        (
            "strong_etag_vs_stored_weak",
            h(&[("etag", "W/\"a\"")]),
            h(&[("etag", "\"a\"")]),
            false,
        ),
        (
            "weak_etag_weak_comparison",
            h(&[("etag", "\"a\"")]),
            h(&[("etag", "W/\"a\"")]),
            true,
        ),
        (
            "last_modified_equal",
            h(&[("last-modified", &lm)]),
            h(&[("last-modified", &lm)]),
            true,
        ),
        (
            "last_modified_differs",
            h(&[("last-modified", &lm)]),
            h(&[("last-modified", &at(0))]),
            false,
        ),
        (
            "no_validator_in_304_selects",
            h(&[("etag", "\"a\"")]),
            h(&[("date", &at(0))]),
            true,
        ),
    ];
    for (name, s, n, want) in select_rows {
        check(&mut failures, name, selects_for_update(&s, &n), want);
    }
    let inv_rows: Vec<(&str, &str, u16, bool)> = vec![
        ("post_created_invalidates", "POST", 201, true),
        ("put_invalidates", "PUT", 204, true),
        ("delete_invalidates", "DELETE", 200, true),
        ("patch_redirect_invalidates", "PATCH", 303, true),
        ("unknown_method_invalidates", "PURGE", 200, true),
        ("error_status_does_not_invalidate", "POST", 500, false),
        ("client_error_does_not_invalidate", "DELETE", 404, false),
        ("interim_does_not_invalidate", "POST", 100, false),
        ("safe_method_does_not_invalidate", "GET", 200, false),
        ("options_does_not_invalidate", "OPTIONS", 200, false),
    ];
    for (name, m, s, want) in inv_rows {
        check(&mut failures, name, invalidates(m, s), want);
    }
    check(
        &mut failures,
        "invalidates_same_origin_locations",
        uris_to_invalidate(
            "POST",
            201,
            "https://example.com/a/b?x=1",
            &h(&[
                ("location", "../d?q#frag"),
                ("content-location", "https://EXAMPLE.com:443/x"),
            ]),
        ),
        vec![
            "https://example.com/a/b?x=1".to_string(),
            "https://example.com/d?q".to_string(),
            "https://example.com/x".to_string(),
        ],
    );
    check(
        &mut failures,
        "cross_origin_locations_ignored",
        uris_to_invalidate(
            "PUT",
            200,
            "HTTPS://user@Example.COM:443",
            &h(&[
                ("location", "http://example.com/a"),
                ("content-location", "//evil.com/a"),
            ]),
        ),
        vec!["https://example.com/".to_string()],
    );
    check(
        &mut failures,
        "non_default_port_kept_and_compared",
        uris_to_invalidate(
            "DELETE",
            204,
            "http://[::1]:8080/a/b",
            &h(&[("location", "c"), ("content-location", "http://[::1]/c")]),
        ),
        vec![
            "http://[::1]:8080/a/b".to_string(),
            "http://[::1]:8080/a/c".to_string(),
        ],
    );
    check(
        &mut failures,
        "error_invalidates_nothing",
        uris_to_invalidate("POST", 503, "https://example.com/a", &h(&[])),
        vec![],
    );
    check(
        &mut failures,
        "unparseable_request_uri_only_itself",
        uris_to_invalidate("POST", 200, "not a uri", &h(&[("location", "/x")])),
        vec!["not a uri".to_string()],
    );
    finish(failures);
}

#[test]
fn cache_status_rules() {
    let rows: Vec<(&str, CacheStatus, &str)> = vec![
        (
            "hit_with_ttl",
            CacheStatus::new().hit().ttl(376),
            "portico;hit;ttl=376",
        ),
        (
            "uri_miss_stored",
            CacheStatus::new().fwd(Fwd::UriMiss).stored(),
            "portico;fwd=uri-miss;stored",
        ),
        (
            "vary_miss",
            CacheStatus::new().fwd(Fwd::VaryMiss).fwd_status(200),
            "portico;fwd=vary-miss;fwd-status=200",
        ),
        (
            "stale_revalidated_negative_ttl",
            CacheStatus::new().fwd(Fwd::Stale).fwd_status(304).ttl(-20),
            "portico;fwd=stale;fwd-status=304;ttl=-20",
        ),
        (
            "collapsed_miss",
            CacheStatus::new().collapsed().fwd(Fwd::Miss),
            "portico;fwd=miss;collapsed",
        ),
        (
            "request_and_bypass",
            CacheStatus::new().fwd(Fwd::Request),
            "portico;fwd=request",
        ),
        (
            "detail_is_escaped_sf_string",
            CacheStatus::new().fwd(Fwd::Bypass).detail("a \"b\" \\ é\n"),
            "portico;fwd=bypass;detail=\"a \\\"b\\\" \\\\ ??\"",
        ),
        (
            "key_is_sf_string",
            CacheStatus::new().hit().key("/a b"),
            "portico;hit;key=\"/a b\"",
        ),
        (
            "non_token_name_is_string",
            CacheStatus::named("my cache").hit(),
            "\"my cache\";hit",
        ),
        (
            "ttl_clamped_to_sf_integer",
            CacheStatus::new().ttl(i64::MIN),
            "portico;ttl=-999999999999999",
        ),
        (
            "all_params_in_rfc_order",
            CacheStatus::new()
                .detail("d")
                .key("k")
                .collapsed()
                .stored()
                .ttl(1)
                .fwd_status(503)
                .fwd(Fwd::Miss)
                .hit(),
            "portico;hit;fwd=miss;fwd-status=503;ttl=1;stored;collapsed;key=\"k\";detail=\"d\"",
        ),
    ];
    let mut failures = Vec::new();
    for (name, cs, want) in rows {
        check(&mut failures, name, cs.to_field_value(), want.to_string());
    }
    let me = CacheStatus::new().hit();
    check(
        &mut failures,
        "append_after_upstream",
        append_to(Some("up;fwd=miss"), &me),
        "up;fwd=miss, portico;hit".to_string(),
    );
    check(
        &mut failures,
        "append_without_upstream",
        append_to(Some("  "), &me),
        "portico;hit".to_string(),
    );
    finish(failures);
}

enum Step {
    Before(Permit),
    Result(bool),
}

#[test]
fn breaker_rules() {
    use BreakerState::*;
    let cfg = BreakerConfig {
        failure_threshold: 3,
        window_secs: 60,
        open_secs: 30,
        probe_timeout_secs: 10,
    };
    let closed = |f, w| Closed {
        failures_in_window: f,
        window_start: w,
    };
    let rows: Vec<(&str, BreakerState, Step, u64, BreakerState)> = vec![
        (
            "closed_allows",
            closed(2, 100),
            Step::Before(Permit::Allow),
            110,
            closed(2, 100),
        ),
        (
            "first_failure_starts_window",
            closed(0, 0),
            Step::Result(false),
            100,
            closed(1, 100),
        ),
        (
            "failure_within_window_counts",
            closed(1, 100),
            Step::Result(false),
            110,
            closed(2, 100),
        ),
        (
            "threshold_within_window_opens",
            closed(2, 100),
            Step::Result(false),
            120,
            Open { until: 150 },
        ),
        (
            "failure_after_window_restarts_count",
            closed(2, 100),
            Step::Result(false),
            160,
            closed(1, 160),
        ),
        (
            "success_within_window_keeps_count",
            closed(2, 100),
            Step::Result(true),
            110,
            closed(2, 100),
        ),
        (
            "success_after_window_clears",
            closed(2, 100),
            Step::Result(true),
            170,
            closed(0, 170),
        ),
        (
            "open_rejects_with_retry_after",
            Open { until: 150 },
            Step::Before(Permit::Reject { retry_after: 10 }),
            140,
            Open { until: 150 },
        ),
        (
            "open_expires_into_probe",
            Open { until: 150 },
            Step::Before(Permit::Probe),
            150,
            HalfOpen {
                probe_started_at: 150,
            },
        ),
        (
            "half_open_single_probe",
            HalfOpen {
                probe_started_at: 150,
            },
            Step::Before(Permit::Reject { retry_after: 5 }),
            155,
            HalfOpen {
                probe_started_at: 150,
            },
        ),
        (
            "probe_timeout_grants_new_probe",
            HalfOpen {
                probe_started_at: 150,
            },
            Step::Before(Permit::Probe),
            160,
            HalfOpen {
                probe_started_at: 160,
            },
        ),
        (
            "probe_success_closes",
            HalfOpen {
                probe_started_at: 150,
            },
            Step::Result(true),
            152,
            closed(0, 152),
        ),
        (
            "probe_failure_reopens",
            HalfOpen {
                probe_started_at: 150,
            },
            Step::Result(false),
            152,
            Open { until: 182 },
        ),
        (
            "results_while_open_ignored",
            Open { until: 150 },
            Step::Result(true),
            140,
            Open { until: 150 },
        ),
        (
            "clock_backwards_in_half_open",
            HalfOpen {
                probe_started_at: 150,
            },
            Step::Before(Permit::Reject { retry_after: 10 }),
            100,
            HalfOpen {
                probe_started_at: 150,
            },
        ),
        (
            "open_until_saturates",
            HalfOpen {
                probe_started_at: 1,
            },
            Step::Result(false),
            u64::MAX,
            Open { until: u64::MAX },
        ),
    ];
    let mut failures = Vec::new();
    for (name, state, step, now, want_state) in rows {
        match step {
            Step::Before(want_permit) => {
                let (permit, next) = before_request(&cfg, state, now);
                check(
                    &mut failures,
                    name,
                    (permit, next),
                    (want_permit, want_state),
                );
            }
            Step::Result(success) => check(
                &mut failures,
                name,
                on_result(&cfg, state, success, now),
                want_state,
            ),
        }
    }
    let zero = BreakerConfig {
        failure_threshold: 0,
        window_secs: 0,
        open_secs: 0,
        probe_timeout_secs: 0,
    };
    check(
        &mut failures,
        "zero_threshold_acts_as_one",
        on_result(&zero, closed(0, 0), false, 5),
        Open { until: 5 },
    );
    finish(failures);
}

#[test]
fn breaker_serialisation_rules() {
    let states = [
        BreakerState::Closed {
            failures_in_window: 2,
            window_start: 100,
        },
        BreakerState::Open { until: 1 },
        BreakerState::HalfOpen {
            probe_started_at: u64::MAX,
        },
    ];
    for s in states {
        assert_eq!(BreakerState::from_bytes(&s.to_bytes()), Ok(s));
        assert_eq!(BreakerState::from_json(&s.to_json()), Ok(s));
    }
    assert_eq!(states[1].to_bytes(), vec![1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        states[0].to_bytes(),
        vec![1, 0, 2, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        states[0].to_json(),
        r#"{"state":"closed","failures_in_window":2,"window_start":100}"#
    );
    assert_eq!(
        states[2].to_json(),
        r#"{"state":"half_open","probe_started_at":18446744073709551615}"#
    );
    assert_eq!(
        BreakerState::from_json(r#" { "until" : 7, "state" : "open" } "#),
        Ok(BreakerState::Open { until: 7 })
    );
    for bad in [
        &[][..],
        &[2, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        &[1, 3, 0, 0, 0, 0, 0, 0, 0, 0],
        &[1, 1, 0],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        assert!(BreakerState::from_bytes(bad).is_err(), "{bad:?}");
    }
    for bad in [
        "",
        "{}",
        r#"{"state":"open","until":-1}"#,
        r#"{"state":"closed","failures_in_window":4294967296,"window_start":0}"#,
        r#"{"state":"ajar"}"#,
        "[1]",
    ] {
        assert!(BreakerState::from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn backoff_rules() {
    let rows: Vec<(&str, u32, u64, u64, u32, u64)> = vec![
        ("zero_rand_gives_zero", 0, 100, 10_000, 0, 0),
        // (100 + 1) * (2^32 - 1) >> 32 = 100
        (
            "max_rand_reaches_base_on_first_retry",
            0,
            100,
            10_000,
            u32::MAX,
            100,
        ),
        // ceiling 100 * 2^3 = 800
        ("exponential_ceiling", 3, 100, 10_000, u32::MAX, 800),
        // 801 * 2^31 >> 32 = 400
        ("half_rand_is_half_ceiling", 3, 100, 10_000, 1 << 31, 400),
        // 100 * 2^10 = 102400 > cap
        ("capped", 10, 100, 10_000, u32::MAX, 10_000),
        ("huge_attempt_capped", 1000, 100, 10_000, u32::MAX, 10_000),
        (
            "multiplication_overflow_capped",
            63,
            3,
            10_000,
            u32::MAX,
            10_000,
        ),
        // 2^64 * (2^32 - 1) >> 32 = 2^64 - 2^32
        (
            "uncapped_saturates_without_overflow",
            100,
            1,
            u64::MAX,
            u32::MAX,
            18_446_744_069_414_584_320,
        ),
        ("zero_base", 5, 0, 10_000, u32::MAX, 0),
    ];
    let mut failures = Vec::new();
    for (name, attempt, base, cap, rand, want) in rows {
        check(
            &mut failures,
            name,
            backoff::delay(attempt, base, cap, rand),
            want,
        );
    }
    let methods: Vec<(&str, bool)> = vec![
        ("GET", true),
        ("HEAD", true),
        ("OPTIONS", true),
        ("TRACE", true),
        ("PUT", true),
        ("DELETE", true),
        ("POST", false),
        ("PATCH", false),
        ("CONNECT", false),
        ("get", false),
        ("PURGE", false),
    ];
    for (m, want) in methods {
        check(
            &mut failures,
            &format!("retryable_{m}"),
            backoff::retryable(m),
            want,
        );
    }
    finish(failures);
}

/// Deterministic xorshift fuzzing: every public entry point on hostile text.
#[test]
fn hostile_inputs_never_panic() {
    const ALPHABET: &[char] = &[
        'a', 'Z', '=', '"', '\\', ',', ' ', '\t', '-', '0', '1', '9', '*', ';', '(', ')', '?', ':',
        '/', '%', '.', '#', '@', '[', ']', 'W', 'é', '\n', '\r', '\u{0}', '\u{7f}', '😀',
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let cfg = BreakerConfig {
        failure_threshold: 2,
        window_secs: 5,
        open_secs: 5,
        probe_timeout_secs: 5,
    };
    for i in 0..20_000u32 {
        let len = (next() % 48) as usize;
        let s: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let times = [0, 1, T, u64::MAX - 1, u64::MAX];
        let (a, b, c) = (
            times[(next() % 5) as usize],
            times[(next() % 5) as usize],
            times[(next() % 5) as usize],
        );
        let resp = h(&[
            ("cache-control", &s),
            ("cdn-cache-control", &s),
            ("expires", &s),
            ("date", &s),
            ("last-modified", &s),
            ("age", &s),
            ("etag", &s),
            ("vary", &s),
            ("connection", &s),
            ("location", &s),
            ("content-location", &s),
        ]);
        let req = h(&[("cache-control", &s), ("authorization", &s), (&s, &s)]);
        let status = (next() % 700) as u16;
        let _ = storable(&s, status, &req, &resp);
        let _ = current_age(&resp, a, b, c);
        let stored = StoredMeta {
            status,
            response_headers: resp.clone(),
            request_time: a,
            response_time: b,
        };
        let _ = evaluate(&stored, &req, c);
        let _ = stamp_date(&resp, a);
        let _ = secondary_key(&[s.as_str()], &req);
        let _ = matches(&[s.as_str()], &req, &resp);
        let _ = conditional_headers(&resp);
        let _ = revalidation_request(&req, &resp);
        let _ = merge_304(&resp, &req);
        let _ = selects_for_update(&resp, &req);
        // Hop-by-hop fields never reach the store.
        let kept = strip_unstorable(&resp);
        assert!(
            kept.iter()
                .all(|(n, _)| !n.eq_ignore_ascii_case("connection")),
            "{kept:?}"
        );
        // Invalidation never reaches beyond the request's own origin.
        for uri in uris_to_invalidate("POST", 200, "https://a.example/x/y?q", &resp) {
            assert!(uri.starts_with("https://a.example/"), "{uri} from {s:?}");
        }
        let _ = uris_to_invalidate("POST", 200, &s, &resp);
        // A Cache-Status value is always a single header line.
        let field = CacheStatus::named(&s).detail(&s).key(&s).to_field_value();
        assert!(!field.contains(['\r', '\n', '\0']), "{field:?}");
        let _ = BreakerState::from_bytes(s.as_bytes());
        let _ = BreakerState::from_json(&s);
        let st = BreakerState::HalfOpen {
            probe_started_at: a,
        };
        let _ = before_request(&cfg, st, b);
        let _ = on_result(&cfg, st, i % 2 == 0, c);
        // A retry never waits longer than the cap.
        let cap = b;
        let delay = backoff::delay(i, a, cap, next() as u32);
        assert!(delay <= cap, "delay {delay} over cap {cap}");
        assert!(delay <= backoff::ceiling(i, a, cap));
        // A lifetime is at most the largest delta-seconds (2^31 s).
        if let Some(lifetime) = freshness_lifetime(status, &resp) {
            assert!(lifetime <= 1 << 31, "{lifetime} from {s:?}");
        }
    }
}
