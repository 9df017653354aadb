//! Session tokens as compact JWS/JWT signed with HMAC-SHA256 (`HS256`) only.
//!
//! Standards: RFC 7519 (JWT), RFC 7515 (JWS compact serialisation),
//! RFC 7518 §3.2 (HS256 keys must be at least 256 bits) and RFC 8725
//! (JWT Best Current Practices: pin the algorithm, validate every token
//! fully, never trust header-supplied keys).
//!
//! Decisions a caller should know about:
//! - Exactly one algorithm is accepted: `"alg":"HS256"`, compared
//!   byte-for-byte. Algorithm agility is how `none` and key-confusion attacks
//!   happen (RFC 8725 §2.1, §3.1), and we issue nothing else.
//! - `typ` may be absent; if present it must equal `JWT` ignoring ASCII case,
//!   because RFC 7515 §4.1.9 makes media-type values case-insensitive.
//!   `application/jwt` and explicit sub-types such as `at+jwt` are refused:
//!   they name other token kinds (RFC 8725 §3.11) and we never issue them.
//! - `crit` is refused because we understand no extensions, which RFC 7515
//!   §4.1.11 says must then fail; `jwk`/`jku`/`x5u`/`x5c` are refused because
//!   a token must never choose the key that verifies it.
//! - Duplicate member names at any depth are refused: RFC 7515 §5.2 permits
//!   "last wins", but parsers disagree on it, which is a confusion risk.
//! - Verification keys shorter than 32 bytes are ignored (RFC 7518 §3.2).
//! - NumericDate claims must be non-negative JSON integers; we never issue
//!   fractional seconds, so accepting them would only widen the parser.
//! - The MAC is checked over the exact received `header.payload` bytes before
//!   the payload is even decoded, so no claim is looked at unauthenticated.
//!
//! The module is pure: the caller supplies `now` and the secrets.

use std::cell::Cell;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token we will look at; session tokens are a few hundred bytes,
/// and the cap bounds base64 and JSON work on hostile input.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
pub const MIN_KEY_LEN: usize = 32;

/// Default clock-skew allowance in seconds for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: u64 = 30;

/// Default extra allowance for `iat` in the future beyond the leeway.
pub const DEFAULT_MAX_FUTURE_IAT: u64 = 60;

/// The only header `sign` ever emits.
const HEADER_JSON: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims Portico issues in its session tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    /// `null` is refused rather than read as absent, so a present `nbf`
    /// always carries a real NumericDate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_u64"
    )]
    pub nbf: Option<u64>,
    pub jti: String,
    /// Missing `roles` means no roles, the least-privileged reading.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user's session generation when the token was issued (Portico's
    /// own claim): the token is refused once the user's generation has
    /// moved past it. Missing means 0, the generation of a user whose
    /// sessions were never revoked.
    #[serde(rename = "gen", default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn present_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(deserializer).map(Some)
}

/// Clock and tolerance for the time checks; `now` is unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    pub now: u64,
    pub leeway: u64,
    /// `iat` later than `now + leeway + max_future_iat` is refused: a token
    /// "issued" well in the future points at a broken or hostile issuer clock.
    pub max_future_iat: u64,
}

impl VerifyOptions {
    /// Options for `now` with the default leeway and future-`iat` allowance.
    pub fn new(now: u64) -> Self {
        Self {
            now,
            leeway: DEFAULT_LEEWAY,
            max_future_iat: DEFAULT_MAX_FUTURE_IAT,
        }
    }
}

/// Why a token was refused. `reason()` strings are short and stable so they
/// can go straight into a problem+json `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    TooLong,
    SegmentCount,
    EmptySignature,
    Base64,
    Utf8,
    HeaderNotObject,
    PayloadNotObject,
    DuplicateMember,
    AlgMissing,
    AlgNotAllowed,
    CritNotSupported,
    KeyHeaderNotAllowed,
    TypNotAllowed,
    NoUsableKey,
    BadSignature,
    InvalidClaims,
    EmptySubject,
    Expired,
    NotYetValid,
    IssuedInFuture,
}

impl JwtError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLong => "token too long",
            Self::SegmentCount => "token must have exactly 3 segments",
            Self::EmptySignature => "empty signature",
            Self::Base64 => "segment is not unpadded base64url",
            Self::Utf8 => "segment is not valid UTF-8",
            Self::HeaderNotObject => "header is not a JSON object",
            Self::PayloadNotObject => "payload is not a JSON object",
            Self::DuplicateMember => "duplicate JSON member name",
            Self::AlgMissing => "alg missing",
            Self::AlgNotAllowed => "alg must be HS256",
            Self::CritNotSupported => "crit header not supported",
            Self::KeyHeaderNotAllowed => "embedded key headers not allowed",
            Self::TypNotAllowed => "typ must be JWT",
            Self::NoUsableKey => "no usable verification key",
            Self::BadSignature => "signature mismatch",
            Self::InvalidClaims => "claims missing or of wrong type",
            Self::EmptySubject => "sub is empty",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::IssuedInFuture => "iat is in the future",
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for JwtError {}

/// A JWS whose header passed the policy checks and whose MAC verified.
/// The payload is raw bytes because JWS payloads need not be JSON
/// (RFC 7520 §4 signs plain text).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJws {
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
}

/// Signs `claims` with `secret` under the fixed header
/// `{"alg":"HS256","typ":"JWT"}`.
///
/// Key rotation is the caller's business: pass the current secret here and
/// the current-then-previous list to [`verify`]. A secret shorter than
/// [`MIN_KEY_LEN`] yields a token that `verify` will never accept.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    // A struct of strings, integers and a string list has no serialisation
    // failure path (no maps with non-string keys, no custom Serialize).
    let payload = serde_json::to_vec(claims).expect("Claims always serialises to JSON");
    let mut token = String::with_capacity(payload.len().saturating_mul(2).saturating_add(96));
    URL_SAFE_NO_PAD.encode_string(HEADER_JSON, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let mut mac = new_mac(secret);
    mac.update(token.as_bytes());
    let tag = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_slice(), &mut token);
    token
}

/// Full verification: structure, header policy, MAC (any of `keys`, listed
/// current first then previous), claim types, `sub` and the time window.
pub fn verify(token: &str, keys: &[&[u8]], opts: &VerifyOptions) -> Result<Claims, JwtError> {
    let payload = verify_signature_and_decode(token, keys)?;
    let claims: Claims =
        serde_json::from_value(Value::Object(payload)).map_err(|_| JwtError::InvalidClaims)?;
    if claims.sub.is_empty() {
        return Err(JwtError::EmptySubject);
    }
    check_time(claims.exp, claims.nbf, Some(claims.iat), opts)?;
    Ok(claims)
}

/// Verifies structure, header policy and MAC, then decodes the payload as a
/// JSON object without imposing the [`Claims`] shape or any time check, so
/// foreign tokens (e.g. RFC examples) can be checked with an injected clock
/// via [`check_time`].
pub fn verify_signature_and_decode(
    token: &str,
    keys: &[&[u8]],
) -> Result<Map<String, Value>, JwtError> {
    let jws = verify_mac(token, keys)?;
    parse_unique_object(&jws.payload, JwtError::PayloadNotObject)
}

/// The MAC layer: verifies structure, header policy and the HS256 MAC and
/// returns the header and the raw payload bytes, which need not be JSON.
pub fn verify_mac(token: &str, keys: &[&[u8]]) -> Result<VerifiedJws, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (header_b64, payload_b64, sig_b64) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(p), Some(s), None) => (h, p, s),
            _ => return Err(JwtError::SegmentCount),
        };
    // Alphabet first, for every segment, so padding or a stray character
    // anywhere is reported as such rather than as a later, vaguer failure.
    for segment in [header_b64, payload_b64, sig_b64] {
        check_b64url_alphabet(segment)?;
    }

    // The header must be read before the MAC to learn the algorithm; it is
    // only used to refuse, never to pick a key or an algorithm.
    let header = parse_unique_object(&decode_b64url(header_b64)?, JwtError::HeaderNotObject)?;
    check_header(&header)?;

    if sig_b64.is_empty() {
        return Err(JwtError::EmptySignature);
    }
    let signature = decode_b64url(sig_b64)?;
    // Exactly the received bytes, never a re-encoding of the parsed header.
    let (signing_input, _) = token.rsplit_once('.').ok_or(JwtError::SegmentCount)?;

    let mut usable = keys.iter().filter(|k| k.len() >= MIN_KEY_LEN).peekable();
    if usable.peek().is_none() {
        return Err(JwtError::NoUsableKey);
    }
    // `verify_slice` compares in constant time, so the loop reveals at most
    // which key matched, never how much of a tag was right.
    let verified = usable.any(|key| {
        let mut mac = new_mac(key);
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).is_ok()
    });
    if !verified {
        return Err(JwtError::BadSignature);
    }

    let payload = decode_b64url(payload_b64)?;
    Ok(VerifiedJws { header, payload })
}

/// RFC 7519 time checks with leeway `L` (all arithmetic saturates):
/// - expired when `now >= exp + L` ("on or after" exp, RFC 7519 §4.1.4),
///   so `exp == now` with `L == 0` is already expired;
/// - not yet valid when `now + L < nbf` (§4.1.5);
/// - refused when `iat > now + L + max_future_iat` (§4.1.6 sets no rule;
///   this is our sanity bound on issuer clocks).
pub fn check_time(
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
    opts: &VerifyOptions,
) -> Result<(), JwtError> {
    let now = opts.now;
    if now >= exp.saturating_add(opts.leeway) {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = nbf
        && now.saturating_add(opts.leeway) < nbf
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = iat
        && iat
            > now
                .saturating_add(opts.leeway)
                .saturating_add(opts.max_future_iat)
    {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(())
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC hashes over-long keys and pads short ones (RFC 2104 §2), so
    // construction cannot fail; the Result is only the generic KeyInit shape.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn check_b64url_alphabet(segment: &str) -> Result<(), JwtError> {
    // RFC 7515 §2 base64url: no padding, no whitespace, no `+` or `/`.
    if segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(JwtError::Base64)
    }
}

fn decode_b64url(segment: &str) -> Result<Vec<u8>, JwtError> {
    // The engine also refuses non-zero trailing bits, so every byte string
    // has exactly one accepted encoding and signatures are not malleable.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Base64)
}

fn check_header(header: &Map<String, Value>) -> Result<(), JwtError> {
    match header.get("alg") {
        None => return Err(JwtError::AlgMissing),
        Some(Value::String(alg)) if alg == "HS256" => {}
        Some(_) => return Err(JwtError::AlgNotAllowed),
    }
    if header.contains_key("crit") {
        return Err(JwtError::CritNotSupported);
    }
    if ["jwk", "jku", "x5u", "x5c"]
        .iter()
        .any(|name| header.contains_key(*name))
    {
        return Err(JwtError::KeyHeaderNotAllowed);
    }
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => Ok(()),
        Some(_) => Err(JwtError::TypNotAllowed),
    }
}

/// Parses UTF-8 JSON that must be an object, refusing duplicate member
/// names at any depth (serde_json alone would silently keep the last one).
fn parse_unique_object(bytes: &[u8], not_object: JwtError) -> Result<Map<String, Value>, JwtError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JwtError::Utf8)?;
    let duplicate = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = UniqueValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(not_object),
        Err(_) if duplicate.get() => Err(JwtError::DuplicateMember),
        Err(_) => Err(not_object),
    }
}

/// A `serde_json::Value` builder that fails on repeated member names. The
/// shared flag lets the caller tell that failure apart from bad JSON without
/// matching on error text. serde_json's own recursion limit still applies.
#[derive(Clone, Copy)]
struct UniqueValue<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for UniqueValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate member name"));
            }
            let value = access.next_value_seed(self)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OLD_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";
    const NOW: u64 = 1_700_000_000;

    // RFC 7515 Appendix A.1.
    const A1_KEY_B64: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    // RFC 7520 §3.5 key and §4.4 compact result (Figure 34). The token string
    // was cross-checked against several independent JOSE test suites, and
    // the test below also recomputes the tag with `hmac` directly.
    const RFC7520_KEY_B64: &str = "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg";
    const RFC7520_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";
    // RFC 7520 §4: note the two U+2019 apostrophes and one ASCII one.
    const RFC7520_PAYLOAD: &str = "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to.";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn unb64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// Builds a token from raw header and payload bytes with a genuine MAC,
    /// so each test reaches exactly the rule it is about.
    fn forge(header: &[u8], payload: &[u8], key: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn claims() -> Claims {
        Claims {
            sub: "user-42".into(),
            iat: NOW,
            exp: NOW + 3600,
            nbf: None,
            jti: "c0ffee".into(),
            roles: vec!["admin".into(), "editor".into()],
            generation: 0,
        }
    }

    fn opts(now: u64, leeway: u64) -> VerifyOptions {
        VerifyOptions {
            now,
            leeway,
            max_future_iat: DEFAULT_MAX_FUTURE_IAT,
        }
    }

    fn claims_token(payload: &str) -> String {
        forge(br#"{"alg":"HS256","typ":"JWT"}"#, payload.as_bytes(), KEY)
    }

    /// Every single-byte mutation of `token` must fail MAC-level verification.
    fn assert_every_byte_flip_fails(token: &str, key: &[u8]) {
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x02, 0x20, 0x40] {
                let mut mutated = bytes.to_vec();
                mutated[i] ^= mask;
                let Ok(mutated) = String::from_utf8(mutated) else {
                    continue;
                };
                assert!(
                    verify_mac(&mutated, &[key]).is_err(),
                    "flip {mask:#04x} at byte {i} still verified: {mutated}"
                );
            }
        }
    }

    #[test]
    fn rfc7515_a1_example_verifies_at_signature_level() {
        let key = unb64(A1_KEY_B64);
        let payload = verify_signature_and_decode(A1_TOKEN, &[&key]).unwrap();
        assert_eq!(payload["iss"], "joe");
        assert_eq!(payload["exp"], 1_300_819_380);
        assert_eq!(payload["http://example.com/is_root"], true);
    }

    #[test]
    fn rfc7515_a1_example_time_checks_use_injected_clock() {
        let key = unb64(A1_KEY_B64);
        let payload = verify_signature_and_decode(A1_TOKEN, &[&key]).unwrap();
        let exp = payload["exp"].as_u64().unwrap();
        assert_eq!(check_time(exp, None, None, &opts(exp - 1, 0)), Ok(()));
        assert_eq!(
            check_time(exp, None, None, &opts(exp, 0)),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn rfc7515_a1_example_fails_after_any_single_byte_flip() {
        assert_every_byte_flip_fails(A1_TOKEN, &unb64(A1_KEY_B64));
    }

    #[test]
    fn rfc7520_hs256_example_verifies_at_mac_layer() {
        let key = unb64(RFC7520_KEY_B64);
        let jws = verify_mac(RFC7520_TOKEN, &[&key]).unwrap();
        assert_eq!(jws.payload, RFC7520_PAYLOAD.as_bytes());
        assert_eq!(jws.header["alg"], "HS256");
        assert_eq!(jws.header["kid"], "018c0ae5-4d9b-471b-bfd6-eef314bc7037");

        // Independent path: recompute the tag from the RFC's header JSON and
        // payload text with `hmac` directly, not through this module.
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037"}"#),
            b64(RFC7520_PAYLOAD.as_bytes())
        );
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(input.as_bytes());
        let expected = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(expected, RFC7520_TOKEN);
    }

    #[test]
    fn rfc7520_text_payload_is_not_accepted_as_claims() {
        let key = unb64(RFC7520_KEY_B64);
        assert_eq!(
            verify_signature_and_decode(RFC7520_TOKEN, &[&key]),
            Err(JwtError::PayloadNotObject)
        );
    }

    #[test]
    fn rfc7520_hs256_example_fails_after_any_single_byte_flip() {
        assert_every_byte_flip_fails(RFC7520_TOKEN, &unb64(RFC7520_KEY_B64));
    }

    #[test]
    fn rfc7519_unsecured_example_is_rejected() {
        // RFC 7519 §6.1: {"alg":"none"}, the A.1 claims, empty signature.
        let token = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.";
        assert_eq!(
            verify_signature_and_decode(token, &[KEY]),
            Err(JwtError::AlgNotAllowed)
        );
    }

    #[test]
    fn sign_emits_the_exact_fixed_header() {
        let token = sign(&claims(), KEY);
        let header = token.split('.').next().unwrap();
        assert_eq!(unb64(header), br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn signed_token_round_trips_through_verify() {
        let mut c = claims();
        c.nbf = Some(NOW - 10);
        let token = sign(&c, KEY);
        assert_eq!(verify(&token, &[KEY], &VerifyOptions::new(NOW)), Ok(c));
    }

    #[test]
    fn absent_nbf_is_not_serialised() {
        let token = sign(&claims(), KEY);
        let payload = unb64(token.split('.').nth(1).unwrap());
        assert!(!String::from_utf8(payload).unwrap().contains("nbf"));
    }

    #[test]
    fn alg_other_than_exact_hs256_is_rejected() {
        let cases = [
            (r#"{"alg":"none"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"NONE"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"None"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"HS512"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"HS384"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"RS256"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"hs256"}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":"HS256 "}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":["HS256"]}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":null}"#, JwtError::AlgNotAllowed),
            (r#"{"alg":256}"#, JwtError::AlgNotAllowed),
            (r#"{"typ":"JWT"}"#, JwtError::AlgMissing),
            (r#"{}"#, JwtError::AlgMissing),
        ];
        for (header, expected) in cases {
            let token = forge(header.as_bytes(), br#"{"sub":"x"}"#, KEY);
            assert_eq!(verify_mac(&token, &[KEY]), Err(expected), "{header}");
        }
    }

    #[test]
    fn alg_none_with_empty_signature_is_rejected() {
        let token = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(verify_mac(&token, &[KEY]), Err(JwtError::AlgNotAllowed));
    }

    #[test]
    fn crit_header_is_rejected() {
        let token = forge(br#"{"alg":"HS256","crit":["b64"],"b64":false}"#, b"{}", KEY);
        assert_eq!(verify_mac(&token, &[KEY]), Err(JwtError::CritNotSupported));
    }

    #[test]
    fn embedded_key_headers_are_rejected() {
        for name in ["jwk", "jku", "x5u", "x5c"] {
            let header = format!(r#"{{"alg":"HS256","{name}":"x"}}"#);
            let token = forge(header.as_bytes(), b"{}", KEY);
            assert_eq!(
                verify_mac(&token, &[KEY]),
                Err(JwtError::KeyHeaderNotAllowed),
                "{name}"
            );
        }
    }

    #[test]
    fn typ_must_be_jwt_ignoring_case() {
        let cases = [
            (r#""JWT""#, true),
            (r#""jwt""#, true),
            (r#""Jwt""#, true),
            (r#""at+jwt""#, false),
            (r#""application/jwt""#, false),
            (r#""JOSE""#, false),
            (r#""JWT ""#, false),
            (r#""""#, false),
            ("1", false),
            ("null", false),
        ];
        for (typ, ok) in cases {
            let header = format!(r#"{{"alg":"HS256","typ":{typ}}}"#);
            let token = forge(header.as_bytes(), b"{}", KEY);
            let result = verify_mac(&token, &[KEY]);
            if ok {
                assert!(result.is_ok(), "{typ}");
            } else {
                assert_eq!(result, Err(JwtError::TypNotAllowed), "{typ}");
            }
        }
    }

    #[test]
    fn wrong_segment_count_is_rejected() {
        let good = sign(&claims(), KEY);
        let cases = [
            String::new(),
            "abc".to_owned(),
            "abc.def".to_owned(),
            format!("{good}.sig"),
            format!("{good}."),
            "....".to_owned(),
        ];
        for token in cases {
            assert_eq!(
                verify_mac(&token, &[KEY]),
                Err(JwtError::SegmentCount),
                "{token}"
            );
        }
    }

    #[test]
    fn empty_signature_is_rejected() {
        let good = sign(&claims(), KEY);
        let stripped = &good[..good.rfind('.').unwrap() + 1];
        assert_eq!(verify_mac(stripped, &[KEY]), Err(JwtError::EmptySignature));
    }

    #[test]
    fn padding_in_any_segment_is_rejected() {
        let good = sign(&claims(), KEY);
        let parts: Vec<&str> = good.split('.').collect();
        for i in 0..3 {
            let mut padded: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
            padded[i].push('=');
            assert_eq!(
                verify_mac(&padded.join("."), &[KEY]),
                Err(JwtError::Base64),
                "segment {i}"
            );
        }
    }

    #[test]
    fn non_base64url_characters_are_rejected() {
        let good = sign(&claims(), KEY);
        let parts: Vec<&str> = good.split('.').collect();
        for bad in ["+", "/", " ", "\n", "%", "\u{e9}", "\0"] {
            for i in 0..3 {
                let mut mutated: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
                mutated[i].insert_str(2, bad);
                assert_eq!(
                    verify_mac(&mutated.join("."), &[KEY]),
                    Err(JwtError::Base64),
                    "{bad:?} in segment {i}"
                );
            }
        }
    }

    #[test]
    fn non_canonical_base64_is_rejected() {
        // A 32-byte tag is 43 symbols = 258 bits, so the last symbol has two
        // spare bits that must be zero. Setting one gives a lenient decoder
        // the same tag under a different spelling: a malleable token.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let good = sign(&claims(), KEY);
        let (input, sig) = good.rsplit_once('.').unwrap();
        let last = ALPHABET
            .iter()
            .position(|c| *c == sig.as_bytes()[42])
            .unwrap();
        assert_eq!(last & 0b11, 0, "canonical encoder leaves spare bits zero");
        let alias = char::from(ALPHABET[last | 0b01]);
        let token = format!("{input}.{}{alias}", &sig[..42]);
        assert_eq!(verify_mac(&token, &[KEY]), Err(JwtError::Base64));
    }

    #[test]
    fn header_that_is_not_a_json_object_is_rejected() {
        let cases: [&[u8]; 7] = [
            b"",
            b"[]",
            b"\"HS256\"",
            b"1",
            b"null",
            b"{",
            br#"{"alg":"HS256"} x"#,
        ];
        for header in cases {
            let token = forge(header, b"{}", KEY);
            assert_eq!(
                verify_mac(&token, &[KEY]),
                Err(JwtError::HeaderNotObject),
                "{header:?}"
            );
        }
    }

    #[test]
    fn payload_that_is_not_a_json_object_is_rejected() {
        let cases: [&[u8]; 6] = [b"", b"[]", b"\"sub\"", b"42", b"{\"sub\":", b"{} {}"];
        for payload in cases {
            let token = forge(br#"{"alg":"HS256"}"#, payload, KEY);
            assert_eq!(
                verify_signature_and_decode(&token, &[KEY]),
                Err(JwtError::PayloadNotObject),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_in_header_is_rejected() {
        let token = forge(b"{\"alg\":\"HS256\",\"x\":\"\xff\"}", b"{}", KEY);
        assert_eq!(verify_mac(&token, &[KEY]), Err(JwtError::Utf8));
    }

    #[test]
    fn invalid_utf8_in_payload_is_rejected() {
        let token = forge(br#"{"alg":"HS256"}"#, b"{\"sub\":\"\xc3\x28\"}", KEY);
        assert_eq!(
            verify_signature_and_decode(&token, &[KEY]),
            Err(JwtError::Utf8)
        );
    }

    #[test]
    fn duplicate_header_members_are_rejected() {
        let cases: [&[u8]; 3] = [
            br#"{"alg":"HS256","alg":"none"}"#,
            br#"{"alg":"none","alg":"HS256"}"#,
            // Escapes decode to the same name, so this is a duplicate too.
            br#"{"alg":"HS256","\u0061lg":"HS256"}"#,
        ];
        for header in cases {
            let token = forge(header, b"{}", KEY);
            assert_eq!(
                verify_mac(&token, &[KEY]),
                Err(JwtError::DuplicateMember),
                "{header:?}"
            );
        }
    }

    #[test]
    fn duplicate_payload_members_are_rejected() {
        let cases = [
            r#"{"sub":"alice","sub":"admin"}"#,
            r#"{"sub":"a","ext":{"k":1,"k":2}}"#,
            r#"{"sub":"a","list":[{"k":1,"k":2}]}"#,
        ];
        for payload in cases {
            let token = claims_token(payload);
            assert_eq!(
                verify_signature_and_decode(&token, &[KEY]),
                Err(JwtError::DuplicateMember),
                "{payload}"
            );
        }
    }

    #[test]
    fn mac_mismatch_is_rejected() {
        let token = sign(&claims(), KEY);
        assert_eq!(
            verify(&token, &[OLD_KEY], &VerifyOptions::new(NOW)),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn truncated_or_extended_tag_is_rejected() {
        // Re-encoded canonically so only the tag length is wrong.
        let token = sign(&claims(), KEY);
        let (input, sig) = token.rsplit_once('.').unwrap();
        let tag = unb64(sig);
        let mut longer = tag.clone();
        longer.extend_from_slice(&[0, 0, 0]);
        for wrong in [&tag[..16], &tag[..31], &longer[..]] {
            let mutated = format!("{input}.{}", b64(wrong));
            assert_eq!(verify_mac(&mutated, &[KEY]), Err(JwtError::BadSignature));
        }
    }

    #[test]
    fn payload_is_not_parsed_before_mac_check() {
        // Garbage payload with a wrong tag must report the MAC, proving the
        // payload was never decoded or parsed first.
        let mut token = forge(br#"{"alg":"HS256"}"#, b"not json at all", KEY);
        token.replace_range(token.len() - 2.., "AA");
        assert_eq!(
            verify_signature_and_decode(&token, &[KEY]),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn token_over_length_cap_is_rejected() {
        let token = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(verify_mac(&token, &[KEY]), Err(JwtError::TooLong));
    }

    #[test]
    fn missing_or_short_keys_are_not_usable() {
        let token = sign(&claims(), KEY);
        assert_eq!(verify_mac(&token, &[]), Err(JwtError::NoUsableKey));
        assert_eq!(verify_mac(&token, &[b""]), Err(JwtError::NoUsableKey));
        let short = &KEY[..MIN_KEY_LEN - 1];
        let short_token = sign(&claims(), short);
        assert_eq!(
            verify_mac(&short_token, &[short]),
            Err(JwtError::NoUsableKey)
        );
    }

    #[test]
    fn previous_key_still_verifies_during_rotation() {
        let old_token = sign(&claims(), OLD_KEY);
        let new_token = sign(&claims(), KEY);
        let opts = VerifyOptions::new(NOW);
        assert!(verify(&old_token, &[KEY, OLD_KEY], &opts).is_ok());
        assert!(verify(&new_token, &[KEY, OLD_KEY], &opts).is_ok());
    }

    #[test]
    fn sign_uses_only_the_secret_it_is_given() {
        let token = sign(&claims(), KEY);
        let opts = VerifyOptions::new(NOW);
        assert!(verify(&token, &[KEY], &opts).is_ok());
        assert_eq!(
            verify(&token, &[OLD_KEY], &opts),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn claims_of_wrong_type_or_missing_are_rejected() {
        let cases = [
            r#"{"sub":"a","iat":"1700000000","exp":1700003600,"jti":"j"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1700003600.5,"jti":"j"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":-1,"jti":"j"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1e10,"jti":"j"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":18446744073709551616,"jti":"j"}"#,
            r#"{"sub":1,"iat":1700000000,"exp":1700003600,"jti":"j"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1700003600,"jti":null}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1700003600,"jti":"j","nbf":null}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1700003600,"jti":"j","roles":"admin"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1700003600,"jti":"j","roles":[1]}"#,
            r#"{"sub":"a","iat":1700000000,"jti":"j"}"#,
            r#"{"sub":"a","exp":1700003600,"jti":"j"}"#,
            r#"{"sub":"a","iat":1700000000,"exp":1700003600}"#,
            r#"{"iat":1700000000,"exp":1700003600,"jti":"j"}"#,
        ];
        for payload in cases {
            assert_eq!(
                verify(&claims_token(payload), &[KEY], &VerifyOptions::new(NOW)),
                Err(JwtError::InvalidClaims),
                "{payload}"
            );
        }
    }

    #[test]
    fn unknown_claims_are_ignored_and_roles_default_to_empty() {
        let token =
            claims_token(r#"{"sub":"a","iat":1700000000,"exp":1700003600,"jti":"j","iss":"x"}"#);
        let claims = verify(&token, &[KEY], &VerifyOptions::new(NOW)).unwrap();
        assert!(claims.roles.is_empty());
    }

    #[test]
    fn empty_sub_is_rejected() {
        let mut c = claims();
        c.sub.clear();
        assert_eq!(
            verify(&sign(&c, KEY), &[KEY], &VerifyOptions::new(NOW)),
            Err(JwtError::EmptySubject)
        );
    }

    #[test]
    fn exp_boundaries_follow_on_or_after_rule_with_leeway() {
        let exp = NOW + 100;
        // (now, leeway, accepted)
        let cases = [
            (exp - 1, 0, true),
            (exp, 0, false),
            (exp + 1, 0, false),
            (exp, 30, true),
            (exp + 29, 30, true),
            (exp + 30, 30, false),
            (exp + 31, 30, false),
        ];
        let mut c = claims();
        c.exp = exp;
        c.iat = NOW;
        let token = sign(&c, KEY);
        for (now, leeway, accepted) in cases {
            let result = verify(&token, &[KEY], &opts(now, leeway));
            if accepted {
                assert!(result.is_ok(), "now={now} leeway={leeway}");
            } else {
                assert_eq!(result, Err(JwtError::Expired), "now={now} leeway={leeway}");
            }
        }
    }

    #[test]
    fn nbf_boundaries_honour_leeway() {
        let nbf = NOW + 100;
        let cases = [
            (nbf, 0, true),
            (nbf - 1, 0, false),
            (nbf - 30, 30, true),
            (nbf - 31, 30, false),
        ];
        let mut c = claims();
        c.nbf = Some(nbf);
        c.iat = NOW;
        c.exp = NOW + 3600;
        let token = sign(&c, KEY);
        for (now, leeway, accepted) in cases {
            let result = verify(&token, &[KEY], &opts(now, leeway));
            if accepted {
                assert!(result.is_ok(), "now={now} leeway={leeway}");
            } else {
                assert_eq!(result, Err(JwtError::NotYetValid), "now={now}");
            }
        }
    }

    #[test]
    fn far_future_iat_is_rejected() {
        let limit = NOW + DEFAULT_LEEWAY + DEFAULT_MAX_FUTURE_IAT;
        let cases = [(limit, true), (limit + 1, false), (u64::MAX - 1, false)];
        for (iat, accepted) in cases {
            let mut c = claims();
            c.iat = iat;
            c.exp = u64::MAX;
            let result = verify(&sign(&c, KEY), &[KEY], &VerifyOptions::new(NOW));
            if accepted {
                assert!(result.is_ok(), "iat={iat}");
            } else {
                assert_eq!(result, Err(JwtError::IssuedInFuture), "iat={iat}");
            }
        }
    }

    #[test]
    fn time_arithmetic_saturates_instead_of_overflowing() {
        let extreme = VerifyOptions {
            now: u64::MAX,
            leeway: u64::MAX,
            max_future_iat: u64::MAX,
        };
        assert_eq!(
            check_time(u64::MAX, Some(u64::MAX), Some(u64::MAX), &extreme),
            Err(JwtError::Expired)
        );
        assert_eq!(
            check_time(u64::MAX, Some(u64::MAX), Some(u64::MAX), &opts(0, u64::MAX)),
            Ok(())
        );
    }

    #[test]
    fn deeply_nested_payload_is_rejected_without_overflow() {
        let payload = format!("{}{}", "[".repeat(2500), "]".repeat(2500));
        let token = forge(br#"{"alg":"HS256"}"#, payload.as_bytes(), KEY);
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert_eq!(
            verify_signature_and_decode(&token, &[KEY]),
            Err(JwtError::PayloadNotObject)
        );
    }

    #[test]
    fn hostile_inputs_never_panic() {
        // Deterministic pseudo-random tokens built from a biased alphabet so
        // many of them get past the early structural checks.
        let alphabet = b"eyJhbGciOiJIUzI1NiJ9.-_=+/ \x7f{}\"";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 120) as usize;
            let token: String = (0..len)
                .map(|i| {
                    let idx = (state.rotate_left(i as u32) % alphabet.len() as u64) as usize;
                    alphabet[idx] as char
                })
                .collect();
            let _ = verify(&token, &[KEY], &VerifyOptions::new(NOW));
        }
        for token in ["..", ".", "\u{0}", "é.é.é", "eyJ9.eyJ9.eyJ9"] {
            assert!(verify(token, &[KEY], &VerifyOptions::new(NOW)).is_err());
        }
    }

    #[test]
    fn error_reasons_are_distinct() {
        let all = [
            JwtError::TooLong,
            JwtError::SegmentCount,
            JwtError::EmptySignature,
            JwtError::Base64,
            JwtError::Utf8,
            JwtError::HeaderNotObject,
            JwtError::PayloadNotObject,
            JwtError::DuplicateMember,
            JwtError::AlgMissing,
            JwtError::AlgNotAllowed,
            JwtError::CritNotSupported,
            JwtError::KeyHeaderNotAllowed,
            JwtError::TypNotAllowed,
            JwtError::NoUsableKey,
            JwtError::BadSignature,
            JwtError::InvalidClaims,
            JwtError::EmptySubject,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::IssuedInFuture,
        ];
        let mut reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
    }
}
