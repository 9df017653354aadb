//! `portico:ratelimit`: strongly consistent rate limits, the Durable-Object
//! pattern without a vendor.
//!
//! Imports `portico:platform/{durable,config}`; exports
//! `portico:ratelimit/limiter`. Each key's state is one theoretical arrival
//! time (GCRA, `portico_ratelimit_logic::gcra`) in a durable record, updated
//! by compare-and-swap with a bounded retry, so a burst of N+k requests
//! admits exactly N however many instances race on it.
//!
//! Configuration (Spin variables; environment variables on `wasmtime serve`):
//! - `rate_limit_policies`: `name=limit/window[/burst], ...` or JSON
//!   (default: `default=100/60s`);
//! - `rate_limit_routes`: `/prefix=policy, ...` (longest prefix wins; other
//!   paths use `default`);
//! - `rate_limit_on_failure`: `open` (default) or `closed`: what a request
//!   gets when storage fails.
//!
//! Standalone: composed with `platform-spin`, any Spin app can import
//! `portico:ratelimit/limiter` and call `check(key, policy, cost)`.

mod decision;
mod settings;
mod state;

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/ratelimit"],
    world: "portico:ratelimit/component",
    generate_all,
});

use exports::portico::ratelimit::limiter::{Decision, Guest};
use portico::types::http::Problem;
use settings::{FailurePolicy, Settings};

struct Limiter;

export!(Limiter);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Guest for Limiter {
    fn check(key: String, policy: String, cost: u32) -> Result<Decision, Problem> {
        let settings = Settings::load()?;
        let Some(policy) = settings.policies.get(&policy) else {
            return Err(Problem {
                status: 400,
                kind: "unknown-policy".into(),
                title: "Unknown rate-limit policy".into(),
                detail: format!("no policy named {policy:?} in rate_limit_policies"),
            });
        };
        let outcome = state::spend(&key, policy, cost, now_ms())
            .map_err(state::StorageError::into_problem)?;
        if outcome.impossible {
            return Err(Problem {
                status: 400,
                kind: "cost-exceeds-burst".into(),
                title: "Request can never be admitted".into(),
                detail: format!(
                    "cost {cost} exceeds the burst ({}) of policy {:?}",
                    policy.effective_burst(),
                    policy.name
                ),
            });
        }
        Ok(decision::to_wire(policy, &outcome))
    }

    fn check_path(key: String, path: String) -> Result<Option<Decision>, Problem> {
        let settings = Settings::load()?;
        let policy = settings.policies.policy_for_path(&path);
        match state::spend(&key, policy, 1, now_ms()) {
            Ok(outcome) => Ok(Some(decision::to_wire(policy, &outcome))),
            Err(err) => match settings.on_failure {
                FailurePolicy::Closed => Err(err.into_problem()),
                FailurePolicy::Open => {
                    eprintln!(
                        "{}",
                        serde_json::json!({
                            "level": "warn",
                            "component": "rate-limiter",
                            "msg": "rate-limit storage failed; request let through (rate_limit_on_failure=open)",
                            "policy": policy.name,
                            "error": err.to_string(),
                        })
                    );
                    Ok(None)
                }
            },
        }
    }
}
