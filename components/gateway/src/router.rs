//! Maps method and path to a route handler; unknown paths get `404`, known
//! paths with another method `405` with `Allow` (RFC 9110 section 15.5.6).
//! `HEAD` is served by the `GET` handler with the body dropped.

use crate::http::{Request, Response};
use crate::problem::Problem;

pub type Handler = fn(&Request) -> Result<Response, Problem>;

/// How a route matches a path.
#[derive(Debug, Clone, Copy)]
pub enum Pattern {
    /// The whole path.
    Exact(&'static str),
    /// Every path under this prefix (which should end with `/`).
    Prefix(&'static str),
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self {
            Pattern::Exact(p) => path == *p,
            Pattern::Prefix(p) => path.starts_with(p),
        }
    }
}

pub struct Route {
    pub method: &'static str,
    pub pattern: Pattern,
    pub handler: Handler,
}

pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    pub fn dispatch(&self, request: &Request) -> Result<Response, Problem> {
        let is_head = request.method == "HEAD";
        let wanted = if is_head {
            "GET"
        } else {
            request.method.as_str()
        };
        let on_path: Vec<&Route> = self
            .routes
            .iter()
            .filter(|route| route.pattern.matches(&request.path))
            .collect();
        if on_path.is_empty() {
            return Err(Problem::new(
                404,
                "not-found",
                "Not found",
                format!("no route for {}", request.path),
            ));
        }
        let Some(route) = on_path.iter().find(|route| route.method == wanted) else {
            let allow = allow_header(&on_path);
            return Err(Problem::new(
                405,
                "method-not-allowed",
                "Method not allowed",
                format!(
                    "{} does not support {}; allowed: {allow}",
                    request.path, request.method
                ),
            )
            .with_header("allow", &allow));
        };
        let mut response = (route.handler)(request)?;
        if is_head {
            let len = response.body.len().to_string();
            response.body.clear();
            response.set_header("content-length", &len);
        }
        Ok(response)
    }
}

fn allow_header(routes: &[&Route]) -> String {
    let mut methods: Vec<&str> = routes.iter().map(|route| route.method).collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &Request) -> Result<Response, Problem> {
        Ok(Response::new(200).with_body(b"hello".to_vec()))
    }

    fn router() -> Router {
        Router::new(vec![
            Route {
                method: "GET",
                pattern: Pattern::Exact("/healthz"),
                handler: ok,
            },
            Route {
                method: "POST",
                pattern: Pattern::Exact("/api/login"),
                handler: ok,
            },
            Route {
                method: "GET",
                pattern: Pattern::Prefix("/assets/"),
                handler: ok,
            },
        ])
    }

    fn request(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    #[test]
    fn routing_table() {
        // (method, path, status, Allow)
        let cases = [
            ("GET", "/healthz", 200, None),
            ("HEAD", "/healthz", 200, None),
            ("POST", "/healthz", 405, Some("GET, HEAD")),
            ("GET", "/api/login", 405, Some("POST")),
            ("POST", "/api/login", 200, None),
            ("GET", "/assets/a/b.css", 200, None),
            ("DELETE", "/assets/a", 405, Some("GET, HEAD")),
            ("GET", "/nope", 404, None),
            ("GET", "/healthz/", 404, None),
        ];
        for (method, path, status, allow) in cases {
            let result = router().dispatch(&request(method, path));
            let (got, got_allow) = match &result {
                Ok(r) => (r.status, None),
                Err(p) => (p.status, p.header("allow")),
            };
            assert_eq!((got, got_allow), (status, allow), "{method} {path}");
        }
    }

    #[test]
    fn head_has_no_body_but_the_get_length() {
        let response = router().dispatch(&request("HEAD", "/healthz")).unwrap();
        assert!(response.body.is_empty());
        assert_eq!(response.header("content-length"), Some("5"));
    }
}
