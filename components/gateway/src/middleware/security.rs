//! Security headers: `nosniff` on every response, and on HTML the page
//! protections a browser enforces (CSP, framing, referrer, HSTS,
//! permissions). Routes never set these themselves, so no page can forget.
//!
//! Every other response gets [`DOCUMENT_CSP`]: a type that is not HTML can
//! still be a document when opened (SVG, XML, XHTML, XSL run their scripts
//! in the site's origin), so unless the response brings its own policy it
//! is sandboxed with scripts and every fetch off.

use super::{Middleware, Next};
use crate::http::{Request, Response};

/// The default policy: everything from this origin only, no inline script
/// or style, no plugins, no framing.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
form-action 'self'; frame-ancestors 'none'";
pub const DEFAULT_HSTS: &str = "max-age=63072000; includeSubDomains";
/// The policy of every response that is not HTML: rendered as a document,
/// it may show itself (inline styles, as SVG uses) and nothing else.
pub const DOCUMENT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

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
        } else if response.status != 304 && response.header("content-security-policy").is_none() {
            // Never on a 304: a browser merges its fields into the stored
            // response, whose own policy (a page's) must stay.
            response
                .headers
                .push(("content-security-policy".into(), DOCUMENT_CSP.into()));
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
        assert_eq!(json.header("content-security-policy"), Some(DOCUMENT_CSP));
        assert_eq!(json.header("x-frame-options"), None);
        let svg = run(Response::new(200).with_header("content-type", "image/svg+xml"));
        assert_eq!(svg.header("content-security-policy"), Some(DOCUMENT_CSP));
        let own = run(Response::new(200)
            .with_header("content-type", "application/xml")
            .with_header("content-security-policy", "default-src 'self'"));
        assert_eq!(
            own.header("content-security-policy"),
            Some("default-src 'self'")
        );
    }
}
