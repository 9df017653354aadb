//! The shared cache's storage in KV: one entry per URI (the latest
//! response), plus one per `Vary` secondary key when the origin varies.
//!
//! Keys are `cache/<authority><path>?<query>`: readable, and a URI prefix is
//! a key prefix, so purging by prefix is one listing. A URI too long for a
//! KV key keeps its first 150 bytes and appends a hash. A variant lives
//! at `<key> v<hash>` (a space never appears in a request target).

use portico_edgecache_logic::cache_control::response_directives;
use portico_edgecache_logic::{freshness, vary};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::portico::platform::kv;

const PREFIX: &str = "cache/";
/// Longest key kept readable; longer URIs are truncated and hashed.
const MAX_READABLE: usize = 200;
/// Bodies above this are forwarded but not stored.
pub const MAX_STORED_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub uri: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub request_time: u64,
    pub response_time: u64,
    /// The `Vary` lines of the response.
    pub vary: Vec<String>,
    /// The secondary key of the request that produced it.
    pub secondary: String,
    #[serde(skip)]
    pub body: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The primary key of a URI without its scheme (`host/path?query`).
pub fn key(uri: &str) -> String {
    if uri.len() <= MAX_READABLE {
        return format!("{PREFIX}{uri}");
    }
    let mut cut = 150;
    while !uri.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(uri.as_bytes());
    format!("{PREFIX}{}#{}", &uri[..cut], hex(&digest[..16]))
}

fn variant_key(primary: &str, secondary: &str) -> String {
    let digest = Sha256::digest(secondary.as_bytes());
    format!("{primary} v{}", hex(&digest[..12]))
}

fn encode(entry: &Entry) -> Vec<u8> {
    let meta = serde_json::to_vec(entry).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + meta.len() + entry.body.len());
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&entry.body);
    out
}

fn decode(bytes: &[u8]) -> Option<Entry> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let meta = bytes.get(4..4 + len)?;
    let mut entry: Entry = serde_json::from_slice(meta).ok()?;
    entry.body = bytes.get(4 + len..)?.to_vec();
    Some(entry)
}

fn read(key: &str) -> Option<Entry> {
    match kv::get(key) {
        Ok(Some(bytes)) => decode(&bytes),
        // An unreadable cache is a miss: the origin still answers.
        Ok(None) | Err(_) => None,
    }
}

/// What a lookup found.
pub enum Lookup {
    Found(Box<Entry>),
    /// Nothing stored for the URI.
    UriMiss,
    /// Stored, but for other values of the fields `Vary` names.
    VaryMiss,
}

/// The stored response for `uri` that matches `request_headers`.
pub fn lookup(uri: &str, request_headers: &[(String, String)]) -> Lookup {
    let primary = key(uri);
    let Some(entry) = read(&primary) else {
        return Lookup::UriMiss;
    };
    if entry.vary.is_empty() {
        return Lookup::Found(Box::new(entry));
    }
    let Some(wanted) = vary::secondary_key(&entry.vary, request_headers) else {
        return Lookup::VaryMiss;
    };
    if wanted == entry.secondary {
        return Lookup::Found(Box::new(entry));
    }
    match read(&variant_key(&primary, &wanted)) {
        Some(variant) if variant.secondary == wanted && variant.uri == uri => {
            Lookup::Found(Box::new(variant))
        }
        _ => Lookup::VaryMiss,
    }
}

/// How long after it stops being usable an entry is kept for revalidation
/// (a `304` is cheaper than a full response) before the KV TTL drops it.
const REVALIDATION_GRACE_SECS: u64 = 86_400;

/// The KV TTL of an entry: its remaining freshness, plus its
/// stale-while-revalidate / stale-if-error window, plus the grace period,
/// so `sweep-expired` reclaims entries nobody can use any more.
fn ttl_ms(entry: &Entry) -> u64 {
    let now = entry.response_time;
    let rd = response_directives(&entry.headers);
    let lifetime = freshness::freshness_lifetime(entry.status, &entry.headers).unwrap_or(0);
    let age = freshness::current_age(&entry.headers, entry.request_time, entry.response_time, now);
    let window = rd
        .cc
        .stale_while_revalidate
        .unwrap_or(0)
        .max(rd.cc.stale_if_error.unwrap_or(0));
    lifetime
        .saturating_sub(age)
        .saturating_add(window)
        .saturating_add(REVALIDATION_GRACE_SECS)
        .saturating_mul(1000)
}

/// Stores `entry` as the latest response for its URI (and as the variant
/// for its secondary key, when it varies). Failures are logged: a cache
/// that cannot write still serves.
pub fn store(entry: &Entry) {
    let primary = key(&entry.uri);
    let bytes = encode(entry);
    let mut keys = vec![primary.clone()];
    if !entry.vary.is_empty() {
        keys.push(variant_key(&primary, &entry.secondary));
    }
    for key in keys {
        if let Err(err) = kv::set(&key, &bytes, Some(ttl_ms(entry))) {
            eprintln!("cache: could not store {:?}: {err:?}", entry.uri);
        }
    }
}

/// Removes every stored response for `uri`; returns how many.
pub fn purge(uri: &str) -> u32 {
    let primary = key(uri);
    let mut keys = vec![primary.clone()];
    keys.extend(kv::list_keys(&format!("{primary} v")).unwrap_or_default());
    remove(keys)
}

/// Removes every stored response whose URI starts with `prefix`.
pub fn purge_prefix(prefix: &str) -> u32 {
    let keys = kv::list_keys(&format!("{PREFIX}{prefix}")).unwrap_or_default();
    remove(keys)
}

fn remove(keys: Vec<String>) -> u32 {
    let mut removed = 0;
    for key in keys {
        if matches!(kv::get(&key), Ok(Some(_))) && kv::delete(&key).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = Entry {
            uri: "h/x".into(),
            status: 200,
            headers: vec![("etag".into(), "\"1\"".into())],
            request_time: 1,
            response_time: 2,
            vary: vec!["accept-language".into()],
            secondary: "accept-language:en".into(),
            body: b"\x00\x01body".to_vec(),
        };
        let back = decode(&encode(&entry)).unwrap();
        assert_eq!(back.body, entry.body);
        assert_eq!(back.secondary, entry.secondary);
        assert!(decode(b"\x00\x00\x00\x09{}").is_none());
    }

    #[test]
    fn long_uris_get_bounded_keys_that_keep_their_prefix() {
        let long = format!("h/{}", "a".repeat(400));
        let k = key(&long);
        assert!(k.len() <= 250, "{}", k.len());
        assert!(k.starts_with("cache/h/aaa"));
        assert_ne!(key(&format!("{long}b")), k);
        assert_eq!(key("h/x?y=1"), "cache/h/x?y=1");
    }
}
