//! Circuit breakers in durable storage, one per route, so every instance
//! agrees on whether an origin is open. The state machine itself is
//! `portico_edgecache_logic::breaker`; this module only loads and
//! compare-and-swaps it. Storage trouble fails open: the breaker protects
//! origins, it must not take the gateway down with it.

use portico_edgecache_logic::breaker::{BreakerState, Permit, before_request, on_result};

use super::config::Route;
use crate::portico::platform::durable::{self, Outcome};

const NAMESPACE: &str = "breaker";
/// A lost race is retried this often before the result is dropped.
const CAS_ATTEMPTS: usize = 4;

fn load(route: &str) -> Option<(BreakerState, Option<u64>)> {
    match durable::load(NAMESPACE, route) {
        Ok(Some(entry)) => Some((
            BreakerState::from_bytes(&entry.value).unwrap_or_default(),
            Some(entry.version),
        )),
        Ok(None) => Some((BreakerState::default(), None)),
        Err(err) => {
            eprintln!("breaker {route}: state unreadable ({err:?}); failing open");
            None
        }
    }
}

/// Applies `step` to the stored state until the write wins; returns what
/// `step` decided on the state that was stored.
fn update<T>(route: &str, mut step: impl FnMut(BreakerState) -> (T, BreakerState)) -> Option<T> {
    for _ in 0..CAS_ATTEMPTS {
        let (state, version) = load(route)?;
        let (decision, next) = step(state);
        if next == state {
            return Some(decision);
        }
        match durable::compare_and_swap(NAMESPACE, route, version, &next.to_bytes(), None) {
            Ok(Outcome::Stored(_)) => return Some(decision),
            Ok(Outcome::Conflict(_)) => continue,
            Err(err) => {
                eprintln!("breaker {route}: state not saved ({err:?})");
                return Some(decision);
            }
        }
    }
    None
}

/// The breaker keeps time in milliseconds (the state machine is
/// unit-agnostic): with whole seconds, two failures a few milliseconds apart
/// but on either side of a second boundary fell into different windows.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// May a request go to the route's origin now? A refusal's `retry_after`
/// is in whole seconds, rounded up.
pub fn permit(route: &Route) -> Permit {
    let config = route.breaker.logic_ms();
    let now = now_ms();
    match update(&route.name, |state| before_request(&config, state, now)) {
        Some(Permit::Reject { retry_after }) => Permit::Reject {
            retry_after: retry_after.div_ceil(1000),
        },
        Some(permit) => permit,
        None => Permit::Allow,
    }
}

/// Records how a request to the origin went.
pub fn report(route: &Route, success: bool) {
    let config = route.breaker.logic_ms();
    let now = now_ms();
    update(&route.name, |state| {
        ((), on_result(&config, state, success, now))
    });
}

/// The stored state, for the admin view.
pub fn state(route: &str) -> BreakerState {
    load(route).map(|(state, _)| state).unwrap_or_default()
}

/// Takes a short lease named `id` (e.g. one background revalidation per
/// URI); `false` if another holder has it.
pub fn try_lease(id: &str, ttl_ms: u64) -> bool {
    matches!(
        durable::compare_and_swap("cache-lease", id, None, b"1", Some(ttl_ms)),
        Ok(Outcome::Stored(_))
    )
}

pub fn release_lease(id: &str) {
    let _ = durable::remove("cache-lease", id);
}
