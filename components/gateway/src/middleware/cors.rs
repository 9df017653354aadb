//! CORS as the Fetch standard defines it, per route prefix (variable `cors`).
//!
//! - Only a request with `Origin` is a CORS request. Only an `OPTIONS` with
//!   both `Origin` and `Access-Control-Request-Method` is a preflight: this
//!   layer answers it (`204`) and never passes it on; any other `OPTIONS`
//!   goes to the router.
//! - An allowed origin is echoed (never `*` together with credentials);
//!   `*` is sent only for a rule that allows any origin without
//!   credentials. `null` is allowed only when listed.
//! - A disallowed origin, method or header gets no CORS headers at all: the
//!   browser blocks the response, and the server stays quiet about why.
//! - Every response on a CORS-configured prefix carries `Vary: Origin` (and
//!   preflights also vary on the request method and headers), so caches never
//!   hand one origin's answer to another.

use serde::Deserialize;

use super::{Middleware, Next};
use crate::http::{Request, Response};
use crate::problem::Problem;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub prefix: String,
    pub origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub credentials: bool,
    #[serde(default)]
    pub max_age: Option<u64>,
    #[serde(default)]
    pub private_network: bool,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// Parses and checks the variable's JSON.
pub fn parse(text: &str) -> Result<CorsConfig, String> {
    let config: CorsConfig =
        serde_json::from_str(text).map_err(|err| format!("not a valid CORS table: {err}"))?;
    for rule in &config.rules {
        if !rule.prefix.starts_with('/') {
            return Err(format!(
                "rule {:?}: prefix must start with '/'",
                rule.prefix
            ));
        }
        if rule.credentials && rule.origins.iter().any(|o| o == "*") {
            return Err(format!(
                "rule {:?}: \"*\" cannot be combined with credentials; list the origins",
                rule.prefix
            ));
        }
        if let Some(bad) = rule
            .origins
            .iter()
            .find(|o| *o != "*" && *o != "null" && !is_origin(o))
        {
            return Err(format!(
                "rule {:?}: {bad:?} is not an origin (scheme://host[:port], no path)",
                rule.prefix
            ));
        }
    }
    Ok(config)
}

fn is_origin(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', ' '])
}

impl CorsConfig {
    /// The rule with the longest prefix matching `path`.
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|rule| path.starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
    }
}

impl Rule {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|allowed| allowed == origin || (allowed == "*" && origin != "null"))
    }

    fn allow_origin_value(&self, origin: &str) -> String {
        if !self.credentials && self.origins.iter().any(|o| o == "*") {
            "*".into()
        } else {
            origin.to_string()
        }
    }

    fn allows_method(&self, method: &str) -> bool {
        // CORS-safelisted methods need no listing (Fetch, "CORS-safelisted method").
        matches!(method, "GET" | "HEAD" | "POST") || self.methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Loads the configuration; `None` when no CORS is configured.
pub type Load = fn() -> Result<Option<CorsConfig>, Problem>;

pub struct Cors {
    pub load: Load,
}

fn add_vary(response: &mut Response, names: &str) {
    let existing: Vec<String> = response
        .headers
        .iter()
        .filter(|(n, _)| n == "vary")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    let missing: Vec<&str> = names
        .split(", ")
        .filter(|name| !existing.contains(&name.to_ascii_lowercase()))
        .collect();
    if !missing.is_empty() {
        response.headers.push(("vary".into(), missing.join(", ")));
    }
}

/// The preflight answer: `204`, with CORS headers only when everything asked
/// for is allowed.
pub fn preflight(rule: &Rule, origin: &str, request: &Request) -> Response {
    let mut response = Response::new(204);
    add_vary(
        &mut response,
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    );
    let method = request
        .header("access-control-request-method")
        .unwrap_or_default()
        .trim();
    let requested: Vec<String> = request
        .header("access-control-request-headers")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let private_network = request.header("access-control-request-private-network") == Some("true");
    let allowed = rule.allows_origin(origin)
        && rule.allows_method(method)
        && requested.iter().all(|h| rule.allows_header(h))
        && (!private_network || rule.private_network);
    if !allowed {
        return response;
    }
    response.headers.push((
        "access-control-allow-origin".into(),
        rule.allow_origin_value(origin),
    ));
    response
        .headers
        .push(("access-control-allow-methods".into(), method.to_string()));
    if !requested.is_empty() {
        response
            .headers
            .push(("access-control-allow-headers".into(), requested.join(", ")));
    }
    if rule.credentials {
        response
            .headers
            .push(("access-control-allow-credentials".into(), "true".into()));
    }
    if let Some(max_age) = rule.max_age {
        response
            .headers
            .push(("access-control-max-age".into(), max_age.to_string()));
    }
    if private_network {
        response
            .headers
            .push(("access-control-allow-private-network".into(), "true".into()));
    }
    response
}

/// CORS headers on an actual response.
pub fn decorate(rule: &Rule, origin: Option<&str>, response: &mut Response) {
    add_vary(response, "Origin");
    let Some(origin) = origin.filter(|o| rule.allows_origin(o)) else {
        return;
    };
    response.set_header(
        "access-control-allow-origin",
        &rule.allow_origin_value(origin),
    );
    if rule.credentials {
        response.set_header("access-control-allow-credentials", "true");
    }
    if !rule.expose.is_empty() {
        response.set_header("access-control-expose-headers", &rule.expose.join(", "));
    }
}

impl Middleware for Cors {
    fn handle(&self, request: Request, next: Next<'_>) -> Response {
        let config = match (self.load)() {
            Ok(Some(config)) => config,
            Ok(None) => return next.run(request),
            Err(problem) => return problem.into_response(&request.path),
        };
        let Some(rule) = config.rule_for(&request.path).cloned() else {
            return next.run(request);
        };
        let origin = request.header("origin").map(str::to_string);
        if let Some(origin) = &origin
            && request.method == "OPTIONS"
            && request.header("access-control-request-method").is_some()
        {
            return preflight(&rule, origin, &request);
        }
        let mut response = next.run(request);
        decorate(&rule, origin.as_deref(), &mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CorsConfig {
        parse(
            r#"{"rules":[{"prefix":"/api/","origins":["https://app.example"],"methods":["PUT"],
                "headers":["x-custom","content-type"],"expose":["x-request-id"],"credentials":true,"max_age":600},
               {"prefix":"/public/","origins":["*"]}]}"#,
        )
        .unwrap()
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: "/api/x".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn preflight_table() {
        let config = config();
        let rule = config.rule_for("/api/x").unwrap();
        // (origin, method, request headers, private network, allowed)
        let cases = [
            ("https://app.example", "PUT", "x-custom", false, true),
            (
                "https://app.example",
                "PUT",
                "X-Custom, Content-Type",
                false,
                true,
            ),
            ("https://app.example", "DELETE", "", false, false),
            ("https://app.example", "PUT", "x-other", false, false),
            ("https://evil.example", "PUT", "", false, false),
            ("null", "GET", "", false, false),
            ("https://app.example", "GET", "", true, false),
        ];
        for (origin, method, headers, pna, allowed) in cases {
            let mut h = vec![("access-control-request-method", method)];
            if !headers.is_empty() {
                h.push(("access-control-request-headers", headers));
            }
            if pna {
                h.push(("access-control-request-private-network", "true"));
            }
            let response = preflight(rule, origin, &request("OPTIONS", &h));
            assert_eq!(response.status, 204);
            assert_eq!(
                response.header("access-control-allow-origin").is_some(),
                allowed,
                "{origin} {method} {headers}"
            );
            assert!(response.header("vary").unwrap().contains("Origin"));
            if allowed {
                assert_eq!(response.header("access-control-allow-origin"), Some(origin));
                assert_eq!(
                    response.header("access-control-allow-credentials"),
                    Some("true")
                );
                assert_eq!(response.header("access-control-max-age"), Some("600"));
            }
        }
    }

    #[test]
    fn wildcard_only_without_credentials() {
        let config = config();
        let public = config.rule_for("/public/a").unwrap();
        let mut response = Response::new(200);
        decorate(public, Some("https://any.example"), &mut response);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        let mut response = Response::new(200);
        decorate(public, Some("null"), &mut response);
        assert_eq!(response.header("access-control-allow-origin"), None);
        assert!(
            parse(r#"{"rules":[{"prefix":"/","origins":["*"],"credentials":true}]}"#)
                .unwrap_err()
                .contains("credentials")
        );
        assert!(parse(r#"{"rules":[{"prefix":"/","origins":["https://a/b"]}]}"#).is_err());
    }

    #[test]
    fn vary_is_not_duplicated() {
        let mut response = Response::new(200).with_header("vary", "origin, accept");
        add_vary(&mut response, "Origin");
        assert_eq!(
            response.headers.iter().filter(|(n, _)| n == "vary").count(),
            1
        );
    }
}
