//! `GET`/`HEAD /assets/*`, answered by `portico:assets/store`.

use crate::http::{Request, Response};
use crate::portico::assets::store;
use crate::portico::types::http as wire;
use crate::problem::Problem;

pub fn get(request: &Request) -> Result<Response, Problem> {
    let wire_request = wire::Request {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: Vec::new(),
    };
    let response = store::serve(&wire_request).map_err(Problem::from)?;
    Ok(Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}
