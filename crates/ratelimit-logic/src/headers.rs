//! RateLimit header fields, `Retry-After` and the `quota-exceeded` problem.
//!
//! **Job.** Turn policies and [`Decision`]s into response header values and
//! the body of a 429, as plain strings: no HTTP types, so the host binding
//! stays a thin copy loop.
//!
//! **Standards.**
//! * draft-ietf-httpapi-ratelimit-headers-11: `RateLimit-Policy` is a List of
//!   Items whose value is the policy name as a String, with `q` (quota) and
//!   `w` (window, seconds); `RateLimit` is a List of Items with `r`
//!   (available quota) and `t` (seconds). `pk` and `qu` are not emitted.
//! * RFC 9651 (Structured Field Values) for the syntax: list members joined
//!   by `", "`, parameters as `;key=value`, Strings quoted with `\"` and
//!   `\\` escaped, Integers at most 15 digits.
//! * RFC 9110 §10.2.3 `Retry-After` as delay-seconds; RFC 9457 problem
//!   details with the draft's `violated-policies` extension member.
//!
//! **Choices.**
//! * Every duration is rounded **up** to whole seconds ([`ceil_seconds`]):
//!   a client is never told it may come back earlier than it really can,
//!   and a sub-second window advertises `w=1` (the draft forbids `w=0`).
//!   A rounded-up `w` understates the rate, which is the safe direction.
//! * `t` is the time until the quota is fully refilled
//!   ([`Decision::reset_after_ms`]); Integers above 999 999 999 999 999 are
//!   clamped so the field always stays valid.
//! * `Retry-After` is, over the violated policies, the largest of the
//!   policy's own wait, its `t`, and 1 second — the draft says it SHOULD NOT
//!   point earlier than the end of the effective window, and a 429 telling
//!   a client to retry after 0 seconds invites a hot loop. With GCRA `t`
//!   (full refill) is the larger term, so this is conservative.
//! * A [`Decision::impossible`] policy contributes only its `t` (its wait is
//!   "never"); such requests deserve a 413/400, not a 429.
//! * Policy names are validated to `[a-z0-9_-]` by [`crate::policy`]; any
//!   other character outside `%x20-7E` that reaches here is written as `?`
//!   so the output is always a valid SF String.
//! * Header names are lowercase, as HTTP/2 and HTTP/3 require on the wire.
//! * The problem-type base URI is a single constant, [`PROBLEM_TYPE_BASE`].

use serde_json::{Value, json};

use crate::gcra::Decision;
use crate::policy::Policy;

macro_rules! problem_type_base {
    () => {
        "https://portico.dev/problems"
    };
}

/// Base URI of Portico's problem types.
pub const PROBLEM_TYPE_BASE: &str = problem_type_base!();
/// Problem type for exceeded quotas.
pub const QUOTA_EXCEEDED_TYPE: &str = concat!(problem_type_base!(), "#quota-exceeded");
/// Title of the quota-exceeded problem (as in the draft's example).
pub const QUOTA_EXCEEDED_TITLE: &str =
    "Request cannot be satisfied as assigned quota has been exceeded";
/// Media type of problem details (RFC 9457).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// Header field name of the policy list.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// Header field name of the current service limits.
pub const RATELIMIT: &str = "ratelimit";
/// Header field name of the retry delay.
pub const RETRY_AFTER: &str = "retry-after";
/// Largest Structured Field Integer (RFC 9651 §3.3.1).
pub const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Milliseconds to whole seconds, rounded up.
pub fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

/// One `RateLimit-Policy` member: `"name";q=<limit>;w=<window seconds>`.
pub fn policy_item(policy: &Policy) -> String {
    let mut out = sf_string(&policy.name);
    out.push_str(&format!(
        ";q={};w={}",
        policy.limit,
        sf_integer(ceil_seconds(policy.window_ms).max(1))
    ));
    out
}

/// The `RateLimit-Policy` value for these policies; `None` when empty (the
/// field must be a non-empty List, so send nothing).
pub fn ratelimit_policy_value(policies: &[&Policy]) -> Option<String> {
    join(policies.iter().map(|p| policy_item(p)))
}

/// The `t` parameter for a decision: seconds until full refill, rounded up.
pub fn reset_seconds(decision: &Decision) -> u64 {
    sf_integer(ceil_seconds(decision.reset_after_ms))
}

/// One `RateLimit` member: `"name";r=<remaining>;t=<seconds until reset>`.
pub fn ratelimit_item(policy: &Policy, decision: &Decision) -> String {
    let mut out = sf_string(&policy.name);
    out.push_str(&format!(
        ";r={};t={}",
        decision.remaining,
        reset_seconds(decision)
    ));
    out
}

/// The `RateLimit` value for these decisions; `None` when empty.
pub fn ratelimit_value(entries: &[(&Policy, Decision)]) -> Option<String> {
    join(entries.iter().map(|(p, d)| ratelimit_item(p, d)))
}

/// `Retry-After` in seconds: `None` when every decision allowed; otherwise
/// the maximum over denied decisions of (wait, `t`, 1).
pub fn retry_after_seconds(entries: &[(&Policy, Decision)]) -> Option<u64> {
    entries
        .iter()
        .filter(|(_, d)| !d.allowed)
        .map(|(_, d)| {
            let wait = if d.impossible {
                0
            } else {
                ceil_seconds(d.retry_after_ms)
            };
            wait.max(reset_seconds(d)).max(1)
        })
        .max()
}

/// Names of the policies that denied, in order.
pub fn violated_policies<'a>(entries: &[(&'a Policy, Decision)]) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(_, d)| !d.allowed)
        .map(|(p, _)| p.name.as_str())
        .collect()
}

/// All header fields for a response: `ratelimit-policy` and `ratelimit`
/// (when there are entries) and `retry-after` (when any policy denied).
pub fn header_fields(entries: &[(&Policy, Decision)]) -> Vec<(&'static str, String)> {
    let policies: Vec<&Policy> = entries.iter().map(|(p, _)| *p).collect();
    let mut out = Vec::with_capacity(3);
    if let Some(v) = ratelimit_policy_value(&policies) {
        out.push((RATELIMIT_POLICY, v));
    }
    if let Some(v) = ratelimit_value(entries) {
        out.push((RATELIMIT, v));
    }
    if let Some(secs) = retry_after_seconds(entries) {
        out.push((RETRY_AFTER, secs.to_string()));
    }
    out
}

/// The RFC 9457 body of a 429 for `violated` policies.
pub fn quota_exceeded_problem(violated: &[&str], retry_after_secs: u64) -> Value {
    let unit = if retry_after_secs == 1 {
        "second"
    } else {
        "seconds"
    };
    let detail = match violated {
        [] => format!("Request quota exceeded; retry after {retry_after_secs} {unit}."),
        [one] => {
            format!("Quota of policy \"{one}\" exceeded; retry after {retry_after_secs} {unit}.")
        }
        many => format!(
            "Quotas of policies {} exceeded; retry after {retry_after_secs} {unit}.",
            many.iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    json!({
        "type": QUOTA_EXCEEDED_TYPE,
        "title": QUOTA_EXCEEDED_TITLE,
        "status": 429,
        "detail": detail,
        "violated-policies": violated,
    })
}

/// [`quota_exceeded_problem`] serialized, ready to send as
/// [`PROBLEM_CONTENT_TYPE`].
pub fn quota_exceeded_body(violated: &[&str], retry_after_secs: u64) -> String {
    quota_exceeded_problem(violated, retry_after_secs).to_string()
}

fn sf_integer(n: u64) -> u64 {
    n.min(SF_INTEGER_MAX)
}

/// RFC 9651 §4.1.6 String serialization; unrepresentable characters → `?`.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

fn join(items: impl Iterator<Item = String>) -> Option<String> {
    let joined = items.collect::<Vec<_>>().join(", ");
    (!joined.is_empty()).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::decide;

    const T0: u64 = 1_700_000_000_000;

    fn policy(name: &str, limit: u32, window_ms: u64) -> Policy {
        Policy {
            name: name.into(),
            limit,
            window_ms,
            burst: None,
        }
    }

    fn decision(
        allowed: bool,
        remaining: u32,
        reset_after_ms: u64,
        retry_after_ms: u64,
    ) -> Decision {
        Decision {
            allowed,
            impossible: false,
            new_tat: None,
            remaining,
            reset_after_ms,
            retry_after_ms,
        }
    }

    /// A small, independent RFC 9651 List parser (Items only), so tests do
    /// not trust the serializer to check itself.
    mod sf {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Bare {
            Int(i64),
            Str(String),
            Bool(bool),
            Token(String),
        }

        pub type Item = (Bare, Vec<(String, Bare)>);

        pub fn parse_list(input: &str) -> Result<Vec<Item>, String> {
            let mut p = Parser {
                s: input.as_bytes(),
                i: 0,
            };
            p.skip(|b| b == b' ');
            let mut items = Vec::new();
            if p.done() {
                return Ok(items);
            }
            loop {
                items.push(p.item()?);
                p.skip(|b| b == b' ' || b == b'\t');
                if p.done() {
                    return Ok(items);
                }
                p.expect(b',')?;
                p.skip(|b| b == b' ' || b == b'\t');
                if p.done() {
                    return Err("trailing comma".into());
                }
            }
        }

        struct Parser<'a> {
            s: &'a [u8],
            i: usize,
        }

        impl Parser<'_> {
            fn done(&self) -> bool {
                self.i >= self.s.len()
            }
            fn peek(&self) -> Option<u8> {
                self.s.get(self.i).copied()
            }
            fn next(&mut self) -> Option<u8> {
                let b = self.peek();
                self.i += 1;
                b
            }
            fn skip(&mut self, f: impl Fn(u8) -> bool) {
                while self.peek().is_some_and(&f) {
                    self.i += 1;
                }
            }
            fn expect(&mut self, want: u8) -> Result<(), String> {
                match self.next() {
                    Some(b) if b == want => Ok(()),
                    other => Err(format!(
                        "expected {:?} at {}, got {other:?}",
                        want as char, self.i
                    )),
                }
            }
            fn item(&mut self) -> Result<Item, String> {
                let bare = self.bare()?;
                let mut params = Vec::new();
                while self.peek() == Some(b';') {
                    self.i += 1;
                    self.skip(|b| b == b' ');
                    let key = self.key()?;
                    let value = if self.peek() == Some(b'=') {
                        self.i += 1;
                        self.bare()?
                    } else {
                        Bare::Bool(true)
                    };
                    params.push((key, value));
                }
                Ok((bare, params))
            }
            fn key(&mut self) -> Result<String, String> {
                let start = self.i;
                match self.peek() {
                    Some(b) if b.is_ascii_lowercase() || b == b'*' => {}
                    other => return Err(format!("bad key start {other:?}")),
                }
                self.skip(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
                Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
            }
            fn bare(&mut self) -> Result<Bare, String> {
                match self.peek() {
                    Some(b'"') => self.string(),
                    Some(b'?') => {
                        self.i += 1;
                        match self.next() {
                            Some(b'0') => Ok(Bare::Bool(false)),
                            Some(b'1') => Ok(Bare::Bool(true)),
                            other => Err(format!("bad boolean {other:?}")),
                        }
                    }
                    Some(b) if b == b'-' || b.is_ascii_digit() => self.integer(),
                    Some(b) if b.is_ascii_alphabetic() || b == b'*' => {
                        let start = self.i;
                        self.skip(|b| {
                            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b)
                        });
                        Ok(Bare::Token(
                            String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                        ))
                    }
                    other => Err(format!("bad bare item start {other:?}")),
                }
            }
            fn integer(&mut self) -> Result<Bare, String> {
                let negative = self.peek() == Some(b'-');
                if negative {
                    self.i += 1;
                }
                let start = self.i;
                self.skip(|b| b.is_ascii_digit());
                let digits = &self.s[start..self.i];
                if digits.is_empty() || digits.len() > 15 || self.peek() == Some(b'.') {
                    return Err(format!("bad integer at {start}"));
                }
                let n: i64 = std::str::from_utf8(digits)
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e: std::num::ParseIntError| e.to_string())?;
                Ok(Bare::Int(if negative { -n } else { n }))
            }
            fn string(&mut self) -> Result<Bare, String> {
                self.expect(b'"')?;
                let mut out = String::new();
                loop {
                    match self.next() {
                        Some(b'\\') => match self.next() {
                            Some(c @ (b'"' | b'\\')) => out.push(c as char),
                            other => return Err(format!("bad escape {other:?}")),
                        },
                        Some(b'"') => return Ok(Bare::Str(out)),
                        Some(c @ 0x20..=0x7e) => out.push(c as char),
                        other => return Err(format!("bad string char {other:?}")),
                    }
                }
            }
        }
    }

    use sf::Bare::{Int, Str};

    #[test]
    fn seconds_round_up() {
        let cases = [
            (0, 0),
            (1, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (59_999, 60),
            (60_000, 60),
            (u64::MAX, 18_446_744_073_709_552),
        ];
        for (ms, secs) in cases {
            assert_eq!(ceil_seconds(ms), secs, "{ms} ms");
        }
    }

    #[test]
    fn ratelimit_policy_lists_quota_and_window_seconds() {
        let (api, login) = (policy("api", 100, 60_000), policy("login", 5, 60_000));
        let cases: [(&[&Policy], Option<&str>); 3] = [
            (&[&api], Some(r#""api";q=100;w=60"#)),
            (
                &[&api, &login],
                Some(r#""api";q=100;w=60, "login";q=5;w=60"#),
            ),
            (&[], None),
        ];
        for (policies, want) in cases {
            assert_eq!(ratelimit_policy_value(policies).as_deref(), want);
        }
    }

    #[test]
    fn window_seconds_round_up_and_never_reach_zero() {
        let cases = [
            (1, "w=1"),
            (500, "w=1"),
            (1_500, "w=2"),
            (60_001, "w=61"),
            (3_600_000, "w=3600"),
            (u64::MAX, "w=999999999999999"),
        ];
        for (window, want) in cases {
            let item = policy_item(&policy("p", 1, window));
            assert!(item.ends_with(want), "{window}: {item}");
        }
    }

    #[test]
    fn ratelimit_reports_remaining_and_reset_seconds() {
        let p = policy("api", 100, 60_000);
        let first = decide(None, T0, &p, 1);
        assert_eq!(ratelimit_item(&p, &first), r#""api";r=99;t=1"#);
        let mut state = None;
        for _ in 0..100 {
            state = decide(state, T0, &p, 1).new_tat.or(state);
        }
        let denied = decide(state, T0 + 250, &p, 1);
        assert_eq!(ratelimit_item(&p, &denied), r#""api";r=0;t=60"#);
        let both = [(&p, first), (&p, denied)];
        assert_eq!(
            ratelimit_value(&both).as_deref(),
            Some(r#""api";r=99;t=1, "api";r=0;t=60"#)
        );
        assert_eq!(ratelimit_value(&[]), None);
        let huge = decision(false, 0, u64::MAX, u64::MAX);
        assert_eq!(ratelimit_item(&p, &huge), r#""api";r=0;t=999999999999999"#);
    }

    #[test]
    fn retry_after_is_never_below_t_nor_one_second() {
        let p = policy("p", 1, 1_000);
        let cases = [
            // (decisions as (allowed, reset_ms, retry_ms), expected)
            (vec![(true, 500, 0)], None),
            (vec![], None),
            (vec![(false, 400, 1)], Some(1)),
            (vec![(false, 0, 1)], Some(1)),
            (vec![(false, 60_000, 600)], Some(60)),
            (vec![(false, 1_001, 1_001)], Some(2)),
            (vec![(false, 2_000, 5_500)], Some(6)),
            (vec![(true, 90_000, 0), (false, 10_000, 250)], Some(10)),
            (vec![(false, 3_000, 10), (false, 7_200, 10)], Some(8)),
        ];
        for (decisions, want) in cases {
            let entries: Vec<(&Policy, Decision)> = decisions
                .iter()
                .map(|&(allowed, reset, retry)| (&p, decision(allowed, 0, reset, retry)))
                .collect();
            let got = retry_after_seconds(&entries);
            assert_eq!(got, want, "{decisions:?}");
            for (_, d) in entries.iter().filter(|(_, d)| !d.allowed) {
                assert!(got.unwrap_or(0) >= reset_seconds(d).max(1));
            }
        }
    }

    #[test]
    fn impossible_decisions_retry_after_their_reset_not_never() {
        let p = policy("p", 10, 10_000);
        let d = decide(None, T0, &p, 11);
        assert!(d.impossible);
        assert_eq!(retry_after_seconds(&[(&p, d)]), Some(1));
        let busy = Decision {
            reset_after_ms: 4_200,
            ..d
        };
        assert_eq!(retry_after_seconds(&[(&p, busy)]), Some(5));
    }

    #[test]
    fn header_fields_add_retry_after_only_when_denied() {
        let (a, b) = (policy("a", 10, 10_000), policy("b", 1_000, 3_600_000));
        let ok = [
            (&a, decision(true, 9, 1_000, 0)),
            (&b, decision(true, 999, 3_600, 0)),
        ];
        assert_eq!(
            header_fields(&ok),
            vec![
                (
                    "ratelimit-policy",
                    r#""a";q=10;w=10, "b";q=1000;w=3600"#.to_string()
                ),
                ("ratelimit", r#""a";r=9;t=1, "b";r=999;t=4"#.to_string()),
            ]
        );
        let denied = [
            (&a, decision(false, 0, 10_000, 1_000)),
            (&b, decision(true, 999, 3_600, 0)),
        ];
        let fields = header_fields(&denied);
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[2], ("retry-after", "10".to_string()));
        assert_eq!(violated_policies(&denied), vec!["a"]);
        assert!(header_fields(&[]).is_empty());
    }

    #[test]
    fn emitted_fields_parse_back_as_structured_field_lists() {
        let (api, login) = (policy("api", 100, 60_000), policy("login-v2_x", 5, 1_500));
        let entries = [
            (&api, decision(true, 42, 12_345, 0)),
            (&login, decision(false, 0, 1_500, 300)),
        ];
        let parsed = sf::parse_list(&ratelimit_value(&entries).unwrap()).unwrap();
        assert_eq!(
            parsed,
            vec![
                (
                    Str("api".into()),
                    vec![("r".into(), Int(42)), ("t".into(), Int(13))]
                ),
                (
                    Str("login-v2_x".into()),
                    vec![("r".into(), Int(0)), ("t".into(), Int(2))]
                ),
            ]
        );
        let parsed = sf::parse_list(&ratelimit_policy_value(&[&api, &login]).unwrap()).unwrap();
        assert_eq!(
            parsed,
            vec![
                (
                    Str("api".into()),
                    vec![("q".into(), Int(100)), ("w".into(), Int(60))]
                ),
                (
                    Str("login-v2_x".into()),
                    vec![("q".into(), Int(5)), ("w".into(), Int(2))]
                ),
            ]
        );
    }

    #[test]
    fn unexpected_name_characters_still_yield_valid_strings() {
        let cases = [
            ("a\"b", "a\"b", r#""a\"b";q=1;w=1"#),
            ("back\\slash", "back\\slash", r#""back\\slash";q=1;w=1"#),
            ("ünï\tcode", "?n??code", r#""?n??code";q=1;w=1"#),
            ("", "", r#""";q=1;w=1"#),
        ];
        for (name, round_trip, wire) in cases {
            let item = policy_item(&policy(name, 1, 1_000));
            assert_eq!(item, wire);
            let parsed = sf::parse_list(&item).unwrap();
            assert_eq!(parsed[0].0, Str(round_trip.into()), "{name:?}");
        }
    }

    #[test]
    fn test_parser_rejects_what_rfc_9651_rejects() {
        for bad in [
            r#""a";q=1,"#,
            r#""a;q=1"#,
            r#""a";Q=1"#,
            "\"a\";q=1234567890123456",
            "\"\u{e9}\"",
        ] {
            assert!(sf::parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn problem_body_names_the_violated_policies() {
        assert!(QUOTA_EXCEEDED_TYPE.starts_with(PROBLEM_TYPE_BASE));
        assert!(QUOTA_EXCEEDED_TYPE.ends_with("#quota-exceeded"));
        let body: Value =
            serde_json::from_str(&quota_exceeded_body(&["api", "daily"], 60)).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "https://portico.dev/problems#quota-exceeded",
                "title": "Request cannot be satisfied as assigned quota has been exceeded",
                "status": 429,
                "detail": "Quotas of policies \"api\", \"daily\" exceeded; retry after 60 seconds.",
                "violated-policies": ["api", "daily"],
            })
        );
        let details = [
            (
                vec!["api"],
                1,
                "Quota of policy \"api\" exceeded; retry after 1 second.",
            ),
            (vec![], 5, "Request quota exceeded; retry after 5 seconds."),
        ];
        for (names, secs, detail) in details {
            let v = quota_exceeded_problem(&names, secs);
            assert_eq!(v["detail"], detail);
            assert_eq!(v["violated-policies"], json!(names));
            assert_eq!(v["status"], 429);
        }
    }
}
