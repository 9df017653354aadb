//! The `wasi:http/incoming-handler` export: converts between `wasi:http`
//! resources and the gateway's plain [`Request`]/[`Response`].

use std::io::Write;

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use crate::http::{Request, Response};
use crate::problem::Problem;

struct Gateway;

wasip2::http::proxy::export!(Gateway);

impl wasip2::exports::http::incoming_handler::Guest for Gateway {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
        let response = match read_request(request) {
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

/// The request's head; its body stays with the runtime until the chain has
/// let the request through ([`crate::body`]).
fn read_request(incoming: IncomingRequest) -> Result<Request, Problem> {
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
    let method = method_name(&incoming.method());
    Ok(Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
        pending_body: Some(crate::body::Pending::new(move |limit, sink| {
            read_body(&incoming, limit, sink)
        })),
        context: Default::default(),
        auth: Default::default(),
    })
}

/// Body bytes are handed on in pieces of up to this size: few enough calls
/// across component boundaries, little enough memory per request.
const PIECE_BYTES: usize = 256 * 1024;

fn read_body(
    incoming: &IncomingRequest,
    limit: u64,
    sink: crate::body::Sink<'_>,
) -> Result<(), Problem> {
    use wasip2::http::types::ErrorCode;
    use wasip2::io::streams::StreamError;
    let unreadable =
        |what: &str| Problem::bad_request(format!("request body could not be read: {what}"));
    let body = incoming
        .consume()
        .map_err(|()| unreadable("already consumed"))?;
    let mut piece = Vec::new();
    let mut received: u64 = 0;
    {
        let stream = body.stream().map_err(|()| unreadable("no stream"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    received += chunk.len() as u64;
                    if received > limit {
                        return Err(crate::body::too_large(limit));
                    }
                    piece.extend_from_slice(&chunk);
                    if piece.len() >= PIECE_BYTES {
                        sink(std::mem::take(&mut piece))?;
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    // The runtime cut a client that stalled or trickled.
                    // Wasmtime 48 keeps a body's error as its own type, so
                    // `http-error-code` may not see the code; its text says it.
                    let detail = err.to_debug_string();
                    let timed_out = matches!(
                        wasip2::http::types::http_error_code(&err),
                        Some(ErrorCode::ConnectionReadTimeout)
                    ) || detail.contains("read timeout");
                    if timed_out {
                        return Err(Problem::new(
                            408,
                            "body-timeout",
                            "Request body too slow",
                            "the request body stalled or arrived below the server's minimum rate",
                        ));
                    }
                    return Err(unreadable(&detail));
                }
            }
        }
    }
    IncomingBody::finish(body);
    if !piece.is_empty() {
        sink(piece)?;
    }
    Ok(())
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
    let Ok(mut stream) = body.write() else {
        return;
    };
    // A client that went away is not an error worth trapping for.
    let mut sent = stream.write_all(&response.body).is_ok();
    if let Some(rest) = response.rest.as_ref().filter(|_| sent)
        && let Err(why) = rest.send_to(&stream)
    {
        // The head promised a length this body cannot reach: dropping the
        // body unfinished makes the runtime cut the connection, so the
        // client sees a failure.
        eprintln!("gateway: response body cut: {why}");
        sent = false;
    }
    if sent {
        let _ = Write::flush(&mut stream);
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}
