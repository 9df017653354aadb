//! An HTTP component of your own, written with the Spin SDK, that reuses
//! Portico's feature flags and nothing else of them: it imports
//! `portico:flags/evaluator` (see `wit/app.wit`), and `spin.toml` plugs
//! `dist/components/flags.wasm` into that import as a dependency.
//!
//! - `PUT /flags` stores a flag set (flagd JSON); an invalid one is refused
//!   with the evaluator's `400` problem, naming the flag and field.
//! - `GET /variant?flag=F&user=U` answers which variant user `U` gets of
//!   flag `F`, as the evaluator's OFREP answer: `200` with `value`,
//!   `variant` and `reason`, or OFREP's `404 FLAG_NOT_FOUND`.

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/flags", "wit"],
    world: "example:reuse-flags/app",
    generate_all,
});

use portico::flags::evaluator;
use portico::types::http::Problem;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn problem(problem: Problem, instance: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("https://portico.dev/problems#{}", problem.kind),
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
    });
    Response::builder()
        .status(problem.status)
        .header("content-type", "application/problem+json")
        .body(body.to_string())
        .build()
}

#[http_component]
fn handle(request: Request) -> Response {
    let path = request.path().to_string();
    match (request.method(), path.as_str()) {
        (Method::Put, "/flags") => {
            let document = String::from_utf8_lossy(request.body()).into_owned();
            match evaluator::replace(&document) {
                Ok(()) => Response::new(204, ()),
                Err(err) => problem(err, &path),
            }
        }
        (Method::Get, "/variant") => {
            let query = request.query();
            let flag = param(query, "flag").unwrap_or_default();
            let user = param(query, "user").unwrap_or_default();
            let context = serde_json::json!({ "context": { "targetingKey": user } });
            match evaluator::evaluate(flag, &context.to_string()) {
                Ok(reply) => Response::builder()
                    .status(reply.status)
                    .header("content-type", "application/json")
                    .body(reply.body)
                    .build(),
                Err(err) => problem(err, &path),
            }
        }
        _ => problem(
            Problem {
                status: 404,
                kind: "not-found".into(),
                title: "Not found".into(),
                detail: "try PUT /flags or GET /variant?flag=F&user=U".into(),
            },
            &path,
        ),
    }
}
