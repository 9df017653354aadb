//! `portico:ratelimit`: strongly consistent rate limits (GCRA, one theoretical
//! arrival time per key) updated by compare-and-swap on durable storage.
//!
//! Imports `portico:platform/{durable,config}`; exports
//! `portico:ratelimit/limiter`. This crate is the contract's placeholder:
//! `check` answers `501 not-implemented` until the limiter is built (tracked
//! separately), so the composition around it is real.

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/ratelimit"],
    world: "portico:ratelimit/component",
    generate_all,
});

use exports::portico::ratelimit::limiter::{Decision, Guest};
use portico::types::http::Problem;

struct Limiter;

export!(Limiter);

impl Guest for Limiter {
    fn check(_key: String, policy: String, _cost: u32) -> Result<Decision, Problem> {
        Err(Problem {
            status: 501,
            kind: "not-implemented".into(),
            title: "Not implemented".into(),
            detail: format!("rate limiting (policy {policy:?}) is not implemented yet"),
        })
    }
}
