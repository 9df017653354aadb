//! Pure, binding-free edge-cache logic for Portico's `gateway` component.
//!
//! Everything here is plain Rust (no HTTP crate, no WASI bindings): headers
//! are `&[(String, String)]` with lower-case names (repeats allowed), times
//! are unix seconds supplied by the caller. No function panics on any input.
//! The cache modelled is a SHARED cache (RFC 9111).

pub mod backoff;
pub mod breaker;
pub mod cache_control;
pub mod cache_status;
pub mod freshness;
pub mod validation;
pub mod vary;

mod util;

pub use util::{format_http_date, parse_http_date};
