//! `GET /api/config`: every flag evaluated for the caller, through
//! `portico:flags/evaluator`. The caller is the session subject, or else a
//! stable anonymous id kept in the `pid` cookie (set on first visit), so A/B
//! assignments stick across visits without any storage write.

use serde_json::{Map, Value, json};

use crate::cookie::find_cookie;
use crate::http::{Auth, Request, Response};
use crate::portico::flags::evaluator as flags;
use crate::problem::Problem;

const ANONYMOUS_COOKIE: &str = "pid";
const ANONYMOUS_MAX_AGE: u64 = 365 * 24 * 3600;

/// The trusted header carrying the client's country (`country_header`).
pub fn country_header() -> Option<String> {
    crate::portico::platform::config::get("country_header")
        .ok()
        .flatten()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// The OFREP request body evaluating flags for this caller: the targeting
/// key plus the edge's context (country, device, language, roles).
pub fn ofrep_request(request: &Request, key: &str) -> String {
    let context = crate::personalise::context(request, key, country_header().as_deref());
    json!({ "context": context }).to_string()
}

/// The targeting key of the caller, and the cookie to set if it is new.
pub fn targeting_key(request: &Request) -> (String, Option<String>) {
    if let Auth::Authenticated(session) = &request.auth {
        return (session.subject.clone(), None);
    }
    let existing = request
        .headers
        .iter()
        .filter(|(name, _)| name == "cookie")
        .find_map(|(_, value)| find_cookie(value, ANONYMOUS_COOKIE))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    match existing {
        Some(id) => (format!("anon-{id}"), None),
        None => {
            let id = crate::app::random_id();
            let cookie = format!(
                "{ANONYMOUS_COOKIE}={id}; Path=/; Max-Age={ANONYMOUS_MAX_AGE}; SameSite=Lax; HttpOnly; Secure"
            );
            (format!("anon-{id}"), Some(cookie))
        }
    }
}

pub fn get(request: &Request) -> Result<Response, Problem> {
    let (key, new_cookie) = targeting_key(request);
    let reply = flags::evaluate_all(&ofrep_request(request, &key)).map_err(Problem::from)?;
    let bulk: Value = serde_json::from_slice(reply.body.as_bytes()).map_err(|err| {
        Problem::new(
            500,
            "invalid-evaluation",
            "Invalid evaluation",
            err.to_string(),
        )
    })?;
    let mut evaluated = Map::new();
    for flag in bulk["flags"].as_array().into_iter().flatten() {
        let Some(name) = flag["key"].as_str() else {
            continue;
        };
        crate::observe::note(|n| {
            if let Some(reason) = flag["reason"].as_str() {
                n.flag_reasons.push(reason.to_string());
            }
            if let Some(variant) = flag["variant"].as_str() {
                n.variants.insert(name.to_string(), variant.to_string());
            }
        });
        let mut entry = flag.clone();
        if let Value::Object(members) = &mut entry {
            members.remove("key");
        }
        evaluated.insert(name.to_string(), entry);
    }
    let body = json!({ "targetingKey": key, "flags": evaluated });
    Ok(personalised(body, new_cookie))
}

/// A JSON answer that depends on who asks: never shared by caches, and
/// carrying the new anonymous-id cookie when one was just handed out.
pub fn personalised(body: Value, new_cookie: Option<String>) -> Response {
    let mut response = Response::json(200, body.to_string())
        .with_header("cache-control", "private, no-store")
        .with_header(
            "vary",
            &crate::personalise::vary_fields(country_header().as_deref()),
        );
    if let Some(cookie) = new_cookie {
        response = response.with_header("set-cookie", &cookie);
    }
    response
}
