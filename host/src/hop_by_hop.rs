//! RFC 9110 section 7.6.1 at the host boundary: fields a `Connection`
//! header names are hop-by-hop, and an intermediary must drop them.
//!
//! `wasmtime-wasi-http` removes `Connection` itself before a guest sees any
//! header map (the incoming request, and an origin's response), so the
//! gateway cannot know which other fields it named. The host therefore
//! drops them where it still can see `Connection`: on the client's request
//! before the guest gets it, and on an origin's response before the guest
//! reads it (a [`WasiHttpHooks::send_request`] around the default sender).

use http::HeaderMap;
use http::header::CONNECTION;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Removes the fields `Connection` names (not `Connection` itself, which
/// the runtime removes with the other forbidden fields).
pub fn strip_connection_fields(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
}

/// The default outgoing sender, with the origin's hop-by-hop fields removed.
#[derive(Default)]
pub struct ProxyHooks;

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for ProxyHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (mut response, io) =
                wasmtime_wasi_http::default_send_request(request, options).await?;
            strip_connection_fields(response.headers_mut());
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_fields_go_and_others_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, "close, X-Hop".parse().unwrap());
        headers.append(CONNECTION, "x-other".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("x-other", "2".parse().unwrap());
        headers.insert("x-kept", "3".parse().unwrap());
        strip_connection_fields(&mut headers);
        assert!(headers.get("x-hop").is_none());
        assert!(headers.get("x-other").is_none());
        assert_eq!(headers.get("x-kept").unwrap(), "3");
    }
}
