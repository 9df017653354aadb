//! Spends one unit of the rate-limit policy for the request's route through
//! `portico:ratelimit/limiter`, refusing with `429` when the quota is gone and
//! adding the `RateLimit`/`RateLimit-Policy` fields to every limited response.
//!
//! The key is the session subject when the request carries a verified
//! session (`user:<subject>`, so a user's quota follows them across
//! addresses), else the client: its address (Spin's `spin-client-addr`,
//! without the port), or, when the operator names a header a trusted proxy
//! sets in `rate_limit_client_header` (e.g. `x-forwarded-for`), the address
//! that proxy appended: the last entry, or the `rate_limit_client_hops`-th
//! from the right behind a chain of trusted proxies. Entries to the left of
//! it were written by the client and are never used. `wasmtime serve`
//! passes no client address, so there anonymous clients share one key
//! unless a trusted header is set.

use crate::http::{Auth, Request, Response};
use crate::middleware::runtime_headers::CLIENT_ADDR;
use crate::middleware::{Middleware, Next};
use crate::problem::Problem;
/// The key for requests that carry no client identity at all.
const UNKNOWN_CLIENT: &str = "unknown-client";

/// What the limiter decided, in the gateway's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub policy: String,
    pub retry_after_seconds: Option<u64>,
    /// The header fields to send, as the limiter formatted them.
    pub headers: Vec<(String, String)>,
}

pub struct RateLimit {
    /// Paths never limited (liveness checks).
    pub exempt: &'static [&'static str],
    /// `(key, path) -> decision`; `None` when the limiter let the request
    /// through without deciding (its storage failed, fail-open).
    pub check: fn(&str, &str) -> Result<Option<Decision>, Problem>,
    /// The operator's trusted client header, if any (lower-case), and how
    /// many trusted proxies append to it (at least 1).
    pub trusted_header: Option<(String, usize)>,
}

/// The identity a request is limited as.
pub fn client_key(request: &Request, trusted_header: Option<(&str, usize)>) -> String {
    if let Auth::Authenticated(session) = &request.auth {
        return format!("user:{}", session.subject);
    }
    let forwarded = trusted_header.and_then(|(name, hops)| {
        // Several header lines are one list, in order (RFC 9110 5.3).
        let entries: Vec<&str> = request
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .collect();
        let index = entries.len().checked_sub(hops.max(1))?;
        Some(entries[index]).filter(|entry| !entry.is_empty())
    });
    if let Some(address) = forwarded {
        return address.to_string();
    }
    match request.context.get(CLIENT_ADDR) {
        Some(addr) => addr
            .parse::<std::net::SocketAddr>()
            .map(|socket| socket.ip().to_string())
            .unwrap_or_else(|_| addr.to_string()),
        None => UNKNOWN_CLIENT.to_string(),
    }
}

impl Middleware for RateLimit {
    fn handle(&self, request: Request, next: Next<'_>) -> Response {
        let key = client_key(
            &request,
            self.trusted_header
                .as_ref()
                .map(|(name, hops)| (name.as_str(), *hops)),
        );
        crate::observe::note(|n| n.client = Some(key.clone()));
        if self.exempt.contains(&request.path.as_str()) {
            crate::observe::note(|n| n.rate_limit = Some("exempt".into()));
            return next.run(request);
        }
        let decision = (self.check)(&key, &request.path);
        crate::observe::note(|n| match &decision {
            Ok(Some(d)) if d.allowed => n.rate_limit = Some("allowed".into()),
            Ok(Some(d)) => {
                n.rate_limit = Some("limited".into());
                n.limited_policy = Some(d.policy.clone());
            }
            Ok(None) => n.rate_limit = Some("unlimited".into()),
            Err(_) => n.rate_limit = Some("error".into()),
        });
        match decision {
            Ok(Some(decision)) if decision.allowed => {
                let mut response = next.run(request);
                response.headers.extend(decision.headers);
                response
            }
            Ok(Some(decision)) => {
                let mut problem = Problem::new(
                    429,
                    "quota-exceeded",
                    "Too many requests",
                    format!(
                        "the quota of policy {:?} is used up; retry after {} s",
                        decision.policy,
                        decision.retry_after_seconds.unwrap_or(1)
                    ),
                )
                .with_extension("violated-policies", serde_json::json!([decision.policy]));
                for (name, value) in &decision.headers {
                    problem = problem.with_header(name, value);
                }
                problem.into_response(&request.path)
            }
            Ok(None) => next.run(request),
            Err(problem) => problem.into_response(&request.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool) -> Decision {
        let mut headers = vec![
            ("ratelimit-policy".into(), "\"default\";q=100;w=60".into()),
            ("ratelimit".into(), "\"default\";r=0;t=1".into()),
        ];
        if !allowed {
            headers.push(("retry-after".into(), "1".into()));
        }
        Decision {
            allowed,
            policy: "default".into(),
            retry_after_seconds: (!allowed).then_some(1),
            headers,
        }
    }

    fn run(check: fn(&str, &str) -> Result<Option<Decision>, Problem>, path: &str) -> Response {
        let layer = RateLimit {
            exempt: &["/healthz"],
            check,
            trusted_header: None,
        };
        let layers: [&dyn Middleware; 1] = [&layer];
        let request = Request {
            path: path.into(),
            ..Request::default()
        };
        Next::new(&layers, &|_| Response::new(200)).run(request)
    }

    #[test]
    fn allowed_requests_carry_the_limiter_headers() {
        let response = run(|_, _| Ok(Some(decision(true))), "/api/config");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("ratelimit"), Some("\"default\";r=0;t=1"));
    }

    #[test]
    fn refused_requests_get_429_problem_with_retry_after() {
        let response = run(|_, _| Ok(Some(decision(false))), "/api/config");
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("1"));
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert!(body["type"].as_str().unwrap().ends_with("#quota-exceeded"));
        assert_eq!(body["violated-policies"][0], "default");
    }

    #[test]
    fn undecided_requests_pass_and_problems_are_answered() {
        assert_eq!(run(|_, _| Ok(None), "/api/config").status, 200);
        let response = run(
            |_, _| Err(Problem::new(503, "rate-limit-unavailable", "x", "down")),
            "/api/config",
        );
        assert_eq!(response.status, 503);
    }

    #[test]
    fn exempt_paths_are_not_limited() {
        assert_eq!(
            run(|_, _| Ok(Some(decision(false))), "/healthz").status,
            200
        );
    }

    #[test]
    fn client_key_table() {
        // (spin-client-addr, x-forwarded-for, trusted header and hops, key)
        let trusted = Some(("x-forwarded-for", 1));
        let cases = [
            (Some("10.1.2.3:5555"), None, None, "10.1.2.3"),
            (Some("[::1]:80"), None, None, "::1"),
            (Some("weird"), None, None, "weird"),
            (None, None, None, UNKNOWN_CLIENT),
            (
                Some("10.1.2.3:5555"),
                Some("203.0.113.9, 10.0.0.1"),
                None,
                "10.1.2.3",
            ),
            // The trusted proxy appended the last entry; the client wrote
            // the ones before it.
            (
                Some("10.1.2.3:5555"),
                Some("203.0.113.9, 10.0.0.1"),
                trusted,
                "10.0.0.1",
            ),
            (
                Some("10.1.2.3:5555"),
                Some("6.6.6.6, 203.0.113.9, 10.0.0.1"),
                Some(("x-forwarded-for", 2)),
                "203.0.113.9",
            ),
            // Fewer entries than trusted hops: not through the proxies.
            (
                Some("10.1.2.3:5555"),
                Some("203.0.113.9"),
                Some(("x-forwarded-for", 2)),
                "10.1.2.3",
            ),
            (Some("10.1.2.3:5555"), Some("x, "), trusted, "10.1.2.3"),
            (None, None, trusted, UNKNOWN_CLIENT),
        ];
        for (addr, forwarded, trusted, key) in cases {
            let mut request = Request::default();
            if let Some(addr) = addr {
                request.context.insert(CLIENT_ADDR, addr.into());
            }
            if let Some(forwarded) = forwarded {
                request
                    .headers
                    .push(("x-forwarded-for".into(), forwarded.into()));
            }
            assert_eq!(
                client_key(&request, trusted),
                key,
                "{addr:?} {forwarded:?} {trusted:?}"
            );
        }
    }

    #[test]
    fn sessions_are_limited_by_subject() {
        let request = Request {
            context: [(CLIENT_ADDR, "10.1.2.3:5555".to_string())].into(),
            auth: Auth::Authenticated(crate::http::Session {
                subject: "ada".into(),
                roles: vec![],
                token: "t".into(),
            }),
            ..Request::default()
        };
        assert_eq!(
            client_key(&request, Some(("x-forwarded-for", 1))),
            "user:ada"
        );
    }
}
