//! `GET /api/config`: the client configuration, read through `portico:flags`.

use crate::http::{Request, Response};
use crate::portico::flags::evaluator as flags;
use crate::problem::Problem;

pub fn get(_request: &Request) -> Result<Response, Problem> {
    let definitions = flags::definitions().map_err(Problem::from)?;
    Ok(Response::json(200, definitions).with_header("cache-control", "no-store"))
}
