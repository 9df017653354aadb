//! The stored user record (`users/<name>` in the KV store), shared by the
//! auth component and the host's `portico users add`, and the rules for
//! names and roles.

use serde::{Deserialize, Serialize};

/// The KV key prefix of user records.
pub const KEY_PREFIX: &str = "users/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// A PHC-style PBKDF2 hash (see [`crate::password`]); never sent out.
    pub password: String,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub created: u64,
}

impl UserRecord {
    pub fn key(name: &str) -> String {
        format!("{KEY_PREFIX}{name}")
    }
}

/// User names: 1 to 64 of `A-Z a-z 0-9 . _ - @`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b))
}

/// Roles: 1 to 32 of `a-z 0-9 -`.
pub fn valid_role(role: &str) -> bool {
    (1..=32).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_role_rules() {
        for (name, ok) in [
            ("ada", true),
            ("a.b-c_d@e", true),
            ("", false),
            ("a/b", false),
            ("ü", false),
        ] {
            assert_eq!(valid_name(name), ok, "{name}");
        }
        assert!(!valid_name(&"a".repeat(65)));
        for (role, ok) in [
            ("admin", true),
            ("ops-2", true),
            ("Admin", false),
            ("", false),
        ] {
            assert_eq!(valid_role(role), ok, "{role}");
        }
    }
}
