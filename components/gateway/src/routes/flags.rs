//! OFREP (OpenFeature Remote Evaluation Protocol) endpoints, the A/B lookup,
//! and flag administration, answered by `portico:flags/evaluator`.

use serde_json::{Value, json};

use crate::http::{Request, Response};
use crate::portico::flags::evaluator::{self as flags, Reply};
use crate::problem::Problem;
use crate::routes::config::{personalised, targeting_key};

const OFREP_SINGLE: &str = "/ofrep/v1/evaluate/flags/";

/// Notes the evaluation reasons of an OFREP answer (single or bulk).
fn note_reasons(body: &str) {
    let Ok(value) = serde_json::from_slice::<Value>(body.as_bytes()) else {
        return;
    };
    let answers = match value["flags"].as_array() {
        Some(flags) => flags.clone(),
        None => vec![value],
    };
    crate::observe::note(|n| {
        n.flag_reasons.extend(
            answers
                .iter()
                .filter_map(|a| a["reason"].as_str().map(str::to_string)),
        )
    });
}

fn ofrep_response(reply: Reply) -> Response {
    note_reasons(&reply.body);
    let mut response =
        Response::json(reply.status, reply.body).with_header("cache-control", "no-store");
    if let Some(etag) = reply.etag {
        response = response.with_header("etag", &etag);
    }
    response
}

fn body_text(request: &Request) -> Result<String, Problem> {
    String::from_utf8(request.body.clone()).map_err(|_| Problem::bad_request("body is not UTF-8"))
}

/// `POST /ofrep/v1/evaluate/flags/{key}`.
pub fn evaluate_one(request: &Request) -> Result<Response, Problem> {
    let key = &request.path[OFREP_SINGLE.len()..];
    if key.is_empty() {
        return Err(Problem::bad_request("no flag key in the path"));
    }
    let reply = flags::evaluate(key, &body_text(request)?).map_err(Problem::from)?;
    Ok(ofrep_response(reply))
}

/// `POST /ofrep/v1/evaluate/flags`: every flag; `304` when `If-None-Match`
/// names the current answer's entity tag.
pub fn evaluate_all(request: &Request) -> Result<Response, Problem> {
    let reply = flags::evaluate_all(&body_text(request)?).map_err(Problem::from)?;
    let unchanged = match (&reply.etag, request.header("if-none-match")) {
        (Some(etag), Some(header)) => header.split(',').any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        }),
        _ => false,
    };
    if unchanged && reply.status == 200 {
        let etag = reply.etag.unwrap_or_default();
        return Ok(Response::new(304).with_header("etag", &etag));
    }
    Ok(ofrep_response(reply))
}

/// `GET /api/ab/{experiment}`: the caller's variant of the flag `experiment`.
pub fn ab_variant(request: &Request) -> Result<Response, Problem> {
    let experiment = request.path.trim_start_matches("/api/ab/");
    let (key, new_cookie) = targeting_key(request);
    let reply = flags::evaluate(
        experiment,
        &crate::routes::config::ofrep_request(request, &key),
    )
    .map_err(Problem::from)?;
    if reply.status != 200 {
        let detail: Value = serde_json::from_slice(reply.body.as_bytes()).unwrap_or(Value::Null);
        let status = if reply.status == 404 { 404 } else { 400 };
        return Err(Problem::new(
            status,
            "experiment-unavailable",
            "No variant for this experiment",
            format!(
                "{experiment}: {}",
                detail["errorDetails"]
                    .as_str()
                    .unwrap_or("evaluation failed")
            ),
        ));
    }
    let result: Value = serde_json::from_slice(reply.body.as_bytes()).unwrap_or(Value::Null);
    crate::observe::note(|n| {
        if let Some(reason) = result["reason"].as_str() {
            n.flag_reasons.push(reason.to_string());
        }
        if let Some(variant) = result["variant"].as_str() {
            n.variants
                .insert(experiment.to_string(), variant.to_string());
        }
    });
    let body = json!({
        "experiment": experiment,
        "targetingKey": key,
        "variant": result["variant"],
        "value": result["value"],
        "reason": result["reason"],
    });
    Ok(personalised(body, new_cookie))
}

/// `GET /admin/flags`: the stored set.
pub fn admin_get(_request: &Request) -> Result<Response, Problem> {
    let document = flags::definitions().map_err(Problem::from)?;
    Ok(Response::json(200, document).with_header("cache-control", "no-store"))
}

/// `PUT /admin/flags`: replace the whole set (validated).
pub fn admin_put(request: &Request) -> Result<Response, Problem> {
    flags::replace(&body_text(request)?).map_err(Problem::from)?;
    Ok(Response::new(204))
}

/// `PATCH /admin/flags/{key}`: replace one flag's definition; a JSON `null`
/// body removes the flag.
pub fn admin_patch(request: &Request) -> Result<Response, Problem> {
    let key = request.path.trim_start_matches("/admin/flags/");
    let text = body_text(request)?;
    let definition = match serde_json::from_slice::<Value>(text.as_bytes()) {
        Ok(Value::Null) => None,
        _ => Some(text.as_str()),
    };
    flags::put_flag(key, definition).map_err(Problem::from)?;
    Ok(Response::new(204))
}

/// `PUT /admin/ab/{experiment}/{targeting key}` with
/// `{"variant": "b", "ttl_seconds": 86400}` forces that caller into a
/// variant; `DELETE` removes the override.
pub fn admin_put_override(request: &Request) -> Result<Response, Problem> {
    let (experiment, key) = override_target(request)?;
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|err| Problem::bad_request(format!("body is not JSON: {err}")))?;
    let variant = body["variant"]
        .as_str()
        .ok_or_else(|| Problem::bad_request("needs a string \"variant\""))?;
    let ttl = match &body["ttl_seconds"] {
        Value::Null => None,
        value => Some(
            value
                .as_u64()
                .ok_or_else(|| Problem::bad_request("\"ttl_seconds\" must be a whole number"))?,
        ),
    };
    flags::set_override(experiment, key, Some(variant), ttl).map_err(Problem::from)?;
    Ok(Response::new(204))
}

pub fn admin_delete_override(request: &Request) -> Result<Response, Problem> {
    let (experiment, key) = override_target(request)?;
    flags::set_override(experiment, key, None, None).map_err(Problem::from)?;
    Ok(Response::new(204))
}

fn override_target(request: &Request) -> Result<(&str, &str), Problem> {
    request
        .path
        .trim_start_matches("/admin/ab/")
        .split_once('/')
        .filter(|(experiment, key)| !experiment.is_empty() && !key.is_empty())
        .ok_or_else(|| Problem::bad_request("use /admin/ab/{experiment}/{targeting key}"))
}
