//! OFREP (OpenFeature Remote Evaluation Protocol) request/response shapes.
//!
//! **Job:** turn an HTTP request body into a [`Context`], and [`Resolution`]s
//! into OFREP JSON bodies with their HTTP status, plus a deterministic ETag for
//! bulk responses. No HTTP types: the component binds these to wasi-http.
//!
//! **Standard followed:** OFREP v1 (`open-feature/protocol`,
//! `service/openapi.yaml`):
//! * request `{"context": {"targetingKey": "...", ...attributes}}` for
//!   `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags`;
//! * single success (200) `{"key","value","reason","variant","metadata"}`;
//! * single failure `{"key","errorCode","errorDetails"}` — 404 for
//!   `FLAG_NOT_FOUND`, 400 otherwise;
//! * bulk (200) `{"flags":[success | failure-with-key, ...], "metadata"?}`;
//!   bulk request errors (400) `{"errorCode","errorDetails"}`;
//! * `ETag` / `If-None-Match` → 304 for unchanged bulk responses.
//!
//! **Choices and why:**
//! * Body errors: not JSON (or not UTF-8) → `PARSE_ERROR`; JSON of the wrong
//!   shape (not an object, `context` not an object, non-string
//!   `targetingKey`) → `INVALID_CONTEXT`. An empty body, or a body without
//!   `context`, is an empty context (friendlier for `curl -X POST`).
//!   `targetingKey: null` counts as absent.
//! * Disabled flags and code-default flags are 200 successes without `value`
//!   and `variant` (OFREP's `codeDefaultFlag` shape; reason `DISABLED` or
//!   `DEFAULT`) — current flagd behaviour.
//! * `GENERAL` and `TYPE_MISMATCH` failures are 400 like the other
//!   evaluation failures (OFREP reserves 5xx for server faults).
//! * `metadata` is always present on successes (`{}` if empty) for a stable shape.
//! * [`etag_for`] is the quoted 16-hex-digit FNV-1a-64 of the compact JSON of
//!   the body. serde_json's default `Map` is sorted, so the text — hence the
//!   tag — is canonical. FNV-1a is tiny (no `sha2` in the wasm) and an ETag
//!   only has to change when the content changes; it is not a security token.

use serde_json::{Map, Value};

use crate::evaluate::{Context, ErrorCode, Reason, Resolution};

/// OFREP error codes (evaluation codes plus `INVALID_CONTEXT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfrepErrorCode {
    ParseError,
    TargetingKeyMissing,
    InvalidContext,
    FlagNotFound,
    TypeMismatch,
    General,
}

impl OfrepErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OfrepErrorCode::ParseError => "PARSE_ERROR",
            OfrepErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            OfrepErrorCode::InvalidContext => "INVALID_CONTEXT",
            OfrepErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            OfrepErrorCode::TypeMismatch => "TYPE_MISMATCH",
            OfrepErrorCode::General => "GENERAL",
        }
    }

    /// HTTP status for a failure with this code.
    pub fn status(self) -> u16 {
        match self {
            OfrepErrorCode::FlagNotFound => 404,
            _ => 400,
        }
    }
}

impl From<ErrorCode> for OfrepErrorCode {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::FlagNotFound => OfrepErrorCode::FlagNotFound,
            ErrorCode::ParseError => OfrepErrorCode::ParseError,
            ErrorCode::TypeMismatch => OfrepErrorCode::TypeMismatch,
            ErrorCode::TargetingKeyMissing => OfrepErrorCode::TargetingKeyMissing,
            ErrorCode::General => OfrepErrorCode::General,
        }
    }
}

/// A request-level failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfrepError {
    pub code: OfrepErrorCode,
    pub details: String,
}

impl std::fmt::Display for OfrepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.details)
    }
}

impl std::error::Error for OfrepError {}

/// A status code and JSON body, ready to be written by the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub struct OfrepResponse {
    pub status: u16,
    pub body: Value,
}

fn invalid(details: impl Into<String>) -> OfrepError {
    OfrepError {
        code: OfrepErrorCode::InvalidContext,
        details: details.into(),
    }
}

/// The largest request body (and so context) an evaluation accepts: an
/// OpenFeature context is a user's attributes, a few hundred bytes.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;
/// The most attributes a context may carry.
pub const MAX_CONTEXT_ATTRIBUTES: usize = 256;

/// Parse an OFREP request body into an evaluation [`Context`].
pub fn parse_request(body: &[u8]) -> Result<Context, OfrepError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::default());
    }
    if body.len() > MAX_CONTEXT_BYTES {
        return Err(invalid(format!(
            "the request is {} bytes; contexts are limited to {MAX_CONTEXT_BYTES}",
            body.len()
        )));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| OfrepError {
        code: OfrepErrorCode::ParseError,
        details: format!("request body is not valid JSON: {e}"),
    })?;
    let Value::Object(mut root) = doc else {
        return Err(invalid("request body must be a JSON object"));
    };
    let attrs = match root.remove("context") {
        None | Some(Value::Null) => return Ok(Context::default()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("\"context\" must be a JSON object")),
    };
    context_from_map(attrs)
}

/// Split an OFREP/OpenFeature context object into targeting key + attributes.
pub fn context_from_map(mut attrs: Map<String, Value>) -> Result<Context, OfrepError> {
    if attrs.len() > MAX_CONTEXT_ATTRIBUTES {
        return Err(invalid(format!(
            "the context has {} attributes; at most {MAX_CONTEXT_ATTRIBUTES} are allowed",
            attrs.len()
        )));
    }
    let targeting_key = match attrs.remove("targetingKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid("\"targetingKey\" must be a string")),
    };
    Ok(Context {
        targeting_key,
        attributes: attrs,
    })
}

/// The 400 response for a request-level failure. `key` is set for
/// single-flag requests and omitted for bulk requests.
pub fn request_error_response(err: &OfrepError, key: Option<&str>) -> OfrepResponse {
    let mut m = Map::new();
    if let Some(k) = key {
        m.insert("key".into(), Value::String(k.to_owned()));
    }
    m.insert("errorCode".into(), Value::from(err.code.as_str()));
    m.insert("errorDetails".into(), Value::String(err.details.clone()));
    OfrepResponse {
        status: err.code.status(),
        body: Value::Object(m),
    }
}

fn success_body(r: &Resolution) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), Value::String(r.key.clone()));
    m.insert("reason".into(), Value::from(r.reason.as_str()));
    if let Some(v) = &r.value {
        m.insert("value".into(), v.clone());
    }
    if let Some(v) = &r.variant {
        m.insert("variant".into(), Value::String(v.clone()));
    }
    m.insert("metadata".into(), Value::Object(r.metadata.clone()));
    Value::Object(m)
}

fn failure_body(r: &Resolution, code: ErrorCode) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), Value::String(r.key.clone()));
    m.insert("errorCode".into(), Value::from(code.as_str()));
    m.insert(
        "errorDetails".into(),
        Value::String(
            r.error_message
                .clone()
                .unwrap_or_else(|| code.as_str().to_owned()),
        ),
    );
    Value::Object(m)
}

/// The OFREP entry (success or failure object) for one resolution.
pub fn resolution_body(r: &Resolution) -> Value {
    match r.error_code {
        Some(code) => failure_body(r, code),
        None if r.reason == Reason::Error => failure_body(r, ErrorCode::General),
        None => success_body(r),
    }
}

/// Response to `POST /ofrep/v1/evaluate/flags/{key}`.
pub fn single_response(r: &Resolution) -> OfrepResponse {
    let status = match (r.error_code, r.reason) {
        (Some(code), _) => OfrepErrorCode::from(code).status(),
        (None, Reason::Error) => 400,
        (None, _) => 200,
    };
    OfrepResponse {
        status,
        body: resolution_body(r),
    }
}

/// Response to `POST /ofrep/v1/evaluate/flags`: every resolution, in order,
/// plus optional flag-set metadata.
pub fn bulk_response(
    resolutions: &[Resolution],
    metadata: Option<&Map<String, Value>>,
) -> OfrepResponse {
    let mut m = Map::new();
    m.insert(
        "flags".into(),
        Value::Array(resolutions.iter().map(resolution_body).collect()),
    );
    if let Some(md) = metadata.filter(|md| !md.is_empty()) {
        m.insert("metadata".into(), Value::Object(md.clone()));
    }
    OfrepResponse {
        status: 200,
        body: Value::Object(m),
    }
}

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Strong ETag (`"0123456789abcdef"`, quotes included) of a response body.
pub fn etag_for(body: &Value) -> String {
    format!("\"{:016x}\"", fnv1a64(body.to_string().as_bytes()))
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison,
/// comma-separated lists and `*` supported, per RFC 9110 §13.1.2).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = strip(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || strip(t) == want)
}
