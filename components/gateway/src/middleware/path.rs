//! One path for everything after this layer: percent-encoded unreserved
//! characters are decoded (RFC 3986 section 6.2.2.2: `/%61pp/` is `/app/`),
//! and a path with a dot-segment (`.` or `..`, however encoded) is refused.
//!
//! Routing, authorisation (protected pages, `/admin/`), the rate limiter's
//! route policies, the site's object keys and upstream forwarding all read
//! the path; if any of them decoded it differently from the others, an
//! encoded path could reach a page its plain form protects, or climb out of
//! an upstream route's base path (`/api/v1/../../internal`). Refusing
//! dot-segments rather than resolving them keeps one rule for every route:
//! no client needs them, and a resolved path could still differ from what a
//! cache or origin behind the gateway resolves.

use super::{Middleware, Next};
use crate::http::{Request, Response};
use crate::problem::Problem;

pub struct NormalizePath;

impl Middleware for NormalizePath {
    fn handle(&self, mut request: Request, next: Next<'_>) -> Response {
        match normalize(&request.path) {
            Ok(path) => {
                request.path = path;
                next.run(request)
            }
            Err(detail) => Problem::new(400, "invalid-path", "Invalid path", detail)
                .into_response(&request.path),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `path` with its encoded unreserved characters decoded; an error naming
/// the problem when it has a dot-segment. Other escapes (`%2F`, `%00`,
/// malformed ones) are left for the route to judge.
pub fn normalize(path: &str) -> Result<String, String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
            && is_unreserved(high << 4 | low)
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII was decoded, so the result is as valid UTF-8 as the input.
    let normalized = String::from_utf8(out).map_err(|_| "the path is not UTF-8".to_string())?;
    if normalized
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "{path:?} has a dot-segment (\".\" or \"..\", possibly percent-encoded); paths are used as sent, never resolved"
        ));
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_unreserved_characters_are_decoded() {
        assert_eq!(normalize("/%61pp/").unwrap(), "/app/");
        assert_eq!(normalize("/%41%44MIN/%7euser").unwrap(), "/ADMIN/~user");
        assert_eq!(normalize("/a%2Db_c").unwrap(), "/a-b_c");
    }

    #[test]
    fn other_escapes_are_left_alone() {
        for path in [
            "/a%2fb", "/a%2Fb", "/a%00b", "/a%zzb", "/a%2", "/a%", "/%C3%A9",
        ] {
            assert_eq!(normalize(path).unwrap(), path);
        }
    }

    #[test]
    fn dot_segments_are_refused_however_encoded() {
        for path in [
            "/api/v1/../../internal",
            "/a/./b",
            "/..",
            "/.",
            "/a/%2e%2e/b",
            "/a/%2E%2E/b",
            "/a/.%2e/b",
            "/a/%2e/b",
            "/x/..",
        ] {
            assert!(normalize(path).is_err(), "{path}");
        }
    }

    #[test]
    fn dots_inside_names_are_fine() {
        for path in [
            "/a..b",
            "/.well-known/x",
            "/file.tar.gz",
            "/..a",
            "/a/.../b",
        ] {
            assert_eq!(normalize(path).unwrap(), path);
        }
    }
}
