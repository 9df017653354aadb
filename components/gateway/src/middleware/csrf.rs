//! Cross-site request forgery protection for state-changing requests.
//!
//! The session cookie is `SameSite=Lax`, which already keeps it off
//! cross-site `POST`s in current browsers; this layer adds the check that
//! does not depend on the browser's cookie policy: an unsafe request whose
//! `Origin` is neither this site nor an origin the CORS rules trust with
//! credentials is refused. Requests without `Origin` (curl, servers) pass,
//! unless the browser says they are cross-site (`Sec-Fetch-Site`).

use super::cors::Load;
use super::{Middleware, Next};
use crate::http::{Request, Response};
use crate::problem::Problem;

pub struct Csrf {
    pub cors: Load,
}

/// Whether `origin` is this site: `http://` or `https://` (a TLS-terminating
/// proxy in front means the gateway cannot tell which the browser used) and
/// exactly this request's `Host`. Any other scheme (`evil://host`) is
/// another origin, even with the same authority.
fn is_this_site(origin: &str, host: &str) -> bool {
    origin.split_once("://").is_some_and(|(scheme, authority)| {
        (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
            && !host.is_empty()
            && authority.eq_ignore_ascii_case(host)
    })
}

fn refuse(request: &Request, why: String) -> Response {
    Problem::new(403, "cross-site-request", "Cross-site request refused", why)
        .into_response(&request.path)
}

impl Middleware for Csrf {
    fn handle(&self, request: Request, next: Next<'_>) -> Response {
        if matches!(
            request.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE"
        ) {
            return next.run(request);
        }
        let Some(origin) = request.header("origin").map(str::to_string) else {
            if request.header("sec-fetch-site") == Some("cross-site") {
                return refuse(
                    &request,
                    format!("{} {} came from another site", request.method, request.path),
                );
            }
            return next.run(request);
        };
        let host = request.header("host").unwrap_or_default();
        let same_site = is_this_site(&origin, host);
        let trusted = || match (self.cors)() {
            Ok(Some(config)) => config
                .rule_for(&request.path)
                .is_some_and(|rule| rule.credentials && rule.allows_origin(&origin)),
            _ => false,
        };
        if same_site || trusted() {
            return next.run(request);
        }
        refuse(
            &request,
            format!(
                "{} {} from origin {origin:?}, which is neither this site nor a trusted CORS origin",
                request.method, request.path
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::cors;

    fn load() -> Result<Option<cors::CorsConfig>, Problem> {
        Ok(Some(
            cors::parse(
                r#"{"rules":[{"prefix":"/api/","origins":["https://app.example"],"credentials":true},
                   {"prefix":"/open/","origins":["https://other.example"]}]}"#,
            )
            .unwrap(),
        ))
    }

    fn status(method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
        let layer = Csrf { cors: load };
        let endpoint = |_: Request| Response::new(200);
        let layers: [&dyn Middleware; 1] = [&layer];
        let mut all = vec![("host".to_string(), "portico.test".to_string())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let request = Request {
            method: method.into(),
            path: path.into(),
            headers: all,
            ..Request::default()
        };
        Next::new(&layers, &endpoint).run(request).status
    }

    #[test]
    fn unsafe_requests_need_a_trusted_origin() {
        assert_eq!(status("POST", "/api/login", &[]), 200);
        assert_eq!(
            status("POST", "/api/login", &[("origin", "https://portico.test")]),
            200
        );
        assert_eq!(
            status("POST", "/api/login", &[("origin", "https://app.example")]),
            200
        );
        assert_eq!(
            status("POST", "/api/login", &[("origin", "https://evil.example")]),
            403
        );
        assert_eq!(status("POST", "/api/login", &[("origin", "null")]), 403);
        // Trusted without credentials is not trusted with the session.
        assert_eq!(
            status("POST", "/open/x", &[("origin", "https://other.example")]),
            403
        );
        assert_eq!(
            status("POST", "/api/x", &[("sec-fetch-site", "cross-site")]),
            403
        );
        assert_eq!(
            status("GET", "/api/x", &[("origin", "https://evil.example")]),
            200
        );
    }

    #[test]
    fn this_site_is_http_or_https_with_exactly_this_host() {
        assert!(is_this_site("http://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(is_this_site("HTTPS://Example.com", "example.com"));
        assert!(!is_this_site("evil://127.0.0.1:3000", "127.0.0.1:3000"));
        assert!(!is_this_site("http://127.0.0.1:3001", "127.0.0.1:3000"));
        assert!(!is_this_site("null", "127.0.0.1:3000"));
        assert!(!is_this_site("http://", ""));
    }
}
