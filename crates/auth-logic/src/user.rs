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

/// The shortest password accepted, in characters (NIST SP 800-63B asks for
/// at least 8 and recommends more; 12 keeps a guessed or sprayed password
/// out of reach of an online attack the rate limiter already slows).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest, in bytes: PBKDF2's cost grows with the input and nobody
/// types a kilobyte.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a new password against the policy; the error says the rule.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "passwords are at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes (this one: {chars} characters)"
        ));
    }
    Ok(())
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

    #[test]
    fn passwords_have_a_minimum_and_a_maximum_length() {
        assert!(check_new_password("").is_err());
        assert!(check_new_password("x").is_err());
        assert!(check_new_password("elevenchars").is_err());
        assert!(check_new_password("twelve-chars").is_ok());
        // Characters, not bytes: twelve accented letters pass, eleven fail.
        assert!(check_new_password(&"é".repeat(12)).is_ok());
        assert!(check_new_password(&"é".repeat(11)).is_err());
        assert!(check_new_password(&"p".repeat(MAX_PASSWORD_BYTES)).is_ok());
        let err = check_new_password(&"p".repeat(MAX_PASSWORD_BYTES + 1)).unwrap_err();
        assert!(err.contains("at least 12 characters"), "{err}");
    }
}
