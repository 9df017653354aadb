//! The gateway's own request and response types: plain data, independent of
//! `wasi:http`, so middleware and routes are testable natively.

use std::collections::BTreeMap;

use crate::problem::Problem;

/// A verified session, as the auth middleware found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub subject: String,
    pub roles: Vec<String>,
    /// The token itself, for logout.
    pub token: String,
}

/// What the auth middleware concluded about the request's credentials.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No token was presented.
    #[default]
    Anonymous,
    Authenticated(Session),
    /// A token was presented and refused (`401`), or could not be checked
    /// at all because the server is misconfigured (`500`).
    Rejected(Problem),
}

/// A request as the middleware chain sees it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The percent-encoded path, starting with `/`.
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names; a field may repeat.
    pub headers: Vec<(String, String)>,
    /// The body, once read (see [`crate::body`]): empty until then.
    pub body: Vec<u8>,
    /// The body still unread, as the runtime holds it.
    pub pending_body: Option<crate::body::Pending>,
    /// Values middleware hands to later layers (request id, client key, ...).
    pub context: BTreeMap<&'static str, String>,
    pub auth: Auth,
}

impl Request {
    /// The session, or the problem a route that needs one should answer.
    pub fn session(&self) -> Result<&Session, Problem> {
        match &self.auth {
            Auth::Authenticated(session) => Ok(session),
            Auth::Rejected(problem) => Err(problem.clone()),
            Auth::Anonymous => Err(Problem::new(
                401,
                "unauthenticated",
                "Authentication required",
                "this needs a session: log in, or send Authorization: Bearer <token>",
            )),
        }
    }

    /// The path with its query, as the client sent it.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// The first value of query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params(name).into_iter().next()
    }

    /// Every value of query parameter `name`, decoded, in order.
    pub fn query_params(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, or its first part when `rest` follows.
    pub body: Vec<u8>,
    /// The rest of a large body, produced after the head is sent.
    pub rest: Option<BodyStream>,
}

/// The rest of a body, written by its producer straight to the response
/// stream (so its bytes never pass through the gateway). An error comes
/// after the head (with its `Content-Length`) has been sent, so the
/// connection is cut rather than the body ended: the client never takes a
/// truncated body for a whole one.
#[derive(Clone)]
pub struct BodyStream(std::rc::Rc<SendTo>);

type SendTo = dyn Fn(&wasip2::io::streams::OutputStream) -> Result<(), String>;

impl BodyStream {
    pub fn new(
        send_to: impl Fn(&wasip2::io::streams::OutputStream) -> Result<(), String> + 'static,
    ) -> BodyStream {
        BodyStream(std::rc::Rc::new(send_to))
    }

    pub fn send_to(&self, out: &wasip2::io::streams::OutputStream) -> Result<(), String> {
        (self.0)(out)
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

impl PartialEq for BodyStream {
    fn eq(&self, other: &BodyStream) -> bool {
        std::rc::Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for BodyStream {}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            rest: None,
        }
    }

    pub fn json(status: u16, body: String) -> Response {
        Response::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.into_bytes())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }

    /// Replaces every value of `name` with `value`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.to_string()));
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `(name, value)` pairs as owned header fields, for tests.
#[cfg(test)]
pub fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}
