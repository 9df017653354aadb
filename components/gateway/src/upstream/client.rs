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

/// Responses read whole (aggregation sources) larger than this are refused
/// (`502`) rather than buffered.
pub const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Responses proxied to a client are read whole up to this many bytes (so
/// they can be stored: the cache's entry limit); the rest of a larger body,
/// or of one whose `Content-Length` says it is larger, is piped to the
/// client as it arrives.
pub const READ_WHOLE_BYTES: usize = super::cache::MAX_STORED_BODY;

/// How a response body is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taking {
    /// Whole (at most [`MAX_RESPONSE_BYTES`]).
    Whole,
    /// Whole up to [`READ_WHOLE_BYTES`], else left to stream.
    UpTo,
}

#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's body still unread, sent on as it arrives (after `body`)
    /// when the request is not retried ([`crate::body::Pending`]).
    pub body_to_stream: Option<crate::body::Pending>,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body, or its first part when `rest` follows.
    pub body: Vec<u8>,
    /// The rest of a body too large to read whole, still with the origin.
    pub rest: Option<Unread>,
}

/// The unread rest of an origin's response body. Shared (not copied) by
/// clones; it can be piped once.
#[derive(Clone)]
pub struct Unread(std::rc::Rc<UnreadBody>);

struct UnreadBody {
    // The stream is a child of the body: declared first, dropped first.
    stream: wasip2::io::streams::InputStream,
    _body: wasip2::http::types::IncomingBody,
}

impl std::fmt::Debug for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unread")
    }
}

impl Unread {
    /// Copies the rest of the body to `out` as it arrives (the runtime
    /// moves the bytes; they never enter this component). An origin that
    /// fails or closes mid-body is an error: the caller must cut the
    /// client's connection, since the head is already out.
    pub fn pipe_to(&self, out: &wasip2::io::streams::OutputStream) -> Result<(), String> {
        use wasip2::io::streams::StreamError;
        loop {
            match out.blocking_splice(&self.0.stream, 1 << 20) {
                Ok(_) => {}
                Err(StreamError::Closed) => return Ok(()),
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(format!(
                        "the origin's body failed mid-way: {}",
                        err.to_debug_string()
                    ));
                }
            }
        }
    }
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Timeout,
    /// Connection refused, reset, DNS, TLS, protocol errors.
    Unreachable(String),
    /// The runtime refused the request (e.g. not in `allowed_outbound_hosts`).
    Denied(String),
    /// The client's own body failed while it was being sent on (too slow,
    /// too large, unreadable): the client's problem, not the origin's.
    Client(crate::problem::Problem),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("the origin did not answer in time"),
            FetchError::Unreachable(why) => write!(f, "the origin is unreachable: {why}"),
            FetchError::Denied(why) => write!(f, "the runtime refused the outgoing request: {why}"),
            FetchError::Client(problem) => {
                write!(f, "the client's body failed: {}", problem.detail)
            }
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
        let sending =
            |err: std::io::Error| FetchError::Unreachable(format!("sending the body: {err}"));
        stream.write_all(&request.body).map_err(sending)?;
        if let Some(pending) = &request.body_to_stream {
            let mut origin_failed = None;
            let read = pending.read_pieces(&mut |piece| {
                stream.write_all(&piece).map_err(|err| {
                    origin_failed = Some(sending(err));
                    crate::problem::Problem::bad_request("the origin stopped taking the body")
                })
            });
            if let Some(failed) = origin_failed {
                return Err(failed);
            }
            read.map_err(FetchError::Client)?;
        }
        let _ = stream.flush();
    }
    OutgoingBody::finish(body, None).map_err(|c| classify(&c))?;
    Ok(Pending { future })
}

fn response(
    incoming: IncomingResponse,
    head_only: bool,
    taking: Taking,
) -> Result<Fetched, FetchError> {
    let status = incoming.status();
    let headers: Vec<(String, String)> = incoming
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
    let mut rest = None;
    if !head_only {
        let incoming_body = incoming
            .consume()
            .map_err(|()| FetchError::Unreachable("response body already taken".into()))?;
        let mut stream = incoming_body
            .stream()
            .map_err(|()| FetchError::Unreachable("no response body stream".into()))?;
        let reading_error =
            |err: std::io::Error| FetchError::Unreachable(format!("reading the body: {err}"));
        match taking {
            Taking::Whole => {
                (&mut stream)
                    .take(MAX_RESPONSE_BYTES + 1)
                    .read_to_end(&mut body)
                    .map_err(reading_error)?;
                if body.len() as u64 > MAX_RESPONSE_BYTES {
                    return Err(FetchError::Unreachable(format!(
                        "the response body exceeds {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
            }
            Taking::UpTo => {
                let declared = headers
                    .iter()
                    .find(|(name, _)| name == "content-length")
                    .and_then(|(_, value)| value.trim().parse::<u64>().ok());
                // Declared larger than can be stored: none of it is read here.
                let limit = match declared {
                    Some(length) if length > READ_WHOLE_BYTES as u64 => 0,
                    _ => READ_WHOLE_BYTES as u64 + 1,
                };
                (&mut stream)
                    .take(limit)
                    .read_to_end(&mut body)
                    .map_err(reading_error)?;
                if body.len() as u64 == limit {
                    rest = Some(Unread(std::rc::Rc::new(UnreadBody {
                        stream,
                        _body: incoming_body,
                    })));
                }
            }
        }
    }
    Ok(Fetched {
        status,
        headers,
        body,
        rest,
    })
}

/// Waits for one pending request and takes its response.
pub fn finish(pending: Pending, head_only: bool, taking: Taking) -> Result<Fetched, FetchError> {
    pending.future.subscribe().block();
    match pending.future.get() {
        Some(Ok(Ok(incoming))) => response(incoming, head_only, taking),
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
        .map(|p| p.and_then(|p| finish(p, false, Taking::Whole)))
        .collect()
}

/// One request, start to end; a large body is left to stream.
pub fn fetch(origin: &Origin, request: &Outgoing, timeout_ms: u64) -> Result<Fetched, FetchError> {
    let pending = start(origin, request, timeout_ms)?;
    finish(pending, request.method == "HEAD", Taking::UpTo)
}

/// Sleeps without busy-waiting (between retries).
pub fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
}
