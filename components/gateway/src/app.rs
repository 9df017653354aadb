//! The application: the middleware chain and the route table, in one place
//! and in order.

use crate::http::{Request, Response};
use crate::middleware::rate_limit::{Decision, RateLimit};
use crate::middleware::request_id::RequestId;
use crate::middleware::{Middleware, Next};
use crate::portico::ratelimit::limiter;
use crate::problem::Problem;
use crate::router::{Pattern, Route, Router};
use crate::routes::{assets, config, health, session};

fn routes() -> Router {
    Router::new(vec![
        Route {
            method: "GET",
            pattern: Pattern::Exact("/healthz"),
            handler: health::get,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/api/config"),
            handler: config::get,
        },
        Route {
            method: "POST",
            pattern: Pattern::Exact("/api/login"),
            handler: session::login,
        },
        Route {
            method: "GET",
            pattern: Pattern::Prefix("/assets/"),
            handler: assets::get,
        },
    ])
}

fn check_limit(key: &str, policy: &str, cost: u32) -> Result<Decision, Problem> {
    let d = limiter::check(key, policy, cost).map_err(Problem::from)?;
    Ok(Decision {
        allowed: d.allowed,
        policy: d.policy,
        limit: d.limit,
        window_seconds: d.window_seconds,
        remaining: d.remaining,
        reset_seconds: d.reset_seconds,
        retry_after_seconds: d.retry_after_seconds,
    })
}

fn random_id() -> String {
    let high = wasip2::random::random::get_random_u64();
    let low = wasip2::random::random::get_random_u64();
    format!("{high:016x}{low:016x}")
}

/// Runs one request through the whole chain.
pub fn handle(request: Request) -> Response {
    let request_id = RequestId {
        generate: random_id,
    };
    let rate_limit = RateLimit {
        prefix: "/api/",
        policy: "default",
        check: check_limit,
    };
    let layers: [&dyn Middleware; 2] = [&request_id, &rate_limit];
    let router = routes();
    let endpoint = |request: Request| {
        router
            .dispatch(&request)
            .unwrap_or_else(|problem| problem.into_response(&request.path))
    };
    Next::new(&layers, &endpoint).run(request)
}
