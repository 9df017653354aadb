//! Rules for names: KV keys, durable namespaces/ids, variable names, and the
//! file names that keys become on `wasmtime serve`.

/// Spin's key-value store accepts keys of at most 255 bytes; 250 leaves room
/// for the adapters' own prefixes.
pub const MAX_KEY_BYTES: usize = 250;

/// Why a key or name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { len: usize, max: usize },
    ControlCharacter,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => f.write_str("name is empty"),
            NameError::TooLong { len, max } => write!(f, "name is {len} bytes; the limit is {max}"),
            NameError::ControlCharacter => f.write_str("name contains a control character"),
        }
    }
}

impl std::error::Error for NameError {}

/// A KV key or a durable namespace/id: 1..=250 bytes, no control characters.
pub fn check_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() {
        return Err(NameError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(NameError::TooLong {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    if key.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(())
}

/// Spin's variable-name rule: lower-case ASCII letters, digits and `_`,
/// starting with a letter.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The environment variable that carries a Spin variable on `wasmtime serve`
/// (`jwt_secret` -> `JWT_SECRET`).
pub fn env_var_for(variable: &str) -> String {
    variable.to_ascii_uppercase()
}

/// Encodes a key as one file name: unreserved bytes stay, everything else
/// (including `/`, `%` and non-ASCII) becomes `%XX`, so a key is one flat,
/// readable file name. Encoding can triple a key's length: callers check the
/// result against [`MAX_FILE_NAME_BYTES`].
pub fn to_file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push_str(&format!("{byte:02X}"));
        }
    }
    // A leading dot would hide the file and `.`/`..` are not names at all.
    if out.starts_with('.') {
        out.replace_range(0..1, "%2E");
    }
    out
}

/// The longest file name most filesystems accept.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Decodes a name made by [`to_file_name`]; `None` for any other file
/// (temporary files, lock directories, foreign files).
pub fn from_file_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = name.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_stay_flat() {
        for key in [
            "flags/definitions",
            "users/ada",
            ".hidden",
            "a b%c",
            "ü/..",
            "x.tmp",
        ] {
            let name = to_file_name(key);
            assert!(!name.contains('/'), "{name}");
            assert!(!name.starts_with('.'), "{name}");
            assert_eq!(from_file_name(&name).as_deref(), Some(key));
        }
    }

    #[test]
    fn foreign_file_names_are_not_keys() {
        assert_eq!(from_file_name("tmp~123"), None);
        assert_eq!(from_file_name("%zz"), None);
        assert_eq!(from_file_name("%4"), None);
    }

    #[test]
    fn key_rules() {
        assert_eq!(check_key(""), Err(NameError::Empty));
        assert!(check_key(&"k".repeat(250)).is_ok());
        assert!(matches!(
            check_key(&"k".repeat(251)),
            Err(NameError::TooLong { .. })
        ));
        assert_eq!(check_key("a\0b"), Err(NameError::ControlCharacter));
    }

    #[test]
    fn variable_names_follow_spin() {
        for (name, ok) in [
            ("jwt_secret", true),
            ("a1", true),
            ("", false),
            ("1a", false),
            ("Jwt", false),
            ("jwt-secret", false),
        ] {
            assert_eq!(is_variable_name(name), ok, "{name}");
        }
        assert_eq!(env_var_for("jwt_secret"), "JWT_SECRET");
    }
}
