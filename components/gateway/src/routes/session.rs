//! Session routes, answered by `portico:auth/sessions`: login, logout and
//! the current user.

use serde_json::Value;

use crate::cookie::{clear_cookie, session_cookie};
use crate::http::{Auth, Request, Response};
use crate::middleware::auth::SESSION_COOKIE;
use crate::portico::auth::sessions;
use crate::problem::Problem;
use crate::redirect::safe_next;

/// The login fields, from a JSON body or an HTML form.
struct Credentials {
    username: String,
    password: String,
    next: Option<String>,
    from_form: bool,
}

fn is_form(request: &Request) -> bool {
    request
        .header("content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| {
            ct.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn credentials(request: &Request) -> Result<Credentials, Problem> {
    let (fields, from_form): (Vec<(String, String)>, bool) = if is_form(request) {
        let pairs = form_urlencoded::parse(&request.body).into_owned().collect();
        (pairs, true)
    } else {
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|err| Problem::bad_request(format!("login body is not JSON: {err}")))?;
        let Value::Object(members) = body else {
            return Err(Problem::bad_request("login body must be a JSON object"));
        };
        let mut pairs = Vec::new();
        for (name, value) in members {
            match value {
                Value::String(text) => pairs.push((name, text)),
                _ => {
                    return Err(Problem::bad_request(format!(
                        "login field {name:?} must be a string"
                    )));
                }
            }
        }
        (pairs, false)
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let required = |name: &str| {
        field(name).ok_or_else(|| Problem::bad_request(format!("login needs {name:?}")))
    };
    Ok(Credentials {
        username: required("username")?,
        password: required("password")?,
        next: field("next"),
        from_form,
    })
}

/// `POST /api/login`: JSON `{"username","password"}` answers `200` with the
/// claims; an HTML form answers `303` to its safe `next` (or back to the
/// login page with `error=invalid`). Either way the session is set as an
/// `HttpOnly; Secure; SameSite=Lax` cookie.
pub fn login(request: &Request) -> Result<Response, Problem> {
    let creds = credentials(request)?;
    let session = match sessions::login(&creds.username, &creds.password) {
        Ok(session) => session,
        Err(problem) if creds.from_form && problem.status == 401 => {
            let next = safe_next(creds.next.as_deref());
            let location = format!(
                "/login?error=invalid&next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Ok(Response::new(303).with_header("location", &location));
        }
        Err(problem) => return Err(problem.into()),
    };
    let cookie = session_cookie(SESSION_COOKIE, &session.token, session.max_age, true)
        .map_err(|err| Problem::new(500, "invalid-cookie", "Invalid cookie", err.reason()))?;
    let response = if creds.from_form {
        Response::new(303).with_header("location", &safe_next(creds.next.as_deref()))
    } else {
        let claims = serde_json::json!({
            "sub": session.claims.sub,
            "iat": session.claims.iat,
            "exp": session.claims.exp,
            "jti": session.claims.jti,
            "roles": session.claims.roles,
        });
        Response::json(200, claims.to_string())
    };
    Ok(response
        .with_header("set-cookie", &cookie)
        .with_header("cache-control", "no-store"))
}

/// `POST /api/logout`: revokes the session (if there is a valid one) and
/// clears the cookie. Logging out twice is not an error.
pub fn logout(request: &Request) -> Result<Response, Problem> {
    match &request.auth {
        Auth::Authenticated(session) => sessions::logout(&session.token).map_err(Problem::from)?,
        Auth::Rejected(problem) if problem.status >= 500 => return Err(problem.clone()),
        _ => {}
    }
    let cleared = clear_cookie(SESSION_COOKIE, true)
        .map_err(|err| Problem::new(500, "invalid-cookie", "Invalid cookie", err.reason()))?;
    Ok(Response::new(204)
        .with_header("set-cookie", &cleared)
        .with_header("cache-control", "no-store"))
}

/// `GET /api/user`: the session's user profile.
pub fn user(request: &Request) -> Result<Response, Problem> {
    let session = request.session()?;
    let profile = sessions::profile(&session.subject).map_err(Problem::from)?;
    Ok(Response::json(200, profile).with_header("cache-control", "no-store, private"))
}
