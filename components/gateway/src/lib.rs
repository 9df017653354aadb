//! The gateway: Portico's HTTP entry point.
//!
//! Exports `wasi:http/incoming-handler@0.2` (through the `wasip2` crate) and
//! imports the business components' interfaces (`wit/gateway/gateway.wit`);
//! it never imports a platform or vendor API for HTTP, so the same component
//! serves on Spin, on `wasmtime serve` and on the `portico` host.
//!
//! A request flows through `wasi` (wasi:http <-> plain records), then the
//! middleware chain assembled in [`app`], in order; only then is its [`body`]
//! read, and the [`router`] runs.
//! Every error leaves as `application/problem+json` ([`problem`]).

pub mod app;
pub mod background;
pub mod body;
pub mod cookie;
pub mod http;
pub mod middleware;
pub mod observe;
pub mod personalise;
pub mod problem;
pub mod redirect;
pub mod router;
pub mod routes;
pub mod upstream;
mod wasi;

wit_bindgen::generate!({
    path: [
        "../../wit/deps/wasi-io",
        "../../wit/types",
        "../../wit/platform",
        "../../wit/streaming",
        "../../wit/flags",
        "../../wit/auth",
        "../../wit/ratelimit",
        "../../wit/assets",
        "../../wit/gateway",
    ],
    world: "portico:gateway/gateway",
    // The response body stream lent to `assets` is `wasip2`'s own type.
    with: {
        "wasi:io/streams@0.2.4": wasip2::io::streams,
        "wasi:io/error@0.2.4": wasip2::io::error,
        "wasi:io/poll@0.2.4": wasip2::io::poll,
    },
    generate_all,
});
