//! `Cache-Status` field value builder (RFC 9211), serialised as an RFC 8941
//! Structured Field List member: `portico; hit; ttl=376`.
//!
//! RFC sections followed:
//! * RFC 9211 2 (member = cache name as Token or String, with parameters),
//!   2.1-2.8 (`hit`, `fwd`, `fwd-status`, `ttl`, `stored`, `collapsed`, `key`,
//!   `detail`), 3 (`fwd` values), 4 (appending to an upstream value).
//! * RFC 8941 4.1: serialisation of Booleans (`true` is the bare key), Integers
//!   (at most 15 digits), Tokens and Strings.
//!
//! Choices and why:
//! * Parameters are emitted in RFC 9211 section order (hit, fwd, fwd-status,
//!   ttl, stored, collapsed, key, detail) so output is deterministic.
//! * The cache name is a Token when it is a valid sf-token (`portico` is),
//!   else a String. `fwd` values are Tokens (RFC 9211 2.2). `key` and `detail`
//!   are always Strings (`detail` may be Token or String; a String is always
//!   valid and matches `detail="..."`).
//! * Strings can only hold printable ASCII: other characters (controls,
//!   non-ASCII) become `?`; `"` and `\` are escaped. `ttl` is clamped to the
//!   sf-integer range (+-999 999 999 999 999); it may be negative (stale).
//! * No semantic cross-checks (e.g. `hit` with `fwd`): the caller states facts.

use std::fmt::{self, Write as _};

/// Default cache name.
pub const CACHE_NAME: &str = "portico";

const SF_INT_MAX: i64 = 999_999_999_999_999;

/// RFC 9211 2.2 / 3 forward reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    Bypass,
    Method,
    UriMiss,
    VaryMiss,
    Miss,
    Request,
    Stale,
    Partial,
}

impl Fwd {
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
            Fwd::Partial => "partial",
        }
    }
}

/// One `Cache-Status` list member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    name: String,
    hit: bool,
    fwd: Option<Fwd>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    key: Option<String>,
    detail: Option<String>,
}

impl Default for CacheStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheStatus {
    /// A member named [`CACHE_NAME`] with no parameters.
    pub fn new() -> Self {
        Self::named(CACHE_NAME)
    }
    pub fn named(name: &str) -> Self {
        CacheStatus {
            name: name.to_string(),
            hit: false,
            fwd: None,
            fwd_status: None,
            ttl: None,
            stored: false,
            collapsed: false,
            key: None,
            detail: None,
        }
    }
    pub fn hit(mut self) -> Self {
        self.hit = true;
        self
    }
    pub fn fwd(mut self, fwd: Fwd) -> Self {
        self.fwd = Some(fwd);
        self
    }
    pub fn fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }
    /// Remaining freshness in seconds; negative when stale.
    pub fn ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }
    pub fn stored(mut self) -> Self {
        self.stored = true;
        self
    }
    pub fn collapsed(mut self) -> Self {
        self.collapsed = true;
        self
    }
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// The serialised list member.
    pub fn to_field_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if is_sf_token(&self.name) {
            s.push_str(&self.name);
        } else {
            push_sf_string(&mut s, &self.name);
        }
        if self.hit {
            s.push_str(";hit");
        }
        if let Some(fwd) = self.fwd {
            s.push_str(";fwd=");
            s.push_str(fwd.as_str());
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, ";fwd-status={st}");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, ";ttl={}", ttl.clamp(-SF_INT_MAX, SF_INT_MAX));
        }
        if self.stored {
            s.push_str(";stored");
        }
        if self.collapsed {
            s.push_str(";collapsed");
        }
        if let Some(k) = &self.key {
            s.push_str(";key=");
            push_sf_string(&mut s, k);
        }
        if let Some(d) = &self.detail {
            s.push_str(";detail=");
            push_sf_string(&mut s, d);
        }
        f.write_str(&s)
    }
}

/// RFC 8941 3.3.4: `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`.
pub fn is_sf_token(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '*')
        && chars.all(|c| crate::util::is_tchar(c) || c == ':' || c == '/')
}

/// RFC 8941 4.1.6, with unrepresentable characters replaced by `?`.
fn push_sf_string(out: &mut String, s: &str) {
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
}

/// RFC 9211 4: our member goes last, after any upstream caches' members.
pub fn append_to(upstream: Option<&str>, member: &CacheStatus) -> String {
    match upstream.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => format!("{u}, {member}"),
        None => member.to_string(),
    }
}
