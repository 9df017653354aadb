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
    let mut upstreams: Upstreams =
        serde_json::from_str(text).map_err(|err| format!("not a valid table: {err}"))?;
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
