//! Property tests for the header parsers behind the shared cache:
//! `Cache-Control` / `CDN-Cache-Control`, `Vary`, the freshness and
//! validation fields, and the stored breaker state. Origins and clients
//! both write these headers, so each parser must take anything without
//! panicking, and what it extracts must keep the documented bounds.

use portico_edgecache_logic::breaker::BreakerState;
use portico_edgecache_logic::cache_control::{
    self, CacheControl, DELTA_SECONDS_CAP, MAX_STALE_ANY, PolicySource,
};
use portico_edgecache_logic::freshness::{self, Freshness, HEURISTIC_CAP, StoredMeta};
use portico_edgecache_logic::validation;
use portico_edgecache_logic::vary;
use portico_edgecache_logic::{format_http_date, parse_http_date};
use proptest::prelude::*;

type Headers = Vec<(String, String)>;

/// Sun, 06 Nov 1994 08:49:37 GMT.
const T: u64 = 784_111_777;

const DIRECTIVES: &[&str] = &[
    "max-age",
    "s-maxage",
    "max-stale",
    "min-fresh",
    "stale-while-revalidate",
    "stale-if-error",
    "no-cache",
    "no-store",
    "no-transform",
    "only-if-cached",
    "must-revalidate",
    "proxy-revalidate",
    "must-understand",
    "private",
    "public",
    "immutable",
    "ext",
];

/// Arguments as origins write them: plain and quoted numbers, numbers too
/// large for any integer, signs, quoted strings with commas and escapes.
fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[0-9]{1,6}",
        1 => "[0-9]{11,40}",
        1 => "\"[0-9]{1,6}\"",
        1 => "-[0-9]{1,3}|\\+[0-9]{1,3}|[0-9]\\.[0-9]|",
        1 => "\"[a-zA-Z, \\\\\"-]{0,12}\"?",
        1 => "[a-z?:@()*;=]{1,6}",
    ]
}

/// Numeric arguments only, plain or quoted, valid or not: nothing that
/// could open a quoted-string and swallow the directives after it.
fn number_argument() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[0-9]{1,6}",
        1 => "[0-9]{11,40}",
        1 => "\"[0-9]{1,6}\"",
        1 => "-[0-9]{1,3}|\\+[0-9]{1,3}|[0-9]\\.[0-9]|[a-z]{1,3}|",
    ]
}

fn directive() -> impl Strategy<Value = String> {
    (
        prop::sample::select(DIRECTIVES),
        any::<bool>(),
        proptest::option::of(argument()),
        "[ \t]{0,2}",
    )
        .prop_map(|(name, upper, arg, ows)| {
            let name = if upper {
                name.to_ascii_uppercase()
            } else {
                name.to_owned()
            };
            match arg {
                Some(a) => format!("{ows}{name}{ows}={a}{ows}"),
                None => format!("{ows}{name}{ows}"),
            }
        })
}

/// `Cache-Control` or targeted-field lines from the grammar, and garbage.
fn cache_control_line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::collection::vec(directive(), 0..6).prop_map(|d| d.join(",")),
        1 => "[a-z0-9=,;\"?:()@%* -]{0,30}",
        1 => any::<String>(),
    ]
}

/// Targeted fields are Structured Field Dictionaries: members built from
/// every RFC 8941 / RFC 9651 bare-item type, with parameters, inner lists
/// and duplicates, plus the near misses the dictionary parser must refuse.
fn targeted_line() -> impl Strategy<Value = String> {
    let bare = prop_oneof![
        "-?[0-9]{1,16}",
        "[0-9]{1,13}\\.[0-9]{0,4}",
        "\\?[01]|\\?2",
        "[a-zA-Z*][a-zA-Z0-9:/!#$%&'*+.^_`|~-]{0,6}",
        "\"([ !#-\\[\\]-~]|\\\\[\"\\\\n]){0,6}\"?",
        ":[A-Za-z0-9+/=]{0,8}:?",
        "@-?[0-9]{1,10}",
        "%\"([ -!#-$&-~]|%[0-9a-fA-F]{2}){0,4}\"",
    ];
    let params = "(;[a-z*][a-z0-9_.*-]{0,4}(=[0-9a-z]{1,3})?){0,2}";
    let member = (
        prop::sample::select(DIRECTIVES).prop_map(str::to_owned),
        prop_oneof![
            2 => Just(String::new()),
            4 => bare.clone().prop_map(|b| format!("={b}")),
            1 => proptest::collection::vec(bare, 0..3).prop_map(|items| format!("=({})", items.join(" "))),
        ],
        params,
    )
        .prop_map(|(key, value, params)| format!("{key}{value}{params}"));
    proptest::collection::vec(
        (
            member,
            prop::sample::select(&[",", ", ", " ,", ",\t", ""][..]),
        ),
        0..5,
    )
    .prop_map(|members| {
        members
            .into_iter()
            .enumerate()
            .map(|(i, (m, sep))| if i == 0 { m } else { format!("{sep}{m}") })
            .collect()
    })
}

fn header_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "cache-control",
        "cdn-cache-control",
        "Cache-Control",
        "date",
        "expires",
        "age",
        "last-modified",
        "etag",
        "vary",
        "authorization",
        "connection",
        "content-length",
        "content-encoding",
        "location",
        "content-location",
        "x-other",
    ])
    .prop_map(str::to_owned)
}

fn http_date() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0i64..200_000).prop_map(|d| format_http_date(T.saturating_add_signed(d - 100_000))),
        1 => Just("0".to_owned()),
        1 => Just("Sunday, 06-Nov-94 08:49:37 GMT".to_owned()),
        1 => "[ -~]{0,30}",
    ]
}

fn header_value(name: &str) -> BoxedStrategy<String> {
    match name.to_ascii_lowercase().as_str() {
        "cache-control" | "connection" => cache_control_line().boxed(),
        "cdn-cache-control" => prop_oneof![3 => targeted_line(), 1 => cache_control_line()].boxed(),
        "date" | "expires" | "last-modified" => http_date().boxed(),
        "age" => argument().boxed(),
        "etag" => "(W/)?\"[!#-~]{0,6}\"|[ -~]{0,8}".boxed(),
        "vary" => "(\\*|[a-zA-Z-]{1,12})([ \t]*,[ \t]*[a-zA-Z-]{1,12}){0,3}".boxed(),
        "location" | "content-location" => uri().boxed(),
        _ => "\\PC{0,12}".boxed(),
    }
}

fn headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(
        header_name().prop_flat_map(|n| (Just(n.clone()), header_value(&n))),
        0..8,
    )
}

fn uri() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            prop::sample::select(vec!["http://", "https://", "HTTP://", "ftp://", "//", "", "1a:"]),
            prop::sample::select(vec!["a.example", "A.Example:80", "a.example:443", "u@a.example", "[::1]:8080", "[::1", ":99999", ""]),
            "(/[a-z.]{0,4}){0,4}",
            "(\\?[a-z=&]{0,6})?(#[a-z]{0,3})?",
        )
            .prop_map(|(s, h, p, q)| format!("{s}{h}{p}{q}")),
        2 => "(\\.\\./|\\./|/|//)?[a-z.]{0,3}(/[a-z.]{0,3}){0,3}(\\?[a-z]{0,2})?",
        1 => "[a-z./?#:@\\[\\] %-]{0,24}",
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn cache_control_values_stay_within_delta_seconds_bounds(
        lines in proptest::collection::vec(cache_control_line(), 0..3),
    ) {
        let cc = CacheControl::parse(lines.iter().map(String::as_str));
        for value in [cc.max_age, cc.s_maxage, cc.min_fresh, cc.stale_while_revalidate, cc.stale_if_error]
            .into_iter()
            .flatten()
        {
            prop_assert!(value <= DELTA_SECONDS_CAP);
        }
        prop_assert!(cc.max_stale.is_none_or(|v| v <= DELTA_SECONDS_CAP || v == MAX_STALE_ANY));
        for d in cache_control::parse_directives(lines.iter().map(String::as_str)) {
            prop_assert!(!d.name.is_empty());
            prop_assert_eq!(d.name.to_ascii_lowercase(), d.name);
        }
    }

    #[test]
    fn the_first_valid_max_age_wins(
        args in proptest::collection::vec(number_argument(), 1..5),
        upper in any::<bool>(),
    ) {
        let name = if upper { "MAX-AGE" } else { "max-age" };
        let line = args.iter().map(|a| format!("{name}={a}")).collect::<Vec<_>>().join(", ");
        let expected = args.iter().find_map(|a| {
            let a = a.strip_prefix('"').and_then(|a| a.strip_suffix('"')).unwrap_or(a);
            cache_control::parse_delta_seconds(a)
        });
        prop_assert_eq!(CacheControl::parse([line.as_str()]).max_age, expected);
    }

    #[test]
    fn delta_seconds_are_digits_capped_at_2_pow_31(text in "[0-9]{1,30}|[-+ 0-9a.]{0,6}|\\PC{0,6}") {
        let parsed = cache_control::parse_delta_seconds(&text);
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let exact = text.parse::<u128>().unwrap_or(u128::MAX);
            prop_assert_eq!(parsed, Some(exact.min(u128::from(DELTA_SECONDS_CAP)) as u64));
        } else {
            prop_assert_eq!(parsed, None);
        }
    }

    #[test]
    fn targeted_fields_never_panic_and_a_valid_one_takes_over(
        targeted in proptest::collection::vec(prop_oneof![3 => targeted_line(), 1 => cache_control_line()], 1..3),
        plain in cache_control_line(),
    ) {
        let parsed = cache_control::parse_targeted(targeted.iter().map(String::as_str));
        let mut headers: Headers = targeted.iter().map(|v| ("cdn-cache-control".to_owned(), v.clone())).collect();
        headers.push(("cache-control".to_owned(), plain));
        let rd = cache_control::response_directives(&headers);
        let takes_over = parsed.is_some_and(|ds| !ds.is_empty());
        prop_assert_eq!(rd.source == PolicySource::CacheControl, !takes_over);
        prop_assert_eq!(rd.expires_applies(), !takes_over);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn freshness_never_panics_and_lifetimes_are_bounded(
        status in prop_oneof![prop::sample::select(vec![200u16, 203, 204, 206, 301, 304, 404, 500]), any::<u16>()],
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "get"]),
        request in headers(),
        response in headers(),
        request_time in prop_oneof![T - 1000..T + 1000, any::<u64>()],
        response_time in prop_oneof![T - 1000..T + 1000, any::<u64>()],
        now in prop_oneof![T - 1000..T + 100_000, any::<u64>()],
    ) {
        let lifetime = freshness::freshness_lifetime(status, &response);
        prop_assert!(lifetime.is_none_or(|l| l <= DELTA_SECONDS_CAP.max(HEURISTIC_CAP)));
        let _ = freshness::storable(method, status, &request, &response);
        let age = freshness::current_age(&response, request_time, response_time, now);
        // Age only grows while the response sits in the cache.
        prop_assert!(freshness::current_age(&response, request_time, response_time, now.saturating_add(1)) >= age);
        let stamped = freshness::stamp_date(&response, response_time);
        prop_assert!(stamped.iter().any(|(n, v)| n.eq_ignore_ascii_case("date") && parse_http_date(v).is_some()));
        let stored = StoredMeta { status, response_headers: response, request_time, response_time };
        match freshness::evaluate(&stored, &request, now) {
            Freshness::Fresh { ttl, .. } => prop_assert!(ttl > 0 && ttl <= DELTA_SECONDS_CAP),
            Freshness::Stale { .. } | Freshness::MustRevalidate => {}
        }
    }

    #[test]
    fn no_store_responses_are_never_stored(
        request in headers(),
        response in headers(),
        status in prop::sample::select(vec![200u16, 301, 404]),
    ) {
        let mut response = response;
        response.retain(|(n, _)| !n.eq_ignore_ascii_case("cdn-cache-control"));
        response.push(("cache-control".to_owned(), "no-store".to_owned()));
        let cc = cache_control::response_directives(&response).cc;
        if !cc.must_understand {
            prop_assert!(freshness::storable("GET", status, &request, &response).is_err());
        }
    }
}

// ---------------------------------------------------------------------------
// Vary
// ---------------------------------------------------------------------------

/// Request headers for the fields a `Vary` names, with values that differ
/// only in ways normalisation should or should not erase (spaces around
/// commas, case, quoted text, controls and non-ASCII that must be escaped).
fn request_values() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(
        (
            prop::sample::select(vec!["accept", "Accept", "accept-encoding", "x-a", "x-b"]),
            prop_oneof![
                "[a-z]{0,2}([ \t]{0,2},[ \t]{0,2}[a-z]{0,2}){0,2}",
                "\"[a-z ,]{0,4}\"",
                "[:%\n\u{7f}é]{0,3}",
            ],
        )
            .prop_map(|(n, v)| (n.to_owned(), v)),
        0..5,
    )
}

fn vary_lines() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        proptest::collection::vec(
            prop::sample::select(vec!["accept", "Accept-Encoding", "x-a", "X-B", "*"]),
            0..4,
        )
        .prop_map(|names| names.join(" , ")),
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn secondary_keys_are_equal_exactly_when_requests_match(
        vary_lines in vary_lines(),
        first in request_values(),
        second in request_values(),
    ) {
        let a = vary::secondary_key(&vary_lines, &first);
        let b = vary::secondary_key(&vary_lines, &second);
        let matches = vary::matches(&vary_lines, &first, &second);
        match (a, b) {
            (Some(a), Some(b)) => prop_assert_eq!(a == b, matches, "{:?} vs {:?}", first, second),
            (None, None) => prop_assert!(!matches),
            _ => prop_assert!(false, "Vary: * must give no key for every request"),
        }
    }

    #[test]
    fn secondary_keys_ignore_the_order_and_case_of_vary_names(
        vary_lines in vary_lines(),
        request in request_values(),
    ) {
        let names: Vec<String> = vary_lines.iter().flat_map(|l| l.split(',').map(|n| n.trim().to_ascii_uppercase())).collect();
        let reversed: Vec<String> = vec![names.into_iter().rev().collect::<Vec<_>>().join(",")];
        prop_assert_eq!(vary::secondary_key(&vary_lines, &request), vary::secondary_key(&reversed, &request));
    }

    #[test]
    fn secondary_keys_contain_no_raw_controls(
        vary_lines in prop_oneof![vary_lines(), proptest::collection::vec(any::<String>(), 0..2)],
        request in prop_oneof![request_values(), headers()],
    ) {
        if let Some(key) = vary::secondary_key(&vary_lines, &request) {
            prop_assert!(!key.chars().any(|c| c != '\n' && (c.is_control() || !c.is_ascii())), "{:?}", key);
        }
    }

    #[test]
    fn normalising_a_value_twice_changes_nothing(value in "[a-z \t,\"\\\\]{0,16}|\\PC{0,10}") {
        let once = vary::normalized_value(&[("x".to_owned(), value)], "x").unwrap();
        let twice = vary::normalized_value(&[("x".to_owned(), once.clone())], "x").unwrap();
        prop_assert_eq!(twice, once);
    }
}

// ---------------------------------------------------------------------------
// Validation and invalidation
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_etag_accepts_only_quoted_tags(value in "[ \t]?(W/|w/)?\"?[!#-~\"é ]{0,6}\"?[ \t]?|\\PC{0,8}") {
        if let Some((weak, tag)) = validation::parse_etag(&value) {
            prop_assert!(tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"'));
            prop_assert_eq!(weak, value.trim_matches([' ', '\t']).starts_with("W/"));
        }
    }

    #[test]
    fn merging_a_304_never_takes_framing_fields_from_it(stored in headers(), not_modified in headers()) {
        let _ = validation::selects_for_update(&stored, &not_modified);
        let merged = validation::merge_304(&stored, &not_modified);
        let lines = |h: &[(String, String)], name: &str| -> Vec<String> {
            h.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
        };
        for name in ["content-length", "content-encoding", "connection"] {
            prop_assert_eq!(lines(&merged, name), lines(&stored, name));
        }
        let revalidation = validation::revalidation_request(&not_modified, &stored);
        for (name, _) in &revalidation {
            prop_assert!(!name.eq_ignore_ascii_case("range") && !name.eq_ignore_ascii_case("if-match"));
        }
    }

    #[test]
    fn invalidation_stays_on_the_request_origin(
        method in prop::sample::select(vec!["POST", "PUT", "DELETE", "PATCH", "GET"]),
        status in prop::sample::select(vec![200u16, 204, 303, 404]),
        request_uri in uri(),
        location in proptest::option::of(uri()),
        content_location in proptest::option::of(uri()),
    ) {
        let mut response: Headers = Vec::new();
        if let Some(l) = location {
            response.push(("location".to_owned(), l));
        }
        if let Some(l) = content_location {
            response.push(("content-location".to_owned(), l));
        }
        let uris = validation::uris_to_invalidate(method, status, &request_uri, &response);
        if !validation::invalidates(method, status) {
            prop_assert!(uris.is_empty());
        } else if let Some((first, rest)) = uris.split_first() {
            // The first entry is the request URI; every other one shares its
            // scheme and authority.
            if let Some(authority_end) = first.find("://").and_then(|i| first[i + 3..].find('/').map(|j| i + 3 + j)) {
                let origin = &first[..authority_end];
                for other in rest {
                    prop_assert!(other.starts_with(origin) && other[origin.len()..].starts_with('/'), "{:?} vs {:?}", other, first);
                }
            } else {
                prop_assert!(rest.is_empty(), "{:?}", uris);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn breaker_state_round_trips_and_decoding_never_panics(
        tag in 0u8..3,
        a in any::<u64>(),
        failures in any::<u32>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..20),
        text in "\\{\"state\":\"[a-z_]{0,10}\"(,\"[a-z_]{0,18}\":[0-9-]{0,21})*\\}|\\PC{0,20}",
    ) {
        let state = match tag {
            0 => BreakerState::Closed { failures_in_window: failures, window_start: a },
            1 => BreakerState::Open { until: a },
            _ => BreakerState::HalfOpen { probe_started_at: a },
        };
        prop_assert_eq!(BreakerState::from_bytes(&state.to_bytes()), Ok(state));
        prop_assert_eq!(BreakerState::from_json(&state.to_json()), Ok(state));
        let _ = BreakerState::from_bytes(&garbage);
        let _ = BreakerState::from_json(&text);
    }
}
