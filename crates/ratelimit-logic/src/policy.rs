//! Named rate-limit policies and path routing, parsed from configuration.
//!
//! **Job.** Turn two configuration variables into a validated [`PolicySet`]:
//! the policies (`name → limit per window [burst]`) and the routes
//! (`path prefix → policy name`), then answer "which policy governs this
//! path?" with [`PolicySet::policy_for_path`].
//!
//! **Policies** come in one of two forms, told apart by the first
//! non-blank character:
//!
//! * JSON, an **object** keyed by policy name:
//!   `{"api":{"limit":100,"window":"60s","burst":120},"login":{"limit":5,"window":60}}`.
//!   An object (not a list) was chosen because the name is the identity of a
//!   policy, as in the compact form. The object is read with a streaming map
//!   visitor, so member order is kept and a name given twice is reported
//!   instead of silently keeping the last one (what a plain `serde_json::Value`
//!   would do). Fields: `limit` (integer, required), `window` (duration string
//!   as below, or a JSON integer of seconds; required), `burst` (integer or
//!   `null`, optional). Unknown fields are errors, so typos cannot pass.
//! * compact: `api=100/60s, login=5/1m/10`, i.e. `NAME=LIMIT/WINDOW[/BURST]`
//!   separated by commas; blanks around tokens are ignored, empty entries
//!   (a trailing comma) are skipped.
//!
//! Windows are `<digits><unit>` with unit `ms`, `s`, `m` or `h`; a bare
//! number is seconds. A blank variable means "just the default policy".
//!
//! **Names** identify the policy in the `RateLimit`/`RateLimit-Policy` header
//! fields (draft-ietf-httpapi-ratelimit-headers-11), where they are
//! Structured Field Strings (RFC 9651 §3.3.3). Restricting them to
//! `[a-z0-9_-]{1,64}` makes them valid as SF Strings *and* Tokens without any
//! escaping, and safe to put in problem details and storage keys.
//!
//! **Bounds** (each reported with its own message): `limit` is
//! `1..=1_000_000`; `window` is `1 ms ..= 366 days`; `burst` is
//! `1..=1_000_000` and its full refill time `burst × window ÷ limit` is at
//! most 366 days. The limit bound is what lets [`crate::gcra`] track every
//! policy exactly at nanosecond resolution (see its docs); the time bounds
//! keep every theoretical arrival time far inside `u64` nanoseconds.
//!
//! **Routes**: `/api/=api, /login=login, *=default`. The longest matching
//! prefix wins; matching is a plain, case-sensitive byte-prefix test on the
//! path (so `/api/` binds to a segment while `/api` also matches `/apix`).
//! `*` and `/` both name the default route, which matches every path; with
//! no default route, unmatched paths use the policy named `default`. A
//! `default` policy (100 requests per 60 s unless configured) always exists,
//! so every path resolves to exactly one policy: an edge limiter fails
//! closed rather than leaving a forgotten path unlimited.
//!
//! Every error is a single precise string naming the offending policy or
//! route and field, e.g. `policy "api": limit must be > 0`.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

/// Name of the policy used when nothing else applies.
pub const DEFAULT_POLICY_NAME: &str = "default";
/// Limit of the built-in default policy.
pub const DEFAULT_LIMIT: u32 = 100;
/// Window of the built-in default policy (60 s).
pub const DEFAULT_WINDOW_MS: u64 = 60_000;
/// Longest accepted policy name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest accepted `limit` and `burst`.
pub const MAX_LIMIT: u32 = 1_000_000;
/// Largest accepted window, and largest full-refill time (366 days).
pub const MAX_WINDOW_MS: u64 = 366 * 24 * 3_600_000;

/// One named quota: `limit` requests per `window_ms`, spendable at once up
/// to `burst` (default: `limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub limit: u32,
    pub window_ms: u64,
    pub burst: Option<u32>,
}

impl Default for Policy {
    /// The built-in `default` policy: 100 requests per 60 s.
    fn default() -> Self {
        Policy {
            name: DEFAULT_POLICY_NAME.to_owned(),
            limit: DEFAULT_LIMIT,
            window_ms: DEFAULT_WINDOW_MS,
            burst: None,
        }
    }
}

impl Policy {
    /// Builds a policy, validated exactly as configuration is.
    pub fn new(name: &str, limit: u32, window_ms: u64, burst: Option<u32>) -> Result<Self, String> {
        build(name, u64::from(limit), window_ms, burst.map(u64::from))
    }

    /// The burst actually in force: `burst`, or `limit` when unset.
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or(self.limit)
    }

    /// Checks the bounds described in the module docs.
    pub fn validate(&self) -> Result<(), String> {
        build(
            &self.name,
            u64::from(self.limit),
            self.window_ms,
            self.burst.map(u64::from),
        )
        .map(|_| ())
    }
}

/// One route: a path prefix (`""` for the default route, written `*` or
/// `/`) and the policy name it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    pub policy: String,
}

/// Validated policies plus routes; always contains a `default` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<Policy>,
    /// Sorted longest prefix first; `index` points into `policies`.
    routes: Vec<(Route, usize)>,
    fallback: Policy,
}

impl Default for PolicySet {
    /// Only the built-in default policy, applied to every path.
    fn default() -> Self {
        PolicySet {
            policies: vec![Policy::default()],
            routes: Vec::new(),
            fallback: Policy::default(),
        }
    }
}

impl PolicySet {
    /// Parses both configuration variables (either may be blank) and checks
    /// that every route names a defined policy.
    pub fn from_config(policies: &str, routes: &str) -> Result<Self, String> {
        let mut policies = parse_policies(policies)?;
        if !policies.iter().any(|p| p.name == DEFAULT_POLICY_NAME) {
            policies.push(Policy::default());
        }
        let mut table = Vec::new();
        for route in parse_routes(routes)? {
            let Some(index) = policies.iter().position(|p| p.name == route.policy) else {
                return Err(format!(
                    "route {:?}: unknown policy {:?}",
                    display_prefix(&route.prefix),
                    route.policy
                ));
            };
            table.push((route, index));
        }
        // Longest prefix first; ties are impossible (duplicates are rejected).
        table.sort_by_key(|(route, _)| std::cmp::Reverse(route.prefix.len()));
        let fallback = policies
            .iter()
            .find(|p| p.name == DEFAULT_POLICY_NAME)
            .cloned()
            .unwrap_or_default();
        Ok(PolicySet {
            policies,
            routes: table,
            fallback,
        })
    }

    /// All policies, in configuration order (a built-in `default` last).
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy with this name, if defined.
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Routes, longest prefix first (the default route has prefix `""`).
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(r, _)| r)
    }

    /// The policy governing `path`: longest matching route prefix, else the
    /// `default` policy.
    pub fn policy_for_path(&self, path: &str) -> &Policy {
        self.routes
            .iter()
            .find(|(r, _)| path.starts_with(r.prefix.as_str()))
            .and_then(|(_, i)| self.policies.get(*i))
            .unwrap_or(&self.fallback)
    }
}

/// Parses the policies variable (JSON object or compact list). Blank input
/// yields just the built-in default policy. Names must be unique.
pub fn parse_policies(input: &str) -> Result<Vec<Policy>, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Ok(vec![Policy::default()]);
    }
    let policies = match trimmed.as_bytes().first() {
        Some(b'{') => parse_json(trimmed)?,
        Some(b'[') => {
            return Err("policies: JSON must be an object keyed by policy name, not a list".into());
        }
        _ => parse_compact(trimmed)?,
    };
    for (i, p) in policies.iter().enumerate() {
        if policies.iter().take(i).any(|q| q.name == p.name) {
            return Err(format!("policy {:?}: defined more than once", p.name));
        }
    }
    Ok(policies)
}

/// Parses the routes variable `PREFIX=POLICY, ...` (syntax and names only;
/// [`PolicySet::from_config`] checks the policies exist). `*` and `/` both
/// become the default route with prefix `""`.
pub fn parse_routes(input: &str) -> Result<Vec<Route>, String> {
    let mut routes: Vec<Route> = Vec::new();
    for entry in input.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // Policy names cannot contain '=', so the last '=' splits the entry
        // and prefixes may contain '='.
        let Some((raw_prefix, name)) = entry.rsplit_once('=') else {
            return Err(format!("route {entry:?}: expected PREFIX=POLICY"));
        };
        let (raw_prefix, name) = (raw_prefix.trim(), name.trim());
        let prefix = match raw_prefix {
            "*" | "/" => "",
            p if p.starts_with('/') => p,
            p => {
                return Err(format!(
                    "route {p:?}: prefix must start with \"/\" (or be \"*\" for the default route)"
                ));
            }
        };
        if raw_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "route {raw_prefix:?}: prefix must not contain whitespace or control characters"
            ));
        }
        validate_name(name).map_err(|e| format!("route {raw_prefix:?}: policy {e}"))?;
        if routes.iter().any(|r| r.prefix == prefix) {
            return Err(if prefix.is_empty() {
                format!(
                    "route {raw_prefix:?}: default route given more than once (\"*\" and \"/\" are the same)"
                )
            } else {
                format!("route {raw_prefix:?}: prefix given more than once")
            });
        }
        routes.push(Route {
            prefix: prefix.to_owned(),
            policy: name.to_owned(),
        });
    }
    Ok(routes)
}

/// Parses a window: digits plus `ms`, `s`, `m` or `h`; bare digits are
/// seconds. Returns milliseconds; the error is a phrase about "window".
pub fn parse_window(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, ms_per_unit) = if let Some(d) = text.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = text.strip_suffix('s') {
        (d, 1_000)
    } else if let Some(d) = text.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = text.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (text, 1_000)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "window {text:?} must be digits with unit ms, s, m or h (bare number = seconds)"
        ));
    }
    let ms = digits
        .parse::<u64>()
        .map_or(u64::MAX, |n| n.saturating_mul(ms_per_unit));
    check_window(ms)?;
    Ok(ms)
}

/// `Ok` when `name` is 1..=64 characters of `[a-z0-9_-]`; the error is a
/// phrase starting with the quoted name.
fn validate_name(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: name must be 1-{MAX_NAME_LEN} characters from a-z, 0-9, \"_\" and \"-\""
        ))
    }
}

fn check_window(ms: u64) -> Result<(), String> {
    if ms == 0 {
        Err("window must be > 0".into())
    } else if ms > MAX_WINDOW_MS {
        Err("window must be <= 8784h (366 days)".into())
    } else {
        Ok(())
    }
}

/// Validates raw numbers (wider than the fields, so oversize input gets a
/// bound message rather than a wrap) and builds the policy.
fn build(name: &str, limit: u64, window_ms: u64, burst: Option<u64>) -> Result<Policy, String> {
    validate_name(name).map_err(|e| format!("policy {e}"))?;
    let fail = |what: &str| format!("policy {name:?}: {what}");
    let limit = match u32::try_from(limit) {
        Ok(0) => return Err(fail("limit must be > 0")),
        Ok(n) if n <= MAX_LIMIT => n,
        _ => return Err(fail(&format!("limit must be <= {MAX_LIMIT}"))),
    };
    check_window(window_ms).map_err(|e| fail(&e))?;
    let burst = match burst.map(u32::try_from) {
        None => None,
        Some(Ok(0)) => return Err(fail("burst must be > 0")),
        Some(Ok(b)) if b <= MAX_LIMIT => Some(b),
        Some(_) => return Err(fail(&format!("burst must be <= {MAX_LIMIT}"))),
    };
    if let Some(b) = burst {
        let refill_ms = u128::from(b) * u128::from(window_ms) / u128::from(limit);
        if refill_ms > u128::from(MAX_WINDOW_MS) {
            return Err(fail(
                "burst must refill within 366 days (burst × window ÷ limit is too long)",
            ));
        }
    }
    Ok(Policy {
        name: name.to_owned(),
        limit,
        window_ms,
        burst,
    })
}

/// Parses a decimal integer field for error messages about `field`.
fn parse_count(name: &str, field: &str, text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "policy {name:?}: {field} must be a whole number, got {text:?}"
        ));
    }
    // Digits only, so the sole failure is overflow: report it as too large.
    Ok(text.parse::<u64>().unwrap_or(u64::MAX))
}

fn parse_compact(input: &str) -> Result<Vec<Policy>, String> {
    let mut out = Vec::new();
    for entry in input.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, spec)) = entry.split_once('=') else {
            return Err(format!(
                "policy entry {entry:?}: expected NAME=LIMIT/WINDOW[/BURST]"
            ));
        };
        let name = name.trim();
        validate_name(name).map_err(|e| format!("policy {e}"))?;
        let parts: Vec<&str> = spec.split('/').collect();
        let (limit, window, burst) = match parts.as_slice() {
            [l, w] => (*l, *w, None),
            [l, w, b] => (*l, *w, Some(*b)),
            _ => {
                return Err(format!(
                    "policy {name:?}: expected LIMIT/WINDOW[/BURST], got {:?}",
                    spec.trim()
                ));
            }
        };
        let limit = parse_count(name, "limit", limit)?;
        let window = parse_window(window).map_err(|e| format!("policy {name:?}: {e}"))?;
        let burst = burst.map(|b| parse_count(name, "burst", b)).transpose()?;
        out.push(build(name, limit, window, burst)?);
    }
    Ok(out)
}

/// Top-level JSON object as ordered `(key, value)` pairs, duplicates kept.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping policy names to {limit, window, burst}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        de.deserialize_map(EntriesVisitor)
    }
}

fn parse_json(input: &str) -> Result<Vec<Policy>, String> {
    let Entries(entries) = serde_json::from_slice(input.as_bytes())
        .map_err(|e| format!("policies: invalid JSON: {e}"))?;
    let mut out = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        validate_name(&name).map_err(|e| format!("policy {e}"))?;
        let fail = |what: &str| format!("policy {name:?}: {what}");
        let Value::Object(fields) = value else {
            return Err(fail(
                "must be an object like {\"limit\": 100, \"window\": \"60s\"}",
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "limit" | "window" | "burst"))
        {
            return Err(fail(&format!(
                "unknown field {unknown:?} (expected limit, window, burst)"
            )));
        }
        let limit = match fields.get("limit") {
            None => return Err(fail("missing field \"limit\"")),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| fail("limit must be a whole number"))?,
        };
        let window = match fields.get("window") {
            None => return Err(fail("missing field \"window\"")),
            Some(Value::String(s)) => parse_window(s).map_err(|e| fail(&e))?,
            Some(v) => match v.as_u64() {
                Some(secs) => {
                    let ms = secs.saturating_mul(1_000);
                    check_window(ms).map_err(|e| fail(&e))?;
                    ms
                }
                None => {
                    return Err(fail(
                        "window must be a duration string like \"60s\" or a whole number of seconds",
                    ));
                }
            },
        };
        let burst = match fields.get("burst") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| fail("burst must be a whole number"))?,
            ),
        };
        out.push(build(&name, limit, window, burst)?);
    }
    Ok(out)
}

/// How a stored prefix was most likely written, for messages.
fn display_prefix(prefix: &str) -> &str {
    if prefix.is_empty() { "*" } else { prefix }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, limit: u32, window_ms: u64, burst: Option<u32>) -> Policy {
        Policy {
            name: name.into(),
            limit,
            window_ms,
            burst,
        }
    }

    #[test]
    fn default_policy_is_100_per_60_seconds() {
        assert_eq!(Policy::default(), p("default", 100, 60_000, None));
        assert_eq!(Policy::default().effective_burst(), 100);
        assert_eq!(parse_policies("  \n").unwrap(), vec![Policy::default()]);
    }

    #[test]
    fn window_units_parse_to_milliseconds() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            ("60", 60_000),
            (" 7s ", 7_000),
            ("8784h", MAX_WINDOW_MS),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_window(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn window_errors_are_precise() {
        let bad_form = |t: &str| {
            format!("window {t:?} must be digits with unit ms, s, m or h (bare number = seconds)")
        };
        let cases = [
            ("", bad_form("")),
            ("s", bad_form("s")),
            ("1d", bad_form("1d")),
            ("-1s", bad_form("-1s")),
            ("+5", bad_form("+5")),
            ("1.5s", bad_form("1.5s")),
            ("1 s", bad_form("1 s")),
            ("0s", "window must be > 0".into()),
            ("0ms", "window must be > 0".into()),
            ("8785h", "window must be <= 8784h (366 days)".into()),
            (
                "99999999999999999999h",
                "window must be <= 8784h (366 days)".into(),
            ),
        ];
        for (text, err) in cases {
            assert_eq!(parse_window(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn compact_form_parses_limit_window_and_optional_burst() {
        let got = parse_policies("api=100/60s, login=5/1m/10,,  slow = 1 / 2h ,").unwrap();
        assert_eq!(
            got,
            vec![
                p("api", 100, 60_000, None),
                p("login", 5, 60_000, Some(10)),
                p("slow", 1, 7_200_000, None),
            ]
        );
    }

    #[test]
    fn json_object_form_parses_and_keeps_order() {
        let got = parse_policies(
            r#"{"zeta":{"limit":100,"window":"60s","burst":120},
                "api":{"limit":5,"window":60,"burst":null}}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![p("zeta", 100, 60_000, Some(120)), p("api", 5, 60_000, None)]
        );
        assert_eq!(parse_policies("{}").unwrap(), vec![]);
    }

    #[test]
    fn every_policy_error_names_the_policy_and_field() {
        let name_rule = "name must be 1-64 characters from a-z, 0-9, \"_\" and \"-\"";
        let long = "a".repeat(65);
        let cases: Vec<(String, String)> = vec![
            ("api".into(), "policy entry \"api\": expected NAME=LIMIT/WINDOW[/BURST]".into()),
            ("Api=1/1s".into(), format!("policy \"Api\": {name_rule}")),
            ("=1/1s".into(), format!("policy \"\": {name_rule}")),
            ("a.b=1/1s".into(), format!("policy \"a.b\": {name_rule}")),
            (format!("{long}=1/1s"), format!("policy {long:?}: {name_rule}")),
            ("api=100".into(), "policy \"api\": expected LIMIT/WINDOW[/BURST], got \"100\"".into()),
            ("api=1/2/3/4".into(), "policy \"api\": expected LIMIT/WINDOW[/BURST], got \"1/2/3/4\"".into()),
            ("api=x/60s".into(), "policy \"api\": limit must be a whole number, got \"x\"".into()),
            ("api=-1/60s".into(), "policy \"api\": limit must be a whole number, got \"-1\"".into()),
            ("api=0/60s".into(), "policy \"api\": limit must be > 0".into()),
            ("api=1000001/60s".into(), "policy \"api\": limit must be <= 1000000".into()),
            ("api=99999999999999999999999/60s".into(), "policy \"api\": limit must be <= 1000000".into()),
            ("api=1/0s".into(), "policy \"api\": window must be > 0".into()),
            ("api=1/9000h".into(), "policy \"api\": window must be <= 8784h (366 days)".into()),
            ("api=1/1d".into(), "policy \"api\": window \"1d\" must be digits with unit ms, s, m or h (bare number = seconds)".into()),
            ("api=1/1s/0".into(), "policy \"api\": burst must be > 0".into()),
            ("api=1/1s/x".into(), "policy \"api\": burst must be a whole number, got \"x\"".into()),
            ("api=1/1s/1000001".into(), "policy \"api\": burst must be <= 1000000".into()),
            ("api=1/8784h/2".into(), "policy \"api\": burst must refill within 366 days (burst × window ÷ limit is too long)".into()),
            ("api=1/1s, api=2/1s".into(), "policy \"api\": defined more than once".into()),
            ("[]".into(), "policies: JSON must be an object keyed by policy name, not a list".into()),
        ];
        for (input, err) in cases {
            assert_eq!(parse_policies(&input), Err(err), "{input}");
        }
    }

    #[test]
    fn every_json_policy_error_names_the_policy_and_field() {
        let cases = [
            (
                r#"{"api":5}"#,
                "policy \"api\": must be an object like {\"limit\": 100, \"window\": \"60s\"}",
            ),
            (
                r#"{"api":{"window":"1s"}}"#,
                "policy \"api\": missing field \"limit\"",
            ),
            (
                r#"{"api":{"limit":1}}"#,
                "policy \"api\": missing field \"window\"",
            ),
            (
                r#"{"api":{"limit":1,"window":"1s","limt":2}}"#,
                "policy \"api\": unknown field \"limt\" (expected limit, window, burst)",
            ),
            (
                r#"{"api":{"limit":"1","window":"1s"}}"#,
                "policy \"api\": limit must be a whole number",
            ),
            (
                r#"{"api":{"limit":1.5,"window":"1s"}}"#,
                "policy \"api\": limit must be a whole number",
            ),
            (
                r#"{"api":{"limit":-1,"window":"1s"}}"#,
                "policy \"api\": limit must be a whole number",
            ),
            (
                r#"{"api":{"limit":0,"window":"1s"}}"#,
                "policy \"api\": limit must be > 0",
            ),
            (
                r#"{"api":{"limit":1,"window":true}}"#,
                "policy \"api\": window must be a duration string like \"60s\" or a whole number of seconds",
            ),
            (
                r#"{"api":{"limit":1,"window":0}}"#,
                "policy \"api\": window must be > 0",
            ),
            (
                r#"{"api":{"limit":1,"window":18446744073709551615}}"#,
                "policy \"api\": window must be <= 8784h (366 days)",
            ),
            (
                r#"{"api":{"limit":1,"window":"soon"}}"#,
                "policy \"api\": window \"soon\" must be digits with unit ms, s, m or h (bare number = seconds)",
            ),
            (
                r#"{"api":{"limit":1,"window":"1s","burst":0}}"#,
                "policy \"api\": burst must be > 0",
            ),
            (
                r#"{"api":{"limit":1,"window":"1s","burst":"2"}}"#,
                "policy \"api\": burst must be a whole number",
            ),
            (
                r#"{"API":{"limit":1,"window":"1s"}}"#,
                "policy \"API\": name must be 1-64 characters from a-z, 0-9, \"_\" and \"-\"",
            ),
            (
                r#"{"api":{"limit":1,"window":"1s"},"api":{"limit":2,"window":"1s"}}"#,
                "policy \"api\": defined more than once",
            ),
        ];
        for (input, err) in cases {
            assert_eq!(parse_policies(input), Err(err.to_string()), "{input}");
        }
    }

    #[test]
    fn malformed_json_is_reported_with_position() {
        let err = parse_policies(r#"{"api":{"limit":1,}"#).unwrap_err();
        assert!(err.starts_with("policies: invalid JSON: "), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn policy_new_and_validate_apply_the_same_rules() {
        assert_eq!(
            Policy::new("api", 10, 1_000, Some(20)),
            Ok(p("api", 10, 1_000, Some(20)))
        );
        assert_eq!(
            Policy::new("api", 0, 1_000, None),
            Err("policy \"api\": limit must be > 0".into())
        );
        assert_eq!(
            p("x", 1, u64::MAX, None).validate(),
            Err("policy \"x\": window must be <= 8784h (366 days)".into())
        );
        assert_eq!(
            p("x", u32::MAX, 1, None).validate(),
            Err("policy \"x\": limit must be <= 1000000".into())
        );
    }

    #[test]
    fn longest_prefix_wins_and_default_route_catches_the_rest() {
        let set = PolicySet::from_config(
            "api=100/60s, api_write=10/60s, login=5/1m/10, open=1000/1s",
            "/api/=api, /api/write=api_write, /login=login, *=open",
        )
        .unwrap();
        let cases = [
            ("/api/users", "api"),
            ("/api/write/1", "api_write"),
            ("/api/writer", "api_write"),
            ("/api", "open"),
            ("/login", "login"),
            ("/loginx", "login"),
            ("/LOGIN", "open"),
            ("/", "open"),
            ("", "open"),
            ("*", "open"),
        ];
        for (path, policy) in cases {
            assert_eq!(set.policy_for_path(path).name, policy, "{path}");
        }
    }

    #[test]
    fn slash_is_also_the_default_route() {
        let set = PolicySet::from_config("a=1/1s, b=2/1s", "/=a, /b=b").unwrap();
        assert_eq!(set.policy_for_path("/x").name, "a");
        assert_eq!(set.policy_for_path("/b").name, "b");
        assert_eq!(set.policy_for_path("x").name, "a");
    }

    #[test]
    fn unmatched_paths_use_the_default_policy() {
        let builtin = PolicySet::from_config("api=10/1s", "/api/=api").unwrap();
        assert_eq!(builtin.policy_for_path("/other"), &Policy::default());
        assert_eq!(builtin.policies().len(), 2);

        let configured = PolicySet::from_config("default=7/1s, api=10/1s", "/api/=api").unwrap();
        assert_eq!(
            configured.policy_for_path("/other"),
            &p("default", 7, 1_000, None)
        );
        assert_eq!(configured.policies().len(), 2);

        let empty = PolicySet::from_config("", "").unwrap();
        assert_eq!(empty, PolicySet::default());
        assert_eq!(empty.policy_for_path("/anything"), &Policy::default());
    }

    #[test]
    fn routes_may_point_at_the_builtin_default() {
        let set = PolicySet::from_config("api=10/1s", "/api/=api, /public=default").unwrap();
        assert_eq!(set.policy_for_path("/public/x"), &Policy::default());
        assert_eq!(set.get("api"), Some(&p("api", 10, 1_000, None)));
        assert_eq!(set.get("nope"), None);
        let prefixes: Vec<&str> = set.routes().map(|r| r.prefix.as_str()).collect();
        assert_eq!(prefixes, ["/public", "/api/"]);
    }

    #[test]
    fn prefixes_may_contain_equals_signs() {
        let routes = parse_routes("/q=1=api").unwrap();
        assert_eq!(
            routes,
            vec![Route {
                prefix: "/q=1".into(),
                policy: "api".into()
            }]
        );
    }

    #[test]
    fn every_route_error_names_the_route() {
        let name_rule = "name must be 1-64 characters from a-z, 0-9, \"_\" and \"-\"";
        let cases = [
            (
                "/api/",
                "route \"/api/\": expected PREFIX=POLICY".to_string(),
            ),
            (
                "api=api",
                "route \"api\": prefix must start with \"/\" (or be \"*\" for the default route)"
                    .into(),
            ),
            (
                "=api",
                "route \"\": prefix must start with \"/\" (or be \"*\" for the default route)"
                    .into(),
            ),
            (
                "/a b=api",
                "route \"/a b\": prefix must not contain whitespace or control characters".into(),
            ),
            ("/api=", format!("route \"/api\": policy \"\": {name_rule}")),
            (
                "/api=Api",
                format!("route \"/api\": policy \"Api\": {name_rule}"),
            ),
            (
                "/api=a, /api=b",
                "route \"/api\": prefix given more than once".into(),
            ),
            (
                "*=a, /=b",
                "route \"/\": default route given more than once (\"*\" and \"/\" are the same)"
                    .into(),
            ),
        ];
        for (input, err) in cases {
            assert_eq!(parse_routes(input), Err(err), "{input}");
        }
    }

    #[test]
    fn garbage_configuration_is_an_error_never_a_panic() {
        let pieces = [
            "",
            "=",
            "/",
            ",",
            "{",
            "}",
            "[",
            "\"",
            "é",
            "ms",
            "0",
            "99999999999999999999",
            "api",
            "=1/1s",
            "/1",
            "m",
            "h",
            " ",
            "\u{0}",
            "*",
            "{\"a\":",
            "null",
            "-",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let input = format!("{a}{b}{c}");
                    let _ = parse_policies(&input);
                    let _ = parse_routes(&input);
                    let _ = parse_window(&input);
                    let _ = PolicySet::from_config(&input, &input);
                }
            }
        }
    }

    #[test]
    fn routes_to_undefined_policies_are_rejected() {
        assert_eq!(
            PolicySet::from_config("api=1/1s", "/api/=apx"),
            Err("route \"/api/\": unknown policy \"apx\"".into())
        );
        assert_eq!(
            PolicySet::from_config("api=1/1s", "*=apx"),
            Err("route \"*\": unknown policy \"apx\"".into())
        );
        assert_eq!(
            PolicySet::from_config("api=0/1s", ""),
            Err("policy \"api\": limit must be > 0".into())
        );
    }
}
