//! Semantic-version parsing and comparison for flagd's `sem_ver` operator.
//!
//! **Job:** decide `{"sem_ver": [actual, op, target]}` where `op` is one of
//! `=`, `!=`, `<`, `<=`, `>`, `>=`, `^`, `~`.
//!
//! **Standard followed:** SemVer 2.0.0 precedence rules (§11: numeric
//! major/minor/patch, a pre-release sorts before its release, pre-release
//! identifiers compared field by field — numeric < alphanumeric, numeric by
//! value, alphanumeric by ASCII — and build metadata ignored). Parsing matches
//! flagd's Go implementation, which uses `golang.org/x/mod/semver` after
//! prefixing a `v` when missing: a leading `v` (or `V`, as the flagd
//! testbed expects) is accepted, the shorthands
//! `1` and `1.2` mean `1.0.0` and `1.2.0` (shorthands cannot carry a
//! pre-release or build), numeric fields have no leading zeros.
//!
//! **Choices:** hand-written (no `semver` crate) to keep the wasm small and to
//! match Go's accepted syntax exactly. Numeric fields are kept as digit strings
//! and compared by (length, text), so arbitrarily large numbers never overflow.
//! `^` means "same major" and `~` "same major.minor" — flagd's definitions,
//! *not* npm's caret/tilde ranges (no implied `>=`).

use std::cmp::Ordering;

/// A parsed version. Build metadata is validated but kept only for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: String,
    pub minor: String,
    pub patch: String,
    pub pre: Vec<String>,
    pub build: Vec<String>,
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A numeric field: digits, no leading zero unless exactly "0".
fn valid_num(s: &str) -> bool {
    is_numeric(s) && (s == "0" || !s.starts_with('0'))
}

fn valid_ident_chars(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parse `[v]MAJOR[.MINOR[.PATCH[-PRE][+BUILD]]]`. Returns `None` if invalid.
pub fn parse(input: &str) -> Option<Version> {
    let s = input
        .strip_prefix('v')
        .or_else(|| input.strip_prefix('V'))
        .unwrap_or(input);
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| valid_num(p)) {
        return None;
    }
    // Go's x/mod/semver: shorthand (v1, v1.2) only without pre-release/build.
    if parts.len() < 3 && (pre.is_some() || build.is_some()) {
        return None;
    }
    let pre_ids: Vec<String> = match pre {
        None => Vec::new(),
        Some(p) => {
            let ids: Vec<&str> = p.split('.').collect();
            for id in &ids {
                if !valid_ident_chars(id) || (is_numeric(id) && !valid_num(id)) {
                    return None;
                }
            }
            ids.into_iter().map(str::to_owned).collect()
        }
    };
    let build_ids: Vec<String> = match build {
        None => Vec::new(),
        Some(b) => {
            let ids: Vec<&str> = b.split('.').collect();
            if !ids.iter().all(|id| valid_ident_chars(id)) {
                return None;
            }
            ids.into_iter().map(str::to_owned).collect()
        }
    };
    let field = |i: usize| {
        parts
            .get(i)
            .map_or_else(|| "0".to_owned(), |p| (*p).to_owned())
    };
    Some(Version {
        major: field(0),
        minor: field(1),
        patch: field(2),
        pre: pre_ids,
        build: build_ids,
    })
}

fn cmp_num(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_pre(a: &[String], b: &[String]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater, // release > pre-release
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    for (x, y) in a.iter().zip(b.iter()) {
        let ord = match (is_numeric(x), is_numeric(y)) {
            (true, true) => cmp_num(x, y),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.as_bytes().cmp(y.as_bytes()),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// SemVer 2.0 precedence (build metadata ignored).
pub fn compare(a: &Version, b: &Version) -> Ordering {
    cmp_num(&a.major, &b.major)
        .then_with(|| cmp_num(&a.minor, &b.minor))
        .then_with(|| cmp_num(&a.patch, &b.patch))
        .then_with(|| cmp_pre(&a.pre, &b.pre))
}

/// The operators flagd accepts in `sem_ver`.
pub const OPERATORS: &[&str] = &["=", "!=", "<", "<=", ">", ">=", "^", "~"];

/// Evaluate `actual op target`. `None` when a version or the operator is
/// invalid (the JSONLogic operator then yields `false`, as flagd does).
pub fn check(actual: &str, op: &str, target: &str) -> Option<bool> {
    let a = parse(actual)?;
    let b = parse(target)?;
    let ord = compare(&a, &b);
    Some(match op {
        "=" => ord == Ordering::Equal,
        "!=" => ord != Ordering::Equal,
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        ">=" => ord != Ordering::Less,
        "^" => cmp_num(&a.major, &b.major) == Ordering::Equal,
        "~" => {
            cmp_num(&a.major, &b.major) == Ordering::Equal
                && cmp_num(&a.minor, &b.minor) == Ordering::Equal
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert!(parse("1.2.3").is_some());
        assert!(parse("v1.2.3").is_some());
        assert!(parse("1.2.3-alpha.1+build.5").is_some());
        assert_eq!(parse("v1").map(|v| v.minor), Some("0".into()));
        assert_eq!(parse("1.2").map(|v| v.patch), Some("0".into()));
        for bad in [
            "",
            "v",
            "01.2.3",
            "1.02.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3+",
            "1.2-beta",
            "1.2.3.4",
            "x.y.z",
            "vv1.2.3",
            "1.2.3-a..b",
            "1..3",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn precedence_chain_from_spec() {
        // SemVer 2.0.0 §11 example chain.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for w in chain.windows(2) {
            assert_eq!(check(w[0], "<", w[1]), Some(true), "{} < {}", w[0], w[1]);
            assert_eq!(check(w[1], ">", w[0]), Some(true));
        }
        assert_eq!(check("1.0.0+a", "=", "1.0.0+b"), Some(true));
        assert_eq!(check("v1.0.0", "=", "1.0.0"), Some(true));
        assert_eq!(check("V1.0.0", "=", "1.0.0"), Some(true));
        assert_eq!(
            check("99999999999999999999.0.0", ">", "9999999999999999999.0.0"),
            Some(true)
        );
    }

    #[test]
    fn operators() {
        assert_eq!(check("1.2.3", "^", "1.9.0"), Some(true));
        assert_eq!(check("2.0.0", "^", "1.9.0"), Some(false));
        assert_eq!(check("1.2.9", "~", "1.2.0"), Some(true));
        assert_eq!(check("1.3.0", "~", "1.2.0"), Some(false));
        assert_eq!(check("1.2.3", "!=", "1.2.4"), Some(true));
        assert_eq!(check("1.2.3", "<=", "1.2.3"), Some(true));
        assert_eq!(check("1.2.3", ">=", "1.2.4"), Some(false));
        assert_eq!(check("1.2.3", "=>", "1.2.3"), None);
        assert_eq!(check("nope", "=", "1.2.3"), None);
    }
}
