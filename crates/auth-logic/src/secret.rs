//! Signing secrets from configuration.
//!
//! A secret is given either as text (its UTF-8 bytes are the key) or as
//! `base64url:<unpadded base64url>` for binary keys such as a JWK's `k`.
//! Either way it must be at least [`MIN_KEY_LEN`] bytes (RFC 7518 section
//! 3.2: an HS256 key is at least as long as the hash output); a shorter one is
//! a configuration error, never padded or replaced by a default.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::jwt::MIN_KEY_LEN;

const BASE64URL_PREFIX: &str = "base64url:";

/// The key bytes of a configured secret, or why it is unusable.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    let bytes = match text.strip_prefix(BASE64URL_PREFIX) {
        Some(encoded) => URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .map_err(|_| "is not valid unpadded base64url after `base64url:`".to_string())?,
        None => text.as_bytes().to_vec(),
    };
    if bytes.len() < MIN_KEY_LEN {
        return Err(format!(
            "is {} bytes; HS256 needs at least {MIN_KEY_LEN}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_base64url_secrets() {
        let text = "x".repeat(32);
        assert_eq!(decode_secret(&text).unwrap(), text.as_bytes());
        let key = decode_secret("base64url:hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg").unwrap();
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn short_or_malformed_secrets_are_refused() {
        assert!(decode_secret("short").unwrap_err().contains("5 bytes"));
        assert!(decode_secret("").is_err());
        assert!(decode_secret("base64url:!!!").is_err());
        assert!(
            decode_secret("base64url:AAAA")
                .unwrap_err()
                .contains("3 bytes")
        );
    }
}
