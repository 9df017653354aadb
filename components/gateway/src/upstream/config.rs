//! The upstream table (variable `upstreams`, JSON), validated on every read
//! so a mistake is reported plainly instead of half-applied.

use std::collections::BTreeMap;

use portico_edgecache_logic::breaker::BreakerConfig;
use serde::Deserialize;

use crate::portico::platform::config as variables;
use crate::problem::Problem;

pub const VARIABLE: &str = "upstreams";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstreams {
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Aggregation sources: name -> gateway path.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub origin: String,
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default = "yes")]
    pub cache: bool,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Identity to send the origin: `subject`, `roles`.
    #[serde(default)]
    pub forward: Vec<String>,
    /// Flags whose evaluated variant is sent as `x-portico-variant`.
    #[serde(default)]
    pub variants: Vec<String>,
    #[serde(default)]
    pub breaker: Breaker,
    /// Parsed from `origin`.
    #[serde(skip)]
    pub target: Origin,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    #[serde(default = "default_failures")]
    pub failures: u32,
    #[serde(default = "default_window")]
    pub window_secs: u64,
    #[serde(default = "default_open")]
    pub open_secs: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failures: default_failures(),
            window_secs: default_window(),
            open_secs: default_open(),
        }
    }
}

impl Breaker {
    /// The state machine's configuration with every duration in
    /// milliseconds (see `upstream::breaker`).
    pub fn logic_ms(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: self.failures,
            window_secs: self.window_secs.saturating_mul(1000),
            open_secs: self.open_secs.saturating_mul(1000),
            // A probe that never reports back frees the half-open slot.
            probe_timeout_secs: self.open_secs.max(1).saturating_mul(1000),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_retries() -> u32 {
    1
}
fn default_failures() -> u32 {
    5
}
fn default_window() -> u64 {
    30
}
fn default_open() -> u64 {
    30
}

/// An origin URL split into what `wasi:http` wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub authority: String,
    /// Base path without a trailing `/` (`""` for none).
    pub base_path: String,
}

fn parse_origin(url: &str) -> Result<Origin, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!(
            "origin {url:?} must start with http:// or https://"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
        return Err(format!("origin {url:?} has no usable host"));
    }
    if path.contains(['?', '#']) {
        return Err(format!("origin {url:?} must not have a query or fragment"));
    }
    Ok(Origin {
        https,
        authority: authority.to_ascii_lowercase(),
        base_path: path.trim_end_matches('/').to_string(),
    })
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(
        500,
        "invalid-configuration",
        "Invalid configuration",
        format!("variable {VARIABLE}: {}", detail.into()),
    )
}

/// Parses and checks the table.
pub fn parse(text: &str) -> Result<Upstreams, String> {
    let mut upstreams: Upstreams = serde_json::from_slice(text.as_bytes())
        .map_err(|err| format!("not a valid table: {err}"))?;
    let mut names = std::collections::BTreeSet::new();
    for route in &mut upstreams.routes {
        if route.name.is_empty() || !names.insert(route.name.clone()) {
            return Err(format!(
                "route names must be unique and non-empty: {:?}",
                route.name
            ));
        }
        if !route.prefix.starts_with('/') {
            return Err(format!(
                "route {:?}: prefix must start with '/'",
                route.name
            ));
        }
        route.target =
            parse_origin(&route.origin).map_err(|e| format!("route {:?}: {e}", route.name))?;
        if route.timeout_ms == 0 {
            return Err(format!(
                "route {:?}: timeout_ms must be positive",
                route.name
            ));
        }
        if route.retries > 5 {
            return Err(format!("route {:?}: at most 5 retries", route.name));
        }
        if let Some(bad) = route
            .forward
            .iter()
            .find(|f| !matches!(f.as_str(), "subject" | "roles"))
        {
            return Err(format!(
                "route {:?}: forward may name \"subject\" and \"roles\", not {bad:?}",
                route.name
            ));
        }
        if route.breaker.failures == 0 || route.breaker.open_secs == 0 {
            return Err(format!(
                "route {:?}: breaker failures and open_secs must be positive",
                route.name
            ));
        }
    }
    for (name, path) in &upstreams.sources {
        if !path.starts_with('/') {
            return Err(format!("source {name:?}: path must start with '/'"));
        }
    }
    Ok(upstreams)
}

/// The configured table; an empty one when the variable is unset.
pub fn load() -> Result<Upstreams, Problem> {
    let text = match variables::get(VARIABLE) {
        Ok(Some(text)) if !text.trim().is_empty() => text,
        Ok(_) => return Ok(Upstreams::default()),
        Err(err) => return Err(invalid(format!("unreadable: {err:?}"))),
    };
    parse(&text).map_err(invalid)
}

impl Upstreams {
    /// The route with the longest prefix matching `path`.
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|route| {
                path.starts_with(&route.prefix) || path == route.prefix.trim_end_matches('/')
            })
            .max_by_key(|route| route.prefix.len())
    }
}

impl Route {
    /// The origin path and query for a gateway path and query.
    pub fn upstream_path(&self, path: &str, query: Option<&str>) -> String {
        let rest = if self.strip_prefix {
            let stripped = path
                .strip_prefix(self.prefix.trim_end_matches('/'))
                .unwrap_or(path);
            if stripped.starts_with('/') {
                stripped.to_string()
            } else {
                format!("/{stripped}")
            }
        } else {
            path.to_string()
        };
        let mut out = format!("{}{rest}", self.target.base_path);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &str) -> Result<Upstreams, String> {
        parse(&format!(r#"{{"routes": {routes}}}"#))
    }

    #[test]
    fn defaults_and_path_mapping() {
        let up = table(
            r#"[{"name":"api","prefix":"/api/v1/","origin":"http://127.0.0.1:9000/base/","strip_prefix":true},
                {"name":"all","prefix":"/","origin":"https://Example.com"}]"#,
        )
        .unwrap();
        let api = up.route_for("/api/v1/users").unwrap();
        assert_eq!(api.name, "api");
        assert!(api.cache);
        assert_eq!(api.retries, 1);
        assert_eq!(api.timeout_ms, 10_000);
        assert_eq!(api.target.authority, "127.0.0.1:9000");
        assert_eq!(
            api.upstream_path("/api/v1/users", Some("a=1")),
            "/base/users?a=1"
        );
        assert_eq!(api.upstream_path("/api/v1", None), "/base/");
        let all = up.route_for("/elsewhere").unwrap();
        assert_eq!(all.name, "all");
        assert!(all.target.https);
        assert_eq!(all.target.authority, "example.com");
        assert_eq!(all.upstream_path("/x", None), "/x");
    }

    #[test]
    fn mistakes_are_reported() {
        for (routes, needle) in [
            (
                r#"[{"name":"a","prefix":"x","origin":"http://h"}]"#,
                "prefix",
            ),
            (
                r#"[{"name":"a","prefix":"/","origin":"ftp://h"}]"#,
                "http://",
            ),
            (r#"[{"name":"a","prefix":"/","origin":"http://"}]"#, "host"),
            (
                r#"[{"name":"a","prefix":"/","origin":"http://h","forward":["password"]}]"#,
                "forward",
            ),
            (
                r#"[{"name":"a","prefix":"/","origin":"http://h"},{"name":"a","prefix":"/b","origin":"http://h"}]"#,
                "unique",
            ),
            (
                r#"[{"name":"a","prefix":"/","origin":"http://h","retry":1}]"#,
                "unknown field",
            ),
        ] {
            let err = table(routes).unwrap_err();
            assert!(err.contains(needle), "{routes}: {err}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn origin() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (
                prop_oneof![
                    4 => prop::sample::select(vec!["http://", "https://"]),
                    1 => prop::sample::select(vec!["HTTP://", "ftp://", ""]),
                ],
                prop_oneof![
                    4 => prop::sample::select(vec!["127.0.0.1:9000", "Example.COM", "a.example:8443", "[::1]:80"]),
                    1 => prop::sample::select(vec!["u@h", "h?x", "h#f", "h h", ""]),
                ],
                "(/[a-z.]{0,4}){0,3}/?",
                prop_oneof![6 => Just(String::new()), 1 => "\\?[a-z]{0,2}|#[a-z]{0,2}"],
            )
                .prop_map(|(s, h, p, q)| format!("{s}{h}{p}{q}")),
            1 => "\\PC{0,12}",
        ]
    }

    fn json_string(s: &str) -> String {
        serde_json::Value::String(s.to_owned()).to_string()
    }

    /// Route tables: mostly well-formed routes, each member sometimes
    /// missing, mistyped or out of range, names sometimes repeated, and
    /// now and then an unknown field.
    fn table() -> impl Strategy<Value = String> {
        let route = (
            // Unique names mostly; sometimes a repeat of the first, or none.
            prop_oneof![8 => Just(None), 1 => Just(Some("r0")), 1 => Just(Some(""))],
            prop_oneof![12 => "/[a-z/]{0,6}", 1 => "[a-z]{0,3}"],
            origin(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(prop_oneof![1 => 0u64..5, 4 => 1u64..100_000, 1 => Just(u64::MAX)]),
            proptest::option::of(0u32..7),
            proptest::option::of(proptest::collection::vec(
                prop_oneof![4 => Just("subject"), 4 => Just("roles"), 1 => Just("password")],
                0..3,
            )),
            proptest::option::of((
                prop_oneof![1 => Just(0u32), 8 => 1u32..10],
                any::<u64>(),
                prop_oneof![1 => Just(0u64), 8 => 1u64..100],
            )),
            proptest::option::weighted(0.05, Just(r#""retry":1"#)),
        )
            .prop_map(|(name, prefix, origin, strip, timeout, retries, forward, breaker, unknown)| {
                // `#` stands for the route's index, filled in below.
                let mut fields = vec![
                    format!("\"name\":{}", json_string(name.unwrap_or("r#"))),
                    format!("\"prefix\":{}", json_string(&prefix)),
                    format!("\"origin\":{}", json_string(&origin)),
                ];
                if let Some(strip) = strip {
                    fields.push(format!("\"strip_prefix\":{strip}"));
                }
                if let Some(t) = timeout {
                    fields.push(format!("\"timeout_ms\":{t}"));
                }
                if let Some(r) = retries {
                    fields.push(format!("\"retries\":{r}"));
                }
                if let Some(f) = forward {
                    fields.push(format!("\"forward\":{}", serde_json::json!(f)));
                }
                if let Some((failures, window_secs, open_secs)) = breaker {
                    fields.push(format!(
                        "\"breaker\":{{\"failures\":{failures},\"window_secs\":{window_secs},\"open_secs\":{open_secs}}}"
                    ));
                }
                fields.extend(unknown.map(str::to_owned));
                format!("{{{}}}", fields.join(","))
            });
        let sources = proptest::collection::btree_map(
            "[a-z]{1,3}",
            prop_oneof![6 => "/[a-z/]{0,5}", 1 => "[a-z]{1,3}"],
            0..3,
        );
        prop_oneof![
            16 => (proptest::collection::vec(route, 1..4), proptest::option::of(sources)).prop_map(|(routes, sources)| {
                let routes: Vec<String> =
                    routes.iter().enumerate().map(|(i, r)| r.replace("r#", &format!("r{i}"))).collect();
                let mut table = format!("{{\"routes\":[{}]", routes.join(","));
                if let Some(s) = sources {
                    table.push_str(&format!(",\"sources\":{}", serde_json::json!(s)));
                }
                table.push('}');
                table
            }),
            1 => "[\\[\\]{}\":,a-z0-9 /]{0,24}",
            1 => any::<String>(),
        ]
    }

    fn gateway_path() -> impl Strategy<Value = String> {
        prop_oneof!["/[a-z/]{0,8}", "/[a-c]{0,2}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn accepted_tables_keep_every_documented_bound(text in table()) {
            let Ok(table) = parse(&text) else { return Ok(()) };
            for (i, route) in table.routes.iter().enumerate() {
                prop_assert!(!route.name.is_empty());
                prop_assert!(table.routes[..i].iter().all(|r| r.name != route.name));
                prop_assert!(route.prefix.starts_with('/'));
                prop_assert!(route.origin.starts_with("http://") || route.origin.starts_with("https://"));
                prop_assert_eq!(route.target.https, route.origin.starts_with("https://"));
                let authority = &route.target.authority;
                prop_assert!(!authority.is_empty() && !authority.contains(['@', '?', '#', ' ', '/']), "{:?}", authority);
                prop_assert_eq!(authority.to_ascii_lowercase(), authority.clone());
                let base = &route.target.base_path;
                prop_assert!(base.is_empty() || (base.starts_with('/') && !base.ends_with('/')), "{:?}", base);
                prop_assert!(!base.contains(['?', '#']));
                prop_assert!(route.timeout_ms > 0 && route.retries <= 5);
                prop_assert!(route.forward.iter().all(|f| f == "subject" || f == "roles"));
                prop_assert!(route.breaker.failures > 0 && route.breaker.open_secs > 0);
                let _ = route.breaker.logic_ms();
            }
            prop_assert!(table.sources.values().all(|p| p.starts_with('/')));
        }

        #[test]
        fn requests_go_to_the_longest_prefix_under_its_base_path(
            text in table(),
            path in gateway_path(),
            query in proptest::option::of("[a-z=&]{0,6}"),
        ) {
            let Ok(table) = parse(&text) else { return Ok(()) };
            let matching = |r: &&Route| path.starts_with(&r.prefix) || path == r.prefix.trim_end_matches('/');
            let Some(route) = table.route_for(&path) else {
                prop_assert!(!table.routes.iter().any(|r| matching(&r)));
                return Ok(());
            };
            prop_assert!(matching(&route));
            prop_assert!(table.routes.iter().filter(matching).all(|r| r.prefix.len() <= route.prefix.len()));
            let upstream = route.upstream_path(&path, query.as_deref());
            let rest = upstream.strip_prefix(route.target.base_path.as_str());
            prop_assert!(rest.is_some_and(|rest| rest.starts_with('/')), "{:?} for {:?}", upstream, path);
            let (_, upstream_query) = upstream.split_once('?').unzip();
            prop_assert_eq!(upstream_query, query.as_deref());
        }
    }
}
