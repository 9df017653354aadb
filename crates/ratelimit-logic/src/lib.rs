//! Pure rate-limiter logic for Portico's `rate-limiter` component.
//!
//! Nothing here touches a clock, storage or host bindings: callers pass
//! `now_ms` and the stored state in, and get decisions, header values and
//! state to write back out. That keeps every module testable natively and
//! small once compiled to `wasm32-wasip2`.
//!
//! * [`gcra`] — the Generic Cell Rate Algorithm deciding admission.
//! * [`policy`] — named policies and path routing parsed from configuration.
//! * [`headers`] — IETF `RateLimit` / `RateLimit-Policy` fields, `Retry-After`
//!   and the `quota-exceeded` problem body.

pub mod gcra;
pub mod headers;
pub mod policy;
