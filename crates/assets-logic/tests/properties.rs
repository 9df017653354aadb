//! Property tests for the request-header and request-path parsers of the
//! assets component: `Range`, the precondition fields, `Accept-Encoding`
//! and the path-to-key mapping. The crate promises that no function panics
//! on any input; these check that promise and the invariants the serving
//! code relies on (ranges inside the object, keys confined to the store).

use std::collections::BTreeSet;

use portico_assets_logic::conditional::{
    self, Condition, EntityTag, MAX_HTTP_DATE_SECS, Preconditions,
};
use portico_assets_logic::media::{self, CACHE_HTML, Encoding};
use portico_assets_logic::path::{self, INDEX_DOCUMENT, MAX_KEY_BYTES, MAX_SEGMENT_BYTES};
use portico_assets_logic::range::{self, ByteRange, MAX_RANGES, Multipart, RangeOutcome};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Range
// ---------------------------------------------------------------------------

/// One `range-spec` as a client could write it, valid or not.
#[derive(Debug, Clone)]
enum Spec {
    Int(u64, Option<u64>),
    Suffix(u64),
}

impl Spec {
    fn text(&self) -> String {
        match self {
            Spec::Int(first, Some(last)) => format!("{first}-{last}"),
            Spec::Int(first, None) => format!("{first}-"),
            Spec::Suffix(len) => format!("-{len}"),
        }
    }

    /// The bytes of a `size`-byte object this spec asks for (RFC 9110
    /// §14.1.2), by enumeration: the reference the parser is held to.
    fn bytes(&self, size: u64) -> BTreeSet<u64> {
        match *self {
            Spec::Int(first, last) => (first
                ..=last.unwrap_or(u64::MAX).min(size.saturating_sub(1)))
                .filter(|&b| b < size)
                .collect(),
            Spec::Suffix(len) => (size.saturating_sub(len)..size).collect(),
        }
    }
}

fn small_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (0u64..300, proptest::option::of(0u64..300)).prop_map(|(first, len)| {
            // Valid specs only: `last >= first`.
            Spec::Int(first, len.map(|l| first + l))
        }),
        (0u64..300).prop_map(Spec::Suffix),
    ]
}

const OWS: &[&str] = &["", " ", "\t", "  "];

/// `Range` values from the grammar's own pieces and near misses: units in
/// any case, OWS where allowed and where not, empty elements, huge and
/// zero-padded numbers, stray characters.
fn range_header() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        "[0-9]{1,4}",
        "0{1,3}[0-9]{1,3}",
        "[0-9]{19,40}",
        Just(u64::MAX.to_string()),
    ];
    // One bad element voids the header, so they are kept rare.
    let element = prop_oneof![
        6 => (0u64..5_000, 0u64..5_000).prop_map(|(a, len)| format!("{a}-{}", a + len)),
        2 => (number.clone(), number.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        4 => number.clone().prop_map(|a| format!("{a}-")),
        4 => number.prop_map(|b| format!("-{b}")),
        1 => Just(String::new()),
        1 => "[-0-9 ,=a-z]{0,6}",
    ];
    (
        prop_oneof![
            6 => Just("bytes"),
            1 => Just("BYTES"),
            1 => Just("Bytes"),
            1 => Just("items"),
            1 => Just(""),
            1 => Just("bytes "),
        ],
        prop::sample::select(OWS),
        proptest::collection::vec(
            (
                prop::sample::select(OWS),
                element,
                prop::sample::select(OWS),
            ),
            0..18,
        ),
    )
        .prop_map(|(unit, lead, elements)| {
            let list: Vec<String> = elements
                .into_iter()
                .map(|(a, e, b)| format!("{a}{e}{b}"))
                .collect();
            format!("{unit}={lead}{}", list.join(","))
        })
}

fn object_size() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..=2, 0u64..5_000, any::<u64>(), Just(u64::MAX)]
}

fn check_partial(ranges: &[ByteRange], size: u64) -> Result<(), TestCaseError> {
    prop_assert!(!ranges.is_empty());
    prop_assert!(ranges.len() <= MAX_RANGES);
    for r in ranges {
        prop_assert!(r.first <= r.last && r.last < size, "{:?} of {}", r, size);
    }
    // Coalesced: no two parts overlap or touch, so no byte is sent twice.
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            prop_assert!(
                a.last.saturating_add(1) < b.first || b.last.saturating_add(1) < a.first,
                "{:?} and {:?} touch",
                a,
                b
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_parsed_range_lies_within_the_object_and_is_non_empty(
        header in prop_oneof![4 => range_header(), 1 => any::<String>()],
        size in object_size(),
    ) {
        match range::evaluate_range(Some(&header), size) {
            RangeOutcome::Partial(ranges) => {
                prop_assert!(size > 0);
                check_partial(&ranges, size)?;
            }
            RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
        }
    }

    #[test]
    fn partial_ranges_cover_exactly_the_requested_bytes(
        specs in proptest::collection::vec((prop::sample::select(OWS), small_spec()), 1..20),
        size in 0u64..256,
    ) {
        let header = format!(
            "bytes={}",
            specs.iter().map(|(ows, s)| format!("{ows}{}{ows}", s.text())).collect::<Vec<_>>().join(",")
        );
        let wanted: BTreeSet<u64> = specs.iter().flat_map(|(_, s)| s.bytes(size)).collect();
        let outcome = range::evaluate_range(Some(&header), size);
        if specs.len() > MAX_RANGES {
            prop_assert_eq!(outcome, RangeOutcome::Full);
        } else if wanted.is_empty() {
            prop_assert_eq!(outcome, RangeOutcome::Unsatisfiable);
        } else {
            let RangeOutcome::Partial(ranges) = outcome else {
                return Err(TestCaseError::fail(format!("{header:?}: {outcome:?}")));
            };
            check_partial(&ranges, size)?;
            let sent: BTreeSet<u64> = ranges.iter().flat_map(|r| r.first..=r.last).collect();
            prop_assert_eq!(sent, wanted);
        }
    }

    #[test]
    fn multipart_length_is_the_length_of_the_body_it_builds(
        specs in proptest::collection::vec(small_spec(), 1..8),
        size in 1u64..256,
        boundary in "[A-Za-z0-9'+_.-]{1,70}",
        content_type in prop_oneof![Just(String::new()), "[ -~]{0,30}"],
    ) {
        let header = format!("bytes={}", specs.iter().map(Spec::text).collect::<Vec<_>>().join(","));
        let RangeOutcome::Partial(ranges) = range::evaluate_range(Some(&header), size) else {
            return Ok(());
        };
        let multipart = Multipart::new(&boundary, &content_type, size)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let body = multipart
            .body(&ranges, |r| Some(vec![b'x'; r.length() as usize]))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(multipart.length(&ranges), Ok(body.len() as u64));
    }

    #[test]
    fn multipart_refuses_unsafe_boundaries_and_content_types(
        boundary in "\\PC{0,80}|[A-Za-z0-9'+_.-]{0,75}",
        content_type in "[ -~\r\n\t\u{0}\u{85}]{0,20}",
    ) {
        if Multipart::new(&boundary, &content_type, 10).is_ok() {
            prop_assert!((1..=70).contains(&boundary.len()));
            let injected = content_type.contains(['\r', '\n', '\0', '\u{85}']);
            prop_assert!(!injected, "{:?}", content_type);
        }
    }
}

// ---------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------

/// `etagc` characters and a few that are not.
fn opaque() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[!#-~]{0,12}",
        1 => "[!#-~\u{80}-\u{10ffff}]{0,6}",
    ]
}

fn entity_tag() -> impl Strategy<Value = String> {
    (any::<bool>(), opaque())
        .prop_map(|(weak, o)| format!("{}\"{o}\"", if weak { "W/" } else { "" }))
}

/// Entity-tag lists as clients send them, plus near misses (`w/`,
/// unquoted, unterminated, `*` in a list, empty elements).
fn etag_list() -> impl Strategy<Value = String> {
    let element = prop_oneof![
        6 => entity_tag(),
        1 => Just("*".to_owned()),
        1 => Just(String::new()),
        1 => "w/\"[a-z]{0,3}\"|[a-z]{1,3}|\"[a-z]{0,3}",
        1 => Just("\"abc\"".to_owned()),
    ];
    prop_oneof![
        8 => proptest::collection::vec((element, prop::sample::select(OWS)), 0..5).prop_map(|es| {
            es.into_iter().map(|(e, ows)| format!("{ows}{e}{ows}")).collect::<Vec<_>>().join(",")
        }),
        1 => any::<String>(),
    ]
}

fn http_date() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..=MAX_HTTP_DATE_SECS).prop_map(conditional::format_http_date),
        1 => Just("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()),
        1 => Just("Sunday, 06-Nov-94 08:49:37 GMT".to_owned()),
        1 => Just("Sun Nov  6 08:49:37 1994".to_owned()),
        1 => "[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        1 => "[ -~]{0,40}",
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("HEAD".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("get".to_owned()),
        "[A-Z]{1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn preconditions_never_panic_and_only_get_or_head_get_304(
        method in method(),
        if_match in proptest::option::of(etag_list()),
        if_none_match in proptest::option::of(etag_list()),
        if_modified_since in proptest::option::of(http_date()),
        if_unmodified_since in proptest::option::of(http_date()),
        if_range in proptest::option::of(prop_oneof![etag_list(), http_date()]),
        etag in prop_oneof![3 => entity_tag(), 1 => "\\PC{0,8}"],
        last_modified in prop_oneof![0u64..=MAX_HTTP_DATE_SECS, any::<u64>()],
    ) {
        let headers = Preconditions {
            if_match: if_match.as_deref(),
            if_none_match: if_none_match.as_deref(),
            if_modified_since: if_modified_since.as_deref(),
            if_unmodified_since: if_unmodified_since.as_deref(),
            if_range: if_range.as_deref(),
        };
        let condition = headers.evaluate(&method, &etag, last_modified);
        if condition == Condition::NotModified {
            prop_assert!(method == "GET" || method == "HEAD");
        }
        if matches!(method.as_str(), "CONNECT" | "OPTIONS" | "TRACE") {
            prop_assert_eq!(condition, Condition::Proceed);
        }
        if headers.range_applies(&method, &etag, last_modified) {
            prop_assert_eq!(method.as_str(), "GET");
        }
    }

    #[test]
    fn if_none_match_listing_the_current_tag_gives_304(
        current in entity_tag(),
        others in proptest::collection::vec(entity_tag(), 0..4),
        at in any::<prop::sample::Index>(),
        listed_weak in any::<bool>(),
        method in prop_oneof![Just("GET"), Just("HEAD")],
    ) {
        let Some(tag) = EntityTag::parse(&current) else {
            return Err(TestCaseError::fail(format!("{current:?} did not parse")));
        };
        // Weak comparison: the listed copy may differ in weakness.
        let listed = format!("{}\"{}\"", if listed_weak { "W/" } else { "" }, tag.opaque);
        let mut list = others;
        list.insert(at.index(list.len() + 1), listed);
        let headers = Preconditions { if_none_match: Some(&list.join(", ")), ..Default::default() };
        prop_assert_eq!(headers.evaluate(method, &current, 0), Condition::NotModified);
    }

    #[test]
    fn if_range_never_matches_a_weak_tag(opaque in opaque(), last_modified in any::<u64>()) {
        let weak = format!("W/\"{opaque}\"");
        prop_assert!(!conditional::if_range_matches(&weak, &weak, last_modified));
        let strong = format!("\"{opaque}\"");
        let strong_parses = EntityTag::parse(&strong).is_some();
        prop_assert_eq!(conditional::if_range_matches(&strong, &strong, last_modified), strong_parses);
    }

    #[test]
    fn entity_tags_round_trip(weak in any::<bool>(), opaque in "[!#-~\u{80}-\u{10ffff}]{0,16}") {
        let text = format!("{}\"{opaque}\"", if weak { "W/" } else { "" });
        prop_assert_eq!(EntityTag::parse(&text), Some(EntityTag { weak, opaque: &opaque }));
    }

    #[test]
    fn http_dates_round_trip(secs in any::<u64>()) {
        let text = conditional::format_http_date(secs);
        prop_assert_eq!(conditional::parse_http_date(&text), Some(secs.min(MAX_HTTP_DATE_SECS)));
    }

    #[test]
    fn parse_http_date_never_panics(value in prop_oneof![http_date(), any::<String>()]) {
        let _ = conditional::parse_http_date(&value);
    }
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// Request paths from segment pieces that the mapping treats specially:
/// dots, escapes of dots, slashes, backslashes and controls, malformed and
/// overlong UTF-8 escapes, long segments, queries.
fn request_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => "[A-Za-z0-9_~-]{1,8}",
        2 => Just(".".to_owned()),
        2 => Just("..".to_owned()),
        1 => prop::sample::select(vec![
            "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%00", "%25", "%20", "%7f", "%C3%A9",
            "%C0%AE", "%c2%85", "%e2%80", "%", "%g1", "%2", "\\", "\t", "é", "?", "//",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z]{200,300}",
    ];
    let segment = proptest::collection::vec(piece, 1..4).prop_map(|p| p.concat());
    (
        prop_oneof![8 => Just("/"), 1 => Just(""), 1 => Just("//")],
        proptest::collection::vec(segment, 0..6),
        any::<bool>(),
        proptest::option::of("[a-z=&/.%]{0,10}"),
    )
        .prop_map(|(lead, segments, trailing, query)| {
            let mut path = format!("{lead}{}", segments.join("/"));
            if trailing {
                path.push('/');
            }
            if let Some(q) = query {
                path.push('?');
                path.push_str(&q);
            }
            path
        })
}

/// Percent-encodes every byte outside the unreserved set.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_keys_are_confined_to_the_store(path in prop_oneof![4 => request_path(), 1 => any::<String>()]) {
        let Ok(key) = path::object_key(&path) else { return Ok(()) };
        prop_assert!(!key.is_empty());
        prop_assert!(key.len() <= MAX_KEY_BYTES);
        prop_assert!(!key.starts_with('/') && !key.ends_with('/'), "{:?}", key);
        prop_assert!(!key.contains('\\'));
        prop_assert!(!key.chars().any(char::is_control), "{:?}", key);
        for segment in key.split('/') {
            prop_assert!(!segment.is_empty(), "{:?}", key);
            prop_assert!(segment != "." && segment != "..", "{:?}", key);
            prop_assert!(segment.len() <= MAX_SEGMENT_BYTES);
        }
    }

    #[test]
    fn a_key_encoded_back_into_a_path_maps_to_itself(path in request_path()) {
        let Ok(key) = path::object_key(&path) else { return Ok(()) };
        let encoded: Vec<String> = key.split('/').map(encode_segment).collect();
        let again = format!("/{}", encoded.join("/"));
        prop_assert_eq!(path::object_key(&again), Ok(key));
    }

    #[test]
    fn the_query_never_changes_the_key(path in request_path(), query in "\\PC{0,12}") {
        let bare = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
        prop_assert_eq!(path::object_key(&format!("{bare}?{query}")), path::object_key(bare));
    }

    #[test]
    fn directory_paths_serve_their_index_document(path in request_path()) {
        let bare = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
        if bare.ends_with('/')
            && let Ok(key) = path::object_key(bare)
        {
            prop_assert!(key.ends_with(INDEX_DOCUMENT));
        }
    }
}

// ---------------------------------------------------------------------------
// Media types and Accept-Encoding
// ---------------------------------------------------------------------------

fn accept_encoding() -> impl Strategy<Value = String> {
    let coding = prop_oneof![
        Just("br"),
        Just("BR"),
        Just("gzip"),
        Just("x-gzip"),
        Just("identity"),
        Just("*"),
        Just("deflate"),
        Just(""),
    ];
    let q = prop_oneof![
        Just(String::new()),
        prop::sample::select(vec![
            "0", "1", "0.5", "0.001", "1.000", "1.001", "2", "0.5555", "abc", "", "-0"
        ])
        .prop_map(|v| format!(";q={v}")),
        Just(";Q=0".to_owned()),
        Just(";level=1".to_owned()),
    ];
    prop_oneof![
        6 => proptest::collection::vec((coding, q, prop::sample::select(OWS)), 0..6).prop_map(|es| {
            es.into_iter().map(|(c, q, ows)| format!("{ows}{c}{q}{ows}")).collect::<Vec<_>>().join(",")
        }),
        1 => any::<String>(),
    ]
}

fn available() -> impl Strategy<Value = Vec<Encoding>> {
    prop::sample::subsequence(vec![Encoding::Br, Encoding::Gzip], 0..=2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn choose_encoding_picks_only_an_available_coding(
        header in proptest::option::of(accept_encoding()),
        available in available(),
    ) {
        let chosen = media::choose_encoding(header.as_deref(), &available);
        if let Some(encoding) = chosen {
            prop_assert!(available.contains(&encoding));
            prop_assert!(header.is_some());
        }
        let _ = media::identity_acceptable(header.as_deref());
    }

    #[test]
    fn a_coding_refused_with_q_0_is_never_chosen(
        header in accept_encoding(),
        refused in prop_oneof![Just(Encoding::Br), Just(Encoding::Gzip)],
    ) {
        // A duplicate takes the lowest weight, so appending `;q=0` refuses
        // the coding whatever came before.
        let header = format!("{header}, {};q=0", refused.token());
        prop_assert_ne!(media::choose_encoding(Some(&header), &[Encoding::Br, Encoding::Gzip]), Some(refused));
    }

    #[test]
    fn encoded_variant_etags_are_valid_entity_tags(
        base in prop_oneof![entity_tag(), "\\PC{0,12}"],
        encoding in prop_oneof![Just(Encoding::Br), Just(Encoding::Gzip)],
    ) {
        let etag = media::etag_for_encoding(&base, Some(encoding));
        let parsed = EntityTag::parse(&etag);
        prop_assert!(parsed.is_some(), "{:?} from {:?}", etag, base);
        let suffix = format!("-{}", encoding.token());
        prop_assert!(parsed.is_some_and(|t| t.opaque.ends_with(&suffix)));
        prop_assert_eq!(media::etag_for_encoding(&base, None), base);
    }

    #[test]
    fn file_name_rules_never_panic_and_html_is_never_long_cached(
        name in "[a-zA-Z0-9./_-]{0,40}|[a-z]{1,8}(\\.[0-9a-fA-F]{6,70})?(-[A-Za-z0-9_]{6,12})?\\.(html|HTM|js|css|png)|\\PC{0,30}",
        fingerprinted in any::<bool>(),
    ) {
        let media_type = media::content_type_for(&name);
        prop_assert!(!media_type.chars().any(char::is_control));
        let is_html = media::extension(&name).is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
        let _ = media::is_fingerprinted(&name);
        if is_html {
            prop_assert_eq!(media::cache_control_for(&name, fingerprinted), CACHE_HTML);
        }
        if let Some(ext) = media::extension(&name) {
            prop_assert!(!ext.is_empty() && !ext.contains(['.', '/']));
        }
    }
}
