//! What `portico up` does on a fresh data folder so that a first look shows
//! a working edge: a small, labelled demo flag set, and how to create the
//! admin. `portico serve` does neither: it serves what the operator stored.

use anyhow::{Context, Result};
use portico_auth_logic::user::{KEY_PREFIX, UserRecord};
use portico_flags_logic::definitions::DEFINITIONS_KEY as FLAG_SET_KEY;

use crate::kv::KvStore;

/// The demo set: a 50/50 A/B experiment and a boolean, each saying in its
/// metadata that it is a demo.
pub const DEMO_FLAGS: &str = r#"{
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"fractional": [["on", 50], ["off", 50]]},
      "metadata": {"demo": true, "description": "Demo: a 50/50 A/B experiment seeded by portico up"}
    },
    "maintenance-banner": {
      "state": "ENABLED",
      "variants": {"shown": true, "hidden": false},
      "defaultVariant": "hidden",
      "metadata": {"demo": true, "description": "Demo: a boolean flag seeded by portico up"}
    }
  }
}
"#;

/// What [`seed_demo_flags`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    /// The demo set was stored.
    Demo,
    /// A flag set exists (even an empty one an operator stored): untouched.
    Existing,
}

/// Stores the demo flag set unless any flag set is stored.
pub fn seed_demo_flags(store: &KvStore) -> Result<Seeded> {
    if store.get(FLAG_SET_KEY)?.is_some() {
        return Ok(Seeded::Existing);
    }
    store
        .set(FLAG_SET_KEY, DEMO_FLAGS.as_bytes(), None)
        .context("storing the demo flag set")?;
    Ok(Seeded::Demo)
}

/// Whether a stored user has role `admin`.
pub fn admin_exists(store: &KvStore) -> Result<bool> {
    for key in store.list(KEY_PREFIX)? {
        let Some(bytes) = store.get(&key)? else {
            continue;
        };
        // An unreadable record is the auth component's to report.
        if serde_json::from_slice::<UserRecord>(&bytes)
            .is_ok_and(|user| user.roles.iter().any(|role| role == "admin"))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_set_is_a_valid_flag_set() {
        let set = portico_flags_logic::definitions::parse_definitions(DEMO_FLAGS)
            .expect("the demo flags validate as the flags component validates them");
        assert_eq!(set.flags.len(), 2);
    }
}
