//! Authentication and authorisation, as two layers:
//!
//! - [`Authenticate`] finds the session token (the `session` cookie, or
//!   `Authorization: Bearer` for API clients), has `portico:auth` verify it,
//!   and records the outcome in `Request::auth`. It never refuses anything,
//!   so it can run before the rate limiter, which then keys sessions by
//!   subject. (A forged token costs one HMAC before it is limited: the MAC is
//!   checked before any storage is read.)
//! - [`Authorize`] guards what needs a session: `/admin/*` (`401` without a
//!   valid session, `403` without role `admin`) and protected pages
//!   (prefixes from `protected_prefixes`, default `/app/`: `302` to
//!   `/login?next=<path>` without a session).
//!
//! Other routes see the outcome in `Request::auth` and decide for
//! themselves; a stale cookie on a public page is simply ignored.

use crate::cookie::find_cookie;
use crate::http::{Auth as AuthState, Request, Response, Session};
use crate::middleware::{Middleware, Next};
use crate::problem::Problem;
use crate::redirect::login_redirect_location;

pub const SESSION_COOKIE: &str = "session";
const ADMIN_ROLE: &str = "admin";
/// The admin page (HTML), as opposed to the admin API under `/admin/*`.
const ADMIN_PAGE: &str = "/admin/";

/// A verified token's subject and roles.
pub struct Verified {
    pub subject: String,
    pub roles: Vec<String>,
}

pub struct Authenticate {
    pub verify: fn(&str) -> Result<Verified, Problem>,
}

pub struct Authorize {
    pub protected_prefixes: Vec<String>,
    /// A static bearer token (`maintenance_token`) that may call
    /// `/admin/maintenance/*` only, for schedulers that hold no session.
    pub maintenance_token: Option<String>,
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authorize {
    fn is_maintenance_call(&self, request: &Request) -> bool {
        let Some(expected) = &self.maintenance_token else {
            return false;
        };
        request.path.starts_with("/admin/maintenance/")
            && request
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), expected.as_bytes()))
    }
}

/// The token the request carries, if any: a Bearer token wins over the cookie.
fn token(request: &Request) -> Option<String> {
    if let Some(value) = request.header("authorization") {
        let mut parts = value.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim().to_string());
        }
    }
    request
        .headers
        .iter()
        .filter(|(name, _)| name == "cookie")
        .find_map(|(_, value)| find_cookie(value, SESSION_COOKIE))
        .map(str::to_string)
}

fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

impl Middleware for Authenticate {
    fn handle(&self, mut request: Request, next: Next<'_>) -> Response {
        request.auth = match token(&request) {
            None => AuthState::Anonymous,
            Some(token) => match (self.verify)(&token) {
                Ok(verified) => {
                    crate::observe::note(|n| n.subject = Some(verified.subject.clone()));
                    AuthState::Authenticated(Session {
                        subject: verified.subject,
                        roles: verified.roles,
                        token,
                    })
                }
                Err(problem) => AuthState::Rejected(problem),
            },
        };
        next.run(request)
    }
}

impl Middleware for Authorize {
    fn handle(&self, request: Request, next: Next<'_>) -> Response {
        if self.is_maintenance_call(&request) {
            return next.run(request);
        }
        if is_admin_path(&request.path) {
            match request.session() {
                // The admin page itself is navigated to: send the browser
                // to log in rather than show it an API error.
                Err(problem)
                    if problem.status == 401
                        && request.path == ADMIN_PAGE
                        && matches!(request.method.as_str(), "GET" | "HEAD") =>
                {
                    return Response::new(302)
                        .with_header(
                            "location",
                            &login_redirect_location(&request.path_and_query()),
                        )
                        .with_header("cache-control", "no-store");
                }
                Err(problem) => return problem.into_response(&request.path),
                Ok(session) if !session.roles.iter().any(|r| r == ADMIN_ROLE) => {
                    return Problem::new(
                        403,
                        "forbidden",
                        "Forbidden",
                        format!("{} needs the role {ADMIN_ROLE:?}", request.path),
                    )
                    .into_response(&request.path);
                }
                Ok(_) => {}
            }
        }
        let protected = self
            .protected_prefixes
            .iter()
            .any(|prefix| request.path.starts_with(prefix.as_str()));
        if protected {
            match &request.auth {
                AuthState::Authenticated(_) => {}
                AuthState::Rejected(problem) if problem.status >= 500 => {
                    return problem.clone().into_response(&request.path);
                }
                _ => {
                    return Response::new(302)
                        .with_header(
                            "location",
                            &login_redirect_location(&request.path_and_query()),
                        )
                        .with_header("cache-control", "no-store");
                }
            }
        }
        next.run(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(token: &str) -> Result<Verified, Problem> {
        match token {
            "admin" => Ok(Verified {
                subject: "root".into(),
                roles: vec!["admin".into()],
            }),
            "user" => Ok(Verified {
                subject: "ada".into(),
                roles: vec![],
            }),
            "broken" => Err(Problem::new(500, "auth-misconfigured", "x", "no secret")),
            _ => Err(Problem::new(
                401,
                "invalid-token",
                "x",
                "signature mismatch",
            )),
        }
    }

    fn run(path: &str, headers: &[(&str, &str)]) -> Response {
        let authenticate = Authenticate { verify };
        let authorize = Authorize {
            protected_prefixes: vec!["/app/".into()],
            maintenance_token: None,
        };
        let layers: [&dyn Middleware; 2] = [&authenticate, &authorize];
        let request = Request {
            path: path.into(),
            query: Some("tab=1".into()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        };
        Next::new(&layers, &|r: Request| match r.session() {
            Ok(s) => Response::new(200).with_body(s.subject.clone().into_bytes()),
            Err(_) => Response::new(299),
        })
        .run(request)
    }

    /// (path, request headers, status, `Location`)
    type GuardCase = (
        &'static str,
        &'static [(&'static str, &'static str)],
        u16,
        Option<&'static str>,
    );

    #[test]
    fn guard_table() {
        let cases: [GuardCase; 11] = [
            ("/admin/users/x", &[], 401, None),
            ("/admin/users/x", &[("cookie", "session=user")], 403, None),
            ("/admin/users/x", &[("cookie", "session=admin")], 200, None),
            (
                "/admin/users/x",
                &[("authorization", "Bearer admin")],
                200,
                None,
            ),
            ("/admin/users/x", &[("cookie", "session=forged")], 401, None),
            ("/admin/users/x", &[("cookie", "session=broken")], 500, None),
            (
                "/app/home",
                &[],
                302,
                Some("/login?next=/app/home%3Ftab%3D1"),
            ),
            (
                "/app/home",
                &[("cookie", "session=forged")],
                302,
                Some("/login?next=/app/home%3Ftab%3D1"),
            ),
            ("/app/home", &[("cookie", "session=user")], 200, None),
            ("/app/home", &[("cookie", "session=broken")], 500, None),
            ("/public", &[("cookie", "session=forged")], 299, None),
        ];
        for (path, headers, status, location) in cases {
            let response = run(path, headers);
            assert_eq!(response.status, status, "{path} {headers:?}");
            assert_eq!(response.header("location"), location, "{path} {headers:?}");
        }
    }

    #[test]
    fn bearer_token_wins_over_cookie() {
        let response = run(
            "/x",
            &[
                ("cookie", "session=user"),
                ("authorization", "Bearer admin"),
            ],
        );
        assert_eq!(response.body, b"root");
    }
}
