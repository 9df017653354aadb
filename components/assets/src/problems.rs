//! The problems this component reports, in one place so their kinds stay
//! stable (they end up in the `type` URI of an RFC 9457 answer).

use portico_assets_logic::path::PathError;

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

pub fn storage(err: Error) -> Problem {
    match err {
        // A key the backing store refuses is a name the client chose.
        Error::TooLarge => problem(
            400,
            "path-too-long",
            "Path too long",
            "the object path is too long for this platform's key-value store",
        ),
        Error::AccessDenied => problem(
            503,
            "storage-unavailable",
            "Asset storage is unavailable",
            "access to the key-value store was denied",
        ),
        Error::Unavailable(reason) | Error::Other(reason) => problem(
            503,
            "storage-unavailable",
            "Asset storage is unavailable",
            reason,
        ),
    }
}

pub fn bad_path(err: PathError) -> Problem {
    problem(400, err.code(), "Invalid asset path", err.message())
}

pub fn path_too_long(len: usize, max: usize) -> Problem {
    problem(
        400,
        "path-too-long",
        "Path too long",
        format!("object paths are limited to {max} bytes; this one has {len}"),
    )
}

pub fn not_found(path: &str) -> Problem {
    problem(
        404,
        "not-found",
        "Not found",
        format!("no asset at {path:?}"),
    )
}

pub fn precondition_failed(detail: &str) -> Problem {
    problem(412, "precondition-failed", "Precondition failed", detail)
}

pub fn too_large(size: impl std::fmt::Display, max: u64) -> Problem {
    problem(
        413,
        "payload-too-large",
        "Payload too large",
        format!("assets are limited to {max} bytes (assets_max_object_bytes); this one has {size}"),
    )
}

/// A download whose version can no longer be read: its chunks were deleted
/// after the replacement grace period, or storage lost one.
pub fn gone_mid_body(path: &str) -> Problem {
    problem(
        503,
        "asset-changed",
        "Asset changed during the download",
        format!(
            "{path:?} was replaced or deleted longer ago than the grace period (assets_replaced_grace) while it was being sent"
        ),
    )
}

/// The response stream failed: the client went away mid-body.
pub fn client_gone(err: &wasip2::io::streams::StreamError) -> Problem {
    problem(
        499,
        "client-gone",
        "Client went away",
        format!(
            "the response could not be written: {}",
            portico_output_stream::describe(err)
        ),
    )
}

/// The bytes received differ from the declared `Content-Length`.
pub fn length_mismatch(declared: u64, received: u64) -> Problem {
    problem(
        400,
        "length-mismatch",
        "Body length differs from Content-Length",
        format!("Content-Length said {declared} bytes, the body had {received}"),
    )
}

pub fn bad_header(name: &str) -> Problem {
    problem(
        400,
        "invalid-header",
        "Invalid header",
        format!("{name} must not contain control characters"),
    )
}

pub fn config(name: &str, detail: impl std::fmt::Display) -> Problem {
    problem(
        500,
        "invalid-configuration",
        "Invalid configuration",
        format!("variable {name}: {detail}"),
    )
}

pub fn corrupt(path: &str, detail: impl std::fmt::Display) -> Problem {
    problem(
        500,
        "corrupt-asset",
        "Stored asset is unreadable",
        format!("the manifest of {path:?} is unreadable: {detail}"),
    )
}
