//! Issuing, verifying and revoking session tokens.
//!
//! Revocation is strongly consistent: a revoked `jti` is a durable record
//! (namespace `revoked`) kept until the token's `exp` plus the leeway, and
//! every verification reads it, so a token is refused on the very next
//! request after `logout` returns.
//!
//! Each user also has a session generation, a durable record
//! `revoked/user:<name>` (absent: 0). A token carries the generation it was
//! issued in (`gen`) and is refused once the user's has moved on: changing a
//! user's roles or password, or revoking all their sessions, bumps it, so
//! every earlier session ends on its next request (a demoted admin keeps no
//! admin rights for the token's remaining lifetime).

use portico_auth_logic::jwt::{self, Claims as TokenClaims, JwtError, VerifyOptions};
use serde_json::Value;

use crate::exports::portico::auth::sessions::{Claims, Session};
use crate::portico::platform::durable::{self, Outcome};
use crate::portico::types::http::Problem;
use crate::problems::{invalid_token, storage};
use crate::settings::Settings;
use portico_auth_logic::user::UserRecord as User;

const REVOKED: &str = "revoked";

fn to_wire(claims: TokenClaims) -> Claims {
    Claims {
        sub: claims.sub,
        iat: claims.iat,
        exp: claims.exp,
        nbf: claims.nbf,
        jti: claims.jti,
        roles: claims.roles,
    }
}

fn generation_id(user: &str) -> String {
    format!("user:{user}")
}

fn decode_generation(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// The user's current session generation.
fn generation(user: &str) -> Result<u64, Problem> {
    Ok(durable::load(REVOKED, &generation_id(user))
        .map_err(storage)?
        .map_or(0, |entry| decode_generation(&entry.value)))
}

/// Moves the user's session generation on: every session issued before is
/// refused from now on.
pub fn bump_generation(user: &str) -> Result<(), Problem> {
    let id = generation_id(user);
    let mut current = durable::load(REVOKED, &id).map_err(storage)?;
    // Each conflict means another writer bumped it; a few tries settle it.
    for _ in 0..16 {
        let next = current
            .as_ref()
            .map_or(0, |entry| decode_generation(&entry.value))
            + 1;
        match durable::compare_and_swap(
            REVOKED,
            &id,
            current.as_ref().map(|entry| entry.version),
            &next.to_be_bytes(),
            None,
        )
        .map_err(storage)?
        {
            Outcome::Stored(_) => return Ok(()),
            Outcome::Conflict(winner) => current = winner,
        }
    }
    Err(storage(
        crate::portico::platform::types::Error::Unavailable(
            "session generation still contended after 16 attempts".into(),
        ),
    ))
}

fn options(settings: &Settings, now: u64) -> VerifyOptions {
    VerifyOptions {
        leeway: settings.leeway,
        ..VerifyOptions::new(now)
    }
}

pub fn issue(settings: &Settings, user: &User) -> Result<Session, Problem> {
    let now = crate::now_secs();
    let jti: String = crate::random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let claims = TokenClaims {
        sub: user.name.clone(),
        iat: now,
        exp: now + settings.lifetime,
        nbf: None,
        jti,
        roles: user.roles.clone(),
        generation: generation(&user.name)?,
    };
    let token = jwt::sign(&claims, &settings.secret);
    Ok(Session {
        token,
        claims: to_wire(claims),
        max_age: settings.lifetime,
    })
}

pub fn verify(settings: &Settings, token: &str) -> Result<Claims, Problem> {
    let keys = settings.verification_keys();
    let claims = jwt::verify(token, &keys, &options(settings, crate::now_secs()))
        .map_err(|err: JwtError| invalid_token(err.reason()))?;
    if durable::load(REVOKED, &claims.jti)
        .map_err(storage)?
        .is_some()
    {
        return Err(invalid_token("token revoked"));
    }
    if generation(&claims.sub)? != claims.generation {
        return Err(invalid_token(
            "the user's sessions were revoked (roles or password changed, or revoked by an admin)",
        ));
    }
    Ok(to_wire(claims))
}

pub fn revoke(settings: &Settings, claims: &Claims) -> Result<(), Problem> {
    // Kept until no clock within the leeway could accept the token again.
    let until = claims.exp.saturating_add(settings.leeway);
    let ttl_ms = until
        .saturating_sub(crate::now_secs())
        .max(1)
        .saturating_mul(1000);
    match durable::compare_and_swap(REVOKED, &claims.jti, None, b"", Some(ttl_ms))
        .map_err(storage)?
    {
        // Already revoked (a second logout racing the first) is the same outcome.
        Outcome::Stored(_) | Outcome::Conflict(_) => Ok(()),
    }
}

pub fn inspect(settings: &Settings, token: &str, at: Option<u64>) -> Result<String, Problem> {
    let keys = settings.verification_keys();
    let jws = jwt::verify_mac(token, &keys).map_err(|err| invalid_token(err.reason()))?;
    let payload: Value = serde_json::from_slice(&jws.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&jws.payload).into_owned()));
    if let (Some(at), Value::Object(claims)) = (at, &payload) {
        let time = |name: &str| claims.get(name).and_then(Value::as_u64);
        let exp = time("exp").ok_or_else(|| invalid_token("exp missing"))?;
        jwt::check_time(exp, time("nbf"), time("iat"), &options(settings, at))
            .map_err(|err| invalid_token(err.reason()))?;
    }
    Ok(serde_json::json!({ "header": jws.header, "payload": payload }).to_string())
}
