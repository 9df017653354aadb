//! RFC 9457 problem details: the one way an error becomes a response.

use serde_json::{Map, Value, json};

use crate::http::Response;
use crate::portico::types::http::Problem as WireProblem;

/// The base of every problem `type` URI; the fragment names the problem.
pub const TYPE_BASE: &str = "https://portico.dev/problems#";

/// An error on its way to becoming an `application/problem+json` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    /// The stable fragment of the `type` URI, e.g. `not-found`.
    pub kind: String,
    pub title: String,
    pub detail: String,
    /// Boxed so that `Result<Response, Problem>` stays small on the happy path.
    extra: Box<Extra>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extra {
    /// Extension members (RFC 9457 section 3.2).
    extensions: Map<String, Value>,
    /// Extra response headers (e.g. `Allow` on a 405).
    headers: Vec<(String, String)>,
}

impl Problem {
    pub fn new(status: u16, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind: kind.to_string(),
            title: title.to_string(),
            detail: detail.into(),
            extra: Box::default(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(400, "bad-request", "Bad request", detail)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Problem {
        self.extra
            .headers
            .push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_extension(mut self, name: &str, value: Value) -> Problem {
        self.extra.extensions.insert(name.to_string(), value);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.extra
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The response, with `instance` set to the request path.
    pub fn into_response(self, instance: &str) -> Response {
        let mut body = json!({
            "type": format!("{TYPE_BASE}{}", self.kind),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        });
        if let Value::Object(members) = &mut body {
            members.extend(self.extra.extensions);
        }
        let mut response = Response::new(self.status)
            .with_header("content-type", "application/problem+json")
            .with_body(body.to_string().into_bytes());
        response.headers.extend(self.extra.headers);
        response
    }
}

/// A problem reported by a business component across the WIT boundary.
impl From<WireProblem> for Problem {
    fn from(p: WireProblem) -> Problem {
        // A component must not be able to make the gateway send a non-error
        // status as a problem.
        let status = if (400..=599).contains(&p.status) {
            p.status
        } else {
            500
        };
        Problem::new(status, &p.kind, &p.title, p.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_problem_json_with_all_members() {
        let response = Problem::new(404, "not-found", "Not found", "no route for /x")
            .with_header("x-extra", "1")
            .into_response("/x");
        assert_eq!(response.status, 404);
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(response.header("x-extra"), Some("1"));
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["type"], "https://portico.dev/problems#not-found");
        assert_eq!(body["title"], "Not found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["detail"], "no route for /x");
        assert_eq!(body["instance"], "/x");
    }

    #[test]
    fn wire_problem_with_success_status_becomes_500() {
        let p = Problem::from(WireProblem {
            status: 200,
            kind: "odd".into(),
            title: "Odd".into(),
            detail: String::new(),
        });
        assert_eq!(p.status, 500);
    }
}
