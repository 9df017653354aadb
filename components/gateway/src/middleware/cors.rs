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
    let config: CorsConfig = serde_json::from_slice(text.as_bytes())
        .map_err(|err| format!("not a valid CORS table: {err}"))?;
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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn origin() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => (
                prop_oneof![6 => Just("https://"), 3 => Just("http://"), 1 => Just("ftp://"), 1 => Just("")],
                prop_oneof![
                    10 => prop::sample::select(vec!["app.example", "a.example:8443", "evil.example", "[::1]:3000"]),
                    1 => Just(""),
                ],
                prop_oneof![12 => Just(""), 1 => Just("/"), 1 => Just("/x?y"), 1 => Just(" ")],
            )
                .prop_map(|(s, h, p)| format!("{s}{h}{p}")),
            2 => Just("*".to_owned()),
            1 => Just("null".to_owned()),
            1 => "\\PC{0,8}",
        ]
    }

    fn json_list(items: &[String]) -> String {
        serde_json::json!(items).to_string()
    }

    /// CORS tables: rules with listed, wildcard and `null` origins, with
    /// and without credentials, and now and then a bad prefix, a bad
    /// origin, a mistyped or unknown field.
    fn table() -> impl Strategy<Value = String> {
        let rule = (
            prop_oneof![20 => "/[a-z/]{0,5}", 1 => "[a-z]{0,2}"],
            proptest::collection::vec(origin(), 0..3),
            proptest::option::of(proptest::collection::vec(
                prop::sample::select(vec!["PUT", "DELETE", "PATCH", "put"]).prop_map(str::to_owned),
                0..3,
            )),
            proptest::option::of(proptest::collection::vec("[a-zA-Z-]{1,8}", 0..3)),
            proptest::option::of(proptest::collection::vec("[a-z-]{1,8}", 0..2)),
            proptest::option::of(any::<bool>()),
            proptest::option::of(prop_oneof![
                8 => any::<u64>().prop_map(|n| n.to_string()),
                1 => Just("-1".to_owned()),
                1 => Just("null".to_owned()),
            ]),
            proptest::option::of(any::<bool>()),
            proptest::option::weighted(0.02, Just(r#""allow":1"#)),
        )
            .prop_map(
                |(
                    prefix,
                    origins,
                    methods,
                    headers,
                    expose,
                    credentials,
                    max_age,
                    pna,
                    unknown,
                )| {
                    let mut fields = vec![
                        format!("\"prefix\":{}", serde_json::Value::String(prefix)),
                        format!("\"origins\":{}", json_list(&origins)),
                    ];
                    if let Some(m) = methods {
                        fields.push(format!("\"methods\":{}", json_list(&m)));
                    }
                    if let Some(h) = headers {
                        fields.push(format!("\"headers\":{}", json_list(&h)));
                    }
                    if let Some(e) = expose {
                        fields.push(format!("\"expose\":{}", json_list(&e)));
                    }
                    if let Some(c) = credentials {
                        fields.push(format!("\"credentials\":{c}"));
                    }
                    if let Some(m) = max_age {
                        fields.push(format!("\"max_age\":{m}"));
                    }
                    if let Some(p) = pna {
                        fields.push(format!("\"private_network\":{p}"));
                    }
                    fields.extend(unknown.map(str::to_owned));
                    format!("{{{}}}", fields.join(","))
                },
            );
        prop_oneof![
            16 => proptest::collection::vec(rule, 1..4).prop_map(|r| format!("{{\"rules\":[{}]}}", r.join(","))),
            1 => "[\\[\\]{}\":,a-z0-9 /*]{0,24}",
            1 => any::<String>(),
        ]
    }

    /// What a browser (or anyone) sends on a request to a CORS prefix.
    fn client_headers() -> impl Strategy<Value = Vec<(String, String)>> {
        (
            proptest::option::of(origin()),
            proptest::option::of(prop_oneof![
                Just("PUT".to_owned()),
                Just("GET".to_owned()),
                Just(" DELETE ".to_owned()),
                "\\PC{0,6}",
            ]),
            proptest::option::of(prop_oneof![
                proptest::collection::vec("[a-zA-Z-]{0,8}", 0..4).prop_map(|h| h.join(" ,")),
                "\\PC{0,10}",
            ]),
            proptest::option::of(prop_oneof![
                Just("true".to_owned()),
                Just("TRUE".to_owned())
            ]),
        )
            .prop_map(|(origin, method, headers, pna)| {
                let mut out = Vec::new();
                let mut push = |name: &str, value: Option<String>| {
                    if let Some(value) = value {
                        out.push((name.to_owned(), value));
                    }
                };
                push("origin", origin);
                push("access-control-request-method", method);
                push("access-control-request-headers", headers);
                push("access-control-request-private-network", pna);
                out
            })
    }

    fn check_cors_headers(
        rule: &Rule,
        origin: Option<&str>,
        response: &Response,
    ) -> Result<(), TestCaseError> {
        prop_assert!(
            response
                .headers
                .iter()
                .any(|(n, v)| n == "vary" && v.contains("Origin"))
        );
        if let Some(allowed) = response.header("access-control-allow-origin") {
            let origin = origin.unwrap_or_default();
            prop_assert!(rule.allows_origin(origin), "{:?} not allowed", origin);
            // Never `*` with credentials, and `*` only for a wildcard rule.
            if allowed == "*" {
                prop_assert!(!rule.credentials && rule.origins.iter().any(|o| o == "*"));
            } else {
                prop_assert_eq!(allowed, origin);
            }
            prop_assert_eq!(
                response
                    .header("access-control-allow-credentials")
                    .is_some(),
                rule.credentials
            );
            if origin == "null" {
                prop_assert!(rule.origins.iter().any(|o| o == "null"));
            }
        } else {
            prop_assert!(
                response
                    .header("access-control-allow-credentials")
                    .is_none()
            );
            prop_assert!(response.header("access-control-allow-methods").is_none());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn accepted_tables_keep_the_documented_rules(text in table()) {
            let Ok(config) = parse(&text) else { return Ok(()) };
            for rule in &config.rules {
                prop_assert!(rule.prefix.starts_with('/'));
                prop_assert!(!(rule.credentials && rule.origins.iter().any(|o| o == "*")));
                for origin in &rule.origins {
                    prop_assert!(origin == "*" || origin == "null" || is_origin(origin), "{:?}", origin);
                    prop_assert!(!origin.contains(['/', '?', '#', ' ']) || origin.contains("://"));
                }
            }
        }

        #[test]
        fn cors_headers_only_ever_grant_what_the_rule_allows(
            text in table(),
            path in ("/[a-z/]{0,6}", "[a-z/]{0,3}", any::<bool>()),
            client in client_headers(),
            listed in (any::<bool>(), any::<bool>(), any::<prop::sample::Index>()),
            method in prop::sample::select(vec!["OPTIONS", "GET", "POST", "PUT"]),
        ) {
            let Ok(config) = parse(&text) else { return Ok(()) };
            let (_, _, pick) = listed;
            // Mostly a path under one of the rules, so a rule applies.
            let path = match path {
                (_, suffix, true) if !config.rules.is_empty() => {
                    format!("{}{suffix}", config.rules[pick.index(config.rules.len())].prefix)
                }
                (path, _, _) => path,
            };
            let Some(rule) = config.rule_for(&path) else {
                prop_assert!(config.rules.iter().all(|r| !path.starts_with(&r.prefix)));
                return Ok(());
            };
            prop_assert!(config.rules.iter().filter(|r| path.starts_with(&r.prefix)).all(|r| r.prefix.len() <= rule.prefix.len()));
            // Half the time the client asks for what the rule lists, so
            // the granting paths are reached, not only the refusals.
            let mut headers = client;
            let (listed_origin, listed_method, pick) = listed;
            if listed_origin && !rule.origins.is_empty() {
                let origin = &rule.origins[pick.index(rule.origins.len())];
                let origin = if origin == "*" { "https://any.example" } else { origin };
                headers.retain(|(n, _)| n != "origin");
                headers.insert(0, ("origin".to_owned(), origin.to_owned()));
            }
            if listed_method && !rule.methods.is_empty() {
                headers.retain(|(n, _)| !n.starts_with("access-control-request-"));
                headers.push(("access-control-request-method".to_owned(), rule.methods[pick.index(rule.methods.len())].clone()));
                if !rule.headers.is_empty() {
                    headers.push(("access-control-request-headers".to_owned(), rule.headers.join(", ")));
                }
            }
            let request = Request { method: method.into(), path, headers, ..Request::default() };
            let origin = request.header("origin");
            if let Some(origin) = origin {
                let response = preflight(rule, origin, &request);
                prop_assert_eq!(response.status, 204);
                check_cors_headers(rule, Some(origin), &response)?;
                if response.header("access-control-allow-origin").is_some() {
                    let asked = request.header("access-control-request-method").unwrap_or_default().trim();
                    prop_assert_eq!(response.header("access-control-allow-methods"), Some(asked));
                }
            }
            let mut response = Response::new(200);
            decorate(rule, origin, &mut response);
            check_cors_headers(rule, origin, &response)?;
        }
    }
}
