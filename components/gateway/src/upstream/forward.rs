//! What crosses the proxy: hop-by-hop fields removed both ways (RFC 9110
//! section 7.6.1), `Forwarded` (RFC 7239) and `X-Forwarded-*` added, and
//! Portico's own credentials kept away from origins.

use super::config::Route;
use crate::http::{Auth, Request};

/// Fields that describe one connection, never the message.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The prefix of the identity headers the gateway sets; clients can't.
pub const IDENTITY_PREFIX: &str = "x-portico-";

/// `headers` without hop-by-hop fields (including those `Connection` names).
pub fn end_to_end(headers: &[(String, String)]) -> Vec<(String, String)> {
    let named: Vec<String> = headers
        .iter()
        .filter(|(name, _)| name == "connection")
        .flat_map(|(_, value)| value.split(',').map(|v| v.trim().to_ascii_lowercase()))
        .collect();
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()) && !named.contains(name))
        .cloned()
        .collect()
}

/// The `Cookie` header without Portico's `session` cookie (`None` if empty).
fn without_session_cookie(value: &str) -> Option<String> {
    crate::cookie::without_cookie(value, "session")
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace(['"', '\\'], ""))
}

/// The request headers to send the origin.
pub fn request_headers(
    request: &Request,
    route: &Route,
    variants: &[(String, String)],
) -> Vec<(String, String)> {
    // Spin (and the portico host) say who connected; `wasmtime serve` doesn't.
    let client = request
        .context
        .get(crate::middleware::runtime_headers::CLIENT_ADDR)
        .map(|addr| match addr.rsplit_once(':') {
            Some((ip, port)) if port.chars().all(|c| c.is_ascii_digit()) => ip.to_string(),
            _ => addr.to_string(),
        })
        .unwrap_or_else(|| "unknown".into());
    let host = request.header("host").unwrap_or_default().to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut forwarded_for = None;
    for (name, value) in end_to_end(&request.headers) {
        match name.as_str() {
            // The origin's authority is set separately; Portico's bearer
            // token is Portico's, never the origin's.
            "host" | "authorization" | "content-length" => {}
            "cookie" => {
                if let Some(kept) = without_session_cookie(&value) {
                    headers.push((name, kept));
                }
            }
            "x-forwarded-for" => forwarded_for = Some(value),
            // The gateway says how the request reached it; what a client
            // claims about that is replaced, never passed on (an origin or
            // a cache keyed on it could be poisoned).
            "forwarded" | "x-forwarded-host" | "x-forwarded-proto" | "x-forwarded-port"
            | "x-forwarded-prefix" | "x-real-ip" => {}
            n if n.starts_with(IDENTITY_PREFIX) || n.starts_with("spin-") || n == "traceparent" => {
            }
            _ => headers.push((name, value)),
        }
    }
    let forwarded_for = match forwarded_for {
        Some(previous) => format!("{previous}, {client}"),
        None => client.clone(),
    };
    headers.push(("x-forwarded-for".into(), forwarded_for));
    headers.push((
        "forwarded".into(),
        format!("for={};host={};proto=http", quoted(&client), quoted(&host)),
    ));
    if !host.is_empty() {
        headers.push(("x-forwarded-host".into(), host));
    }
    headers.push(("x-forwarded-proto".into(), "http".into()));
    if let Some(id) = request.context.get("request_id") {
        headers.push(("x-request-id".into(), id.clone()));
    }
    // This request's span is the parent of the origin's.
    if let Some(traceparent) = request.context.get("traceparent") {
        headers.push(("traceparent".into(), traceparent.clone()));
    }
    if let Auth::Authenticated(session) = &request.auth {
        if route.forward.iter().any(|f| f == "subject") {
            headers.push((format!("{IDENTITY_PREFIX}subject"), session.subject.clone()));
        }
        if route.forward.iter().any(|f| f == "roles") {
            headers.push((format!("{IDENTITY_PREFIX}roles"), session.roles.join(",")));
        }
    }
    if !variants.is_empty() {
        let value = variants
            .iter()
            .map(|(flag, variant)| format!("{flag}={variant}"))
            .collect::<Vec<_>>()
            .join(", ");
        headers.push((format!("{IDENTITY_PREFIX}variant"), value));
    }
    headers
}

/// The origin's response headers to pass on to the client.
pub fn response_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    end_to_end(headers)
        .into_iter()
        // The gateway frames the body itself.
        .filter(|(name, _)| name != "content-length")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::fields as h;

    #[test]
    fn connection_fields_and_named_fields_are_dropped() {
        let out = end_to_end(&h(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "5"),
            ("accept", "*/*"),
        ]));
        assert_eq!(out, h(&[("accept", "*/*")]));
    }

    #[test]
    fn session_cookie_is_removed_and_others_kept() {
        assert_eq!(
            without_session_cookie("a=1; session=tok; b=2").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(without_session_cookie("session=tok"), None);
    }
}
