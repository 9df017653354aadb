//! The flag set in the KV store: loading, validated replacement, and
//! single-flag updates under a durable lease.

use portico_flags_logic::definitions::{FlagSet, parse_definitions, parse_definitions_value};
use serde_json::Value;

use crate::portico::platform::durable::{self, Outcome};
use crate::portico::platform::kv;
use crate::portico::platform::types::Error;
use crate::portico::types::http::Problem;

/// Where the flag set lives in the KV store.
pub use portico_flags_logic::definitions::DEFINITIONS_KEY;
/// The lease that serialises read-modify-write of the set.
const LEASE: (&str, &str) = ("flags", "write-lease");
/// A writer holds the lease for milliseconds; one that crashed frees it after this.
const LEASE_TTL_MS: u64 = 5_000;
/// How long a single-flag write waits for the lease before answering `409`.
const LEASE_WAIT_MS: u64 = 3_000;

fn storage(err: Error) -> Problem {
    let detail = match err {
        Error::AccessDenied => "access to storage was denied".to_string(),
        Error::TooLarge => "the flag set is too large for the key-value store".to_string(),
        Error::Unavailable(reason) | Error::Other(reason) => reason,
    };
    Problem {
        status: 503,
        kind: "storage-unavailable".into(),
        title: "Flag storage is unavailable".into(),
        detail,
    }
}

fn invalid(detail: String) -> Problem {
    Problem {
        status: 400,
        kind: "invalid-flag-definitions".into(),
        title: "Invalid flag definitions".into(),
        detail,
    }
}

/// The stored set; an empty set when nothing is stored. A stored document
/// that no longer validates is reported, never silently replaced.
pub fn load() -> Result<FlagSet, Problem> {
    let Some(bytes) = kv::get(DEFINITIONS_KEY).map_err(storage)? else {
        return parse_definitions(r#"{"flags":{}}"#).map_err(|err| invalid(err.to_string()));
    };
    let text = String::from_utf8_lossy(&bytes);
    parse_definitions(&text).map_err(|err| Problem {
        status: 500,
        kind: "corrupt-flag-set".into(),
        title: "Stored flag definitions are unreadable".into(),
        detail: err.to_string(),
    })
}

fn save(set: &FlagSet) -> Result<(), Problem> {
    let bytes = set.to_value().to_string().into_bytes();
    kv::set(DEFINITIONS_KEY, &bytes, None).map_err(storage)
}

/// Validates `document` as a whole set and stores it.
pub fn replace(document: &str) -> Result<(), Problem> {
    let set = parse_definitions(document).map_err(|err| invalid(err.to_string()))?;
    save(&set)
}

/// Replaces one flag (or removes it with `None`), validating the result as a
/// whole so a flag cannot refer to a missing shared evaluator.
pub fn put_flag(key: &str, definition: Option<&str>) -> Result<(), Problem> {
    let definition: Option<Value> = definition
        .map(|text| {
            serde_json::from_slice(text.as_bytes())
                .map_err(|err| invalid(format!("flags.{key}: not JSON: {err}")))
        })
        .transpose()?;
    let _lease = Lease::acquire()?;
    let mut document = load()?.to_value();
    let Some(Value::Object(flags)) = document.get_mut("flags") else {
        return Err(invalid("stored set has no \"flags\" object".into()));
    };
    match definition {
        Some(definition) => {
            flags.insert(key.to_string(), definition);
        }
        None => {
            flags.remove(key);
        }
    }
    let set = parse_definitions_value(&document).map_err(|err| invalid(err.to_string()))?;
    save(&set)
}

/// A durable lease: created only if absent (compare-and-swap), removed on
/// drop, expiring by itself if its holder dies.
struct Lease;

impl Lease {
    fn acquire() -> Result<Lease, Problem> {
        let started = std::time::Instant::now();
        loop {
            let outcome =
                durable::compare_and_swap(LEASE.0, LEASE.1, None, b"", Some(LEASE_TTL_MS))
                    .map_err(storage)?;
            if let Outcome::Stored(_) = outcome {
                return Ok(Lease);
            }
            if started.elapsed().as_millis() as u64 > LEASE_WAIT_MS {
                return Err(Problem {
                    status: 409,
                    kind: "flag-write-in-progress".into(),
                    title: "Another flag write is in progress".into(),
                    detail: "retry in a moment".into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = durable::remove(LEASE.0, LEASE.1);
    }
}

fn override_key(experiment: &str, targeting_key: &str) -> String {
    format!("ab/{experiment}/{targeting_key}")
}

/// The stored override of `targeting_key` for `experiment`, if any.
pub fn override_for(experiment: &str, targeting_key: &str) -> Result<Option<String>, Problem> {
    let key = override_key(experiment, targeting_key);
    if portico_storage_key_too_long(&key) {
        return Ok(None);
    }
    Ok(kv::get(&key)
        .map_err(storage)?
        .and_then(|bytes| String::from_utf8(bytes).ok()))
}

/// Stores (or with `None` removes) an override after checking that the flag
/// has that variant.
pub fn set_override(
    experiment: &str,
    targeting_key: &str,
    variant: Option<&str>,
    ttl_seconds: Option<u64>,
) -> Result<(), Problem> {
    let key = override_key(experiment, targeting_key);
    if targeting_key.is_empty() || portico_storage_key_too_long(&key) {
        return Err(invalid(format!(
            "override key {key:?} must be 1 to 250 bytes"
        )));
    }
    let Some(variant) = variant else {
        return kv::delete(&key).map_err(storage);
    };
    let set = load()?;
    let known = set
        .flags
        .get(experiment)
        .is_some_and(|flag| flag.variants.contains_key(variant));
    if !known {
        return Err(invalid(format!(
            "flags.{experiment}: no variant {variant:?}"
        )));
    }
    let ttl_ms = ttl_seconds.map(|s| s.saturating_mul(1000));
    kv::set(&key, variant.as_bytes(), ttl_ms).map_err(storage)
}

/// Keys longer than the platform accepts can never be stored.
fn portico_storage_key_too_long(key: &str) -> bool {
    key.len() > 250
}
