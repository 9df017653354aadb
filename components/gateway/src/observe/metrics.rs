//! Metrics: each request adds its counter deltas in one storage write
//! (`portico:platform/counters`, commutative, so requests never conflict);
//! `GET /admin/metrics` renders the totals in the Prometheus text format.
//!
//! Stored counter names are Prometheus series (`name{label="v"}`); label
//! values are route patterns, status classes, policy and route names and
//! reasons, so the number of series stays bounded. Histogram buckets are
//! stored non-cumulatively (each request bumps one) and summed on render.

use std::collections::BTreeMap;

use super::Notes;

pub const NAMESPACE: &str = "metrics";

/// Upper bounds (seconds) of the latency histogram.
pub const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// `BUCKETS` as their `le` labels (what `to_string` prints for each), written
/// out so that no float is formatted at run time: core's float formatting is
/// several KB of the component (issue #16) and nothing else here needs it.
const BUCKET_LABELS: [&str; 11] = [
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
];

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// How a `Cache-Status` value counts: `hit`, `stale`, `miss` or `bypass`.
pub fn cache_result(cache_status: &str) -> &'static str {
    let stale_served = cache_status.contains("detail=\"stale-")
        || cache_status.contains("detail=\"circuit-open\"");
    if stale_served {
        "stale"
    } else if cache_status.contains(";hit") {
        "hit"
    } else if cache_status.contains("fwd=bypass") || cache_status.contains("fwd=method") {
        "bypass"
    } else {
        "miss"
    }
}

/// The counter deltas of one request.
pub fn deltas(
    notes: &Notes,
    status: u16,
    seconds: f64,
    cache_status: Option<&str>,
) -> Vec<(String, i64)> {
    let route = notes.route.as_deref().unwrap_or("unmatched");
    let class = format!("{}xx", status / 100);
    let mut out = vec![(
        series(
            "portico_requests_total",
            &[("route", route), ("status", &class)],
        ),
        1,
    )];
    let le = BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .map_or("+Inf", |i| BUCKET_LABELS[i]);
    out.push((
        series("portico_request_duration_seconds_bucket", &[("le", le)]),
        1,
    ));
    out.push((
        "portico_request_duration_microseconds_sum".into(),
        (seconds * 1e6).round() as i64,
    ));
    out.push(("portico_request_duration_seconds_count".into(), 1));
    if let Some(policy) = &notes.limited_policy {
        out.push((
            series("portico_rate_limit_rejections_total", &[("policy", policy)]),
            1,
        ));
    }
    if let Some(cache) = cache_status {
        out.push((
            series(
                "portico_cache_responses_total",
                &[("result", cache_result(cache))],
            ),
            1,
        ));
    }
    for route in &notes.upstream_failures {
        out.push((
            series("portico_upstream_failures_total", &[("route", route)]),
            1,
        ));
    }
    for reason in &notes.flag_reasons {
        out.push((
            series("portico_flag_evaluations_total", &[("reason", reason)]),
            1,
        ));
    }
    out
}

const FAMILIES: [(&str, &str, &str); 6] = [
    (
        "portico_requests_total",
        "counter",
        "Requests answered, by route and status class.",
    ),
    (
        "portico_request_duration_seconds",
        "histogram",
        "Time from request to response in the gateway.",
    ),
    (
        "portico_rate_limit_rejections_total",
        "counter",
        "Requests refused by the rate limiter, by policy.",
    ),
    (
        "portico_cache_responses_total",
        "counter",
        "Proxied responses by edge-cache result (hit, stale, miss, bypass).",
    ),
    (
        "portico_upstream_failures_total",
        "counter",
        "Origin requests that failed (connection, timeout, 5xx), by route.",
    ),
    (
        "portico_flag_evaluations_total",
        "counter",
        "Flag evaluations by OpenFeature reason.",
    ),
];

fn family_of(series: &str) -> &str {
    let name = series.split('{').next().unwrap_or(series);
    for suffix in ["_bucket", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && base == "portico_request_duration_seconds"
        {
            return "portico_request_duration_seconds";
        }
    }
    if name == "portico_request_duration_microseconds_sum" {
        return "portico_request_duration_seconds";
    }
    name
}

/// The Prometheus text exposition of the stored totals, plus gauges
/// computed at scrape time (`name{labels}`, value).
pub fn render(totals: &[(String, i64)], gauges: &[(String, u8)]) -> String {
    let mut by_family: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    for (name, value) in totals {
        by_family
            .entry(family_of(name))
            .or_default()
            .push((name.as_str(), *value));
    }
    let mut out = String::new();
    for (family, kind, help) in FAMILIES {
        out.push_str(&format!("# HELP {family} {help}\n# TYPE {family} {kind}\n"));
        let members = by_family.get(family).cloned().unwrap_or_default();
        if kind == "histogram" {
            let stored: BTreeMap<String, i64> = members
                .iter()
                .filter(|(n, _)| n.contains("_bucket"))
                .map(|(n, v)| (n.to_string(), *v))
                .collect();
            let mut cumulative = 0;
            for bound in BUCKET_LABELS.into_iter().chain(["+Inf"]) {
                let name = series("portico_request_duration_seconds_bucket", &[("le", bound)]);
                cumulative += stored.get(&name).copied().unwrap_or(0);
                out.push_str(&format!("{name} {cumulative}\n"));
            }
            let sum_us = members
                .iter()
                .find(|(n, _)| n.ends_with("_sum"))
                .map(|(_, v)| *v)
                .unwrap_or(0);
            let count = members
                .iter()
                .find(|(n, _)| n.ends_with("_count"))
                .map(|(_, v)| *v)
                .unwrap_or(0);
            out.push_str(&format!(
                "portico_request_duration_seconds_sum {}\n",
                seconds_text(sum_us)
            ));
            out.push_str(&format!("portico_request_duration_seconds_count {count}\n"));
            continue;
        }
        for (name, value) in members {
            out.push_str(&format!("{name} {value}\n"));
        }
    }
    out.push_str(
        "# HELP portico_upstream_breaker_state Circuit breaker per upstream route: 0 closed, 1 half-open, 2 open.\n\
         # TYPE portico_upstream_breaker_state gauge\n",
    );
    for (name, value) in gauges {
        out.push_str(&format!("{name} {value}\n"));
    }
    out
}

/// `{}` of `micros as f64 / 1e6` (the shortest decimal that reads back as
/// that float) without formatting a float: below 10^15 µs (31 years of
/// request time) the exact decimal has at most 15 significant digits, so it
/// is that shortest decimal.
fn seconds_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let (whole, fraction) = (
        micros.unsigned_abs() / 1_000_000,
        micros.unsigned_abs() % 1_000_000,
    );
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = format!("{fraction:06}");
    format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
}

/// A gauge series for a route's breaker (0 closed, 1 half-open, 2 open).
pub fn breaker_gauge(route: &str, state: u8) -> (String, u8) {
    (
        series("portico_upstream_breaker_state", &[("route", route)]),
        state,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_labels_are_the_bounds_as_printed() {
        assert_eq!(
            BUCKET_LABELS,
            BUCKETS.map(|b| b.to_string()).map(|s| s.leak() as &str)
        );
    }

    proptest! {
        #[test]
        fn seconds_text_prints_what_float_formatting_did(micros in -999_999_999_999_999i64..=999_999_999_999_999) {
            prop_assert_eq!(seconds_text(micros), (micros as f64 / 1e6).to_string());
        }

        #[test]
        fn seconds_text_small_sums(micros in -10_000_000i64..10_000_000) {
            prop_assert_eq!(seconds_text(micros), (micros as f64 / 1e6).to_string());
        }
    }

    #[test]
    fn a_request_mix_renders_cumulative_histograms_and_counters() {
        let mut notes = Notes {
            route: Some("/api/config".into()),
            ..Notes::default()
        };
        notes.flag_reasons = vec!["STATIC".into(), "SPLIT".into()];
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for (status, seconds, cache) in [
            (200, 0.0005, None),
            (200, 0.02, Some("portico;hit;ttl=5")),
            (404, 7.0, Some("portico;fwd=uri-miss;fwd-status=404")),
        ] {
            for (name, delta) in deltas(&notes, status, seconds, cache) {
                *totals.entry(name).or_default() += delta;
            }
        }
        let totals: Vec<(String, i64)> = totals.into_iter().collect();
        let text = render(&totals, &[breaker_gauge("api", 2)]);
        assert!(text.contains("portico_requests_total{route=\"/api/config\",status=\"2xx\"} 2\n"));
        assert!(text.contains("portico_requests_total{route=\"/api/config\",status=\"4xx\"} 1\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("portico_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("portico_request_duration_seconds_count 3\n"));
        assert!(text.contains("portico_request_duration_seconds_sum 7.0205\n"));
        assert!(text.contains("portico_cache_responses_total{result=\"hit\"} 1\n"));
        assert!(text.contains("portico_cache_responses_total{result=\"miss\"} 1\n"));
        assert!(text.contains("portico_flag_evaluations_total{reason=\"SPLIT\"} 3\n"));
        assert!(text.contains("portico_upstream_breaker_state{route=\"api\"} 2\n"));
    }

    #[test]
    fn cache_results() {
        assert_eq!(cache_result("portico;hit;ttl=3"), "hit");
        assert_eq!(
            cache_result("portico;hit;ttl=-3;detail=\"stale-while-revalidate\""),
            "stale"
        );
        assert_eq!(
            cache_result("portico;fwd=stale;fwd-status=502;detail=\"stale-if-error\""),
            "stale"
        );
        assert_eq!(
            cache_result("portico;fwd=stale;fwd-status=304;stored"),
            "miss"
        );
        assert_eq!(cache_result("portico;fwd=bypass;fwd-status=200"), "bypass");
        assert_eq!(cache_result("portico;fwd=uri-miss"), "miss");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            series("m", &[("route", "a\"b\\c")]),
            "m{route=\"a\\\"b\\\\c\"}"
        );
    }
}
