//! Post-login redirect targets that cannot leave the site (open-redirect
//! defence, OWASP "Unvalidated Redirects and Forwards" / CWE-601).
//!
//! Standards: RFC 3986 §4.2 (a reference starting with `//` is
//! network-path, i.e. another host; only a single leading `/` is
//! path-absolute), §2.1 and §2.3 (percent-encoding, unreserved characters),
//! and the WHATWG URL Standard, whose parsers treat `\` like `/` and drop tab
//! and newline anywhere in a URL, which is why those are refused outright.
//!
//! The policy is an allow-list: a target is kept only if it is printable
//! ASCII, starts with exactly one `/`, and still looks like that after up to
//! a few rounds of percent-decoding (some proxies and frameworks decode
//! again before they redirect). Anything else becomes `/`.

/// Longest `next` accepted; real paths are far shorter, and the cap bounds
/// the decoding work on hostile input.
pub const MAX_NEXT_LEN: usize = 2048;

/// Percent-decoding layers inspected; a value still changing after this many
/// is treated as an obfuscation attempt.
const DECODE_ROUNDS: usize = 4;

const FALLBACK: &str = "/";

/// Returns `next` if it is a safe same-site relative target, else `/`.
///
/// `next` is the already query-decoded value of the `next` parameter.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(target) if is_safe_target(target) => target.to_owned(),
        _ => FALLBACK.to_owned(),
    }
}

/// Builds `/login?next=<target>` for the request being bounced to login.
///
/// The target goes through [`safe_next`] first, so the login page can never
/// be handed an off-site `next` by a crafted request line, and is then
/// percent-encoded so `?`, `&` and `#` in it stay inside the parameter.
pub fn login_redirect_location(path_and_query: &str) -> String {
    let target = safe_next(Some(path_and_query));
    let mut location = String::with_capacity(12 + target.len() * 3);
    location.push_str("/login?next=");
    for byte in target.bytes() {
        // `/` stays literal for readability; RFC 3986 §3.4 allows it in a
        // query, and the value can never start with `//` after safe_next.
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            location.push(char::from(byte));
        } else {
            location.push('%');
            location.push(hex_digit(byte >> 4));
            location.push(hex_digit(byte & 0x0F));
        }
    }
    location
}

fn is_safe_target(target: &str) -> bool {
    if target.len() > MAX_NEXT_LEN {
        return false;
    }
    // Raw form: printable ASCII only (no space, controls, DEL or non-ASCII,
    // which a header cannot carry and browsers may strip or rewrite), and
    // no backslash, which browsers treat as `/`.
    if !target
        .bytes()
        .all(|b| (0x21..=0x7E).contains(&b) && b != b'\\')
    {
        return false;
    }
    if !starts_with_single_slash(target.as_bytes()) || has_dot_segment(target.as_bytes()) {
        return false;
    }
    let mut current = target.as_bytes().to_vec();
    for _ in 0..DECODE_ROUNDS {
        let decoded = percent_decode(&current);
        if decoded == current {
            return true;
        }
        let hostile = decoded.iter().any(|&b| b == b'\\' || b.is_ascii_control());
        if hostile || !starts_with_single_slash(&decoded) || has_dot_segment(&decoded) {
            return false;
        }
        current = decoded;
    }
    false
}

/// Whether the path part (before `?` or `#`) has a `.` or `..` segment: a
/// browser resolves `/..//evil.example` to `//evil.example`, another host,
/// so such a target is refused, not resolved. (Without dot-segments a `//`
/// after the first segment stays a same-site path.)
fn has_dot_segment(target: &[u8]) -> bool {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    target[..end]
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
}

fn starts_with_single_slash(path: &[u8]) -> bool {
    match path {
        [b'/', b'/' | b'\\', ..] => false,
        [b'/', ..] => true,
        _ => false,
    }
}

/// Decodes `%XX` escapes; malformed escapes stay literal, as in the WHATWG
/// percent-decode algorithm, so a legitimate `100%` in a query is not lost.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%'
            && let [hi, lo, after @ ..] = tail
            && let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo))
        {
            out.push(hi << 4 | lo);
            rest = after;
            continue;
        }
        out.push(first);
        rest = tail;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0F)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_site_paths_are_kept() {
        let cases = [
            "/",
            "/dashboard",
            "/a/b/c",
            "/a/b?c=d&e=f#frag",
            "/search?q=100%25",
            "/search?q=100%",
            "/search?q=%zz",
            "/%7Euser",
            "/a//b",
            "/a/%2F%2Fb",
            "/@evil.com",
            "/.well-known/security.txt",
            "/javascript:alert(1)",
            "/caf%C3%A9",
            "/?next=//evil.com",
        ];
        for target in cases {
            assert_eq!(safe_next(Some(target)), target, "{target:?}");
        }
    }

    #[test]
    fn open_redirect_attempts_fall_back_to_root() {
        let too_long = format!("/{}", "a".repeat(MAX_NEXT_LEN));
        let cases: Vec<&str> = vec![
            "",
            "dashboard",
            "./dashboard",
            "../dashboard",
            "?x=1",
            "#frag",
            "//evil.com",
            "///evil.com",
            "////evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "\\/evil.com",
            "/\\/evil.com",
            "/a\\b",
            "https://evil.com",
            "http:/evil.com",
            "http:evil.com",
            "HTTPS://evil.com",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            " /dashboard",
            "/dash board",
            "/\t/evil.com",
            "/\n/evil.com",
            "\t//evil.com",
            "/\r\nLocation: https://evil.com",
            "/%2F%2Fevil.com",
            "/%2f%2fevil.com",
            "/%2Fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/%2F%5Cevil.com",
            "/%252F%252Fevil.com",
            "/%25252F%25252Fevil.com",
            "/%09/evil.com",
            "/%0d%0aSet-Cookie:%20x=y",
            "/%00",
            "/a%7F",
            "/\u{7f}",
            "/\u{0}",
            "/\u{ff0f}evil.com",
            "/\u{2215}evil.com",
            "/\u{e9}vil",
            "/%2525252525252525",
            "/.%2e/%2f%2fevil.com",
            "/..//evil.com",
            "/a/../..//evil.com",
            "/%2e%2e/%2F%2Fevil.com",
            "/./evil",
            "/a/%252e%252e/%252f%252fevil.com",
            &too_long,
        ];
        for target in cases {
            assert_eq!(safe_next(Some(target)), "/", "{target:?}");
        }
    }

    #[test]
    fn missing_next_falls_back_to_root() {
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn length_cap_is_inclusive() {
        let at_cap = format!("/{}", "a".repeat(MAX_NEXT_LEN - 1));
        assert_eq!(safe_next(Some(&at_cap)), at_cap);
    }

    #[test]
    fn login_location_percent_encodes_the_target() {
        let cases = [
            ("/", "/login?next=/"),
            ("/admin", "/login?next=/admin"),
            ("/admin?x=1&y=2", "/login?next=/admin%3Fx%3D1%26y%3D2"),
            ("/a b", "/login?next=/"),
            ("/p#frag", "/login?next=/p%23frag"),
            ("/q=100%25", "/login?next=/q%3D100%2525"),
            ("/~u/a-b_c.d", "/login?next=/~u/a-b_c.d"),
        ];
        for (input, expected) in cases {
            assert_eq!(login_redirect_location(input), expected, "{input:?}");
        }
    }

    #[test]
    fn login_location_never_carries_an_off_site_target() {
        for input in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "/%2F%2Fevil.com",
        ] {
            assert_eq!(login_redirect_location(input), "/login?next=/", "{input:?}");
        }
    }

    #[test]
    fn login_location_round_trips_through_safe_next() {
        for target in ["/admin?x=1&y=2#f", "/search?q=100%25", "/a/b"] {
            let location = login_redirect_location(target);
            let encoded = location.strip_prefix("/login?next=").unwrap();
            let decoded = String::from_utf8(percent_decode(encoded.as_bytes())).unwrap();
            assert_eq!(safe_next(Some(&decoded)), target);
        }
    }

    #[test]
    fn percent_decode_leaves_malformed_escapes_literal() {
        let cases: [(&str, &str); 6] = [
            ("%41", "A"),
            ("%4", "%4"),
            ("%", "%"),
            ("%zz", "%zz"),
            ("%%41", "%A"),
            ("a%2fb%2F", "a/b/"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                percent_decode(input.as_bytes()),
                expected.as_bytes(),
                "{input:?}"
            );
        }
    }
}
