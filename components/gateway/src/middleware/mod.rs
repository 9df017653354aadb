//! The middleware chain: an ordered list of layers, each handed the request
//! and a [`Next`] continuation for the rest of the chain.
//!
//! `Next::run` takes `self` by value, so a layer that tried to call the rest
//! of the chain twice would not compile: the "calling next twice is an
//! error" rule of the classic `compose(cors, auth, rateLimit, router)` is
//! enforced by the type system rather than at run time.

pub mod auth;
pub mod cors;
pub mod csrf;
pub mod observe;
pub mod path;
pub mod rate_limit;
pub mod request_id;
pub mod runtime_headers;
pub mod security;

use crate::http::{Request, Response};

/// One layer of the chain.
pub trait Middleware {
    fn handle(&self, request: Request, next: Next<'_>) -> Response;
}

/// The rest of the chain after the current layer, ending in the router.
pub struct Next<'a> {
    rest: &'a [&'a dyn Middleware],
    endpoint: &'a dyn Fn(Request) -> Response,
}

impl<'a> Next<'a> {
    pub fn new(
        layers: &'a [&'a dyn Middleware],
        endpoint: &'a dyn Fn(Request) -> Response,
    ) -> Self {
        Next {
            rest: layers,
            endpoint,
        }
    }

    /// Passes the request to the next layer (or the endpoint) and returns its
    /// response. Consumes `self`: the rest of the chain runs at most once.
    pub fn run(self, request: Request) -> Response {
        match self.rest.split_first() {
            Some((layer, rest)) => layer.handle(
                request,
                Next {
                    rest,
                    endpoint: self.endpoint,
                },
            ),
            None => (self.endpoint)(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tag(&'static str);

    impl Middleware for Tag {
        fn handle(&self, mut request: Request, next: Next<'_>) -> Response {
            request.body.extend_from_slice(self.0.as_bytes());
            let mut response = next.run(request);
            response
                .body
                .extend_from_slice(self.0.to_uppercase().as_bytes());
            response
        }
    }

    struct ShortCircuit;

    impl Middleware for ShortCircuit {
        fn handle(&self, _request: Request, _next: Next<'_>) -> Response {
            Response::new(429)
        }
    }

    fn echo(request: Request) -> Response {
        Response::new(200).with_body(request.body)
    }

    #[test]
    fn layers_run_in_order_around_the_endpoint() {
        let layers: [&dyn Middleware; 2] = [&Tag("a"), &Tag("b")];
        let response = Next::new(&layers, &echo).run(Request::default());
        assert_eq!(response.body, b"abBA");
    }

    #[test]
    fn a_layer_can_answer_without_calling_next() {
        let layers: [&dyn Middleware; 2] = [&Tag("a"), &ShortCircuit];
        let response = Next::new(&layers, &echo).run(Request::default());
        assert_eq!(response.status, 429);
        assert_eq!(response.body, b"A");
    }

    #[test]
    fn empty_chain_is_the_endpoint() {
        let response = Next::new(&[], &echo).run(Request {
            body: b"x".to_vec(),
            ..Request::default()
        });
        assert_eq!(response.body, b"x");
    }
}
