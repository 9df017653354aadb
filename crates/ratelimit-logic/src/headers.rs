//! The RateLimit header fields and `Retry-After` of one decision.
//!
//! **Job.** Turn a policy and its GCRA [`Decision`] into the response header
//! values, as plain strings: no HTTP types, so the component binding
//! (`components/rate-limiter/src/decision.rs`) is a thin copy.
//!
//! **Standards.**
//! * draft-ietf-httpapi-ratelimit-headers-11: `RateLimit-Policy` is a List of
//!   Items whose value is the policy name as a String, with `q` (quota) and
//!   `w` (window, seconds); `RateLimit` is a List of Items with `r`
//!   (available quota) and `t` (seconds). `pk` and `qu` are not emitted.
//! * RFC 9651 (Structured Field Values) for the syntax: parameters as
//!   `;key=value`, Strings quoted with `\"` and `\\` escaped, Integers at most
//!   15 digits.
//! * RFC 9110 §10.2.3 `Retry-After` as delay-seconds.
//!
//! **Choices.**
//! * Every duration is rounded **up** to whole seconds ([`ceil_seconds`]):
//!   a client is never told it may come back earlier than it really can,
//!   and a sub-second window advertises `w=1` (the draft forbids `w=0`).
//! * On an admission `t` is the time until the quota is fully refilled. On a
//!   refusal `t` is the wait until this request would be admitted, not until
//!   the whole quota refills: GCRA frees capacity continuously, so telling a
//!   client to wait for a full refill (up to a whole window) would
//!   over-penalise it. `Retry-After` equals that `t`, and is at least 1 s (a
//!   429 saying "retry after 0 seconds" invites a hot loop).
//! * Policy names are validated to `[a-z0-9_-]` by [`crate::policy`]; any
//!   other character outside `%x20-7E` that reaches here is written as `?`
//!   so the output is always a valid SF String; Integers above
//!   [`SF_INTEGER_MAX`] are clamped.
//! * Header names are lowercase, as HTTP/2 and HTTP/3 require on the wire.

use crate::gcra::Decision;
use crate::policy::Policy;

/// Header field name of the policy list.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// Header field name of the current service limits.
pub const RATELIMIT: &str = "ratelimit";
/// Header field name of the retry delay.
pub const RETRY_AFTER: &str = "retry-after";
/// Largest Structured Field Integer (RFC 9651 §3.3.1).
pub const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Milliseconds to whole seconds, rounded up.
pub fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

/// One `RateLimit-Policy` member: `"name";q=<limit>;w=<window seconds>`.
pub fn policy_item(policy: &Policy) -> String {
    let mut out = sf_string(&policy.name);
    out.push_str(&format!(
        ";q={};w={}",
        policy.limit,
        sf_integer(ceil_seconds(policy.window_ms).max(1))
    ));
    out
}

/// What one decision tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// `t`: seconds until full refill (admitted) or until this request
    /// would be admitted (refused).
    pub reset_seconds: u64,
    /// `Retry-After` on a refusal: equal to `t`.
    pub retry_after_seconds: Option<u64>,
    /// `ratelimit-policy`, `ratelimit` and, on a refusal, `retry-after`.
    pub headers: Vec<(&'static str, String)>,
}

/// The header fields of `decision` under `policy`.
pub fn fields(policy: &Policy, decision: &Decision) -> Fields {
    let reset_seconds = sf_integer(if decision.allowed {
        ceil_seconds(decision.reset_after_ms)
    } else {
        ceil_seconds(decision.retry_after_ms).max(1)
    });
    let retry_after_seconds = (!decision.allowed).then_some(reset_seconds);
    let mut headers = vec![
        (RATELIMIT_POLICY, policy_item(policy)),
        (
            RATELIMIT,
            format!(
                "{};r={};t={reset_seconds}",
                sf_string(&policy.name),
                decision.remaining
            ),
        ),
    ];
    if let Some(seconds) = retry_after_seconds {
        headers.push((RETRY_AFTER, seconds.to_string()));
    }
    Fields {
        reset_seconds,
        retry_after_seconds,
        headers,
    }
}

fn sf_integer(n: u64) -> u64 {
    n.min(SF_INTEGER_MAX)
}

/// RFC 9651 §4.1.6 String serialization; unrepresentable characters → `?`.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::decide;

    const T0: u64 = 1_700_000_000_000;

    fn policy(name: &str, limit: u32, window_ms: u64) -> Policy {
        Policy {
            name: name.into(),
            limit,
            window_ms,
            burst: None,
        }
    }

    /// A small, independent RFC 9651 List parser (Items only), so tests do
    /// not trust the serializer to check itself.
    mod sf {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Bare {
            Int(i64),
            Str(String),
            Bool(bool),
            Token(String),
        }

        pub type Item = (Bare, Vec<(String, Bare)>);

        pub fn parse_list(input: &str) -> Result<Vec<Item>, String> {
            let mut p = Parser {
                s: input.as_bytes(),
                i: 0,
            };
            p.skip(|b| b == b' ');
            let mut items = Vec::new();
            if p.done() {
                return Ok(items);
            }
            loop {
                items.push(p.item()?);
                p.skip(|b| b == b' ' || b == b'\t');
                if p.done() {
                    return Ok(items);
                }
                p.expect(b',')?;
                p.skip(|b| b == b' ' || b == b'\t');
                if p.done() {
                    return Err("trailing comma".into());
                }
            }
        }

        struct Parser<'a> {
            s: &'a [u8],
            i: usize,
        }

        impl Parser<'_> {
            fn done(&self) -> bool {
                self.i >= self.s.len()
            }
            fn peek(&self) -> Option<u8> {
                self.s.get(self.i).copied()
            }
            fn next(&mut self) -> Option<u8> {
                let b = self.peek();
                self.i += 1;
                b
            }
            fn skip(&mut self, f: impl Fn(u8) -> bool) {
                while self.peek().is_some_and(&f) {
                    self.i += 1;
                }
            }
            fn expect(&mut self, want: u8) -> Result<(), String> {
                match self.next() {
                    Some(b) if b == want => Ok(()),
                    other => Err(format!(
                        "expected {:?} at {}, got {other:?}",
                        want as char, self.i
                    )),
                }
            }
            fn item(&mut self) -> Result<Item, String> {
                let bare = self.bare()?;
                let mut params = Vec::new();
                while self.peek() == Some(b';') {
                    self.i += 1;
                    self.skip(|b| b == b' ');
                    let key = self.key()?;
                    let value = if self.peek() == Some(b'=') {
                        self.i += 1;
                        self.bare()?
                    } else {
                        Bare::Bool(true)
                    };
                    params.push((key, value));
                }
                Ok((bare, params))
            }
            fn key(&mut self) -> Result<String, String> {
                let start = self.i;
                match self.peek() {
                    Some(b) if b.is_ascii_lowercase() || b == b'*' => {}
                    other => return Err(format!("bad key start {other:?}")),
                }
                self.skip(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
                Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
            }
            fn bare(&mut self) -> Result<Bare, String> {
                match self.peek() {
                    Some(b'"') => self.string(),
                    Some(b'?') => {
                        self.i += 1;
                        match self.next() {
                            Some(b'0') => Ok(Bare::Bool(false)),
                            Some(b'1') => Ok(Bare::Bool(true)),
                            other => Err(format!("bad boolean {other:?}")),
                        }
                    }
                    Some(b) if b == b'-' || b.is_ascii_digit() => self.integer(),
                    Some(b) if b.is_ascii_alphabetic() || b == b'*' => {
                        let start = self.i;
                        self.skip(|b| {
                            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b)
                        });
                        Ok(Bare::Token(
                            String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                        ))
                    }
                    other => Err(format!("bad bare item start {other:?}")),
                }
            }
            fn integer(&mut self) -> Result<Bare, String> {
                let negative = self.peek() == Some(b'-');
                if negative {
                    self.i += 1;
                }
                let start = self.i;
                self.skip(|b| b.is_ascii_digit());
                let digits = &self.s[start..self.i];
                if digits.is_empty() || digits.len() > 15 || self.peek() == Some(b'.') {
                    return Err(format!("bad integer at {start}"));
                }
                let n: i64 = std::str::from_utf8(digits)
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e: std::num::ParseIntError| e.to_string())?;
                Ok(Bare::Int(if negative { -n } else { n }))
            }
            fn string(&mut self) -> Result<Bare, String> {
                self.expect(b'"')?;
                let mut out = String::new();
                loop {
                    match self.next() {
                        Some(b'\\') => match self.next() {
                            Some(c @ (b'"' | b'\\')) => out.push(c as char),
                            other => return Err(format!("bad escape {other:?}")),
                        },
                        Some(b'"') => return Ok(Bare::Str(out)),
                        Some(c @ 0x20..=0x7e) => out.push(c as char),
                        other => return Err(format!("bad string char {other:?}")),
                    }
                }
            }
        }
    }

    use sf::Bare::{Int, Str};

    fn header<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
        fields
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The one item of a field, parsed independently: (name, params).
    fn item(value: &str) -> (sf::Bare, Vec<(String, sf::Bare)>) {
        let mut items = sf::parse_list(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(items.len(), 1, "{value}");
        items.remove(0)
    }

    #[test]
    fn seconds_round_up() {
        let cases = [
            (0, 0),
            (1, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (59_999, 60),
            (60_000, 60),
            (u64::MAX, 18_446_744_073_709_552),
        ];
        for (ms, secs) in cases {
            assert_eq!(ceil_seconds(ms), secs, "{ms} ms");
        }
    }

    #[test]
    fn an_admission_reports_the_quota_left_and_the_full_refill() {
        let p = policy("api", 10, 60_000);
        let first = decide(None, T0, &p, 1);
        assert!(first.allowed);
        let f = fields(&p, &first);
        assert_eq!(f.retry_after_seconds, None);
        assert_eq!(header(&f, RETRY_AFTER), None);
        assert_eq!(
            item(header(&f, RATELIMIT_POLICY).unwrap()),
            (
                Str("api".into()),
                vec![("q".into(), Int(10)), ("w".into(), Int(60))]
            )
        );
        // One of ten used: the quota is whole again after one emission
        // interval (6 s).
        assert_eq!(
            item(header(&f, RATELIMIT).unwrap()),
            (
                Str("api".into()),
                vec![("r".into(), Int(9)), ("t".into(), Int(6))]
            )
        );
        assert_eq!(f.reset_seconds, 6);
    }

    #[test]
    fn a_refusal_says_the_real_wait_and_retry_after_equals_it() {
        let p = policy("api", 10, 60_000);
        let mut state = None;
        for _ in 0..10 {
            let d = decide(state, T0, &p, 1);
            assert!(d.allowed);
            state = d.new_tat;
        }
        // Refused 350 ms before GCRA would admit it (the next slot opens
        // 6 s after T0): the client is told 1 s, not the 60 s of a full
        // refill.
        let refused = decide(state, T0 + 5_650, &p, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 350);
        let f = fields(&p, &refused);
        assert_eq!(f.reset_seconds, 1);
        assert_eq!(f.retry_after_seconds, Some(1));
        assert_eq!(header(&f, RETRY_AFTER), Some("1"));
        assert_eq!(
            item(header(&f, RATELIMIT).unwrap()),
            (
                Str("api".into()),
                vec![("r".into(), Int(0)), ("t".into(), Int(1))]
            )
        );
        // Refused at once: the wait is the whole emission interval.
        let f = fields(&p, &decide(state, T0, &p, 1));
        assert_eq!((f.reset_seconds, f.retry_after_seconds), (6, Some(6)));
        // And admitted once that wait is over.
        assert!(decide(state, T0 + 6_000, &p, 1).allowed);
    }

    #[test]
    fn a_sub_second_window_advertises_one_second() {
        let p = policy("burst", 5, 250);
        let f = fields(&p, &decide(None, T0, &p, 1));
        let (_, params) = item(header(&f, RATELIMIT_POLICY).unwrap());
        assert_eq!(params[1], ("w".into(), Int(1)));
    }

    #[test]
    fn odd_names_and_huge_numbers_stay_valid_structured_fields() {
        let p = policy("we\"ird\\näme", 10, u64::MAX);
        let refused = Decision {
            allowed: false,
            impossible: false,
            new_tat: None,
            remaining: 0,
            reset_after_ms: u64::MAX,
            retry_after_ms: u64::MAX,
        };
        let f = fields(&p, &refused);
        let (name, params) = item(header(&f, RATELIMIT).unwrap());
        assert_eq!(name, Str("we\"ird\\n?me".into()));
        assert_eq!(params[1], ("t".into(), Int(SF_INTEGER_MAX as i64)));
        let (_, params) = item(header(&f, RATELIMIT_POLICY).unwrap());
        assert_eq!(params[1], ("w".into(), Int(SF_INTEGER_MAX as i64)));
        assert_eq!(f.retry_after_seconds, Some(SF_INTEGER_MAX));
    }
}
