//! Security headers: `nosniff` on every response, and on HTML the page
//! protections a browser enforces (CSP, framing, referrer, HSTS,
//! permissions). Routes never set these themselves, so no page can forget.

use super::{Middleware, Next};
use crate::http::{Request, Response};

/// The default policy: everything from this origin only, no inline script
/// or style, no plugins, no framing.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
form-action 'self'; frame-ancestors 'none'";
pub const DEFAULT_HSTS: &str = "max-age=63072000; includeSubDomains";

pub struct SecurityHeaders {
    /// `Content-Security-Policy` for HTML.
    pub csp: String,
    /// `Strict-Transport-Security`; empty sends none.
    pub hsts: String,
}

fn is_html(response: &Response) -> bool {
    response
        .header("content-type")
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

impl Middleware for SecurityHeaders {
    fn handle(&self, request: Request, next: Next<'_>) -> Response {
        let mut response = next.run(request);
        response.set_header("x-content-type-options", "nosniff");
        if is_html(&response) {
            let mut add = |name: &str, value: &str| {
                if response.header(name).is_none() && !value.is_empty() {
                    response.headers.push((name.into(), value.into()));
                }
            };
            add("content-security-policy", &self.csp);
            add("x-frame-options", "DENY");
            add("referrer-policy", "strict-origin-when-cross-origin");
            add("strict-transport-security", &self.hsts);
            add(
                "permissions-policy",
                "camera=(), microphone=(), geolocation=()",
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(response: Response) -> Response {
        let layer = SecurityHeaders {
            csp: DEFAULT_CSP.into(),
            hsts: String::new(),
        };
        let endpoint = move |_: Request| response.clone();
        let layers: [&dyn Middleware; 1] = [&layer];
        Next::new(&layers, &endpoint).run(Request::default())
    }

    #[test]
    fn html_gets_page_protections_and_json_only_nosniff() {
        let html = run(Response::new(200).with_header("content-type", "text/html; charset=utf-8"));
        assert_eq!(html.header("content-security-policy"), Some(DEFAULT_CSP));
        assert_eq!(html.header("x-frame-options"), Some("DENY"));
        assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(html.header("strict-transport-security"), None);
        let json = run(Response::json(200, "{}".into()));
        assert_eq!(json.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(json.header("content-security-policy"), None);
    }
}
