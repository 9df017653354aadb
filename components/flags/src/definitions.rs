//! The stored flag-set document: what an empty store means and what a
//! readable document must look like.

use serde_json::{Map, Value};

/// The stored document as JSON text, `{"flags":{}}` when nothing is stored.
/// A document that is not a JSON object with a `flags` object is an error,
/// never silently replaced by an empty set.
pub fn normalise(stored: Option<&[u8]>) -> Result<String, String> {
    let Some(bytes) = stored else {
        let mut empty = Map::new();
        empty.insert("flags".into(), Value::Object(Map::new()));
        return Ok(Value::Object(empty).to_string());
    };
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|err| format!("flag set is not JSON: {err}"))?;
    match doc.get("flags") {
        Some(Value::Object(_)) => Ok(doc.to_string()),
        _ => Err("flag set has no \"flags\" object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_store_is_an_empty_set() {
        assert_eq!(normalise(None).unwrap(), r#"{"flags":{}}"#);
    }

    #[test]
    fn stored_set_is_returned() {
        let doc = br#"{"flags":{"beta":{"state":"ENABLED"}}}"#;
        let out: Value = serde_json::from_str(&normalise(Some(doc)).unwrap()).unwrap();
        assert_eq!(out["flags"]["beta"]["state"], "ENABLED");
    }

    #[test]
    fn unreadable_set_is_an_error() {
        assert!(normalise(Some(b"not json")).is_err());
        assert!(normalise(Some(b"[]")).is_err());
        assert!(normalise(Some(br#"{"flags":[]}"#)).is_err());
    }
}
