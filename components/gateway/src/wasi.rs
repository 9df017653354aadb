//! The `wasi:http/incoming-handler` export: converts between `wasi:http`
//! resources and the gateway's plain [`Request`]/[`Response`].

use std::io::{Read, Write};

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use crate::http::{Request, Response};
use crate::problem::Problem;

/// Bodies above this are refused with `413` before reaching any route.
const MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// The public endpoints anyone may call without a session (login, logout,
/// OFREP) take small JSON or form bodies: 64 KiB is far more than any real
/// one, and keeps an anonymous client from making the gateway hold or parse
/// megabytes (a 10 MiB OFREP context cost seconds of CPU).
const MAX_PUBLIC_BODY_BYTES: u64 = 64 * 1024;
const PUBLIC_BODY_PREFIXES: [&str; 3] = ["/api/login", "/api/logout", "/ofrep/"];
/// Asset uploads have their own limit (`assets_max_object_bytes`), which the
/// store enforces too; this is its default.
const MAX_ASSET_BYTES: u64 = 64 * 1024 * 1024;

/// How many body bytes a request to `path` may carry.
fn body_limit(method: &Method, path: &str) -> u64 {
    // Chosen on the path as routing will see it (`/%61pi/login` is
    // `/api/login`); a path the normalising layer refuses gets the general
    // limit and then its 400.
    let path = crate::middleware::path::normalize(path).unwrap_or_else(|_| path.to_string());
    if matches!(method, Method::Put) && path.starts_with("/admin/assets/") {
        return crate::portico::platform::config::get("assets_max_object_bytes")
            .ok()
            .flatten()
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(MAX_ASSET_BYTES);
    }
    if PUBLIC_BODY_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return MAX_PUBLIC_BODY_BYTES;
    }
    MAX_BODY_BYTES
}

struct Gateway;

wasip2::http::proxy::export!(Gateway);

impl wasip2::exports::http::incoming_handler::Guest for Gateway {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
        let response = match read_request(&request) {
            Ok(request) => crate::app::handle(request),
            Err(problem) => {
                let path = path_with_query.split('?').next().unwrap_or("/").to_string();
                problem.into_response(&path)
            }
        };
        send(response, response_out);
        crate::background::run();
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

fn read_request(incoming: &IncomingRequest) -> Result<Request, Problem> {
    let path_with_query = incoming.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (path_with_query, None),
    };
    let mut headers = Vec::new();
    for (name, value) in incoming.headers().entries() {
        let value = String::from_utf8(value)
            .map_err(|_| Problem::bad_request(format!("header {name:?} is not valid UTF-8")))?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    // Runtimes move `Host` into the request's authority.
    if !headers.iter().any(|(name, _)| name == "host")
        && let Some(authority) = incoming.authority()
    {
        headers.push(("host".into(), authority));
    }
    let declared = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<u64>().ok());
    let limit = body_limit(&incoming.method(), &path);
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    let body = read_body(incoming, limit)?;
    Ok(Request {
        method: method_name(&incoming.method()),
        path,
        query,
        headers,
        body,
        context: Default::default(),
        auth: Default::default(),
    })
}

fn too_large(limit: u64) -> Problem {
    Problem::new(
        413,
        "payload-too-large",
        "Payload too large",
        format!("request bodies are limited to {limit} bytes here"),
    )
}

fn read_body(incoming: &IncomingRequest, limit: u64) -> Result<Vec<u8>, Problem> {
    let unreadable =
        |what: &str| Problem::bad_request(format!("request body could not be read: {what}"));
    let body = incoming
        .consume()
        .map_err(|()| unreadable("already consumed"))?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| unreadable("no stream"))?;
        stream
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| unreadable(&err.to_string()))?;
    }
    IncomingBody::finish(body);
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

fn send(response: Response, out: ResponseOutparam) {
    let fields: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let headers = match Fields::from_list(&fields) {
        Ok(headers) => headers,
        Err(err) => {
            // A route produced a header the runtime refuses: answer with a
            // problem instead of trapping.
            let problem = Problem::new(
                500,
                "invalid-response-header",
                "Invalid response header",
                format!("the response had an invalid header: {err:?}"),
            )
            .into_response("/");
            return send(problem, out);
        }
    };
    let outgoing = OutgoingResponse::new(headers);
    // Only a status outside 100..=999 is refused, and every status here
    // comes from the route table or a clamped problem.
    let _ = outgoing.set_status_code(response.status);
    let Ok(body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Ok(mut stream) = body.write() {
        // A client that went away is not an error worth trapping for.
        let _ = stream
            .write_all(&response.body)
            .and_then(|()| Write::flush(&mut stream));
    }
    let _ = OutgoingBody::finish(body, None);
}
