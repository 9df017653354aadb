//! Maps method and path to a route handler; unknown paths get `404`, known
//! paths with another method `405` with `Allow` (RFC 9110 section 15.5.6).
//! `HEAD` is served by the `GET` handler with the body dropped.

use crate::http::{Request, Response};
use crate::problem::Problem;

pub type Handler = fn(&Request) -> Result<Response, Problem>;

/// Answers requests whose path no route claims, or declines (`None`).
pub type Fallback = fn(&Request) -> Option<Result<Response, Problem>>;

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
    fallback: Option<Fallback>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router {
            routes,
            fallback: None,
        }
    }

    /// Consulted when no route matches the path, before answering `404`.
    pub fn with_fallback(mut self, fallback: Fallback) -> Router {
        self.fallback = Some(fallback);
        self
    }

    /// Whether one of the routes (not the fallback) serves this path.
    pub fn claims(&self, request: &Request) -> bool {
        self.routes
            .iter()
            .any(|route| route.pattern.matches(&request.path))
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
            if let Some(answer) = self.fallback.and_then(|fallback| fallback(request)) {
                return answer.map(|response| without_body_for_head(response, is_head));
            }
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
        crate::observe::note(|n| n.route = Some(route_label(route)));
        let response = (route.handler)(request)?;
        Ok(without_body_for_head(response, is_head))
    }
}

/// The route's pattern as a metrics label (`/assets/*` for a prefix).
fn route_label(route: &Route) -> String {
    match route.pattern {
        Pattern::Exact(path) => path.to_string(),
        Pattern::Prefix(prefix) => format!("{prefix}*"),
    }
}

/// A `HEAD` answer: the `GET` headers without the body. A handler that knows
/// `HEAD` (and skipped reading the body) has set `Content-Length` itself.
fn without_body_for_head(mut response: Response, is_head: bool) -> Response {
    if is_head {
        if response.header("content-length").is_none() {
            let len = response.body.len().to_string();
            response.set_header("content-length", &len);
        }
        response.body.clear();
        response.rest = None;
    }
    response
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

    fn site(request: &Request) -> Option<Result<Response, Problem>> {
        request.path.starts_with("/pages/").then(|| {
            // A handler that knows HEAD sets the length without a body.
            let response = Response::new(200).with_header("content-length", "42");
            Ok(response.with_body(if request.method == "HEAD" {
                Vec::new()
            } else {
                vec![b'x'; 42]
            }))
        })
    }

    #[test]
    fn fallback_answers_unrouted_paths_and_keeps_its_head_length() {
        let router = router().with_fallback(site);
        let get = router.dispatch(&request("GET", "/pages/a")).unwrap();
        assert_eq!(get.body.len(), 42);
        let head = router.dispatch(&request("HEAD", "/pages/a")).unwrap();
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), Some("42"));
        let declined = router.dispatch(&request("GET", "/elsewhere")).unwrap_err();
        assert_eq!(declined.status, 404);
        // A routed path never reaches the fallback.
        let routed = router.dispatch(&request("GET", "/healthz")).unwrap();
        assert_eq!(routed.body, b"hello");
    }
}
