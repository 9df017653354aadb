//! Gives every request an id: the client's `x-request-id` when it is sane,
//! otherwise 128 random bits; echoed on the response and available to later
//! layers as `context["request_id"]`.

use crate::http::{Request, Response};
use crate::middleware::{Middleware, Next};

pub const HEADER: &str = "x-request-id";

/// Longer ids, or ids with characters outside visible ASCII, are replaced
/// rather than echoed: the id ends up in logs and must not carry injection.
const MAX_LEN: usize = 128;

pub struct RequestId {
    pub generate: fn() -> String,
}

fn is_acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

impl Middleware for RequestId {
    fn handle(&self, mut request: Request, next: Next<'_>) -> Response {
        let id = match request.header(HEADER) {
            Some(id) if is_acceptable(id) => id.to_string(),
            _ => (self.generate)(),
        };
        request.context.insert("request_id", id.clone());
        let mut response = next.run(request);
        response.set_header(HEADER, &id);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> String {
        "generated".into()
    }

    fn run(header: Option<&str>) -> (Response, String) {
        let mut request = Request::default();
        if let Some(value) = header {
            request.headers.push((HEADER.into(), value.into()));
        }
        let seen = std::cell::RefCell::new(String::new());
        let endpoint = |r: Request| {
            *seen.borrow_mut() = r.context["request_id"].clone();
            Response::new(200)
        };
        let layers: [&dyn Middleware; 1] = [&RequestId { generate: fixed }];
        let response = Next::new(&layers, &endpoint).run(request);
        (response, seen.into_inner())
    }

    #[test]
    fn client_id_is_echoed_and_shared() {
        let (response, seen) = run(Some("abc-123"));
        assert_eq!(response.header(HEADER), Some("abc-123"));
        assert_eq!(seen, "abc-123");
    }

    #[test]
    fn missing_or_hostile_ids_are_replaced() {
        let long = "x".repeat(MAX_LEN + 1);
        for header in [
            None,
            Some(""),
            Some("a b"),
            Some("a\u{7f}"),
            Some(long.as_str()),
        ] {
            let (response, seen) = run(header);
            assert_eq!(response.header(HEADER), Some("generated"), "{header:?}");
            assert_eq!(seen, "generated");
        }
    }
}
