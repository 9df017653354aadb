//! A GCRA decision as the contract reports it: the header fields and their
//! rules live in `portico_ratelimit_logic::headers` (unit-tested there);
//! this only copies them into the WIT record.

use portico_ratelimit_logic::gcra;
use portico_ratelimit_logic::headers::{ceil_seconds, fields};
use portico_ratelimit_logic::policy::Policy;

use crate::exports::portico::ratelimit::limiter::Decision;

pub fn to_wire(policy: &Policy, decision: &gcra::Decision) -> Decision {
    let fields = fields(policy, decision);
    Decision {
        allowed: decision.allowed,
        policy: policy.name.clone(),
        limit: policy.limit,
        window_seconds: ceil_seconds(policy.window_ms).max(1),
        remaining: decision.remaining,
        reset_seconds: fields.reset_seconds,
        retry_after_seconds: fields.retry_after_seconds,
        headers: fields
            .headers
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    }
}
