//! Reading the session cookie from a `Cookie` request header and building
//! the `Set-Cookie` values that set and clear it.
//!
//! Standards: RFC 6265 §4.1.1 (`Set-Cookie` grammar: the name is an HTTP
//! token, the value is `*cookie-octet` or a quoted `*cookie-octet`), §4.2.1
//! and §5.4 (`Cookie` header pairs joined by `"; "`), RFC 9110 §5.6.2
//! (token characters), and RFC 6265bis for `SameSite` and the `__Host-` /
//! `__Secure-` name prefixes.
//!
//! Parsing is lenient, as RFC 6265 §5 asks of receivers, because real
//! headers contain junk from other applications on the same host; building
//! is strict, as §4 asks of senders, because a bad value is a header
//! injection or a silently dropped cookie.

use std::fmt;

/// Why a `Set-Cookie` value could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    InvalidName,
    InvalidValue,
    /// `__Secure-` and `__Host-` names are dropped by browsers unless the
    /// cookie is `Secure`, so building one without it is a bug.
    PrefixRequiresSecure,
}

impl CookieError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidName => "cookie name is not an HTTP token",
            Self::InvalidValue => "cookie value has characters outside cookie-octet",
            Self::PrefixRequiresSecure => "__Secure- and __Host- cookies must be Secure",
        }
    }
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for CookieError {}

/// Returns the value of the first cookie called `name` in a `Cookie` header.
///
/// Whitespace around names and values is ignored, a value wrapped in double
/// quotes is returned without them, pairs without `=` are skipped and the
/// first match wins: browsers send the most specific path first (RFC 6265
/// §5.4 step 2), and a later duplicate is more likely planted by a sibling
/// subdomain. Names compare case-sensitively, as cookies do.
pub fn find_cookie<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    cookie_header.split(';').find_map(|pair| {
        let (pair_name, value) = pair.split_once('=')?;
        if trim_wsp(pair_name) != name {
            return None;
        }
        let value = trim_wsp(value);
        Some(
            value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value),
        )
    })
}

/// The `Cookie` header without any cookie called `name`, by the same rule
/// [`find_cookie`] matches names (whitespace around a name ignored), so a
/// cookie the gateway reads is always one it can strip; `None` when nothing
/// is left.
pub fn without_cookie(cookie_header: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = cookie_header
        .split(';')
        .map(trim_wsp)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .split_once('=')
                    .is_none_or(|(pair_name, _)| trim_wsp(pair_name) != name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Builds `name=value; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=N`,
/// leaving out `Secure` when `secure` is false (plain-HTTP development).
///
/// `HttpOnly` keeps the token away from page scripts; `SameSite=Lax` stops
/// cross-site sub-requests from carrying it while still allowing top-level
/// navigation back from a login link; `Path=/` makes one cookie cover the
/// whole site so it can also be cleared from anywhere.
pub fn session_cookie(
    name: &str,
    value: &str,
    max_age_secs: u64,
    secure: bool,
) -> Result<String, CookieError> {
    check_name(name, secure)?;
    if !value.bytes().all(is_cookie_octet) {
        return Err(CookieError::InvalidValue);
    }
    Ok(format!(
        "{name}={value}; HttpOnly{}; SameSite=Lax; Path=/; Max-Age={max_age_secs}",
        secure_attr(secure)
    ))
}

/// Builds a `Set-Cookie` value that deletes the cookie `name`.
///
/// The attributes mirror [`session_cookie`] because a browser replaces a
/// cookie only when name, domain and path match, and because browsers refuse
/// a `Secure` cookie over plain HTTP; pass the same `secure` flag as when
/// the cookie was set.
pub fn clear_cookie(name: &str, secure: bool) -> Result<String, CookieError> {
    check_name(name, secure)?;
    Ok(format!(
        "{name}=; HttpOnly{}; SameSite=Lax; Path=/; Max-Age=0",
        secure_attr(secure)
    ))
}

fn secure_attr(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

fn check_name(name: &str, secure: bool) -> Result<(), CookieError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(CookieError::InvalidName);
    }
    // RFC 6265bis matches the prefixes case-insensitively.
    let prefixed = ["__Secure-", "__Host-"].iter().any(|prefix| {
        name.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    });
    if prefixed && !secure {
        return Err(CookieError::PrefixRequiresSecure);
    }
    Ok(())
}

fn trim_wsp(s: &str) -> &str {
    // RFC 6265 §5.2 strips only SP and HTAB, not all Unicode whitespace.
    s.trim_matches([' ', '\t'])
}

/// RFC 6265 §4.1.1: US-ASCII visible characters except DQUOTE, comma,
/// semicolon and backslash.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_cookie_handles_real_world_headers() {
        let cases: [(&str, &str, Option<&str>); 20] = [
            ("session=abc", "session", Some("abc")),
            ("a=1; session=abc; b=2", "session", Some("abc")),
            ("a=1;session=abc;b=2", "session", Some("abc")),
            ("  session  =  abc  ", "session", Some("abc")),
            ("\tsession\t=\tabc\t", "session", Some("abc")),
            ("session=\"abc\"", "session", Some("abc")),
            ("session= \"abc\" ", "session", Some("abc")),
            ("session=\"", "session", Some("\"")),
            ("session=\"abc", "session", Some("\"abc")),
            ("session=", "session", Some("")),
            ("session=a=b=c", "session", Some("a=b=c")),
            ("session=first; session=second", "session", Some("first")),
            ("session; session=abc", "session", Some("abc")),
            ("novalue; other=1", "novalue", None),
            ("sessionx=1; xsession=2", "session", None),
            ("Session=abc", "session", None),
            ("a=session=abc", "session", None),
            ("", "session", None),
            (";;;=;==; ;", "session", None),
            ("session=abc", "", None),
        ];
        for (header, name, expected) in cases {
            assert_eq!(find_cookie(header, name), expected, "{header:?} / {name:?}");
        }
    }

    #[test]
    fn find_cookie_does_not_trim_unicode_whitespace_into_a_match() {
        assert_eq!(find_cookie("\u{a0}session=abc", "session"), None);
    }

    #[test]
    fn find_cookie_survives_hostile_input() {
        let long = format!("{}session=ok", "x=y; ".repeat(20_000));
        assert_eq!(find_cookie(&long, "session"), Some("ok"));
        for header in [
            "\0=\0",
            "=",
            "\u{1f36a}=\u{1f36a}; session=\u{e9}",
            "\"\"\"=;",
        ] {
            let _ = find_cookie(header, "session");
        }
        assert_eq!(
            find_cookie("\u{1f36a}=x; session=\u{e9}", "session"),
            Some("\u{e9}")
        );
    }

    #[test]
    fn session_cookie_has_exact_attribute_layout() {
        assert_eq!(
            session_cookie("session", "abc.DEF-_123", 3600, true),
            Ok("session=abc.DEF-_123; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=3600".into())
        );
        assert_eq!(
            session_cookie("session", "abc", 60, false),
            Ok("session=abc; HttpOnly; SameSite=Lax; Path=/; Max-Age=60".into())
        );
    }

    #[test]
    fn clear_cookie_expires_immediately_with_matching_attributes() {
        assert_eq!(
            clear_cookie("session", true),
            Ok("session=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0".into())
        );
        assert_eq!(
            clear_cookie("session", false),
            Ok("session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0".into())
        );
    }

    #[test]
    fn values_outside_cookie_octet_are_refused() {
        let cases = [
            "a b",
            "a;b",
            "a,b",
            "a\"b",
            "\"abc\"",
            "a\\b",
            "a\tb",
            "a\r\nSet-Cookie: x=y",
            "a\0",
            "a\x7f",
            "caf\u{e9}",
        ];
        for value in cases {
            assert_eq!(
                session_cookie("session", value, 60, true),
                Err(CookieError::InvalidValue),
                "{value:?}"
            );
        }
    }

    #[test]
    fn every_cookie_octet_is_accepted() {
        let all: String = (0x21u8..=0x7E)
            .filter(|b| !matches!(b, b'"' | b',' | b';' | b'\\'))
            .map(char::from)
            .collect();
        assert!(session_cookie("session", &all, 1, true).is_ok());
        assert!(session_cookie("session", "", 1, true).is_ok());
    }

    #[test]
    fn names_that_are_not_tokens_are_refused() {
        let cases = [
            "",
            "a b",
            "a=b",
            "a;b",
            "a,b",
            "(a)",
            "a/b",
            "a\"b",
            "a\nb",
            "caf\u{e9}",
            "a:b",
        ];
        for name in cases {
            assert_eq!(
                session_cookie(name, "v", 60, true),
                Err(CookieError::InvalidName),
                "{name:?}"
            );
            assert_eq!(
                clear_cookie(name, true),
                Err(CookieError::InvalidName),
                "{name:?}"
            );
        }
    }

    #[test]
    fn prefixed_names_require_secure() {
        for name in [
            "__Host-session",
            "__Secure-session",
            "__host-session",
            "__SECURE-s",
        ] {
            assert_eq!(
                session_cookie(name, "v", 60, false),
                Err(CookieError::PrefixRequiresSecure),
                "{name}"
            );
            assert_eq!(
                clear_cookie(name, false),
                Err(CookieError::PrefixRequiresSecure)
            );
            assert!(session_cookie(name, "v", 60, true).is_ok());
        }
        assert!(session_cookie("__Hostile", "v", 60, false).is_ok());
    }

    #[test]
    fn built_cookie_reads_back_through_find_cookie() {
        let set = session_cookie("session", "tok.en_1", 60, true).unwrap();
        let pair = set.split(';').next().unwrap();
        assert_eq!(find_cookie(pair, "session"), Some("tok.en_1"));
    }

    #[test]
    fn without_cookie_strips_what_find_cookie_reads() {
        for header in [
            "session=tok",
            "session =tok",
            "a=1; session =tok; b=2",
            "a=1;\tsession\t=tok",
            "session=tok; session=other",
        ] {
            assert!(find_cookie(header, "session").is_some(), "{header}");
            let kept = without_cookie(header, "session");
            assert!(
                kept.as_deref()
                    .is_none_or(|kept| find_cookie(kept, "session").is_none()),
                "{header} -> {kept:?}"
            );
        }
        assert_eq!(
            without_cookie("a=1; session=tok; b=2", "session").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(
            without_cookie("sessionx=1", "session").as_deref(),
            Some("sessionx=1")
        );
        assert_eq!(without_cookie("session=tok", "session"), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const NAMES: &[&str] = &["session", "__Host-session", "a", "Session", "sessionx"];

    /// `Cookie` headers as browsers and junk-adding neighbours send them:
    /// pairs with SP/HTAB around names and values, quoted values, pairs
    /// without `=`, empty pairs, repeated names, non-ASCII.
    fn cookie_header() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            4 => prop::sample::select(NAMES).prop_map(str::to_owned),
            1 => "[!#-'*+.0-9A-Z^-z|~-]{0,6}",
            1 => "\\PC{0,3}",
        ];
        let value = prop_oneof![
            "[!#-+\\--:<-\\[\\]-~]{0,8}",
            "\"[a-z=]{0,4}\"?",
            "[^;]{0,6}",
        ];
        let pair = prop_oneof![
            6 => (name, "[ \t]{0,2}", value, "[ \t]{0,2}").prop_map(|(n, a, v, b)| format!("{a}{n}{a}={b}{v}{b}")),
            1 => prop::sample::select(NAMES).prop_map(str::to_owned),
            1 => "[ \t=]{0,2}",
        ];
        prop_oneof![
            6 => proptest::collection::vec((pair, prop::sample::select(vec![";", "; ", " ;", ";\t"])), 0..6)
                .prop_map(|pairs| pairs.into_iter().map(|(p, sep)| format!("{p}{sep}")).collect()),
            1 => any::<String>(),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(NAMES).prop_map(str::to_owned),
            1 => "\\PC{0,4}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn what_without_cookie_leaves_never_has_the_cookie_find_cookie_reads(
            header in cookie_header(),
            name in name(),
        ) {
            let kept = without_cookie(&header, &name);
            if let Some(kept) = &kept {
                prop_assert_eq!(find_cookie(kept, &name), None, "{:?} -> {:?}", header, kept);
                prop_assert!(!kept.is_empty());
            }
        }

        #[test]
        fn stripping_one_cookie_keeps_every_other(
            header in cookie_header(),
            name in name(),
            other in name(),
        ) {
            prop_assume!(other != name);
            let kept = without_cookie(&header, &name).unwrap_or_default();
            prop_assert_eq!(find_cookie(&kept, &other), find_cookie(&header, &other));
        }

        #[test]
        fn find_cookie_returns_a_trimmed_part_of_the_header(header in cookie_header(), name in name()) {
            if let Some(value) = find_cookie(&header, &name) {
                prop_assert!(!name.is_empty());
                prop_assert!(header.contains(value));
                prop_assert!(!value.contains(';'));
                // A quoted value (RFC 6265's DQUOTE form) is returned as its
                // inside, verbatim; any other is trimmed of whitespace.
                let quoted = header.contains(&format!("\"{value}\""));
                prop_assert!(
                    quoted || (!value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']))
                );
            }
        }

        #[test]
        fn built_cookies_read_back_and_cannot_inject(
            name in prop_oneof![4 => "[!#-'*+.0-9A-Z^-z|~-]{1,12}", 1 => "\\PC{0,6}"],
            value in prop_oneof![4 => "[!#-+\\--:<-\\[\\]-~]{0,24}", 1 => "\\PC{0,8}"],
            max_age in any::<u64>(),
            secure in any::<bool>(),
        ) {
            match session_cookie(&name, &value, max_age, secure) {
                Ok(set) => {
                    prop_assert!(!set.contains(['\r', '\n', '\0']));
                    let pair = set.split(';').next().unwrap_or_default();
                    prop_assert_eq!(find_cookie(pair, &name), Some(value.as_str()));
                    prop_assert_eq!(set.contains("; Secure"), secure);
                }
                Err(_) => {
                    let ok_name = !name.is_empty() && name.bytes().all(is_tchar);
                    let ok_value = value.bytes().all(is_cookie_octet);
                    // Only a `__Host-`/`__Secure-` name without `Secure` is refused
                    // when name and value are well-formed.
                    prop_assert!(!(ok_name && ok_value && secure));
                }
            }
            if let Ok(clear) = clear_cookie(&name, secure) {
                prop_assert!(clear.ends_with("Max-Age=0"));
                prop_assert!(!clear.contains(['\r', '\n', '\0']));
            }
        }
    }
}
