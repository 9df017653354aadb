//! A GCRA decision as the contract reports it, with its header fields
//! (draft-ietf-httpapi-ratelimit-headers-11).
//!
//! On a refusal `t` is the wait until this request would be admitted rather
//! than until the whole quota refills: GCRA frees capacity continuously, so
//! telling a client to wait for a full refill (up to a whole window) would
//! over-penalise it. `Retry-After` equals that `t` (never less, at least 1 s).

use portico_ratelimit_logic::gcra;
use portico_ratelimit_logic::headers::{
    RATELIMIT, RATELIMIT_POLICY, RETRY_AFTER, ceil_seconds, policy_item,
};
use portico_ratelimit_logic::policy::Policy;

use crate::exports::portico::ratelimit::limiter::Decision;

pub fn to_wire(policy: &Policy, decision: &gcra::Decision) -> Decision {
    let reset_seconds = if decision.allowed {
        ceil_seconds(decision.reset_after_ms)
    } else {
        ceil_seconds(decision.retry_after_ms).max(1)
    };
    let retry_after_seconds = (!decision.allowed).then_some(reset_seconds);
    let mut headers = vec![
        (RATELIMIT_POLICY.to_string(), policy_item(policy)),
        (
            RATELIMIT.to_string(),
            format!(
                "\"{}\";r={};t={reset_seconds}",
                policy.name, decision.remaining
            ),
        ),
    ];
    if let Some(seconds) = retry_after_seconds {
        headers.push((RETRY_AFTER.to_string(), seconds.to_string()));
    }
    Decision {
        allowed: decision.allowed,
        policy: policy.name.clone(),
        limit: policy.limit,
        window_seconds: ceil_seconds(policy.window_ms).max(1),
        remaining: decision.remaining,
        reset_seconds,
        retry_after_seconds,
        headers,
    }
}
