//! Property tests for the rate-limit configuration parsers: policies in
//! their compact and JSON forms, windows, and routes. Configuration comes
//! from operators, but a typo must be an error message, never a panic or a
//! policy outside the bounds the GCRA relies on.

use portico_ratelimit_logic::policy::{
    self, DEFAULT_POLICY_NAME, MAX_LIMIT, MAX_NAME_LEN, MAX_WINDOW_MS, Policy, PolicySet,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z0-9_-]{1,12}",
        1 => "[a-z0-9_-]{60,70}",
        1 => "[A-Za-z0-9_. =/-]{0,6}",
    ]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (1u32..=1_000).prop_map(|n| n.to_string()),
        1 => (MAX_LIMIT - 2..=MAX_LIMIT + 2).prop_map(|n| n.to_string()),
        1 => "0|00|[0-9]{20,25}|-1|\\+5|1\\.5| 7 |",
    ]
}

fn window() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (1u64..100_000, prop::sample::select(vec!["", "ms", "s", "m", "h"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        1 => "0s|8784h|8785h|527040m|[0-9]{20}ms|[0-9]{1,3}(d|S|MS| s|sec)|s|",
    ]
}

/// Compact policy lists: `NAME=LIMIT/WINDOW[/BURST]` entries with blanks
/// and empty entries, and near misses (missing parts, extra slashes).
fn compact() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        8 => (name(), count(), window(), proptest::option::of(count()))
            .prop_map(|(n, l, w, b)| match b {
                Some(b) => format!("{n}={l}/{w}/{b}"),
                None => format!("{n}={l}/{w}"),
            }),
        1 => "[a-z=/0-9]{0,10}",
        1 => Just(String::new()),
    ];
    proptest::collection::vec((entry, "[ \t]{0,2}"), 0..5).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(e, ows)| format!("{ows}{e}{ows}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// JSON policy objects: `limit` and `window` usually present and usually
/// valid, `burst` sometimes, and now and then a mistyped or unknown field;
/// names may repeat.
fn json() -> impl Strategy<Value = String> {
    let bad = prop::sample::select(vec![
        "null",
        "-1",
        "1.5",
        "18446744073709551616",
        "\"7\"",
        "[]",
    ])
    .prop_map(str::to_owned);
    let number = prop_oneof![
        4 => count().prop_filter("JSON number", |c| c.parse::<u64>().is_ok()),
        1 => bad.clone(),
    ];
    let window = prop_oneof![
        3 => window().prop_map(|w| format!("{w:?}")),
        2 => (1u64..100_000).prop_map(|n| n.to_string()),
        1 => bad,
    ];
    let body = (
        proptest::option::weighted(0.9, number.clone()),
        proptest::option::weighted(0.9, window),
        proptest::option::weighted(0.3, prop_oneof![number, Just("null".to_owned())]),
        proptest::option::weighted(0.1, prop::sample::select(vec!["Limit", "extra"])),
    )
        .prop_map(|(limit, window, burst, extra)| {
            let fields: Vec<String> = [
                limit.map(|v| format!("\"limit\":{v}")),
                window.map(|v| format!("\"window\":{v}")),
                burst.map(|v| format!("\"burst\":{v}")),
                extra.map(|k| format!("\"{k}\":1")),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("{{{}}}", fields.join(","))
        });
    let policy = (
        name(),
        prop_oneof![8 => body, 1 => Just("[]".to_owned()), 1 => Just("7".to_owned())],
    )
        .prop_map(|(n, body)| format!("{n:?}:{body}"));
    prop_oneof![
        8 => proptest::collection::vec(policy, 0..5).prop_map(|p| format!("{{{}}}", p.join(","))),
        1 => "[\\[{}\":,a-z0-9 ]{0,20}",
    ]
}

/// Valid policies, as `Policy::new` accepts them.
fn valid_policy() -> impl Strategy<Value = Policy> {
    (
        "[a-z0-9_-]{1,64}",
        1u32..=MAX_LIMIT,
        1u64..=MAX_WINDOW_MS,
        proptest::option::of(1u32..=MAX_LIMIT),
    )
        .prop_filter_map("within the refill bound", |(n, l, w, b)| {
            Policy::new(&n, l, w, b).ok()
        })
}

fn check_bounds(p: &Policy) -> Result<(), TestCaseError> {
    prop_assert!(p.validate().is_ok(), "{:?}", p);
    prop_assert!((1..=MAX_NAME_LEN).contains(&p.name.len()));
    prop_assert!((1..=MAX_LIMIT).contains(&p.limit));
    prop_assert!((1..=MAX_WINDOW_MS).contains(&p.window_ms));
    prop_assert!(p.burst.is_none_or(|b| (1..=MAX_LIMIT).contains(&b)));
    Ok(())
}

fn compact_text(p: &Policy) -> String {
    match p.burst {
        Some(b) => format!("{}={}/{}ms/{b}", p.name, p.limit, p.window_ms),
        None => format!("{}={}/{}ms", p.name, p.limit, p.window_ms),
    }
}

fn json_text(p: &Policy) -> String {
    let burst = p.burst.map_or("null".to_owned(), |b| b.to_string());
    format!(
        "\"{}\":{{\"window\":\"{}ms\",\"burst\":{burst},\"limit\":{}}}",
        p.name, p.window_ms, p.limit
    )
}

fn unique_policies() -> impl Strategy<Value = Vec<Policy>> {
    proptest::collection::vec(valid_policy(), 0..5).prop_map(|mut ps| {
        let mut seen = std::collections::BTreeSet::new();
        ps.retain(|p| seen.insert(p.name.clone()));
        ps
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_policies_are_always_within_bounds(
        text in prop_oneof![4 => compact(), 4 => json(), 1 => any::<String>()],
    ) {
        // `{}` or a list of empty entries parses to no policies at all;
        // `PolicySet::from_config` then adds the default one.
        if let Ok(policies) = policy::parse_policies(&text) {
            for (i, p) in policies.iter().enumerate() {
                check_bounds(p)?;
                prop_assert!(policies[..i].iter().all(|q| q.name != p.name), "duplicate {:?}", p.name);
            }
        }
    }

    #[test]
    fn policies_round_trip_through_the_compact_form(policies in unique_policies()) {
        let text = policies.iter().map(compact_text).collect::<Vec<_>>().join(" , ");
        let parsed = policy::parse_policies(&text).map_err(TestCaseError::fail)?;
        if policies.is_empty() {
            prop_assert_eq!(parsed, vec![Policy::default()]);
        } else {
            prop_assert_eq!(parsed, policies);
        }
    }

    #[test]
    fn the_json_form_reads_the_same_policies_as_the_compact_form(policies in unique_policies()) {
        prop_assume!(!policies.is_empty());
        let json = format!("{{{}}}", policies.iter().map(json_text).collect::<Vec<_>>().join(","));
        let compact = policies.iter().map(compact_text).collect::<Vec<_>>().join(",");
        prop_assert_eq!(policy::parse_policies(&json), policy::parse_policies(&compact));
    }

    #[test]
    fn windows_are_their_digits_times_their_unit(
        n in prop_oneof![0u64..1_000_000, any::<u64>()],
        unit in prop::sample::select(vec![("ms", 1u64), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("", 1_000)]),
        ows in "[ \t]{0,2}",
    ) {
        let parsed = policy::parse_window(&format!("{ows}{n}{}{ows}", unit.0));
        match n.checked_mul(unit.1) {
            Some(ms) if (1..=MAX_WINDOW_MS).contains(&ms) => prop_assert_eq!(parsed, Ok(ms)),
            _ => prop_assert!(parsed.is_err()),
        }
    }

    #[test]
    fn parse_window_never_panics(text in prop_oneof![window(), any::<String>()]) {
        if let Ok(ms) = policy::parse_window(&text) {
            prop_assert!((1..=MAX_WINDOW_MS).contains(&ms));
        }
    }
}

/// Route tables `PREFIX=POLICY, ...` with prefixes that contain `=`,
/// blanks, the two spellings of the default route, and duplicates.
fn routes() -> impl Strategy<Value = String> {
    let entry = (
        prop_oneof![
            6 => "/[a-z/=]{0,6}",
            1 => Just("*".to_owned()),
            1 => Just("/".to_owned()),
            1 => "[a-z]{1,3}|/a b|/a\u{7}",
        ],
        prop_oneof![
            6 => prop::sample::select(vec!["default", "api", "login", "missing"]).prop_map(str::to_owned),
            1 => "[A-Za-z =]{0,4}",
        ],
        "[ \t]{0,2}",
    )
        .prop_map(|(prefix, policy, ows)| format!("{ows}{prefix}{ows}={ows}{policy}{ows}"));
    prop_oneof![
        8 => proptest::collection::vec(entry, 0..6).prop_map(|e| e.join(",")),
        1 => any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof!["/[a-z/=]{0,8}", "\\PC{0,8}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_routes_have_clean_unique_prefixes(text in routes()) {
        if let Ok(routes) = policy::parse_routes(&text) {
            for (i, r) in routes.iter().enumerate() {
                prop_assert!(r.prefix.is_empty() || r.prefix.starts_with('/'), "{:?}", r);
                prop_assert!(!r.prefix.chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert!(routes[..i].iter().all(|q| q.prefix != r.prefix));
            }
        }
    }

    #[test]
    fn every_path_gets_the_policy_of_its_longest_matching_route(
        routes in routes(),
        paths in proptest::collection::vec(path(), 1..6),
    ) {
        let policies = "default=100/60s, api=10/1s, login=5/1m/10";
        let Ok(set) = PolicySet::from_config(policies, &routes) else { return Ok(()) };
        let table = policy::parse_routes(&routes).map_err(TestCaseError::fail)?;
        for path in paths {
            let expected = table
                .iter()
                .filter(|r| path.starts_with(r.prefix.as_str()))
                .max_by_key(|r| r.prefix.len())
                .map_or(DEFAULT_POLICY_NAME, |r| r.policy.as_str());
            prop_assert_eq!(set.policy_for_path(&path).name.as_str(), expected, "{:?}", path);
        }
    }

    #[test]
    fn from_config_never_panics_and_always_has_a_default(
        policies in prop_oneof![compact(), json()],
        routes in routes(),
    ) {
        if let Ok(set) = PolicySet::from_config(&policies, &routes) {
            prop_assert!(set.get(DEFAULT_POLICY_NAME).is_some());
            for p in set.policies() {
                check_bounds(p)?;
            }
        }
    }
}
