//! The browser-facing edge, server side: CORS preflights and actual requests
//! under a `cors` configuration, CSRF refusals of cross-site unsafe requests,
//! security headers, and the page routes the browser pages rely on.
//!
//! Every expectation comes from the browser-facing contract (the `cors`
//! variable, CSRF rules, security headers, page URL mapping) and the Fetch
//! standard's CORS protocol, not from the code under test. The browser's
//! view of the same rules is in `browser.rs`.

use portico::serve::Target;
use serde_json::{Value, json};

use crate::harness::{Host, HostConfig, Reply, data_dir};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "root-password-1";

/// Allowed for `/api/` with credentials, and (without) for `/api/ab/`.
const ALLOWED: &str = "http://allowed.example:8080";
/// Listed nowhere.
const EVIL: &str = "http://evil.example";
/// Only the `*` rule of `/ofrep/` covers it.
const ANY: &str = "http://any.example";

const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
const DEFAULT_HSTS: &str = "max-age=63072000; includeSubDomains";
const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=()";
/// The README's policy for every response that is not HTML.
const DOCUMENT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// Three rules: `/api/` with credentials, the longer `/api/ab/` that lists
/// `null` and answers private-network preflights, and `/ofrep/` open to `*`.
fn cors_rules() -> Value {
    json!({"rules": [
        {
            "prefix": "/api/",
            "origins": [ALLOWED],
            "methods": ["GET", "POST", "PUT"],
            "headers": ["content-type", "x-custom"],
            "expose": ["x-request-id", "ratelimit"],
            "credentials": true,
            "max_age": 600,
            "private_network": false
        },
        {
            "prefix": "/api/ab/",
            "origins": ["null", ALLOWED],
            "methods": ["GET"],
            "headers": [],
            "expose": [],
            "credentials": false,
            "max_age": 60,
            "private_network": true
        },
        {
            "prefix": "/ofrep/",
            "origins": ["*"],
            "methods": ["POST"],
            "headers": ["content-type"],
            "expose": [],
            "credentials": false,
            "max_age": 120,
            "private_network": false
        }
    ]})
}

struct App {
    host: Host,
    _data: tempfile::TempDir,
}

fn start(target: Target, name: &str, vars: &[(&str, &str)]) -> App {
    let data = data_dir(name);
    let mut config = HostConfig::app(target, data.path());
    let defaults = [
        ("bootstrap_admin", format!("{ADMIN}:{ADMIN_PASSWORD}")),
        ("password_iterations", "1000".to_string()),
        (
            "rate_limit_policies",
            "default=1000000/1s, tight=1/60s".to_string(),
        ),
        ("rate_limit_routes", "/api/limited/=tight".to_string()),
        ("cors", cors_rules().to_string()),
    ];
    for (name, value) in defaults {
        config.vars.push((name.into(), value));
    }
    for (name, value) in vars {
        config.vars.retain(|(n, _)| n != name);
        config.vars.push(((*name).into(), (*value).into()));
    }
    App {
        host: Host::start(&config),
        _data: data,
    }
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host.url)
    }

    /// The gateway's own origin, as a browser on it would send it.
    fn origin(&self) -> &str {
        &self.host.url
    }

    /// Any request, redirects not followed.
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        let response = match body {
            Some(body) => agent.run(builder.body(body.to_vec()).unwrap()),
            None => agent.run(builder.body(()).unwrap()),
        };
        let reply = Reply::from(response.unwrap_or_else(|err| panic!("{method} {path}: {err}")));
        credentials_never_with_star(&reply, &format!("{method} {path}"));
        reply
    }

    /// Logs in with JSON (no Origin) and returns the session token.
    fn session(&self, username: &str, password: &str) -> String {
        let reply = self.call(
            "POST",
            "/api/login",
            &[("content-type", "application/json")],
            Some(
                json!({"username": username, "password": password})
                    .to_string()
                    .as_bytes(),
            ),
        );
        assert_eq!(reply.status, 200, "login {username}: {}", reply.text());
        session_cookie(&reply).expect("login sets the session cookie")
    }
}

fn session_cookie(reply: &Reply) -> Option<String> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.split(';')
                .next()
                .and_then(|pair| pair.trim().strip_prefix("session="))
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        })
}

/// The contract's session cookie: `HttpOnly; Secure; SameSite=Lax; Path=/`.
fn cookie_attributes(reply: &Reply) -> Result<(), String> {
    let cookie = header_all(reply, "set-cookie")
        .into_iter()
        .find(|c| c.trim_start().starts_with("session="))
        .ok_or("no session cookie")?;
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["httponly", "secure", "samesite=lax", "path=/"] {
        if !attributes.iter().any(|a| a == want) {
            return Err(format!("session cookie {cookie:?} lacks {want}"));
        }
    }
    Ok(())
}

fn header_all<'a>(reply: &'a Reply, name: &str) -> Vec<&'a str> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The comma-separated tokens of every `name` header, lower-cased.
fn tokens(reply: &Reply, name: &str) -> Vec<String> {
    header_all(reply, name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn varies_on(reply: &Reply, token: &str) -> bool {
    tokens(reply, "vary")
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(token))
}

/// The `access-control-*` response headers present.
fn cors_headers(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n.starts_with("access-control-"))
        .collect()
}

/// Fetch standard: `Access-Control-Allow-Origin: *` never goes with credentials.
fn credentials_never_with_star(reply: &Reply, what: &str) {
    if reply.header("access-control-allow-credentials").is_some() {
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true"),
            "{what}: Access-Control-Allow-Credentials must be exactly `true`"
        );
        assert!(
            reply
                .header("access-control-allow-origin")
                .is_some_and(|o| o != "*"),
            "{what}: credentials with ACAO {:?}",
            reply.header("access-control-allow-origin")
        );
    }
}

fn is_problem(reply: &Reply, status: u16, kind: &str) -> Result<(), String> {
    if reply.status != status {
        return Err(format!(
            "status {} (want {status}): {}",
            reply.status,
            reply.text()
        ));
    }
    if reply.header("content-type") != Some("application/problem+json") {
        return Err(format!(
            "content-type {:?} (want application/problem+json)",
            reply.header("content-type")
        ));
    }
    let body: Value = serde_json::from_slice(&reply.body)
        .map_err(|err| format!("problem is not JSON ({err}): {}", reply.text()))?;
    if body["type"] != format!("https://portico.dev/problems#{kind}") {
        return Err(format!("problem type (want #{kind}): {body}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Preflights.

/// What a preflight should be answered with.
enum Granted {
    /// 204 without any `access-control-*` header: the browser blocks.
    Refused,
    /// 204 with the CORS headers of the rule.
    Yes {
        origin: &'static str,
        credentials: bool,
        max_age: u32,
        private_network: bool,
    },
    /// Whatever else, `access-control-allow-headers` does not grant this one.
    NotHeader(&'static str),
    /// Whatever else, no `access-control-allow-private-network`.
    NoPrivateNetwork,
    /// No CORS header at all (no rule for the path).
    NoCors,
}

struct Preflight {
    what: &'static str,
    path: &'static str,
    origin: &'static str,
    method: &'static str,
    headers: Option<&'static str>,
    private_network: bool,
    expect: Granted,
}

on_both_targets!(preflights_follow_the_rules);
fn preflights_follow_the_rules(target: Target) {
    let app = start(target, "cors-preflight", &[]);
    let yes = |origin, credentials, max_age, private_network| Granted::Yes {
        origin,
        credentials,
        max_age,
        private_network,
    };
    let cases = [
        Preflight {
            what: "allowed origin, method and headers",
            path: "/api/config",
            origin: ALLOWED,
            method: "PUT",
            headers: Some("content-type,x-custom"),
            private_network: false,
            expect: yes(ALLOWED, true, 600, false),
        },
        Preflight {
            what: "header names compare case-insensitively",
            path: "/api/user",
            origin: ALLOWED,
            method: "POST",
            headers: Some("X-Custom, Content-Type"),
            private_network: false,
            expect: yes(ALLOWED, true, 600, false),
        },
        Preflight {
            what: "a path no route claims is still a preflight (never forwarded)",
            path: "/api/no-such-route",
            origin: ALLOWED,
            method: "GET",
            headers: None,
            private_network: false,
            expect: yes(ALLOWED, true, 600, false),
        },
        Preflight {
            what: "method outside the rule",
            path: "/api/config",
            origin: ALLOWED,
            method: "DELETE",
            headers: None,
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "header outside the rule",
            path: "/api/config",
            origin: ALLOWED,
            method: "GET",
            headers: Some("x-evil"),
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "one header outside the rule among allowed ones",
            path: "/api/config",
            origin: ALLOWED,
            method: "PUT",
            headers: Some("content-type,x-evil"),
            private_network: false,
            expect: Granted::NotHeader("x-evil"),
        },
        Preflight {
            what: "origin not listed",
            path: "/api/config",
            origin: EVIL,
            method: "GET",
            headers: None,
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "listed host on another port",
            path: "/api/config",
            origin: "http://allowed.example",
            method: "GET",
            headers: None,
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "listed host and port with another scheme",
            path: "/api/config",
            origin: "https://allowed.example:8080",
            method: "GET",
            headers: None,
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "null origin where it is not listed",
            path: "/api/config",
            origin: "null",
            method: "GET",
            headers: None,
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "null origin where it is listed (longest prefix /api/ab/)",
            path: "/api/ab/new-checkout",
            origin: "null",
            method: "GET",
            headers: None,
            private_network: false,
            expect: yes("null", false, 60, false),
        },
        Preflight {
            what: "private network preflight where enabled",
            path: "/api/ab/new-checkout",
            origin: ALLOWED,
            method: "GET",
            headers: None,
            private_network: true,
            expect: yes(ALLOWED, false, 60, true),
        },
        Preflight {
            what: "private network preflight where not enabled",
            path: "/api/config",
            origin: ALLOWED,
            method: "GET",
            headers: None,
            private_network: true,
            expect: Granted::NoPrivateNetwork,
        },
        Preflight {
            what: "`*` rule without credentials",
            path: "/ofrep/v1/evaluate/flags",
            origin: ANY,
            method: "POST",
            headers: Some("content-type"),
            private_network: false,
            expect: yes("*", false, 120, false),
        },
        Preflight {
            what: "`*` does not cover the null origin",
            path: "/ofrep/v1/evaluate/flags",
            origin: "null",
            method: "POST",
            headers: None,
            private_network: false,
            expect: Granted::Refused,
        },
        Preflight {
            what: "no rule for the path",
            path: "/healthz",
            origin: ALLOWED,
            method: "GET",
            headers: None,
            private_network: false,
            expect: Granted::NoCors,
        },
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let mut headers = vec![
            ("origin", case.origin),
            ("access-control-request-method", case.method),
        ];
        if let Some(requested) = case.headers {
            headers.push(("access-control-request-headers", requested));
        }
        if case.private_network {
            headers.push(("access-control-request-private-network", "true"));
        }
        let reply = app.call("OPTIONS", case.path, &headers, None);
        let what = format!(
            "{} (OPTIONS {} from {}, {} {:?})",
            case.what, case.path, case.origin, case.method, case.headers
        );
        if let Err(problem) = check_preflight(&reply, case) {
            failures.push(format!("{what}: {problem}; headers {:?}", reply.headers));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} preflight cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn check_preflight(reply: &Reply, case: &Preflight) -> Result<(), String> {
    let answered = |reply: &Reply| -> Result<(), String> {
        if reply.status != 204 {
            return Err(format!(
                "status {} (want 204 from the middleware): {}",
                reply.status,
                reply.text()
            ));
        }
        if !reply.body.is_empty() {
            return Err(format!("a preflight answer with a body: {}", reply.text()));
        }
        Ok(())
    };
    match &case.expect {
        Granted::Refused => {
            answered(reply)?;
            let present = cors_headers(reply);
            if !present.is_empty() {
                return Err(format!("refused, yet CORS headers {present:?}"));
            }
        }
        Granted::NoCors => {
            let present = cors_headers(reply);
            if !present.is_empty() {
                return Err(format!("no rule, yet CORS headers {present:?}"));
            }
        }
        Granted::NotHeader(name) => {
            if tokens(reply, "access-control-allow-headers")
                .iter()
                .any(|t| t == name || t == "*")
            {
                return Err(format!("{name} granted"));
            }
        }
        Granted::NoPrivateNetwork => {
            if reply
                .header("access-control-allow-private-network")
                .is_some()
            {
                return Err("private network granted where the rule does not enable it".into());
            }
        }
        Granted::Yes {
            origin,
            credentials,
            max_age,
            private_network,
        } => {
            answered(reply)?;
            if reply.header("access-control-allow-origin") != Some(origin) {
                return Err(format!(
                    "ACAO {:?} (want {origin:?})",
                    reply.header("access-control-allow-origin")
                ));
            }
            let want_credentials = credentials.then_some("true");
            if reply.header("access-control-allow-credentials") != want_credentials {
                return Err(format!(
                    "ACA-Credentials {:?} (want {want_credentials:?})",
                    reply.header("access-control-allow-credentials")
                ));
            }
            let methods = tokens(reply, "access-control-allow-methods");
            if !methods.iter().any(|m| m.eq_ignore_ascii_case(case.method)) {
                return Err(format!("ACA-Methods {methods:?} lacks {}", case.method));
            }
            let granted = tokens(reply, "access-control-allow-headers");
            for requested in case.headers.into_iter().flat_map(|h| h.split(',')) {
                let requested = requested.trim().to_ascii_lowercase();
                if !granted.contains(&requested) {
                    return Err(format!("ACA-Headers {granted:?} lacks {requested}"));
                }
            }
            if reply.header("access-control-max-age") != Some(max_age.to_string().as_str()) {
                return Err(format!(
                    "Max-Age {:?} (want {max_age})",
                    reply.header("access-control-max-age")
                ));
            }
            for token in [
                "origin",
                "access-control-request-method",
                "access-control-request-headers",
            ] {
                if !varies_on(reply, token) {
                    return Err(format!(
                        "Vary {:?} lacks {token}",
                        header_all(reply, "vary")
                    ));
                }
            }
            let pna = reply.header("access-control-allow-private-network");
            if *private_network && pna != Some("true") {
                return Err(format!("ACA-Private-Network {pna:?} (want true)"));
            }
            if !*private_network && pna.is_some() {
                return Err(format!("ACA-Private-Network {pna:?} not requested"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Actual requests.

/// (what, method, path, origin, want status, want problem type, want CORS)
type ActualCase = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    Option<&'static str>,
    Cors,
);

/// What an actual request's answer carries.
enum Cors {
    /// ACAO `origin`, credentials or not, exposing these headers; Vary: Origin.
    Allowed {
        origin: &'static str,
        credentials: bool,
        expose: &'static [&'static str],
    },
    /// No `access-control-*` header, but `Vary: Origin` (a configured prefix).
    NoneVaried,
    /// No `access-control-*` header (no rule).
    None,
}

on_both_targets!(actual_requests_get_cors_headers_even_on_errors);
fn actual_requests_get_cors_headers_even_on_errors(target: Target) {
    let app = start(target, "cors-actual", &[]);
    const API_EXPOSED: &[&str] = &["x-request-id", "ratelimit"];
    let allowed = Cors::Allowed {
        origin: ALLOWED,
        credentials: true,
        expose: API_EXPOSED,
    };
    let cases: Vec<ActualCase> = vec![
        (
            "allowed origin",
            "GET",
            "/api/config",
            Some(ALLOWED),
            200,
            None,
            allowed,
        ),
        (
            "allowed origin, 401",
            "GET",
            "/api/user",
            Some(ALLOWED),
            401,
            Some("unauthenticated"),
            Cors::Allowed {
                origin: ALLOWED,
                credentials: true,
                expose: API_EXPOSED,
            },
        ),
        (
            "allowed origin, 404",
            "GET",
            "/api/no-such-route",
            Some(ALLOWED),
            404,
            Some("not-found"),
            Cors::Allowed {
                origin: ALLOWED,
                credentials: true,
                expose: API_EXPOSED,
            },
        ),
        (
            "OPTIONS without Access-Control-Request-Method goes to the router",
            "OPTIONS",
            "/api/config",
            Some(ALLOWED),
            405,
            Some("method-not-allowed"),
            Cors::Allowed {
                origin: ALLOWED,
                credentials: true,
                expose: API_EXPOSED,
            },
        ),
        (
            "OPTIONS without Origin goes to the router",
            "OPTIONS",
            "/api/config",
            None,
            405,
            Some("method-not-allowed"),
            Cors::NoneVaried,
        ),
        (
            "disallowed origin: a normal answer without CORS headers",
            "GET",
            "/api/config",
            Some(EVIL),
            200,
            None,
            Cors::NoneVaried,
        ),
        (
            "null origin where it is not listed",
            "GET",
            "/api/config",
            Some("null"),
            200,
            None,
            Cors::NoneVaried,
        ),
        (
            "no Origin on a configured prefix",
            "GET",
            "/api/config",
            None,
            200,
            None,
            Cors::NoneVaried,
        ),
        (
            "null origin where it is listed, without credentials",
            "GET",
            "/api/ab/no-such-experiment",
            Some("null"),
            404,
            Some("experiment-unavailable"),
            Cors::Allowed {
                origin: "null",
                credentials: false,
                expose: &[],
            },
        ),
        (
            "`*` rule: a non-preflight OPTIONS answered by the router",
            "OPTIONS",
            "/ofrep/v1/evaluate/flags",
            Some(ANY),
            405,
            Some("method-not-allowed"),
            Cors::Allowed {
                origin: "*",
                credentials: false,
                expose: &[],
            },
        ),
        (
            "no rule for the path",
            "GET",
            "/healthz",
            Some(ALLOWED),
            200,
            None,
            Cors::None,
        ),
    ];

    let mut failures = Vec::new();
    for (what, method, path, origin, status, kind, cors) in &cases {
        let headers: Vec<(&str, &str)> = origin.iter().map(|o| ("origin", *o)).collect();
        let reply = app.call(method, path, &headers, None);
        let what = format!("{what} ({method} {path} from {origin:?})");
        let outcome = match kind {
            Some(kind) => is_problem(&reply, *status, kind),
            None if reply.status != *status => Err(format!(
                "status {} (want {status}): {}",
                reply.status,
                reply.text()
            )),
            None => Ok(()),
        }
        .and_then(|()| check_actual(&reply, cors));
        if let Err(problem) = outcome {
            failures.push(format!("{what}: {problem}; headers {:?}", reply.headers));
        }
        if *method == "OPTIONS" && reply.status == 405 && reply.header("allow").is_none() {
            failures.push(format!("{what}: 405 without Allow"));
        }
    }

    // A 429 from the rate limiter carries the CORS headers too.
    let limited: Vec<Reply> = (0..2)
        .map(|_| app.call("GET", "/api/limited/x", &[("origin", ALLOWED)], None))
        .collect();
    let last = &limited[1];
    match is_problem(last, 429, "quota-exceeded").and_then(|()| {
        check_actual(
            last,
            &Cors::Allowed {
                origin: ALLOWED,
                credentials: true,
                expose: API_EXPOSED,
            },
        )
    }) {
        Ok(()) => {}
        Err(problem) => failures.push(format!(
            "429 from the rate limiter: {problem}; headers {:?}",
            last.headers
        )),
    }

    assert!(
        failures.is_empty(),
        "{} of {} actual-request cases failed:\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n")
    );
}

fn check_actual(reply: &Reply, cors: &Cors) -> Result<(), String> {
    let present = cors_headers(reply);
    match cors {
        Cors::Allowed {
            origin,
            credentials,
            expose,
        } => {
            if reply.header("access-control-allow-origin") != Some(origin) {
                return Err(format!(
                    "ACAO {:?} (want {origin:?})",
                    reply.header("access-control-allow-origin")
                ));
            }
            let want = credentials.then_some("true");
            if reply.header("access-control-allow-credentials") != want {
                return Err(format!(
                    "ACA-Credentials {:?} (want {want:?})",
                    reply.header("access-control-allow-credentials")
                ));
            }
            let exposed = tokens(reply, "access-control-expose-headers");
            for name in *expose {
                if !exposed.iter().any(|e| e == name) {
                    return Err(format!("Expose-Headers {exposed:?} lacks {name}"));
                }
            }
            for preflight_only in ["access-control-max-age", "access-control-allow-methods"] {
                if present.iter().any(|p| p == preflight_only) {
                    return Err(format!("{preflight_only} on an actual request"));
                }
            }
            if !varies_on(reply, "origin") {
                return Err(format!("Vary {:?} lacks Origin", header_all(reply, "vary")));
            }
        }
        Cors::NoneVaried => {
            if !present.is_empty() {
                return Err(format!("CORS headers {present:?}"));
            }
            if !varies_on(reply, "origin") {
                return Err(format!(
                    "Vary {:?} lacks Origin on a CORS-configured prefix",
                    header_all(reply, "vary")
                ));
            }
        }
        Cors::None => {
            if !present.is_empty() {
                return Err(format!("CORS headers {present:?} on a path without a rule"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CSRF.

/// (what, extra headers, want: Ok(status of a passed login) / Err(()) for 403)
type LoginCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Result<u16, ()>);

on_both_targets!(csrf_refuses_cross_site_unsafe_requests);
fn csrf_refuses_cross_site_unsafe_requests(target: Target) {
    let app = start(target, "cors-csrf", &[]);
    let admin = app.session(ADMIN, ADMIN_PASSWORD);
    let own = app.origin().to_string();
    let port = own.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let other_port = format!("http://127.0.0.1:{}", if port == 1 { 2 } else { port - 1 });
    let other_scheme = format!("evil://127.0.0.1:{port}");
    let form = format!("username={ADMIN}&password={ADMIN_PASSWORD}&next=%2Fapp%2F");
    let form_type = ("content-type", "application/x-www-form-urlencoded");

    let logins: Vec<LoginCase> = vec![
        ("cross-site form", vec![("origin", EVIL)], Err(())),
        ("same-origin form", vec![("origin", own.as_str())], Ok(303)),
        ("no Origin (curl, server to server)", vec![], Ok(303)),
        (
            "Sec-Fetch-Site: cross-site without Origin",
            vec![("sec-fetch-site", "cross-site")],
            Err(()),
        ),
        ("null origin", vec![("origin", "null")], Err(())),
        (
            "same host, another port",
            vec![("origin", other_port.as_str())],
            Err(()),
        ),
        (
            "this host and port on a scheme that is not http(s)",
            vec![("origin", other_scheme.as_str())],
            Err(()),
        ),
        (
            "the listed host on another scheme",
            vec![("origin", "https://allowed.example:8080")],
            Err(()),
        ),
        (
            "CORS-allowed origin with credentials",
            vec![("origin", ALLOWED)],
            Ok(303),
        ),
    ];
    let mut failures = Vec::new();
    for (what, extra, want) in &logins {
        let mut headers = vec![form_type];
        headers.extend(extra.iter().copied());
        let reply = app.call("POST", "/api/login", &headers, Some(form.as_bytes()));
        let outcome = match want {
            Err(()) => is_problem(&reply, 403, "cross-site-request").and_then(|()| {
                match session_cookie(&reply) {
                    Some(_) => Err("a refused login set a session".into()),
                    None => Ok(()),
                }
            }),
            Ok(status) if reply.status != *status => Err(format!(
                "status {} (want {status}): {}",
                reply.status,
                reply.text()
            )),
            Ok(_) if reply.header("location") != Some("/app/") => Err(format!(
                "Location {:?} (want /app/)",
                reply.header("location")
            )),
            Ok(_) if session_cookie(&reply).is_none() => Err("no session cookie".into()),
            Ok(_) => cookie_attributes(&reply),
        };
        if let Err(problem) = outcome {
            failures.push(format!("POST /api/login, {what}: {problem}"));
        }
    }

    // Unsafe admin requests with a valid bearer token are refused all the
    // same when the Origin is foreign, and change nothing.
    let bearer = format!("Bearer {admin}");
    let before = app.call("GET", "/admin/flags", &[("authorization", &bearer)], None);
    assert_eq!(before.status, 200, "GET /admin/flags: {}", before.text());
    let new_set = json!({"flags": {"csrf": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}});
    let unsafe_cases: Vec<(&str, &str, Option<Vec<u8>>)> = vec![
        (
            "PUT",
            "/admin/flags",
            Some(new_set.to_string().into_bytes()),
        ),
        ("PATCH", "/admin/flags/csrf", Some(b"null".to_vec())),
        ("DELETE", "/admin/assets/site/index.html", None),
        (
            "PUT",
            "/admin/assets/site/csrf.html",
            Some(b"<p>csrf</p>".to_vec()),
        ),
        (
            "POST",
            "/admin/cache/purge",
            Some(br#"{"prefix":"http://x/"}"#.to_vec()),
        ),
        (
            "POST",
            "/ofrep/v1/evaluate/flags",
            Some(br#"{"context":{"targetingKey":"k"}}"#.to_vec()),
        ),
    ];
    for (method, path, body) in &unsafe_cases {
        for origin in [EVIL, ANY] {
            let reply = app.call(
                method,
                path,
                &[
                    ("origin", origin),
                    ("authorization", &bearer),
                    ("content-type", "application/json"),
                ],
                body.as_deref(),
            );
            if let Err(problem) = is_problem(&reply, 403, "cross-site-request") {
                failures.push(format!(
                    "{method} {path} from {origin} with a bearer token: {problem}"
                ));
            }
        }
    }
    let after = app.call("GET", "/admin/flags", &[("authorization", &bearer)], None);
    if after.body != before.body {
        failures.push(format!(
            "refused writes changed the flags: {} -> {}",
            before.text(),
            after.text()
        ));
    }
    let page = app.call("GET", "/assets/site/csrf.html", &[], None);
    if page.status != 404 {
        failures.push(format!("a refused upload was stored: {}", page.status));
    }

    // A cross-site logout does not end the session; a same-origin one does.
    let cookie = format!("session={admin}");
    let refused = app.call(
        "POST",
        "/api/logout",
        &[("origin", EVIL), ("cookie", &cookie)],
        None,
    );
    if let Err(problem) = is_problem(&refused, 403, "cross-site-request") {
        failures.push(format!("cross-site logout: {problem}"));
    }
    let user = app.call("GET", "/api/user", &[("cookie", &cookie)], None);
    if user.status != 200 {
        failures.push(format!(
            "the session ended after a refused logout: {}",
            user.text()
        ));
    }
    let logout = app.call(
        "POST",
        "/api/logout",
        &[("origin", &own), ("cookie", &cookie)],
        None,
    );
    if logout.status != 204 {
        failures.push(format!(
            "same-origin logout: {} {}",
            logout.status,
            logout.text()
        ));
    }
    let user = app.call("GET", "/api/user", &[("cookie", &cookie)], None);
    if user.status != 401 {
        failures.push(format!(
            "the session survived a same-origin logout: {}",
            user.status
        ));
    }
    // Safe methods are never refused for their Origin.
    let read = app.call("GET", "/api/config", &[("origin", EVIL)], None);
    if read.status != 200 {
        failures.push(format!(
            "GET from a foreign origin: {} {}",
            read.status,
            read.text()
        ));
    }

    assert!(
        failures.is_empty(),
        "CSRF cases failed:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Security headers.

fn upload(app: &App, token: &str, path: &str, body: &[u8], content_type: &str) {
    let reply = app.call(
        "PUT",
        &format!("/admin/assets/{path}"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", content_type),
        ],
        Some(body),
    );
    assert!(
        reply.status == 200 || reply.status == 201,
        "upload {path}: {} {}",
        reply.status,
        reply.text()
    );
}

fn html_headers_missing(reply: &Reply, csp: &str, hsts: Option<&str>) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut want = vec![
        ("content-security-policy", Some(csp)),
        ("referrer-policy", Some("strict-origin-when-cross-origin")),
        ("x-frame-options", Some("DENY")),
        ("strict-transport-security", hsts),
        ("permissions-policy", Some(PERMISSIONS_POLICY)),
        ("x-content-type-options", Some("nosniff")),
    ];
    for (name, value) in want.drain(..) {
        let got = header_all(reply, name);
        let ok = match value {
            Some(value) => got == [value],
            None => got.is_empty(),
        };
        if !ok {
            wrong.push(format!("{name}: {got:?} (want {value:?})"));
        }
    }
    wrong
}

/// (method, path, request headers)
type RequestCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

on_both_targets!(security_headers_on_pages_and_nosniff_everywhere);
fn security_headers_on_pages_and_nosniff_everywhere(target: Target) {
    let app = start(target, "cors-security", &[]);
    let admin = app.session(ADMIN, ADMIN_PASSWORD);
    let html = b"<!doctype html><title>t</title><p>hello</p>\n";
    upload(
        &app,
        &admin,
        "site/page.html",
        html,
        "text/html; charset=utf-8",
    );

    let mut failures = Vec::new();
    for path in ["/page.html", "/assets/site/page.html"] {
        let reply = app.call("GET", path, &[], None);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        assert_eq!(reply.body, html, "GET {path}");
        for wrong in html_headers_missing(&reply, DEFAULT_CSP, Some(DEFAULT_HSTS)) {
            failures.push(format!("GET {path} (text/html): {wrong}"));
        }
    }

    // nosniff on every response: JSON, problems, preflights, redirects, CSRF refusals.
    let bearer = format!("Bearer {admin}");
    let cases: Vec<RequestCase> = vec![
        ("GET", "/api/config", vec![]),
        ("GET", "/healthz", vec![]),
        (
            "GET",
            "/admin/flags",
            vec![("authorization", bearer.as_str())],
        ),
        ("GET", "/api/user", vec![]),
        ("GET", "/api/no-such-route", vec![]),
        ("DELETE", "/api/config", vec![]),
        ("GET", "/app/", vec![]),
        (
            "OPTIONS",
            "/api/config",
            vec![
                ("origin", ALLOWED),
                ("access-control-request-method", "GET"),
            ],
        ),
        ("POST", "/api/logout", vec![("origin", EVIL)]),
    ];
    // Documents that are not HTML still run script when opened (SVG, XML,
    // XHTML, XSL): every one is sandboxed, through either mount.
    let script =
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.cookie)</script></svg>";
    for (path, content_type) in [
        ("x.svg", "image/svg+xml"),
        ("x.xml", "application/xml"),
        ("x.xhtml", "application/xhtml+xml"),
        ("x.xsl", "application/xslt+xml"),
    ] {
        upload(&app, &admin, &format!("site/{path}"), script, content_type);
        for url in [format!("/{path}"), format!("/assets/site/{path}")] {
            let reply = app.call("GET", &url, &[], None);
            assert_eq!(reply.status, 200, "GET {url}: {}", reply.text());
            if header_all(&reply, "content-security-policy") != [DOCUMENT_CSP] {
                failures.push(format!(
                    "GET {url} ({content_type}): Content-Security-Policy {:?} (want {DOCUMENT_CSP:?})",
                    header_all(&reply, "content-security-policy")
                ));
            }
        }
    }
    for (method, path, headers) in &cases {
        let reply = app.call(method, path, headers, None);
        let html = reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if !html && header_all(&reply, "content-security-policy") != [DOCUMENT_CSP] {
            failures.push(format!(
                "{method} {path} ({}, {:?}): Content-Security-Policy {:?}",
                reply.status,
                reply.header("content-type"),
                header_all(&reply, "content-security-policy")
            ));
        }
        if header_all(&reply, "x-content-type-options") != ["nosniff"] {
            failures.push(format!(
                "{method} {path} ({}, {:?}): X-Content-Type-Options {:?}",
                reply.status,
                reply.header("content-type"),
                header_all(&reply, "x-content-type-options")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "security headers:\n{}",
        failures.join("\n")
    );
}

on_both_targets!(security_header_variables_replace_the_defaults);
fn security_header_variables_replace_the_defaults(target: Target) {
    let csp = "default-src 'none'; img-src 'self'";
    let app = start(
        target,
        "cors-security-vars",
        &[
            ("content_security_policy", csp),
            // Platforms read an empty variable as unset, so `off` turns
            // HSTS off (an empty value keeps the default).
            ("strict_transport_security", "off"),
        ],
    );
    let admin = app.session(ADMIN, ADMIN_PASSWORD);
    upload(&app, &admin, "site/index.html", b"<p>home</p>", "text/html");
    let reply = app.call("GET", "/", &[], None);
    assert_eq!(reply.status, 200, "GET /: {}", reply.text());
    let wrong = html_headers_missing(&reply, csp, None);
    assert!(
        wrong.is_empty(),
        "GET / with the variables set:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Page routes.

on_both_targets!(pages_are_served_from_the_site_with_their_guards);
fn pages_are_served_from_the_site_with_their_guards(target: Target) {
    let app = start(target, "cors-pages", &[]);
    let admin = app.session(ADMIN, ADMIN_PASSWORD);
    let bearer = format!("Bearer {admin}");
    let user_created = app.call(
        "PUT",
        "/admin/users/visitor",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        Some(
            json!({"password": "visitor-password-1", "roles": []})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(
        user_created.status,
        204,
        "create visitor: {}",
        user_created.text()
    );
    let visitor = app.session("visitor", "visitor-password-1");

    let pages: [(&str, &[u8], &str); 4] = [
        ("site/login.html", b"<title>login</title>", "text/html"),
        ("site/app/index.html", b"<title>app</title>", "text/html"),
        (
            "site/admin/index.html",
            b"<title>admin</title>",
            "text/html",
        ),
        ("site/static/portico.css", b"body{margin:0}", "text/css"),
    ];
    for (path, body, content_type) in pages {
        upload(&app, &admin, path, body, content_type);
    }
    let admin_cookie = format!("session={admin}");
    let visitor_cookie = format!("session={visitor}");
    // (path, session cookie, want status, want body or Location)
    let cases: Vec<(&str, Option<&str>, u16, &str)> = vec![
        ("/login", None, 200, "<title>login</title>"),
        ("/login.html", None, 200, "<title>login</title>"),
        ("/static/portico.css", None, 200, "body{margin:0}"),
        ("/app/", None, 302, "/login?next=/app/"),
        ("/app/", Some(&admin_cookie), 200, "<title>app</title>"),
        ("/app/", Some(&visitor_cookie), 200, "<title>app</title>"),
        ("/admin/", None, 302, "/login?next=/admin/"),
        ("/admin/", Some(&admin_cookie), 200, "<title>admin</title>"),
    ];
    let mut failures = Vec::new();
    for (path, cookie, status, want) in &cases {
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", *c)).collect();
        let reply = app.call("GET", path, &headers, None);
        let who = if cookie.is_some() {
            "with a session"
        } else {
            "anonymous"
        };
        if reply.status != *status {
            failures.push(format!(
                "GET {path} {who}: status {} (want {status}): {}",
                reply.status,
                reply.text()
            ));
        } else if *status == 302 && reply.header("location") != Some(want) {
            failures.push(format!(
                "GET {path} {who}: Location {:?} (want {want})",
                reply.header("location")
            ));
        } else if *status == 200 && reply.text() != *want {
            failures.push(format!("GET {path} {who}: body {:?}", reply.text()));
        }
    }
    let forbidden = app.call("GET", "/admin/", &[("cookie", &visitor_cookie)], None);
    if let Err(problem) = is_problem(&forbidden, 403, "forbidden") {
        failures.push(format!("GET /admin/ as a non-admin: {problem}"));
    }
    assert!(failures.is_empty(), "page routes:\n{}", failures.join("\n"));
}
