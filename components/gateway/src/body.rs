//! Request bodies, read only once the middleware chain has let the request
//! through: a client that may not call a route (`401`, `403`, `429`) is
//! answered from its headers, and its body is never read. What is read is
//! bounded by the route and by who is asking ([`limit`]).

use std::rc::Rc;

use crate::http::{Auth, Request};
use crate::problem::Problem;

/// Everything a signed-in caller may send but an asset upload.
const MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// The endpoints anyone may call (login, logout, OFREP) take small JSON or
/// form bodies, whoever calls them: 64 KiB is far more than any real one,
/// and keeps a client from making the gateway hold or parse megabytes.
const MAX_PUBLIC_BODY_BYTES: u64 = 64 * 1024;
const PUBLIC_BODY_PREFIXES: [&str; 3] = ["/api/login", "/api/logout", "/ofrep/"];
/// Default for `max_anonymous_body_bytes`: what a caller without a session
/// may send anywhere else (e.g. to an upstream route).
const MAX_ANONYMOUS_BODY_BYTES: u64 = 64 * 1024;
/// Default for `assets_max_object_bytes` (the store enforces it too).
const MAX_ASSET_BYTES: u64 = 1 << 30;

/// Hands a body to its reader a piece at a time.
pub type Sink<'a> = &'a mut dyn FnMut(Vec<u8>) -> Result<(), Problem>;

/// Reads a body within a limit into a [`Sink`].
type Reader = dyn Fn(u64, Sink<'_>) -> Result<(), Problem>;

/// A body not read yet, as the runtime holds it: read whole
/// ([`receive`]) or, on a route that streams ([`streams`]), a piece at a
/// time by the route ([`Pending::read_pieces`]), never past its limit.
#[derive(Clone)]
pub struct Pending {
    read: Rc<Reader>,
    limit: u64,
}

impl Pending {
    /// `read(limit, sink)` hands every piece of the body to `sink` and
    /// answers `413` once more than `limit` bytes have arrived.
    pub fn new(read: impl Fn(u64, Sink<'_>) -> Result<(), Problem> + 'static) -> Pending {
        Pending {
            read: Rc::new(read),
            limit: u64::MAX,
        }
    }

    /// The whole body.
    pub fn read_all(&self) -> Result<Vec<u8>, Problem> {
        let mut all = Vec::new();
        (self.read)(self.limit, &mut |piece| {
            all.extend_from_slice(&piece);
            Ok(())
        })?;
        Ok(all)
    }

    /// The body a piece at a time; `sink`'s first error ends the read.
    pub fn read_pieces(&self, sink: Sink<'_>) -> Result<(), Problem> {
        (self.read)(self.limit, sink)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

/// Whether `request` may carry a body worth streaming: a `Content-Length`
/// above 0, or none on a method other than `GET`/`HEAD` (runtimes hide
/// `Transfer-Encoding`, so a chunked body shows no length). A `GET` or
/// `HEAD` without one is taken to have none (its body, if any, is read
/// whole, as every body once was).
pub fn announced(request: &Request) -> bool {
    match request.header("content-length") {
        Some(length) => length.trim() != "0",
        None => !matches!(request.method.as_str(), "GET" | "HEAD"),
    }
}

/// Whether the route `request` goes to reads its body itself, a piece at a
/// time (an asset upload can be far larger than any instance's memory).
pub fn streams(request: &Request) -> bool {
    request.method == "PUT" && request.path.starts_with("/admin/assets/")
}

/// How many body bytes `request` may carry, given the path it will be
/// routed on (already normalised) and the session the chain found.
pub fn limit(request: &Request, setting: impl Fn(&str) -> Option<String>) -> u64 {
    let path = request.path.as_str();
    let number = |name: &str, default: u64| {
        setting(name)
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(default)
    };
    if PUBLIC_BODY_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return MAX_PUBLIC_BODY_BYTES;
    }
    let signed_in = matches!(request.auth, Auth::Authenticated(_));
    // Only an admin gets this far on /admin/ (the chain authorised them).
    if request.method == "PUT" && path.starts_with("/admin/assets/") && signed_in {
        return number("assets_max_object_bytes", MAX_ASSET_BYTES);
    }
    if signed_in {
        return MAX_BODY_BYTES;
    }
    number("max_anonymous_body_bytes", MAX_ANONYMOUS_BODY_BYTES)
}

/// Reads the body of `request` within `limit` bytes: `413` at once when the
/// declared `Content-Length` is over it (the body is never read), or as soon
/// as the bytes sent pass it. With `stream` (a route that [`streams`], or an
/// upstream route that sends the body on as it arrives) the route gets the
/// body still pending, bound to the limit.
pub fn receive(request: &mut Request, limit: u64, stream: bool) -> Result<(), Problem> {
    let declared = request
        .header("content-length")
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    if let Some(mut pending) = request.pending_body.take() {
        pending.limit = limit;
        if stream {
            request.pending_body = Some(pending);
        } else {
            request.body = pending.read_all()?;
        }
    }
    Ok(())
}

pub fn too_large(limit: u64) -> Problem {
    Problem::new(
        413,
        "payload-too-large",
        "Payload too large",
        format!("request bodies are limited to {limit} bytes here"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Session, fields};
    use std::cell::Cell;

    fn request(method: &str, path: &str, auth: Auth) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            auth,
            ..Default::default()
        }
    }

    fn admin() -> Auth {
        Auth::Authenticated(Session {
            subject: "ada".into(),
            roles: vec!["admin".into()],
            token: String::new(),
        })
    }

    #[test]
    fn limits_depend_on_the_route_and_the_caller() {
        let unset = |_: &str| None;
        let anonymous = |m, p| limit(&request(m, p, Auth::Anonymous), unset);
        assert_eq!(anonymous("POST", "/api/login"), 64 * 1024);
        assert_eq!(anonymous("POST", "/ofrep/v1/evaluate/flags"), 64 * 1024);
        assert_eq!(anonymous("POST", "/api/v1/orders"), 64 * 1024);
        assert_eq!(
            limit(&request("POST", "/api/login", admin()), unset),
            64 * 1024
        );
        assert_eq!(
            limit(&request("PUT", "/admin/assets/x.bin", admin()), unset),
            1 << 30
        );
        assert_eq!(
            limit(&request("POST", "/api/v1/orders", admin()), unset),
            10 * 1024 * 1024
        );
        let configured = |name: &str| match name {
            "max_anonymous_body_bytes" => Some("1000000".to_string()),
            "assets_max_object_bytes" => Some("5".to_string()),
            _ => None,
        };
        assert_eq!(
            limit(
                &request("POST", "/api/v1/orders", Auth::Anonymous),
                configured
            ),
            1_000_000
        );
        assert_eq!(
            limit(&request("PUT", "/admin/assets/x", admin()), configured),
            5
        );
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_without_reading() {
        let reads = Rc::new(Cell::new(0));
        let counter = reads.clone();
        let mut request = Request {
            headers: fields(&[("content-length", "101")]),
            pending_body: Some(Pending::new(move |_, sink| {
                counter.set(counter.get() + 1);
                sink(vec![0; 101])
            })),
            ..Default::default()
        };
        let problem = receive(&mut request, 100, false).unwrap_err();
        assert_eq!(problem.status, 413);
        assert_eq!(reads.get(), 0);
        receive(&mut request, 101, false).unwrap();
        assert_eq!((reads.get(), request.body.len()), (1, 101));
    }

    #[test]
    fn only_a_request_that_may_carry_a_body_announces_one() {
        let with = |method: &str, length: Option<&str>| {
            let mut request = self::request(method, "/up/x", Auth::Anonymous);
            if let Some(length) = length {
                request.headers = fields(&[("content-length", length)]);
            }
            announced(&request)
        };
        assert!(with("POST", Some("10")));
        assert!(with("POST", None), "chunked: no length shows");
        assert!(with("GET", Some("1")));
        assert!(!with("POST", Some("0")));
        assert!(!with("GET", None));
        assert!(!with("HEAD", None));
    }

    #[test]
    fn a_streaming_route_gets_the_body_unread_and_bound_to_its_limit() {
        let mut request = Request {
            method: "PUT".into(),
            path: "/admin/assets/big.bin".into(),
            pending_body: Some(Pending::new(|limit, sink| {
                assert_eq!(limit, 7);
                sink(vec![1; 3])?;
                sink(vec![2; 4])
            })),
            ..Default::default()
        };
        let stream = streams(&request);
        assert!(stream, "an asset upload streams");
        receive(&mut request, 7, stream).unwrap();
        assert!(request.body.is_empty());
        let pending = request.pending_body.clone().expect("left for the route");
        assert_eq!(pending.limit(), 7);
        let mut pieces = Vec::new();
        pending
            .read_pieces(&mut |piece| {
                pieces.push(piece.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(pieces, vec![3, 4]);
    }
}
