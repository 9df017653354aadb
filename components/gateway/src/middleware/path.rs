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
/// the problem when it has a dot-segment, or when decoding would change it
/// again. Other escapes (`%2F`, `%00`, malformed ones) are left for the
/// route to judge.
pub fn normalize(path: &str) -> Result<String, String> {
    let out = decode_unreserved(path.as_bytes());
    // A stray `%` can meet digits that were themselves encoded: `%%32e`
    // decodes to `%2e`. Whatever decodes the result again (an origin, a
    // cache) would see a different path, here a dot-segment.
    if decode_unreserved(&out) != out {
        return Err(format!(
            "{path:?} has a '%' that forms a new escape once decoded; encode a literal '%' as %25"
        ));
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

fn decode_unreserved(bytes: &[u8]) -> Vec<u8> {
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
    out
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
    fn escapes_formed_by_decoding_are_refused() {
        // Found by `properties`: each would reach an origin as an escape
        // it decodes to something else, the first two to `..`.
        for path in [
            "/api/v1/%%32e%%32e/%%32e%%32e/internal",
            "/%2%65%2%65/x",
            "/%%36%31dmin/",
            "/%%341",
        ] {
            assert!(normalize(path).is_err(), "{path}");
        }
        for path in ["/100%", "/a%%b", "/%2561"] {
            assert_eq!(normalize(path).unwrap(), path);
        }
        // An encoded `%` stays encoded, so it cannot form an escape.
        assert_eq!(normalize("/%25%32e").unwrap(), "/%252e");
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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Paths from the pieces normalisation treats specially: escapes of
    /// unreserved characters (dots included), escapes it must leave alone,
    /// stray and truncated `%`, and dot-segments.
    fn path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[A-Za-z0-9_~-]{1,4}",
            2 => prop::sample::select(vec![".", "..", "%2e", "%2E", ".%2e", "%2e."]).prop_map(str::to_owned),
            2 => (0u8..=255, any::<bool>()).prop_map(|(b, upper)| {
                if upper { format!("%{b:02X}") } else { format!("%{b:02x}") }
            }),
            2 => prop::sample::select(vec!["%", "%%", "%2", "%g1", "%25", "%%32e", "%2%65"]).prop_map(str::to_owned),
            1 => "[a-f0-9]{1,2}",
            1 => "\\PC{1,2}",
        ];
        let segment = proptest::collection::vec(piece, 0..4).prop_map(|p| p.concat());
        proptest::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn normalizing_an_accepted_path_again_changes_nothing(path in prop_oneof![4 => path(), 1 => any::<String>()]) {
            if let Ok(once) = normalize(&path) {
                // Anything after this layer that decodes the path again
                // must see the same path, or the layers disagree on it.
                prop_assert_eq!(normalize(&once), Ok(once.clone()), "{:?}", path);
            }
        }

        #[test]
        fn an_accepted_path_has_no_dot_segment(path in prop_oneof![4 => path(), 1 => any::<String>()]) {
            if let Ok(normalized) = normalize(&path) {
                for segment in normalized.split('/') {
                    prop_assert!(segment != "." && segment != "..", "{:?} -> {:?}", path, normalized);
                }
            }
        }

        #[test]
        fn only_escapes_of_unreserved_characters_are_decoded(path in path()) {
            if let Ok(normalized) = normalize(&path) {
                // Decoding only ever shortens, three bytes to one.
                prop_assert!(normalized.len() <= path.len());
                prop_assert_eq!((path.len() - normalized.len()) % 2, 0);
                let slashes = |s: &str| s.matches('/').count();
                prop_assert_eq!(slashes(&normalized), slashes(&path));
            }
        }
    }
}
