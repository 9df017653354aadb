//! The limiter's configuration, read from `portico:platform/config`.

use portico_ratelimit_logic::policy::PolicySet;

use crate::portico::platform::config;
use crate::portico::types::http::Problem;

/// What a request gets when the limiter cannot reach its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Let it through (and log): an outage of the limiter is not an outage of the site.
    Open,
    /// Refuse it with `503`: for routes where over-admission is worse than downtime.
    Closed,
}

pub struct Settings {
    pub policies: PolicySet,
    pub on_failure: FailurePolicy,
}

fn misconfigured(detail: String) -> Problem {
    Problem {
        status: 500,
        kind: "rate-limit-misconfigured".into(),
        title: "The rate limiter is misconfigured".into(),
        detail,
    }
}

fn variable(name: &str) -> Result<String, Problem> {
    config::get(name)
        .map(Option::unwrap_or_default)
        .map_err(|err| misconfigured(format!("reading variable {name}: {err:?}")))
}

impl Settings {
    pub fn load() -> Result<Settings, Problem> {
        let policies = PolicySet::from_config(
            &variable("rate_limit_policies")?,
            &variable("rate_limit_routes")?,
        )
        .map_err(|err| misconfigured(format!("rate_limit_policies / rate_limit_routes: {err}")))?;
        let on_failure = match variable("rate_limit_on_failure")?.trim() {
            "" | "open" => FailurePolicy::Open,
            "closed" => FailurePolicy::Closed,
            other => {
                return Err(misconfigured(format!(
                    "rate_limit_on_failure is {other:?}; use \"open\" or \"closed\""
                )));
            }
        };
        Ok(Settings {
            policies,
            on_failure,
        })
    }
}
