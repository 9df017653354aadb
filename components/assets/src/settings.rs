//! The component's variables, read per call (they are cheap to read and the
//! operator may change them between requests on some runtimes).

use serde_json::Value;

use crate::portico::platform::config;
use crate::portico::types::http::Problem;
use crate::problems;

/// Default for `assets_max_object_bytes`: 1 GiB (uploads and downloads
/// stream a chunk at a time, so memory does not grow with the size).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 1 << 30;

fn variable(name: &str) -> Result<Option<String>, Problem> {
    let value = config::get(name).map_err(problems::storage)?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

/// The largest object an upload may store (`assets_max_object_bytes`).
pub fn max_object_bytes() -> Result<u64, Problem> {
    const NAME: &str = "assets_max_object_bytes";
    match variable(NAME)? {
        None => Ok(DEFAULT_MAX_OBJECT_BYTES),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .map_err(|_| problems::config(NAME, format!("{value:?} is not a byte count"))),
    }
}

/// Seconds a replaced or deleted object's chunks stay readable
/// (`assets_replaced_grace`), so downloads already started can finish.
pub fn replaced_grace_secs() -> Result<u64, Problem> {
    const NAME: &str = "assets_replaced_grace";
    match variable(NAME)? {
        None => Ok(portico_assets_logic::layout::DEFAULT_REPLACED_GRACE_SECS),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .map_err(|_| problems::config(NAME, format!("{value:?} is not a number of seconds"))),
    }
}

/// `Cache-Control` rules by path prefix (`assets_cache_control`, a JSON
/// object such as `{"docs/": "public, max-age=300"}`); the longest matching
/// prefix wins.
pub fn cache_rule(path: &str) -> Result<Option<String>, Problem> {
    const NAME: &str = "assets_cache_control";
    let Some(text) = variable(NAME)? else {
        return Ok(None);
    };
    // from_slice, as for manifests: one JSON reader in the component.
    let rules: serde_json::Map<String, Value> = match serde_json::from_slice(text.as_bytes()) {
        Ok(Value::Object(rules)) => rules,
        _ => {
            return Err(problems::config(
                NAME,
                "must be a JSON object of prefix to Cache-Control value",
            ));
        }
    };
    let mut best: Option<(usize, String)> = None;
    for (prefix, policy) in rules {
        let Some(policy) = policy.as_str() else {
            return Err(problems::config(
                NAME,
                format!("the policy for {prefix:?} is not a string"),
            ));
        };
        if policy.chars().any(char::is_control) {
            return Err(problems::config(
                NAME,
                format!("the policy for {prefix:?} has control characters"),
            ));
        }
        if path.starts_with(&prefix) && best.as_ref().is_none_or(|(len, _)| prefix.len() > *len) {
            best = Some((prefix.len(), policy.to_string()));
        }
    }
    Ok(best.map(|(_, policy)| policy))
}
