//! The problems auth answers with (RFC 9457 `type` fragments).

use crate::portico::platform::types::Error;
use crate::portico::types::http::Problem;

pub fn problem(status: u16, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem {
        status,
        kind: kind.into(),
        title: title.into(),
        detail: detail.into(),
    }
}

/// The server's configuration is wrong; the client can do nothing about it.
pub fn misconfigured(detail: impl Into<String>) -> Problem {
    problem(
        500,
        "auth-misconfigured",
        "The server is misconfigured",
        detail,
    )
}

pub fn invalid_token(reason: &str) -> Problem {
    problem(401, "invalid-token", "Invalid session", reason)
}

/// One answer for an unknown user and a wrong password alike.
pub fn invalid_credentials() -> Problem {
    problem(
        401,
        "invalid-credentials",
        "Invalid credentials",
        "unknown user or wrong password",
    )
}

pub fn bad_request(detail: impl Into<String>) -> Problem {
    problem(400, "bad-request", "Bad request", detail)
}

pub fn storage(err: Error) -> Problem {
    let detail = match err {
        Error::AccessDenied => "access denied".to_string(),
        Error::TooLarge => "value too large".to_string(),
        Error::Unavailable(m) | Error::Other(m) => m,
    };
    problem(
        503,
        "storage-unavailable",
        "Session storage is unavailable",
        detail,
    )
}
