//! Outgoing requests through `wasi:http/outgoing-handler`: one at a time or
//! several at once (the response futures are polled together, so concurrent
//! fetches take as long as the slowest, not the sum).

use std::io::{Read, Write};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};

use super::config::Origin;

/// Responses larger than this are refused (`502`) rather than buffered.
pub const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Timeout,
    /// Connection refused, reset, DNS, TLS, protocol errors.
    Unreachable(String),
    /// The runtime refused the request (e.g. not in `allowed_outbound_hosts`).
    Denied(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("the origin did not answer in time"),
            FetchError::Unreachable(why) => write!(f, "the origin is unreachable: {why}"),
            FetchError::Denied(why) => write!(f, "the runtime refused the outgoing request: {why}"),
        }
    }
}

fn classify(code: &ErrorCode) -> FetchError {
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => FetchError::Timeout,
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            FetchError::Denied(format!("{code:?}"))
        }
        other => FetchError::Unreachable(format!("{other:?}")),
    }
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        "TRACE" => Method::Trace,
        "CONNECT" => Method::Connect,
        other => Method::Other(other.to_string()),
    }
}

/// A request on its way; [`finish`] waits for it.
pub struct Pending {
    future: FutureIncomingResponse,
}

/// Sends `request` to `origin` with `timeout_ms` for connecting, the first
/// byte and between bytes.
pub fn start(origin: &Origin, request: &Outgoing, timeout_ms: u64) -> Result<Pending, FetchError> {
    let fields: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
        .collect();
    let headers =
        Fields::from_list(&fields).map_err(|err| FetchError::Denied(format!("header: {err:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let refused = |what: &str| FetchError::Denied(format!("invalid {what}"));
    outgoing
        .set_method(&method(&request.method))
        .map_err(|()| refused("method"))?;
    outgoing
        .set_scheme(Some(if origin.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|()| refused("scheme"))?;
    outgoing
        .set_authority(Some(&origin.authority))
        .map_err(|()| refused("authority"))?;
    outgoing
        .set_path_with_query(Some(&request.path_and_query))
        .map_err(|()| refused("path"))?;
    let options = RequestOptions::new();
    let nanos = timeout_ms.saturating_mul(1_000_000);
    // A runtime that does not support a timeout says so; the others still apply.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let body = outgoing.body().map_err(|()| refused("body"))?;
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|c| classify(&c))?;
    {
        let mut stream = body.write().map_err(|()| refused("body stream"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .write_all(chunk)
                .map_err(|err| FetchError::Unreachable(format!("sending the body: {err}")))?;
        }
        let _ = stream.flush();
    }
    OutgoingBody::finish(body, None).map_err(|c| classify(&c))?;
    Ok(Pending { future })
}

fn response(incoming: IncomingResponse, head_only: bool) -> Result<Fetched, FetchError> {
    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    if !head_only {
        let incoming_body = incoming
            .consume()
            .map_err(|()| FetchError::Unreachable("response body already taken".into()))?;
        {
            let stream = incoming_body
                .stream()
                .map_err(|()| FetchError::Unreachable("no response body stream".into()))?;
            stream
                .take(MAX_RESPONSE_BYTES + 1)
                .read_to_end(&mut body)
                .map_err(|err| FetchError::Unreachable(format!("reading the body: {err}")))?;
        }
        if body.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(FetchError::Unreachable(format!(
                "the response body exceeds {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        drop(incoming_body);
    }
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// Waits for one pending request and reads its whole response.
pub fn finish(pending: Pending, head_only: bool) -> Result<Fetched, FetchError> {
    pending.future.subscribe().block();
    match pending.future.get() {
        Some(Ok(Ok(incoming))) => response(incoming, head_only),
        Some(Ok(Err(code))) => Err(classify(&code)),
        Some(Err(())) | None => Err(FetchError::Unreachable("no response".into())),
    }
}

/// Waits for every pending request at once, then reads the responses.
pub fn finish_all(pending: Vec<Result<Pending, FetchError>>) -> Vec<Result<Fetched, FetchError>> {
    let pollables: Vec<_> = pending
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|p| p.future.subscribe()))
        .collect();
    let mut ready = vec![false; pollables.len()];
    // Each round returns at least one ready pollable, so this ends.
    for _ in 0..pollables.len() {
        let waiting: Vec<(usize, &wasip2::io::poll::Pollable)> = pollables
            .iter()
            .enumerate()
            .filter(|(i, _)| !ready[*i])
            .collect();
        if waiting.is_empty() {
            break;
        }
        let list: Vec<&wasip2::io::poll::Pollable> = waiting.iter().map(|(_, p)| *p).collect();
        for index in wasip2::io::poll::poll(&list) {
            ready[waiting[index as usize].0] = true;
        }
    }
    drop(pollables);
    pending
        .into_iter()
        .map(|p| p.and_then(|p| finish(p, false)))
        .collect()
}

/// One request, start to end.
pub fn fetch(origin: &Origin, request: &Outgoing, timeout_ms: u64) -> Result<Fetched, FetchError> {
    let pending = start(origin, request, timeout_ms)?;
    finish(pending, request.method == "HEAD")
}

/// Sleeps without busy-waiting (between retries).
pub fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
}
