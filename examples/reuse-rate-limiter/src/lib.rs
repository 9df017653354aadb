//! An HTTP component of your own, written with the Spin SDK, that reuses
//! Portico's rate limiter and nothing else of it: it imports
//! `portico:ratelimit/limiter` (see `wit/app.wit`), and `spin.toml` plugs
//! `dist/components/rate-limiter.wasm` into that import as a dependency.
//!
//! `GET /check?key=K&policy=P&cost=N` spends `N` units (default 1) of policy
//! `P` (default `default`) for `K`: `200` with the decision as JSON when
//! admitted, `429` when refused, with the limiter's IETF `RateLimit` /
//! `RateLimit-Policy` (and `Retry-After`) fields either way; when the
//! limiter refuses the call itself (an unknown policy, a cost above the
//! burst) its problem is answered as `application/problem+json`.

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/ratelimit", "wit"],
    world: "example:reuse-rate-limiter/app",
    generate_all,
});

use portico::ratelimit::limiter;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[http_component]
fn handle(request: Request) -> Response {
    let query = request.query();
    let key = param(query, "key").unwrap_or("anonymous");
    let policy = param(query, "policy").unwrap_or("default");
    let cost = param(query, "cost")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    match limiter::check(key, policy, cost) {
        Ok(decision) => {
            let body = serde_json::json!({
                "allowed": decision.allowed,
                "policy": decision.policy,
                "remaining": decision.remaining,
                "reset_seconds": decision.reset_seconds,
                "retry_after_seconds": decision.retry_after_seconds,
            });
            let mut response = Response::builder();
            response
                .status(if decision.allowed { 200 } else { 429 })
                .header("content-type", "application/json");
            for (name, value) in decision.headers {
                response.header(name, value);
            }
            response.body(body.to_string()).build()
        }
        Err(problem) => {
            let body = serde_json::json!({
                "type": format!("https://portico.dev/problems#{}", problem.kind),
                "title": problem.title,
                "status": problem.status,
                "detail": problem.detail,
                "instance": request.path(),
            });
            Response::builder()
                .status(problem.status)
                .header("content-type", "application/problem+json")
                .body(body.to_string())
                .build()
        }
    }
}
