//! `portico:auth`: JWT HS256 sessions in an HttpOnly cookie, users in the KV
//! store, revocation in durable storage, roles.
//!
//! Imports `portico:platform/{kv,durable,config}`; exports
//! `portico:auth/sessions`. Token and password rules live in
//! `portico_auth_logic` (RFC 7519/7515/8725, PBKDF2); this crate adds the
//! clock, randomness and storage.
//!
//! Configuration (Spin variables; environment variables on `wasmtime serve`):
//! `jwt_secret` (required, >= 32 bytes, or `base64url:...`),
//! `jwt_previous_secret` (optional, verifies but never signs: key rotation),
//! `session_lifetime` (seconds, default 86400), `jwt_leeway` (seconds,
//! default 30), `password_iterations` (PBKDF2, default
//! `portico_auth_logic::password::DEFAULT_ITERATIONS`), `bootstrap_admin` (`name:password`,
//! created with role `admin` on its first login when no such user exists).

mod problems;
mod sessions;
mod settings;
mod users;

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/auth"],
    world: "portico:auth/component",
    generate_all,
});

use exports::portico::auth::sessions::{Claims, Guest, Session};
use portico::types::http::Problem;

struct Auth;

export!(Auth);

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let bytes = wasip2::random::random::get_random_bytes(N as u64);
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl Guest for Auth {
    fn login(username: String, password: String) -> Result<Session, Problem> {
        let settings = settings::Settings::load()?;
        let user = users::authenticate(&settings, &username, &password)?;
        sessions::issue(&settings, &user)
    }

    fn verify(token: String) -> Result<Claims, Problem> {
        sessions::verify(&settings::Settings::load()?, &token)
    }

    fn logout(token: String) -> Result<(), Problem> {
        let settings = settings::Settings::load()?;
        let claims = sessions::verify(&settings, &token)?;
        sessions::revoke(&settings, &claims)
    }

    fn profile(username: String) -> Result<String, Problem> {
        users::profile(&username)
    }

    fn put_user(username: String, password: String, roles: Vec<String>) -> Result<(), Problem> {
        let settings = settings::Settings::load()?;
        users::put(&settings, &username, &password, &roles)
    }

    fn list_users() -> Result<String, Problem> {
        users::list()
    }

    fn set_roles(username: String, roles: Vec<String>) -> Result<(), Problem> {
        users::set_roles(&username, &roles)
    }

    fn revoke_sessions(username: String) -> Result<(), Problem> {
        users::check_existing(&username)?;
        sessions::bump_generation(&username)
    }

    fn delete_user(username: String) -> Result<(), Problem> {
        users::check_existing(&username)?;
        // The generation first: should the removal fail after it, the
        // user's sessions are already over.
        sessions::bump_generation(&username)?;
        users::delete(&username)
    }

    fn inspect(token: String, at: Option<u64>) -> Result<String, Problem> {
        sessions::inspect(&settings::Settings::load()?, &token, at)
    }
}
