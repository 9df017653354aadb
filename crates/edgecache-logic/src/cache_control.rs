//! Parsing of `Cache-Control` (RFC 9111 5.2) and of targeted cache-control
//! fields such as `CDN-Cache-Control` (RFC 9213) into one [`CacheControl`]
//! value that the freshness and storability logic reads.
//!
//! RFC sections followed:
//! * RFC 9111 5.2: `#cache-directive`, `token [ "=" ( token / quoted-string ) ]`;
//!   directive names are case-insensitive; recipients accept both the token and
//!   the quoted-string form of every argument ("max-age=\"5\"" works).
//! * RFC 9111 1.2.2: `delta-seconds = 1*DIGIT`; values beyond 2^31 (including
//!   digit strings that would overflow any integer) become 2^31.
//! * RFC 9111 4.2.1: duplicated directives: "the first occurrence should be
//!   used".
//! * RFC 9213 2.1 and RFC 8941 (Structured Field Dictionary): a targeted field
//!   with a valid, non-empty value replaces both `Cache-Control` and `Expires`
//!   for this cache; an invalid one is ignored as if absent.
//!
//! Choices and why:
//! * Duplicates in `Cache-Control`: the FIRST VALID occurrence of an argument
//!   directive wins (the option RFC 9111 4.2.1 names); flag directives
//!   (`no-store`, `private`, ...) are sticky: present anywhere means present,
//!   which is also the most restrictive reading. Field-name lists of
//!   `no-cache="..."`/`private="..."` accumulate over all occurrences.
//! * Invalid delta-seconds (`max-age=-1`, `max-age=abc`, `max-age=`) are
//!   ignored: the directive counts as absent, and a later valid duplicate can
//!   still supply the value. (RFC 9111 4.2.1 also allows treating such a
//!   response as stale; we keep the simpler "ignore" rule from the brief and
//!   let `Expires` or a heuristic apply.)
//! * Bare `max-stale` (any staleness accepted) is stored as [`MAX_STALE_ANY`].
//! * Duplicates in a targeted field follow RFC 8941 dictionary semantics: the
//!   LAST value of a key wins. `key=?0` (Boolean false) means "absent".
//! * Qualified `no-cache="f"` / `private="f"` are recorded but treated by the
//!   rest of the crate as their unqualified forms (more restrictive; RFC 9111
//!   5.2.2.4 and 5.2.2.7 note the qualified forms are not widely implemented).
//! * Targeted-field list defaults to `["cdn-cache-control"]`; callers may pass
//!   their own ordered list (e.g. a `portico-cache-control` first).

use crate::util;

pub use crate::util::{DELTA_SECONDS_CAP, parse_delta_seconds};

/// `max-stale` without an argument: the client accepts any staleness.
pub const MAX_STALE_ANY: u64 = u64::MAX;

/// Targeted fields consulted, in order, by [`response_directives`].
pub const DEFAULT_TARGETED_FIELDS: &[&str] = &["cdn-cache-control"];

/// One raw directive: lower-cased name and optional (unquoted) argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub value: Option<String>,
}

/// Interpreted directives. Fields are meaningful on the side (request or
/// response) where RFC 9111 defines them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// Request only; [`MAX_STALE_ANY`] for bare `max-stale`.
    pub max_stale: Option<u64>,
    pub min_fresh: Option<u64>,
    /// RFC 5861 3.
    pub stale_while_revalidate: Option<u64>,
    /// RFC 5861 4 (request or response).
    pub stale_if_error: Option<u64>,
    pub no_cache: bool,
    pub no_cache_fields: Vec<String>,
    pub no_store: bool,
    pub no_transform: bool,
    pub only_if_cached: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub private: bool,
    pub private_fields: Vec<String>,
    pub public: bool,
    pub immutable: bool,
    /// Unrecognised directives, in order.
    pub extensions: Vec<Directive>,
}

impl CacheControl {
    /// Parses one or more `Cache-Control` field line values.
    pub fn parse<'a, I: IntoIterator<Item = &'a str>>(field_values: I) -> Self {
        Self::from_directives(&parse_directives(field_values))
    }

    /// Interprets raw directives (first valid occurrence wins).
    pub fn from_directives(directives: &[Directive]) -> Self {
        let mut cc = CacheControl::default();
        for d in directives {
            let arg = d.value.as_deref();
            let delta = arg.and_then(parse_delta_seconds);
            match d.name.as_str() {
                "max-age" => first_valid(&mut cc.max_age, delta),
                "s-maxage" => first_valid(&mut cc.s_maxage, delta),
                "min-fresh" => first_valid(&mut cc.min_fresh, delta),
                "stale-while-revalidate" => first_valid(&mut cc.stale_while_revalidate, delta),
                "stale-if-error" => first_valid(&mut cc.stale_if_error, delta),
                "max-stale" => {
                    let v = if arg.is_none() {
                        Some(MAX_STALE_ANY)
                    } else {
                        delta
                    };
                    first_valid(&mut cc.max_stale, v);
                }
                "no-cache" => {
                    cc.no_cache = true;
                    push_fields(&mut cc.no_cache_fields, arg);
                }
                "private" => {
                    cc.private = true;
                    push_fields(&mut cc.private_fields, arg);
                }
                "no-store" => cc.no_store = true,
                "no-transform" => cc.no_transform = true,
                "only-if-cached" => cc.only_if_cached = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                "must-understand" => cc.must_understand = true,
                "public" => cc.public = true,
                "immutable" => cc.immutable = true,
                _ => cc.extensions.push(d.clone()),
            }
        }
        cc
    }

    /// `Cache-Control` of a request (targeted fields are response-only).
    pub fn from_request(request_headers: &[(String, String)]) -> Self {
        Self::parse(util::values(request_headers, "cache-control"))
    }
}

fn first_valid(slot: &mut Option<u64>, v: Option<u64>) {
    if slot.is_none() {
        *slot = v;
    }
}

fn push_fields(list: &mut Vec<String>, arg: Option<&str>) {
    if let Some(a) = arg {
        for f in a.split(',') {
            let f = f.trim();
            if !f.is_empty() {
                list.push(f.to_ascii_lowercase());
            }
        }
    }
}

/// Splits `Cache-Control` field values into raw directives. Commas inside
/// quoted-strings do not split; quoted arguments are unescaped.
pub fn parse_directives<'a, I: IntoIterator<Item = &'a str>>(field_values: I) -> Vec<Directive> {
    let mut out = Vec::new();
    for line in field_values {
        for member in util::split_list(line) {
            let (name, value) = match member.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (member, None),
            };
            let name = name.trim_matches(|c| c == ' ' || c == '\t');
            if name.is_empty() {
                continue;
            }
            let value = value.map(|v| {
                let v = v.trim_matches(|c| c == ' ' || c == '\t');
                if v.starts_with('"') {
                    unquote(v)
                } else {
                    v.to_string()
                }
            });
            out.push(Directive {
                name: name.to_ascii_lowercase(),
                value,
            });
        }
    }
    out
}

/// Unescapes a quoted-string (RFC 9110 5.6.4); text after the closing quote is
/// dropped, an unterminated string runs to the end.
fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().skip(1);
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Where the response policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A targeted field (RFC 9213) named here; `Cache-Control` and `Expires`
    /// are ignored.
    Targeted(String),
    /// Plain `Cache-Control` (possibly absent) plus `Expires`.
    CacheControl,
}

/// The directives a shared cache must obey for a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub cc: CacheControl,
    pub source: PolicySource,
}

impl ResponseDirectives {
    /// RFC 9213 2.1: `Expires` is ignored when a targeted field is in force.
    pub fn expires_applies(&self) -> bool {
        self.source == PolicySource::CacheControl
    }
}

/// Effective response directives with the default targeted field list.
pub fn response_directives(response_headers: &[(String, String)]) -> ResponseDirectives {
    response_directives_for(response_headers, DEFAULT_TARGETED_FIELDS)
}

/// RFC 9213 2.1: the first targeted field (in `targets` order) with a valid,
/// non-empty value wins; otherwise `Cache-Control`.
pub fn response_directives_for(
    response_headers: &[(String, String)],
    targets: &[&str],
) -> ResponseDirectives {
    for t in targets {
        if !util::has(response_headers, t) {
            continue;
        }
        if let Some(ds) = parse_targeted(util::values(response_headers, t))
            && !ds.is_empty()
        {
            return ResponseDirectives {
                cc: CacheControl::from_directives(&ds),
                source: PolicySource::Targeted(t.to_ascii_lowercase()),
            };
        }
    }
    ResponseDirectives {
        cc: CacheControl::parse(util::values(response_headers, "cache-control")),
        source: PolicySource::CacheControl,
    }
}

/// Parses a targeted cache-control field as an RFC 8941 Dictionary (lines
/// combined with commas). `None` when it does not parse. Members whose value
/// is Boolean false are dropped; Integers become decimal arguments (negative
/// ones are later rejected as delta-seconds); Strings and Tokens become
/// arguments; Inner Lists become a comma-joined argument; other types become
/// an empty (invalid) argument. Parameters are ignored.
pub fn parse_targeted<'a, I: IntoIterator<Item = &'a str>>(
    field_values: I,
) -> Option<Vec<Directive>> {
    let combined = field_values.into_iter().collect::<Vec<_>>().join(",");
    let members = sf::parse_dictionary(&combined)?;
    let mut out = Vec::new();
    for (key, member) in members {
        let value = match member {
            sf::Member::Item(sf::Bare::Bool(false)) => continue,
            sf::Member::Item(sf::Bare::Bool(true)) => None,
            sf::Member::Item(sf::Bare::Int(n)) => Some(n.to_string()),
            sf::Member::Item(sf::Bare::Text(s)) => Some(s),
            sf::Member::Item(sf::Bare::Other) => Some(String::new()),
            sf::Member::Inner(items) => Some(
                items
                    .into_iter()
                    .filter_map(|b| match b {
                        sf::Bare::Text(s) => Some(s),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        out.push(Directive { name: key, value });
    }
    Some(out)
}

/// Minimal RFC 8941 (plus RFC 9651 Date / Display String) dictionary parser:
/// validates everything, keeps only what cache directives need.
mod sf {
    pub(super) enum Bare {
        Int(i64),
        /// String or Token.
        Text(String),
        Bool(bool),
        /// Decimal, Byte Sequence, Date, Display String.
        Other,
    }

    pub(super) enum Member {
        Item(Bare),
        Inner(Vec<Bare>),
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }
        fn bump(&mut self) -> Option<u8> {
            let c = self.peek()?;
            self.i += 1;
            Some(c)
        }
        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn skip_sp(&mut self) {
            while self.peek() == Some(b' ') {
                self.i += 1;
            }
        }
        fn skip_ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
        }

        fn key(&mut self) -> Option<String> {
            let start = self.i;
            match self.peek() {
                Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
                _ => return None,
            }
            while let Some(c) = self.peek() {
                if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c) {
                    self.i += 1;
                } else {
                    break;
                }
            }
            std::str::from_utf8(&self.s[start..self.i])
                .ok()
                .map(str::to_string)
        }

        fn parameters(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.skip_sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare()?;
                }
            }
            Some(())
        }

        fn item(&mut self) -> Option<Bare> {
            let b = self.bare()?;
            self.parameters()?;
            Some(b)
        }

        fn member(&mut self) -> Option<Member> {
            if self.peek() == Some(b'(') {
                self.inner_list().map(Member::Inner)
            } else {
                self.item().map(Member::Item)
            }
        }

        fn inner_list(&mut self) -> Option<Vec<Bare>> {
            self.bump();
            let mut items = Vec::new();
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    self.parameters()?;
                    return Some(items);
                }
                items.push(self.item()?);
                match self.peek() {
                    Some(b' ' | b')') => {}
                    _ => return None,
                }
            }
        }

        fn bare(&mut self) -> Option<Bare> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => self.string().map(Bare::Text),
                b':' => self.bytes(),
                b'?' => {
                    self.bump();
                    match self.bump()? {
                        b'1' => Some(Bare::Bool(true)),
                        b'0' => Some(Bare::Bool(false)),
                        _ => None,
                    }
                }
                b'@' => {
                    self.bump();
                    match self.number()? {
                        Bare::Int(_) => Some(Bare::Other),
                        _ => None,
                    }
                }
                b'%' => self.display_string(),
                c if c.is_ascii_alphabetic() || c == b'*' => self.token().map(Bare::Text),
                _ => None,
            }
        }

        /// RFC 8941 4.2.4.
        fn number(&mut self) -> Option<Bare> {
            let neg = self.eat(b'-');
            let mut int_digits = 0usize;
            let mut frac_digits = 0usize;
            let mut decimal = false;
            let mut value: i64 = 0;
            match self.peek() {
                Some(c) if c.is_ascii_digit() => {}
                _ => return None,
            }
            while let Some(c) = self.peek() {
                if c.is_ascii_digit() {
                    self.i += 1;
                    if decimal {
                        frac_digits += 1;
                        if frac_digits > 3 {
                            return None;
                        }
                    } else {
                        int_digits += 1;
                        if int_digits > 15 {
                            return None;
                        }
                        value = value * 10 + i64::from(c - b'0');
                    }
                } else if c == b'.' && !decimal {
                    if int_digits > 12 {
                        return None;
                    }
                    self.i += 1;
                    decimal = true;
                } else {
                    break;
                }
            }
            if decimal {
                if frac_digits == 0 {
                    return None;
                }
                return Some(Bare::Other);
            }
            Some(Bare::Int(if neg { -value } else { value }))
        }

        fn string(&mut self) -> Option<String> {
            self.bump();
            let mut out = String::new();
            loop {
                match self.bump()? {
                    b'\\' => match self.bump()? {
                        c @ (b'"' | b'\\') => out.push(char::from(c)),
                        _ => return None,
                    },
                    b'"' => return Some(out),
                    c @ 0x20..=0x7e => out.push(char::from(c)),
                    _ => return None,
                }
            }
        }

        fn token(&mut self) -> Option<String> {
            let start = self.i;
            self.bump();
            while let Some(c) = self.peek() {
                if crate::util::is_tchar(char::from(c)) || c == b':' || c == b'/' {
                    self.i += 1;
                } else {
                    break;
                }
            }
            std::str::from_utf8(&self.s[start..self.i])
                .ok()
                .map(str::to_string)
        }

        fn bytes(&mut self) -> Option<Bare> {
            self.bump();
            loop {
                match self.bump()? {
                    b':' => return Some(Bare::Other),
                    c if c.is_ascii_alphanumeric() || b"+/=".contains(&c) => {}
                    _ => return None,
                }
            }
        }

        fn display_string(&mut self) -> Option<Bare> {
            self.bump();
            if !self.eat(b'"') {
                return None;
            }
            loop {
                match self.bump()? {
                    b'"' => return Some(Bare::Other),
                    b'%' => {
                        for _ in 0..2 {
                            match self.bump()? {
                                b'0'..=b'9' | b'a'..=b'f' => {}
                                _ => return None,
                            }
                        }
                    }
                    0x20..=0x7e => {}
                    _ => return None,
                }
            }
        }
    }

    /// RFC 8941 4.2.2. Later duplicates overwrite earlier ones in place.
    pub(super) fn parse_dictionary(s: &str) -> Option<Vec<(String, Member)>> {
        let mut p = P {
            s: s.as_bytes(),
            i: 0,
        };
        p.skip_sp();
        let mut out: Vec<(String, Member)> = Vec::new();
        if p.peek().is_none() {
            return Some(out);
        }
        loop {
            let key = p.key()?;
            let member = if p.eat(b'=') {
                p.member()?
            } else {
                p.parameters()?;
                Member::Item(Bare::Bool(true))
            };
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = member,
                None => out.push((key, member)),
            }
            p.skip_ows();
            if p.peek().is_none() {
                return Some(out);
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            p.peek()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_commas_and_escapes() {
        let ds = parse_directives([r#"private="set-cookie, x-a", no-cache="a\"b", MAX-AGE="7""#]);
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[0].value.as_deref(), Some("set-cookie, x-a"));
        assert_eq!(ds[1].value.as_deref(), Some("a\"b"));
        assert_eq!(ds[2].name, "max-age");
        let cc = CacheControl::from_directives(&ds);
        assert_eq!(cc.max_age, Some(7));
        assert_eq!(cc.private_fields, vec!["set-cookie", "x-a"]);
    }

    #[test]
    fn an_invalid_targeted_field_is_ignored_as_a_whole() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        for targeted in [
            vec!["no-store, Max-Age=0"],
            vec!["no-store", "max-age=(1"],
            vec!["private; max-age = 0"],
            vec!["no-store,"],
        ] {
            let mut headers = h(&[("cache-control", "max-age=60")]);
            headers.extend(
                targeted
                    .iter()
                    .map(|v| ("cdn-cache-control".to_string(), v.to_string())),
            );
            let rd = response_directives(&headers);
            assert_eq!(rd.source, PolicySource::CacheControl, "{targeted:?}");
            assert_eq!(rd.cc.max_age, Some(60), "{targeted:?}");
            assert!(!rd.cc.no_store && !rd.cc.private, "{targeted:?}");
            assert!(rd.expires_applies());
        }
    }

    #[test]
    fn sf_dictionary_validity() {
        for ok in [
            "max-age=60",
            "no-store, max-age=5;a=1",
            "a=(\"x\" tok);p, b=?0, c=1.5, d=:AAA=:, e=@1, f=%\"caf%c3%a9\"",
            "  max-age=60  ",
        ] {
            assert!(sf::parse_dictionary(ok).is_some(), "{ok}");
        }
        for bad in [
            "Max-Age=60",
            "max-age=60,",
            "max-age=1234567890123456",
            "max-age=\"unterminated",
            "a=1.",
            "a=(1 2",
            "a=?2",
            "é",
            "max-age 60",
        ] {
            assert!(sf::parse_dictionary(bad).is_none(), "{bad}");
        }
    }
}
