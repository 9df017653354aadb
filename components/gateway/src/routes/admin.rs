//! Admin routes (the auth middleware has already required role `admin`).

use serde_json::Value;

use crate::http::{Request, Response};
use crate::portico::auth::sessions;
use crate::problem::Problem;

fn json_body(request: &Request) -> Result<serde_json::Map<String, Value>, Problem> {
    match serde_json::from_slice(&request.body) {
        Ok(Value::Object(members)) => Ok(members),
        Ok(_) => Err(Problem::bad_request("body must be a JSON object")),
        Err(err) => Err(Problem::bad_request(format!("body is not JSON: {err}"))),
    }
}

/// The `"roles"` member of an admin request body (absent: none).
fn roles(body: &serde_json::Map<String, Value>) -> Result<Vec<String>, Problem> {
    match body.get("roles") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| r.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Problem::bad_request("\"roles\" must be a list of strings")),
        Some(_) => Err(Problem::bad_request("\"roles\" must be a list of strings")),
    }
}

/// `PUT /admin/users/{name}` with `{"password": "...", "roles": ["admin"]}`.
pub fn put_user(request: &Request) -> Result<Response, Problem> {
    let name = request.path.trim_start_matches("/admin/users/");
    let body = json_body(request)?;
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::bad_request("needs a string \"password\""))?;
    sessions::put_user(name, password, &roles(&body)?).map_err(Problem::from)?;
    Ok(Response::new(204))
}

/// `PATCH /admin/users/{name}` with `{"roles": [...]}`: new roles, same
/// password; the user's earlier sessions end.
pub fn patch_user(request: &Request) -> Result<Response, Problem> {
    let name = request.path.trim_start_matches("/admin/users/");
    let body = json_body(request)?;
    if !body.contains_key("roles") {
        return Err(Problem::bad_request("needs \"roles\", a list of strings"));
    }
    sessions::set_roles(name, &roles(&body)?).map_err(Problem::from)?;
    Ok(Response::new(204))
}

/// `GET /admin/users`: every user with their roles, in name order.
pub fn list_users(_request: &Request) -> Result<Response, Problem> {
    let users = sessions::list_users().map_err(Problem::from)?;
    Ok(Response::json(200, format!("{{\"users\":{users}}}"))
        .with_header("cache-control", "no-store"))
}

/// `DELETE /admin/users/{name}` removes the user;
/// `DELETE /admin/users/{name}/sessions` only ends their sessions. Either
/// way every session of the user is refused from the next request on.
pub fn delete_user(request: &Request) -> Result<Response, Problem> {
    let rest = request.path.trim_start_matches("/admin/users/");
    match rest.strip_suffix("/sessions") {
        Some(name) => sessions::revoke_sessions(name).map_err(Problem::from)?,
        None if !rest.contains('/') => sessions::delete_user(rest).map_err(Problem::from)?,
        None => {
            return Err(Problem::new(
                404,
                "not-found",
                "Not found",
                format!("no route for {}", request.path),
            ));
        }
    }
    Ok(Response::new(204))
}

/// `POST /admin/tokens/inspect` with `{"token": "...", "at": <unix time>?}`:
/// checks a token's MAC against the configured secrets (and its time claims
/// as of `at`) and shows its header and payload.
pub fn inspect_token(request: &Request) -> Result<Response, Problem> {
    let body = json_body(request)?;
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::bad_request("needs a string \"token\""))?;
    let at = match body.get("at") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or_else(|| Problem::bad_request("\"at\" must be a unix time"))?,
        ),
    };
    let report = sessions::inspect(token, at).map_err(Problem::from)?;
    Ok(Response::json(200, report).with_header("cache-control", "no-store"))
}
