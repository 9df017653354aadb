//! `portico:flags`: feature flags stored in the KV store under `flags/`.
//!
//! Imports `portico:platform/kv` and `portico:platform/config`; exports
//! `portico:flags/flags`. Composed with a platform adapter it is usable by any
//! Spin or WASI component that imports `portico:flags/flags`.
//!
//! The flag set is one document (flagd's flag-definition JSON) under the key
//! [`DEFINITIONS_KEY`], so replacing the set is a single atomic write.

mod definitions;

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/flags"],
    world: "portico:%flags/component",
    generate_all,
});

use exports::portico::flags::evaluator::Guest;
use portico::types::http::Problem;

/// Where the flag set lives in the KV store.
pub const DEFINITIONS_KEY: &str = "flags/definitions";

struct Flags;

export!(Flags);

impl Guest for Flags {
    fn definitions() -> Result<String, Problem> {
        let stored = portico::platform::kv::get(DEFINITIONS_KEY).map_err(storage_problem)?;
        definitions::normalise(stored.as_deref()).map_err(|detail| Problem {
            status: 500,
            kind: "corrupt-flag-set".into(),
            title: "Stored flag definitions are unreadable".into(),
            detail,
        })
    }
}

fn storage_problem(err: portico::platform::types::Error) -> Problem {
    use portico::platform::types::Error;
    let detail = match err {
        Error::AccessDenied => "access to the key-value store was denied".to_string(),
        Error::TooLarge => "value too large for the key-value store".to_string(),
        Error::Unavailable(reason) | Error::Other(reason) => reason,
    };
    Problem {
        status: 503,
        kind: "storage-unavailable".into(),
        title: "Flag storage is unavailable".into(),
        detail,
    }
}
