//! Session routes, answered by `portico:auth/sessions`.

use serde_json::Value;

use crate::http::{Request, Response};
use crate::portico::auth::sessions;
use crate::problem::Problem;

/// `POST /api/login` with a JSON body `{"username": ..., "password": ...}`.
pub fn login(request: &Request) -> Result<Response, Problem> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|err| Problem::bad_request(format!("login body is not JSON: {err}")))?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Problem::bad_request(format!("login body needs a string {name:?}")))
    };
    let session =
        sessions::login(&field("username")?, &field("password")?).map_err(Problem::from)?;
    let claims = serde_json::json!({
        "sub": session.claims.sub,
        "iat": session.claims.iat,
        "exp": session.claims.exp,
        "roles": session.claims.roles,
    });
    Ok(Response::json(200, claims.to_string()).with_header(
        "set-cookie",
        &format!(
            "session={}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age={}",
            session.token, session.max_age
        ),
    ))
}
