//! Retry policy: exponential backoff with "full jitter" and the set of methods
//! that may be retried automatically.
//!
//! `delay = uniform(0 ..= min(cap, base * 2^attempt))`, the "full jitter"
//! scheme (AWS Architecture Blog, "Exponential Backoff and Jitter"), with the
//! randomness supplied by the caller so the function is pure and testable.
//!
//! RFC sections followed: RFC 9110 9.2.2 (idempotent methods may be retried
//! automatically) and 9.2.1 (safe methods).
//!
//! Choices and why:
//! * `attempt` is 0-based: attempt 0 (first retry) waits up to `base_ms`.
//! * Scaling `rand` is `(ceiling + 1) * rand >> 32` in 128-bit arithmetic:
//!   inclusive of both 0 and the ceiling, no modulo bias beyond 2^-32, no
//!   overflow. `base * 2^attempt` saturates, so huge attempts give `cap_ms`.
//! * `retryable` = RFC 9110 9.2.2 idempotent methods: GET, HEAD, OPTIONS,
//!   TRACE (safe) plus PUT and DELETE. PUT/DELETE ARE included because the
//!   RFC defines them as idempotent and the origin is bound by that; POST,
//!   PATCH, CONNECT and unknown methods are not. Method names are
//!   case-sensitive (RFC 9110 9.1). A gateway must still not retry a request
//!   whose body it cannot replay; that is the caller's check.

/// Full-jitter delay in milliseconds for retry number `attempt` (0-based).
pub fn delay(attempt: u32, base_ms: u64, cap_ms: u64, rand: u32) -> u64 {
    let ceiling = ceiling(attempt, base_ms, cap_ms);
    let scaled = ((u128::from(ceiling) + 1) * u128::from(rand)) >> 32;
    u64::try_from(scaled).unwrap_or(ceiling).min(ceiling)
}

/// `min(cap, base * 2^attempt)` without overflow.
pub fn ceiling(attempt: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let exp = if attempt >= 64 {
        if base_ms == 0 { 0 } else { u64::MAX }
    } else {
        base_ms.saturating_mul(1u64 << attempt)
    };
    exp.min(cap_ms)
}

/// RFC 9110 9.2.2 idempotent methods.
pub fn retryable(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}
