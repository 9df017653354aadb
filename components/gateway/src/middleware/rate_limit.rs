//! Spends one unit of a rate-limit policy per request through
//! `portico:ratelimit/limiter` and refuses with `429` when the quota is gone.
//!
//! When the limiter itself fails the request is let through (fail-open, the
//! default failure policy for reads) and the failure is logged: an outage of
//! the limiter must not become an outage of the site.

use crate::http::{Request, Response};
use crate::middleware::{Middleware, Next};
use crate::problem::Problem;

/// The header Spin sets to the client's address.
const CLIENT_ADDR: &str = "spin-client-addr";

pub struct RateLimit {
    /// Requests whose path starts with this prefix are limited.
    pub prefix: &'static str,
    pub policy: &'static str,
    pub check: fn(&str, &str, u32) -> Result<Decision, Problem>,
}

/// What the limiter decided, in the gateway's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub policy: String,
    pub limit: u32,
    pub window_seconds: u64,
    pub remaining: u32,
    pub reset_seconds: u64,
    pub retry_after_seconds: Option<u64>,
}

impl Decision {
    fn headers(&self) -> [(String, String); 2] {
        [
            (
                "ratelimit-policy".into(),
                format!(
                    "\"{}\";q={};w={}",
                    self.policy, self.limit, self.window_seconds
                ),
            ),
            (
                "ratelimit".into(),
                format!(
                    "\"{}\";r={};t={}",
                    self.policy, self.remaining, self.reset_seconds
                ),
            ),
        ]
    }
}

impl Middleware for RateLimit {
    fn handle(&self, request: Request, next: Next<'_>) -> Response {
        if !request.path.starts_with(self.prefix) {
            return next.run(request);
        }
        let key = request
            .header(CLIENT_ADDR)
            .unwrap_or("anonymous")
            .to_string();
        match (self.check)(&key, self.policy, 1) {
            Ok(decision) if decision.allowed => {
                let mut response = next.run(request);
                response.headers.extend(decision.headers());
                response
            }
            Ok(decision) => {
                let retry_after = decision
                    .retry_after_seconds
                    .unwrap_or(decision.reset_seconds)
                    .max(1);
                let mut problem = Problem::new(
                    429,
                    "quota-exceeded",
                    "Too many requests",
                    format!("quota of policy {:?} exhausted", decision.policy),
                )
                .with_header("retry-after", &retry_after.to_string())
                .with_extension("violated-policies", serde_json::json!([decision.policy]));
                for (name, value) in decision.headers() {
                    problem = problem.with_header(&name, &value);
                }
                problem.into_response(&request.path)
            }
            Err(problem) => {
                eprintln!(
                    "{}",
                    serde_json::json!({
                        "level": "warn",
                        "msg": "rate limiter failed; letting the request through (fail-open)",
                        "request_id": request.context.get("request_id"),
                        "status": problem.status,
                        "detail": problem.detail,
                    })
                );
                next.run(request)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool) -> Decision {
        Decision {
            allowed,
            policy: "default".into(),
            limit: 100,
            window_seconds: 60,
            remaining: if allowed { 99 } else { 0 },
            reset_seconds: 1,
            retry_after_seconds: (!allowed).then_some(1),
        }
    }

    fn run(check: fn(&str, &str, u32) -> Result<Decision, Problem>, path: &str) -> Response {
        let layer = RateLimit {
            prefix: "/api/",
            policy: "default",
            check,
        };
        let layers: [&dyn Middleware; 1] = [&layer];
        let request = Request {
            path: path.into(),
            ..Request::default()
        };
        Next::new(&layers, &|_| Response::new(200)).run(request)
    }

    #[test]
    fn allowed_requests_carry_ratelimit_headers() {
        let response = run(|_, _, _| Ok(decision(true)), "/api/config");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("ratelimit-policy"),
            Some("\"default\";q=100;w=60")
        );
        assert_eq!(response.header("ratelimit"), Some("\"default\";r=99;t=1"));
    }

    #[test]
    fn refused_requests_get_429_problem_with_retry_after() {
        let response = run(|_, _, _| Ok(decision(false)), "/api/config");
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("1"));
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert!(body["type"].as_str().unwrap().ends_with("#quota-exceeded"));
        assert_eq!(body["violated-policies"][0], "default");
    }

    #[test]
    fn limiter_failure_fails_open() {
        let response = run(
            |_, _, _| Err(Problem::new(503, "storage-unavailable", "x", "down")),
            "/api/config",
        );
        assert_eq!(response.status, 200);
    }

    #[test]
    fn paths_outside_the_prefix_are_not_limited() {
        let response = run(|_, _, _| Ok(decision(false)), "/healthz");
        assert_eq!(response.status, 200);
    }
}
