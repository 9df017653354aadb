//! `portico:auth`: JWT HS256 sessions in an HttpOnly cookie, users in the KV
//! store, revocation in durable storage, roles.
//!
//! Imports `portico:platform/{kv,durable,config}`; exports
//! `portico:auth/sessions`. This crate is the contract's placeholder: every
//! call answers `501 not-implemented` until the auth component is built
//! (tracked separately), so the composition and routing around it are real.

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/auth"],
    world: "portico:auth/component",
    generate_all,
});

use exports::portico::auth::sessions::{Claims, Guest, Session};
use portico::types::http::Problem;

struct Auth;

export!(Auth);

fn not_implemented(operation: &str) -> Problem {
    Problem {
        status: 501,
        kind: "not-implemented".into(),
        title: "Not implemented".into(),
        detail: format!("portico:auth/sessions.{operation} is not implemented yet"),
    }
}

impl Guest for Auth {
    fn login(_username: String, _password: String) -> Result<Session, Problem> {
        Err(not_implemented("login"))
    }

    fn verify(_token: String) -> Result<Claims, Problem> {
        Err(not_implemented("verify"))
    }

    fn logout(_token: String) -> Result<(), Problem> {
        Err(not_implemented("logout"))
    }

    fn profile(_username: String) -> Result<String, Problem> {
        Err(not_implemented("profile"))
    }
}
