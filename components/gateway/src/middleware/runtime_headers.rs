//! Only the runtime speaks for the runtime: `spin-*` request headers are
//! what Spin's HTTP trigger tells a component (the client's address, the
//! matched route), but a client can send them too.
//!
//! On Spin the trigger appends its own value after any the client sent, so
//! for each `spin-*` field only the last value is kept. On a runtime that
//! reports no client (`wasmtime serve`, asked through
//! `portico:platform/config.client-address-header`), every `spin-*` field
//! came from the client and is dropped, so nothing downstream (the rate
//! limiter's key, the logs, upstream forwarding) can be steered by it.
//!
//! The runtime's report of the client (`address:port`, from the header the
//! adapter names) goes into the request context as [`CLIENT_ADDR`], the
//! one place later layers read it.

use super::{Middleware, Next};
use crate::http::{Request, Response};

const RUNTIME_PREFIX: &str = "spin-";
/// The request-context key of the client's `address:port` as the runtime
/// reported it.
pub const CLIENT_ADDR: &str = "client_addr";

pub struct RuntimeHeaders {
    /// The header the runtime reports the client in, if it reports one.
    pub client_address_header: fn() -> Option<String>,
}

impl Middleware for RuntimeHeaders {
    fn handle(&self, mut request: Request, next: Next<'_>) -> Response {
        let client_header = (self.client_address_header)();
        request.headers = keep_runtime_values(
            std::mem::take(&mut request.headers),
            client_header.is_some(),
        );
        if let Some(addr) = client_header.and_then(|name| request.header(&name).map(str::to_string))
        {
            request.context.insert(CLIENT_ADDR, addr);
        }
        next.run(request)
    }
}

/// `headers` with every `spin-*` field dropped (`runtime_speaks` false) or
/// reduced to its last value.
pub fn keep_runtime_values(
    headers: Vec<(String, String)>,
    runtime_speaks: bool,
) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if name.starts_with(RUNTIME_PREFIX) {
            if !runtime_speaks {
                continue;
            }
            kept.retain(|(n, _)| *n != name);
        }
        kept.push((name, value));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::fields as h;

    #[test]
    fn on_spin_the_last_value_is_the_runtimes() {
        let headers = h(&[
            ("spin-client-addr", "6.6.6.6:1"),
            ("accept", "*/*"),
            ("spin-client-addr", "10.0.0.5:4242"),
            ("spin-path-info", "/x"),
        ]);
        assert_eq!(
            keep_runtime_values(headers, true),
            h(&[
                ("accept", "*/*"),
                ("spin-client-addr", "10.0.0.5:4242"),
                ("spin-path-info", "/x"),
            ])
        );
    }

    #[test]
    fn without_a_runtime_client_every_spin_field_is_the_clients_and_dropped() {
        let headers = h(&[
            ("spin-client-addr", "6.6.6.6:1"),
            ("accept", "*/*"),
            ("spin-full-url", "http://evil/"),
        ]);
        assert_eq!(keep_runtime_values(headers, false), h(&[("accept", "*/*")]));
    }
}
