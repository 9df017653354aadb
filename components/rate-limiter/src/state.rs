//! Per-key GCRA state in durable storage: load, decide, compare-and-swap,
//! and on conflict decide again against the record that won.

use portico_ratelimit_logic::gcra::{self, Decision};
use portico_ratelimit_logic::policy::Policy;

use crate::portico::platform::durable::{self, Outcome};
use crate::portico::platform::types::Error;
use crate::portico::types::http::Problem;

/// The durable namespace holding every key's state.
const NAMESPACE: &str = "ratelimit";
/// Conflicts are only possible between concurrent admissions of one key,
/// each resolved by one statement; this bound is never reached in practice
/// and keeps a pathological storm from looping forever.
const MAX_ATTEMPTS: u32 = 64;
/// Ids longer than this are hashed so every key fits storage's key limit.
const MAX_ID_BYTES: usize = 200;

#[derive(Debug)]
pub enum StorageError {
    Platform(Error),
    Contention,
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Platform(Error::AccessDenied) => f.write_str("access denied"),
            StorageError::Platform(Error::TooLarge) => f.write_str("too large"),
            StorageError::Platform(Error::Unavailable(m) | Error::Other(m)) => f.write_str(m),
            StorageError::Contention => write!(f, "no update after {MAX_ATTEMPTS} attempts"),
        }
    }
}

impl StorageError {
    pub fn into_problem(self) -> Problem {
        Problem {
            status: 503,
            kind: "rate-limit-unavailable".into(),
            title: "Rate limiting is unavailable".into(),
            detail: format!("rate-limit storage failed: {self}"),
        }
    }
}

/// The record id of `key` under `policy`.
fn record_id(policy: &Policy, key: &str) -> String {
    let id = format!("{}/{key}", policy.name);
    if id.len() <= MAX_ID_BYTES {
        return id;
    }
    // FNV-1a 64: stable and dependency-free; ids only need to be distinct.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{}/#{hash:016x}", policy.name)
}

fn decode_tat(value: &[u8]) -> Option<u64> {
    value.try_into().ok().map(u64::from_be_bytes)
}

/// About one write in this many also reclaims expired state, so storage for
/// idle keys stays bounded without a separate scheduler.
const SWEEP_EVERY: u64 = 64;
/// Records reclaimed per sweep: bounded, so no request pays much for it.
const SWEEP_BATCH: u32 = 100;

/// Expired state already reads as absent; this only frees its space. The
/// millisecond clock is the sampler: cheap, and uncorrelated with keys.
fn sweep_now_and_then(now_ms: u64) {
    if !now_ms.is_multiple_of(SWEEP_EVERY) {
        return;
    }
    if let Err(err) = durable::sweep_expired(NAMESPACE, SWEEP_BATCH) {
        eprintln!(
            "{}",
            serde_json::json!({
                    "level": "warn",
                    "component": "rate-limiter",
                    "msg": "sweeping expired rate-limit state failed",
                "error": StorageError::Platform(err).to_string(),
            })
        );
    }
}

/// Spends `cost` of `policy` for `key` at `now_ms`.
pub fn spend(key: &str, policy: &Policy, cost: u32, now_ms: u64) -> Result<Decision, StorageError> {
    let id = record_id(policy, key);
    let mut current = durable::load(NAMESPACE, &id).map_err(StorageError::Platform)?;
    for _ in 0..MAX_ATTEMPTS {
        let tat = current.as_ref().and_then(|entry| decode_tat(&entry.value));
        let decision = gcra::decide(tat, now_ms, policy, cost);
        let Some(new_tat) = decision.new_tat else {
            // Refusals and pure queries write nothing.
            return Ok(decision);
        };
        let ttl = gcra::ttl_ms(new_tat, now_ms).max(1);
        let expected = current.as_ref().map(|entry| entry.version);
        match durable::compare_and_swap(NAMESPACE, &id, expected, &new_tat.to_be_bytes(), Some(ttl))
            .map_err(StorageError::Platform)?
        {
            Outcome::Stored(_) => {
                sweep_now_and_then(now_ms);
                return Ok(decision);
            }
            Outcome::Conflict(winner) => current = winner,
        }
    }
    Err(StorageError::Contention)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_to_a_bounded_id() {
        let policy = Policy::default();
        assert_eq!(record_id(&policy, "10.0.0.1"), "default/10.0.0.1");
        let long = "k".repeat(1000);
        let id = record_id(&policy, &long);
        assert!(id.len() <= MAX_ID_BYTES, "{id}");
        assert_ne!(id, record_id(&policy, &"j".repeat(1000)));
    }

    #[test]
    fn tat_decoding_rejects_foreign_values() {
        assert_eq!(decode_tat(&7u64.to_be_bytes()), Some(7));
        assert_eq!(decode_tat(b"short"), None);
    }
}
