//! `GET /healthz`: liveness; touches no storage so it measures the gateway alone.

use crate::http::{Request, Response};
use crate::problem::Problem;

pub fn get(_request: &Request) -> Result<Response, Problem> {
    Ok(Response::json(200, r#"{"status":"ok"}"#.into()).with_header("cache-control", "no-store"))
}
