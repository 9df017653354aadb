//! Static assets through the composed app: range and conditional requests
//! (RFC 9110 sections 13 and 14) on a table of cases, object sizes around the
//! chunk boundary up to 20 MiB, atomic replacement under concurrent readers,
//! path confinement, the admin API, Cache-Control and Content-Type defaults,
//! precompressed variants, the site root with its 404 page, directories, and
//! the README's `instance` member on every problem.
//!
//! Every expected value is computed here from the uploaded bytes (SHA-256
//! with `sha2`, slices, IMF-fixdates) following the assets contract and
//! RFC 9110, independently of the code under test.

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portico::serve::Target;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{Host, Reply, client, data_dir, get};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "root-password-1";

const PROBLEM_BASE: &str = "https://portico.dev/problems#";
const DEFAULT_POLICY: &str = "public, max-age=60, must-revalidate";
const IMMUTABLE_POLICY: &str = "public, max-age=31536000, immutable";
const PAST: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const FUTURE: &str = "Fri, 01 Jan 2100 00:00:00 GMT";
const CHUNK: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// Independent helpers: digests, dates, content.

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The contract's ETag: the quoted lower-case hex SHA-256 of the bytes.
fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", sha256_hex(bytes))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 9110 section 5.6.7 IMF-fixdate of a Unix time (the suite's own
/// formatter, independent of the code under test).
fn imf_fixdate(secs: u64) -> String {
    crate::origin::http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Asserts `value` is the IMF-fixdate of some second in `from..=to`; returns it.
fn assert_date_between(value: Option<&str>, from: u64, to: u64, what: &str) -> u64 {
    let value = value.unwrap_or_else(|| panic!("{what}: no Last-Modified"));
    (from..=to)
        .find(|&t| imf_fixdate(t) == value)
        .unwrap_or_else(|| {
            panic!(
                "{what}: Last-Modified {value:?} is not the IMF-fixdate of a second in {}..={}",
                imf_fixdate(from),
                imf_fixdate(to)
            )
        })
}

/// Deterministic pseudo-random bytes (xorshift64*), different per seed.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The media type of a Content-Type value, lower-cased, without parameters.
fn essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

fn header_all(reply: &Reply, name: &str) -> Vec<String> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

fn vary_has(reply: &Reply, token: &str) -> bool {
    header_all(reply, "vary")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .any(|t| t.eq_ignore_ascii_case(token) || t == "*")
}

/// An RFC 9457 problem with `status` (the contract names no `type` for it).
fn assert_problem_status(reply: &Reply, status: u16, what: &str) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{what}: status; body: {}",
        reply.text()
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{what}: content-type; body: {}",
        reply.text()
    );
    let body: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|err| panic!("{what}: problem is not JSON ({err}): {}", reply.text()));
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with(PROBLEM_BASE) && t.len() > PROBLEM_BASE.len()),
        "{what}: problem type: {body}"
    );
    assert_eq!(body["status"], status, "{what}: problem status: {body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: problem title: {body}"
    );
    assert!(body["detail"].is_string(), "{what}: problem detail: {body}");
    body
}

// ---------------------------------------------------------------------------
// The app and its clients.

struct App {
    host: Host,
    admin: String,
    _data: tempfile::TempDir,
    /// Objects this client has stored and not deleted, so an upload knows
    /// whether it creates (`201`) or replaces (`200`).
    stored: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

fn start(target: Target, name: &str, vars: &[(&str, &str)]) -> App {
    let data = data_dir(name);
    let mut config = crate::harness::app_with_admin(target, data.path(), ADMIN, ADMIN_PASSWORD);
    for (name, value) in vars {
        config.vars.push(((*name).into(), (*value).into()));
    }
    let host = Host::start(&config);
    let admin = session(&host, ADMIN, ADMIN_PASSWORD);
    App {
        host,
        admin,
        _data: data,
        stored: Default::default(),
    }
}

/// Logs in and returns the session token (from the `session` cookie).
fn session(host: &Host, username: &str, password: &str) -> String {
    crate::harness::login_token(host, username, password)
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host.url)
    }

    /// `PUT /admin/assets/{path}` as the admin, with extra request headers.
    fn put(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        self.put_as(Some(&self.admin), path, body, headers)
    }

    fn put_as(
        &self,
        token: Option<&str>,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = client().put(&self.url(&format!("/admin/assets/{path}")));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = Reply::from(request.send(body).expect("PUT"));
        if matches!(reply.status, 200 | 201) {
            self.stored.borrow_mut().insert(path.to_string());
        }
        reply
    }

    /// Uploads and asserts success: `201` with `Location` for a new object,
    /// `200` for a replacement; returns the JSON body.
    fn upload(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Value {
        let existed = self.stored.borrow().contains(path);
        let reply = self.put(path, body, headers);
        if existed {
            assert_eq!(
                reply.status,
                200,
                "PUT {path} (a replacement): {}",
                reply.text()
            );
        } else {
            assert_eq!(reply.status, 201, "PUT {path} (new): {}", reply.text());
            assert_eq!(
                reply.header("location"),
                Some(format!("/assets/{path}").as_str()),
                "PUT {path}"
            );
        }
        let json = reply.json();
        assert_eq!(json["etag"], etag_of(body), "PUT {path}: {json}");
        assert_eq!(
            reply.header("etag"),
            Some(etag_of(body).as_str()),
            "PUT {path}"
        );
        json
    }

    fn admin_call(&self, method: &str, path: &str) -> Reply {
        self.call_as(Some(&self.admin), method, path)
    }

    fn call_as(&self, token: Option<&str>, method: &str, path: &str) -> Reply {
        let url = self.url(path);
        let mut request = match method {
            "GET" => client().get(&url),
            "DELETE" => client().delete(&url),
            other => panic!("unsupported method {other}"),
        };
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let reply = Reply::from(request.call().expect(method));
        if method == "DELETE" && reply.status == 200 {
            let object = path.trim_start_matches("/admin/assets/");
            self.stored.borrow_mut().remove(object);
        }
        reply
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = client().get(&self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::from(request.call().expect("GET"))
    }

    fn head(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = client().head(&self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::from(request.call().expect("HEAD"))
    }

    /// A request written byte for byte over TCP, so no client library can
    /// normalise or re-encode the request target.
    fn raw(&self, method: &str, target: &str, token: Option<&str>, body: &[u8]) -> Reply {
        self.raw_announced(method, target, token, body.len(), body)
    }

    /// Like `raw`, but announcing `announced` bytes of body and sending only
    /// `body`: a server that refuses by Content-Length answers before the rest
    /// (a library client would still be writing and see a broken pipe).
    fn raw_announced(
        &self,
        method: &str,
        target: &str,
        token: Option<&str>,
        announced: usize,
        body: &[u8],
    ) -> Reply {
        let address = self.host.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {address}\r\n");
        if let Some(token) = token {
            head.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        if method != "GET" && method != "HEAD" {
            head.push_str(&format!(
                "content-type: text/plain\r\ncontent-length: {announced}\r\n"
            ));
        }
        head.push_str("connection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .unwrap_or_else(|err| panic!("{method} {target}: reading the response: {err}"));
        parse_raw_response(&response, method == "HEAD", target)
    }
}

/// Parses an HTTP/1.1 response read to EOF (Content-Length, chunked or
/// delimited by the close).
fn parse_raw_response(bytes: &[u8], head_request: bool, what: &str) -> Reply {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{what}: no complete response head: {}",
                String::from_utf8_lossy(bytes)
            )
        });
    let head = std::str::from_utf8(&bytes[..end]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let rest = &bytes[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if head_request || status == 304 || status == 204 {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut at = 0;
        // Each chunk moves `at` forward; a body has fewer chunks than bytes.
        for _ in 0..=rest.len() {
            let line_end = at
                + rest[at..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("chunk size line");
            let size_text = std::str::from_utf8(&rest[at..line_end]).unwrap();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            at = line_end + 2;
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        out
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().unwrap();
        assert!(rest.len() >= length, "{what}: truncated body");
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
        path: None,
    }
}

/// The parts of a `multipart/byteranges` body: (Content-Range, Content-Type, bytes).
/// Each part's length is taken from its own Content-Range, and every
/// delimiter is checked, so a wrong offset or framing fails here.
fn parse_byteranges(
    body: &[u8],
    content_type: &str,
    what: &str,
) -> Vec<(String, Option<String>, Vec<u8>)> {
    let (media, params) = content_type
        .split_once(';')
        .unwrap_or_else(|| panic!("{what}: no boundary in {content_type:?}"));
    assert_eq!(
        media.trim().to_ascii_lowercase(),
        "multipart/byteranges",
        "{what}: content-type"
    );
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{what}: no boundary in {content_type:?}"));
    assert!(!boundary.is_empty(), "{what}: empty boundary");
    let delimiter = format!("--{boundary}").into_bytes();
    let mut at = body
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_slice())
        .unwrap_or_else(|| panic!("{what}: no delimiter {boundary:?} in the body"))
        + delimiter.len();
    let mut parts = Vec::new();
    // Each part consumes at least its delimiter, so this is bounded by the body length.
    for _ in 0..body.len() {
        if body[at..].starts_with(b"--") {
            return parts;
        }
        assert!(
            body[at..].starts_with(b"\r\n"),
            "{what}: CRLF after the delimiter"
        );
        at += 2;
        let head_end = at
            + body[at..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or_else(|| panic!("{what}: part without a header block"));
        let head = std::str::from_utf8(&body[at..head_end]).expect("part headers are text");
        let mut range = None;
        let mut part_type = None;
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').expect("part header line");
            if name.trim().eq_ignore_ascii_case("content-range") {
                range = Some(value.trim().to_string());
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                part_type = Some(value.trim().to_string());
            }
        }
        let range = range.unwrap_or_else(|| panic!("{what}: part without Content-Range"));
        let (first, last) = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split('/').next())
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .unwrap_or_else(|| panic!("{what}: bad part Content-Range {range:?}"));
        at = head_end + 4;
        let bytes = body[at..at + (last - first + 1)].to_vec();
        at += bytes.len();
        parts.push((range, part_type, bytes));
        assert!(
            body[at..].starts_with(b"\r\n") && body[at + 2..].starts_with(&delimiter),
            "{what}: part {} is not followed by CRLF and the delimiter",
            parts.len()
        );
        at += 2 + delimiter.len();
    }
    panic!("{what}: no closing delimiter");
}

// ---------------------------------------------------------------------------
// 1. Range and conditional requests, table driven.

enum Expect {
    /// 200 with the whole object.
    Full,
    /// 206 with one range `first..=last`.
    Partial(usize, usize),
    /// 206 `multipart/byteranges` with these ranges, in order.
    Multi(Vec<(usize, usize)>),
    /// 304 with validators and no body.
    NotModified,
    /// 412 problem.
    PreconditionFailed,
    /// 416 problem with `Content-Range: bytes */<size>`.
    Unsatisfiable,
    /// HEAD: 200 headers of the whole object, no body.
    HeadFull,
}

struct Case {
    name: &'static str,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
    expect: Expect,
}

fn case(name: &'static str, headers: &[(&'static str, &str)], expect: Expect) -> Case {
    Case {
        name,
        method: "GET",
        headers: headers.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        expect,
    }
}

on_both_targets!(range_and_conditional_table);

fn range_and_conditional_table(target: Target) {
    let app = start(target, "assets-table", &[]);
    let data = pseudo_random(1000, 7);
    let size = data.len();
    let before = now();
    app.upload(
        "table/data.bin",
        &data,
        &[("content-type", "application/octet-stream")],
    );
    let after = now();
    // A second passes, so the upload's Last-Modified is a strong validator
    // (RFC 9110 section 8.8.2.2) when it is compared in If-Range below.
    std::thread::sleep(Duration::from_millis(1100));
    let path = "/assets/table/data.bin";
    let base = app.get(path, &[]);
    assert_eq!(base.status, 200, "plain GET: {}", base.text());
    let etag = etag_of(&data);
    assert_eq!(base.header("etag"), Some(etag.as_str()), "plain GET etag");
    let last_modified = base.header("last-modified").unwrap_or("").to_string();
    assert_date_between(Some(&last_modified), before, after, "plain GET");
    let weak = format!("W/{etag}");
    let listed = format!("\"0000\", {etag}, \"ffff\"");
    let e = etag.as_str();
    let lm = last_modified.as_str();

    use Expect::*;
    let mut cases = vec![
        case("no headers", &[], Full),
        case("single range", &[("range", "bytes=0-99")], Partial(0, 99)),
        case(
            "middle range",
            &[("range", "bytes=200-299")],
            Partial(200, 299),
        ),
        case(
            "last byte",
            &[("range", "bytes=999-999")],
            Partial(999, 999),
        ),
        case(
            "range past the end is clamped",
            &[("range", "bytes=990-2000")],
            Partial(990, 999),
        ),
        case("suffix", &[("range", "bytes=-100")], Partial(900, 999)),
        case(
            "suffix longer than the object",
            &[("range", "bytes=-5000")],
            Partial(0, 999),
        ),
        case("open range", &[("range", "bytes=950-")], Partial(950, 999)),
        case(
            "open range from zero",
            &[("range", "bytes=0-")],
            Partial(0, 999),
        ),
        case(
            "multi-range",
            &[("range", "bytes=0-9,20-29,-10")],
            Multi(vec![(0, 9), (20, 29), (990, 999)]),
        ),
        case(
            "multi-range with list whitespace",
            &[("range", "bytes=0-1, 5-6")],
            Multi(vec![(0, 1), (5, 6)]),
        ),
        case(
            "overlapping ranges coalesce into one",
            &[("range", "bytes=0-99,50-149")],
            Partial(0, 149),
        ),
        case(
            "adjacent ranges coalesce into one",
            &[("range", "bytes=0-9,10-19")],
            Partial(0, 19),
        ),
        case(
            "overlapping ranges coalesce into two parts",
            &[("range", "bytes=0-9,5-14,100-109")],
            Multi(vec![(0, 14), (100, 109)]),
        ),
        case(
            "unsatisfiable part is dropped",
            &[("range", "bytes=0-9,2000-3000")],
            Partial(0, 9),
        ),
        case(
            "unsatisfiable: first byte at the size",
            &[("range", "bytes=1000-1001")],
            Unsatisfiable,
        ),
        case(
            "unsatisfiable: open past the end",
            &[("range", "bytes=5000-")],
            Unsatisfiable,
        ),
        case(
            "unsatisfiable: zero-length suffix",
            &[("range", "bytes=-0")],
            Unsatisfiable,
        ),
        case("empty bytes=", &[("range", "bytes=")], Full),
        case("malformed: letters", &[("range", "bytes=abc")], Full),
        case("malformed: no dash", &[("range", "bytes=10")], Full),
        case("malformed: double dash", &[("range", "bytes=--5")], Full),
        case("malformed: no equals", &[("range", "bytes 0-10")], Full),
        case("unknown unit", &[("range", "items=0-10")], Full),
        case("If-None-Match exact", &[("if-none-match", e)], NotModified),
        case(
            "If-None-Match in a list",
            &[("if-none-match", &listed)],
            NotModified,
        ),
        case(
            "If-None-Match weak form matches weakly",
            &[("if-none-match", &weak)],
            NotModified,
        ),
        case("If-None-Match *", &[("if-none-match", "*")], NotModified),
        case(
            "If-None-Match not matching",
            &[("if-none-match", "\"0000\"")],
            Full,
        ),
        case(
            "If-Modified-Since ignored with If-None-Match",
            &[("if-none-match", "\"0000\""), ("if-modified-since", FUTURE)],
            Full,
        ),
        case(
            "If-None-Match wins over Range",
            &[("if-none-match", e), ("range", "bytes=0-9")],
            NotModified,
        ),
        case(
            "If-Modified-Since in the future",
            &[("if-modified-since", FUTURE)],
            NotModified,
        ),
        case(
            "If-Modified-Since equal to Last-Modified",
            &[("if-modified-since", lm)],
            NotModified,
        ),
        case(
            "If-Modified-Since in the past",
            &[("if-modified-since", PAST)],
            Full,
        ),
        case(
            "If-Modified-Since not a date is ignored",
            &[("if-modified-since", "yesterday")],
            Full,
        ),
        case(
            "range with If-Modified-Since in the past",
            &[("if-modified-since", PAST), ("range", "bytes=10-19")],
            Partial(10, 19),
        ),
        case("If-Match exact", &[("if-match", e)], Full),
        case("If-Match *", &[("if-match", "*")], Full),
        case("If-Match in a list", &[("if-match", &listed)], Full),
        case(
            "If-Match not matching",
            &[("if-match", "\"0000\"")],
            PreconditionFailed,
        ),
        case(
            "If-Match compares strongly",
            &[("if-match", &weak)],
            PreconditionFailed,
        ),
        case(
            "If-Match not matching with a range",
            &[("if-match", "\"0000\""), ("range", "bytes=0-9")],
            PreconditionFailed,
        ),
        case(
            "If-Match exact with a range",
            &[("if-match", e), ("range", "bytes=0-9")],
            Partial(0, 9),
        ),
        case(
            "If-Unmodified-Since in the past",
            &[("if-unmodified-since", PAST)],
            PreconditionFailed,
        ),
        case(
            "If-Unmodified-Since in the future",
            &[("if-unmodified-since", FUTURE)],
            Full,
        ),
        case(
            "If-Unmodified-Since equal to Last-Modified",
            &[("if-unmodified-since", lm)],
            Full,
        ),
        case(
            "If-Unmodified-Since ignored with If-Match",
            &[("if-match", e), ("if-unmodified-since", PAST)],
            Full,
        ),
        case(
            "If-Range matching ETag",
            &[("if-range", e), ("range", "bytes=0-9")],
            Partial(0, 9),
        ),
        case(
            "If-Range other ETag",
            &[("if-range", "\"0000\""), ("range", "bytes=0-9")],
            Full,
        ),
        case(
            "If-Range weak ETag",
            &[("if-range", &weak), ("range", "bytes=0-9")],
            Full,
        ),
        case(
            "If-Range with the Last-Modified date",
            &[("if-range", lm), ("range", "bytes=0-9")],
            Partial(0, 9),
        ),
        case(
            "If-Range with another date",
            &[("if-range", PAST), ("range", "bytes=0-9")],
            Full,
        ),
        case(
            "If-Range matching multi-range",
            &[("if-range", e), ("range", "bytes=0-0,999-999")],
            Multi(vec![(0, 0), (999, 999)]),
        ),
        case("If-Range without Range", &[("if-range", e)], Full),
    ];
    cases.push(Case {
        method: "HEAD",
        ..case("HEAD ignores Range", &[("range", "bytes=0-9")], HeadFull)
    });
    cases.push(Case {
        method: "HEAD",
        ..case(
            "HEAD with matching If-None-Match",
            &[("if-none-match", e)],
            NotModified,
        )
    });
    cases.push(Case {
        method: "HEAD",
        ..case(
            "HEAD with failing If-Match",
            &[("if-match", "\"0000\"")],
            PreconditionFailed,
        )
    });

    let content_type = "application/octet-stream";
    for case in &cases {
        let name = case.name;
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = match case.method {
            "HEAD" => app.head(path, &headers),
            _ => app.get(path, &headers),
        };
        let text =
            || String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]).into_owned();
        match &case.expect {
            Full | HeadFull => {
                assert_eq!(reply.status, 200, "{name}: status; body: {}", text());
                assert_eq!(reply.header("etag"), Some(e), "{name}: etag");
                assert_eq!(
                    reply.header("last-modified"),
                    Some(lm),
                    "{name}: last-modified"
                );
                assert_eq!(
                    reply.header("accept-ranges"),
                    Some("bytes"),
                    "{name}: accept-ranges"
                );
                assert_eq!(
                    reply.header("content-type"),
                    Some(content_type),
                    "{name}: content-type"
                );
                assert_eq!(
                    reply.header("content-length"),
                    Some(size.to_string().as_str()),
                    "{name}: content-length"
                );
                assert_eq!(
                    reply.header("cache-control"),
                    Some(DEFAULT_POLICY),
                    "{name}: cache-control"
                );
                assert_eq!(reply.header("content-range"), None, "{name}: content-range");
                if matches!(case.expect, HeadFull) {
                    assert!(reply.body.is_empty(), "{name}: HEAD has no body");
                } else {
                    assert!(reply.body == data, "{name}: body is not the whole object");
                }
            }
            Partial(first, last) => {
                assert_eq!(reply.status, 206, "{name}: status; body: {}", text());
                assert_eq!(
                    reply.header("content-range"),
                    Some(format!("bytes {first}-{last}/{size}").as_str()),
                    "{name}: content-range"
                );
                assert_eq!(
                    reply.header("content-length"),
                    Some((last - first + 1).to_string().as_str()),
                    "{name}: content-length"
                );
                assert_eq!(
                    reply.header("content-type"),
                    Some(content_type),
                    "{name}: content-type"
                );
                assert_eq!(reply.header("etag"), Some(e), "{name}: etag");
                assert_eq!(
                    reply.header("last-modified"),
                    Some(lm),
                    "{name}: last-modified"
                );
                assert_eq!(
                    reply.header("accept-ranges"),
                    Some("bytes"),
                    "{name}: accept-ranges"
                );
                assert!(
                    reply.body == data[*first..=*last],
                    "{name}: body is not bytes {first}-{last} (got {} bytes)",
                    reply.body.len()
                );
            }
            Multi(ranges) => {
                assert_eq!(reply.status, 206, "{name}: status; body: {}", text());
                assert_eq!(
                    reply.header("content-range"),
                    None,
                    "{name}: no top-level content-range"
                );
                assert_eq!(reply.header("etag"), Some(e), "{name}: etag");
                let multipart_type = reply
                    .header("content-type")
                    .unwrap_or_else(|| panic!("{name}: no content-type"))
                    .to_string();
                if let Some(length) = reply.header("content-length") {
                    assert_eq!(
                        length,
                        reply.body.len().to_string(),
                        "{name}: content-length"
                    );
                }
                let parts = parse_byteranges(&reply.body, &multipart_type, name);
                assert_eq!(parts.len(), ranges.len(), "{name}: number of parts");
                for ((range, part_type, bytes), (first, last)) in parts.iter().zip(ranges) {
                    assert_eq!(
                        range,
                        &format!("bytes {first}-{last}/{size}"),
                        "{name}: part content-range"
                    );
                    assert_eq!(
                        part_type.as_deref(),
                        Some(content_type),
                        "{name}: part content-type"
                    );
                    assert!(
                        bytes[..] == data[*first..=*last],
                        "{name}: part {first}-{last} has the wrong bytes"
                    );
                }
            }
            NotModified => {
                assert_eq!(reply.status, 304, "{name}: status; body: {}", text());
                assert!(reply.body.is_empty(), "{name}: 304 has no body");
                assert_eq!(reply.header("etag"), Some(e), "{name}: etag");
                assert_eq!(
                    reply.header("last-modified"),
                    Some(lm),
                    "{name}: last-modified"
                );
                assert_eq!(
                    reply.header("cache-control"),
                    Some(DEFAULT_POLICY),
                    "{name}: cache-control"
                );
                assert_eq!(reply.header("content-range"), None, "{name}: content-range");
            }
            PreconditionFailed => {
                if case.method == "HEAD" {
                    assert_eq!(reply.status, 412, "{name}: status");
                    assert!(reply.body.is_empty(), "{name}: HEAD has no body");
                } else {
                    assert_problem_status(&reply, 412, name);
                }
            }
            Unsatisfiable => {
                assert_problem_status(&reply, 416, name);
                assert_eq!(
                    reply.header("content-range"),
                    Some(format!("bytes */{size}").as_str()),
                    "{name}: content-range"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Sizes around the chunk boundary, up to 20 MiB.

on_both_targets!(sizes_round_trip_with_exact_bytes_and_headers);
// The chunk layout (20 MiB objects, ranges across chunks) on Redis.
with_kv_on_redis!(
    sizes_round_trip_with_exact_bytes_and_headers,
    range_and_conditional_table
);

fn sizes_round_trip_with_exact_bytes_and_headers(target: Target) {
    let app = start(target, "assets-sizes", &[]);
    let sizes = [0usize, 1, CHUNK, CHUNK + 1, 20 << 20];
    let compared = [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
        "accept-ranges",
    ];
    for (n, &size) in sizes.iter().enumerate() {
        let what = format!("{size}-byte object");
        let data = pseudo_random(size, 100 + n as u64);
        let path = format!("sizes/object-{size}.bin");
        let before = now();
        let put = app.put(
            &path,
            &data,
            &[("content-type", "application/octet-stream")],
        );
        let after = now();
        assert_eq!(put.status, 201, "{what}: PUT: {}", put.text());
        let info = put.json();
        assert_eq!(info["size"], size, "{what}: PUT size: {info}");
        assert_eq!(info["etag"], etag_of(&data), "{what}: PUT etag: {info}");
        assert_eq!(info["path"], path, "{what}: PUT path: {info}");

        let url = format!("/assets/{path}");
        let get = app.get(&url, &[]);
        assert_eq!(get.status, 200, "{what}: GET status: {}", get.text());
        assert_eq!(get.body.len(), size, "{what}: GET body length");
        assert!(get.body == data, "{what}: GET body bytes differ");
        assert_eq!(
            get.header("content-length"),
            Some(size.to_string().as_str()),
            "{what}: content-length"
        );
        assert_eq!(
            get.header("etag"),
            Some(etag_of(&data).as_str()),
            "{what}: etag"
        );
        assert_eq!(
            get.header("content-type"),
            Some("application/octet-stream"),
            "{what}: content-type"
        );
        assert_eq!(
            get.header("accept-ranges"),
            Some("bytes"),
            "{what}: accept-ranges"
        );
        assert_eq!(
            get.header("cache-control"),
            Some(DEFAULT_POLICY),
            "{what}: cache-control"
        );
        assert_date_between(get.header("last-modified"), before, after, &what);

        let head = app.head(&url, &[]);
        assert_eq!(head.status, 200, "{what}: HEAD status");
        assert!(head.body.is_empty(), "{what}: HEAD has a body");
        for name in compared {
            assert!(get.header(name).is_some(), "{what}: GET lacks {name}");
            assert_eq!(
                head.header(name),
                get.header(name),
                "{what}: HEAD {name} differs from GET"
            );
        }

        if size == 0 {
            let reply = app.get(&url, &[("range", "bytes=0-0")]);
            assert_problem_status(&reply, 416, "0-byte object, bytes=0-0");
            assert_eq!(
                reply.header("content-range"),
                Some("bytes */0"),
                "0-byte bytes=0-0"
            );
            let reply = app.get(&url, &[("range", "bytes=-5")]);
            assert_problem_status(&reply, 416, "0-byte object, bytes=-5");
            assert_eq!(
                reply.header("content-range"),
                Some("bytes */0"),
                "0-byte bytes=-5"
            );
        }
    }

    // Ranges that cross chunk boundaries: (object size, first, last).
    let crossings = [
        (CHUNK + 1, CHUNK - 1, CHUNK),
        (CHUNK + 1, 0, CHUNK),
        (20 << 20, CHUNK - 4, CHUNK + 5),
        (20 << 20, 3 * CHUNK - 1, 5 * CHUNK + 1),
        (20 << 20, (20 << 20) - 5, (20 << 20) - 1),
    ];
    for (size, first, last) in crossings {
        let n = sizes.iter().position(|&s| s == size).unwrap();
        let data = pseudo_random(size, 100 + n as u64);
        let what = format!("bytes={first}-{last} of the {size}-byte object");
        let reply = app.get(
            &format!("/assets/sizes/object-{size}.bin"),
            &[("range", &format!("bytes={first}-{last}"))],
        );
        assert_eq!(reply.status, 206, "{what}: status: {}", reply.text());
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {first}-{last}/{size}").as_str()),
            "{what}: content-range"
        );
        assert!(reply.body == data[first..=last], "{what}: wrong bytes");
    }
    // A multi-range across chunks of the large object.
    let size = 20usize << 20;
    let data = pseudo_random(size, 104);
    let reply = app.get(
        "/assets/sizes/object-20971520.bin",
        &[("range", "bytes=262140-262149,10485750-10485769")],
    );
    assert_eq!(reply.status, 206, "multi-range on 20 MiB: {}", reply.text());
    let parts = parse_byteranges(
        &reply.body,
        reply.header("content-type").unwrap_or(""),
        "multi-range on 20 MiB",
    );
    assert_eq!(parts.len(), 2, "multi-range on 20 MiB: parts");
    assert!(
        parts[0].2 == data[262_140..=262_149],
        "multi-range on 20 MiB: part 1"
    );
    assert!(
        parts[1].2 == data[10_485_750..=10_485_769],
        "multi-range on 20 MiB: part 2"
    );
}

// ---------------------------------------------------------------------------
// 3. Replacement is atomic for concurrent readers.

on_both_targets!(replacement_is_atomic_under_concurrent_readers);

fn replacement_is_atomic_under_concurrent_readers(target: Target) {
    let app = start(target, "assets-atomic", &[]);
    let a = vec![b'a'; 600 * 1024];
    let b = vec![b'b'; 700 * 1024];
    let (etag_a, etag_b) = (etag_of(&a), etag_of(&b));
    assert_eq!(app.put("race/obj.bin", &a, &[]).status, 201, "initial PUT");
    let url = app.url("/assets/race/obj.bin");
    let deadline = Instant::now() + Duration::from_secs(90);
    let readers = 4;
    let reads_each = 40;

    let observations: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|reader| {
                let url = url.clone();
                let (etag_a, etag_b) = (etag_a.clone(), etag_b.clone());
                scope.spawn(move || {
                    let mut problems = Vec::new();
                    let mut reads = 0;
                    for i in 0..reads_each {
                        if Instant::now() > deadline {
                            break;
                        }
                        let reply = Reply::from(client().get(&url).call().expect("GET"));
                        reads += 1;
                        let what = format!("reader {reader}, read {i}");
                        if reply.status != 200 {
                            problems.push(format!(
                                "{what}: status {} {}",
                                reply.status,
                                reply.text()
                            ));
                            continue;
                        }
                        let (len, etag, byte) = match reply.body.first() {
                            Some(b'a') => (a_len(), &etag_a, b'a'),
                            Some(b'b') => (b_len(), &etag_b, b'b'),
                            other => {
                                problems.push(format!("{what}: first byte {other:?}"));
                                continue;
                            }
                        };
                        if reply.body.len() != len || reply.body.iter().any(|&x| x != byte) {
                            problems.push(format!(
                                "{what}: mixed or truncated body: {} bytes starting with {:?}",
                                reply.body.len(),
                                byte as char
                            ));
                        }
                        if reply.header("etag") != Some(etag.as_str()) {
                            problems.push(format!(
                                "{what}: etag {:?} for a body of {:?}",
                                reply.header("etag"),
                                byte as char
                            ));
                        }
                        if reply.header("content-length") != Some(len.to_string().as_str()) {
                            problems.push(format!(
                                "{what}: content-length {:?} for a body of {:?}",
                                reply.header("content-length"),
                                byte as char
                            ));
                        }
                    }
                    problems.push(format!("reads: {reads}"));
                    problems
                })
            })
            .collect();
        for round in 0..10 {
            let (body, etag) = if round % 2 == 0 {
                (&b, &etag_b)
            } else {
                (&a, &etag_a)
            };
            let reply = app.put("race/obj.bin", body, &[]);
            assert_eq!(reply.status, 200, "replacement {round}: {}", reply.text());
            assert_eq!(
                reply.header("etag"),
                Some(etag.as_str()),
                "replacement {round}"
            );
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = 0;
    let mut failures = Vec::new();
    for problems in observations {
        for line in problems {
            if let Some(count) = line.strip_prefix("reads: ") {
                total += count.parse::<usize>().unwrap();
            } else {
                failures.push(line);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "torn or failed reads:\n{}",
        failures.join("\n")
    );
    assert!(total >= readers, "readers made {total} reads");
    // The last replacement wrote A.
    let last = app.get("/assets/race/obj.bin", &[]);
    assert!(last.body == a, "final object is version A");
    assert_eq!(last.header("etag"), Some(etag_a.as_str()), "final etag");
}

fn a_len() -> usize {
    600 * 1024
}

fn b_len() -> usize {
    700 * 1024
}

// ---------------------------------------------------------------------------
// 4. Paths are confined to the store.

on_both_targets!(paths_are_confined);

fn paths_are_confined(target: Target) {
    let app = start(target, "assets-paths", &[]);
    let token = Some(app.admin.as_str());
    let long = "x".repeat(300);
    let too_long = "n".repeat(201);
    let bad = [
        "/admin/assets/..%2fetc".to_string(),
        "/admin/assets/..%2Fetc".to_string(),
        "/admin/assets/a/%2e%2e/b".to_string(),
        "/admin/assets/a/%2E%2E/b".to_string(),
        "/admin/assets/a/../b".to_string(),
        "/admin/assets/a/./b".to_string(),
        "/admin/assets/a/%2e/b".to_string(),
        "/admin/assets/a%2fb".to_string(),
        "/admin/assets/a%2Fb".to_string(),
        "/admin/assets/a%5cb".to_string(),
        "/admin/assets/a%00b".to_string(),
        "/admin/assets/a%01b".to_string(),
        "/admin/assets/a%1fb".to_string(),
        "/admin/assets/a//b".to_string(),
        "/admin/assets/a%zzb".to_string(),
        "/admin/assets/a%2".to_string(),
        format!("/admin/assets/{long}"),
        format!("/admin/assets/{too_long}"),
    ];
    for target_path in &bad {
        let reply = app.raw("PUT", target_path, token, b"hello");
        assert_problem_status(&reply, 400, &format!("PUT {target_path}"));
    }
    for target_path in [
        "/assets/%2e%2e/x",
        "/assets/..%2fx",
        "/assets/a/../x",
        "/assets/a%00b",
    ] {
        let reply = app.raw("GET", target_path, None, b"");
        assert_problem_status(&reply, 400, &format!("GET {target_path}"));
    }
    // Exactly 200 bytes is allowed.
    let longest = "n".repeat(200);
    let reply = app.raw("PUT", &format!("/admin/assets/{longest}"), token, b"ok");
    assert_eq!(reply.status, 201, "200-byte name: {}", reply.text());
    // Nothing but that one object was stored.
    let list = app.admin_call("GET", "/admin/assets");
    assert_eq!(list.status, 200, "listing: {}", list.text());
    let paths: Vec<String> = list.json()["objects"]
        .as_array()
        .expect("objects array")
        .iter()
        .map(|o| o["path"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(paths, vec![longest], "stored objects after the bad PUTs");
}

// ---------------------------------------------------------------------------
// 5. The admin API.

on_both_targets!(admin_put_list_delete_and_limits);

fn admin_put_list_delete_and_limits(target: Target) {
    let app = start(target, "assets-admin", &[]);
    // Authentication and authorisation.
    app.put_as(None, "table/a.txt", b"x", &[])
        .assert_problem(401, "unauthenticated");
    app.call_as(None, "GET", "/admin/assets")
        .assert_problem(401, "unauthenticated");
    app.call_as(None, "DELETE", "/admin/assets/table/a.txt")
        .assert_problem(401, "unauthenticated");
    let created_user = Reply::from(
        client()
            .put(&app.url("/admin/users/ann"))
            .header("authorization", format!("Bearer {}", app.admin))
            .send(json!({"password": "ann-password-1", "roles": ["editor"]}).to_string())
            .unwrap(),
    );
    assert_eq!(
        created_user.status,
        204,
        "create ann: {}",
        created_user.text()
    );
    let ann = session(&app.host, "ann", "ann-password-1");
    app.put_as(Some(&ann), "table/a.txt", b"x", &[])
        .assert_problem(403, "forbidden");
    assert_eq!(
        app.get("/assets/table/a.txt", &[]).status,
        404,
        "nothing stored by 401/403"
    );

    // Create, then replace.
    let v1 = b"first version\n".to_vec();
    let before = now();
    let reply = app.put(
        "table/a.txt",
        &v1,
        &[("content-type", "text/plain; charset=utf-8")],
    );
    let after = now();
    assert_eq!(reply.status, 201, "create: {}", reply.text());
    let info = reply.json();
    assert_eq!(info["path"], "table/a.txt", "create: {info}");
    assert_eq!(info["size"], v1.len(), "create: {info}");
    assert_eq!(info["etag"], etag_of(&v1), "create: {info}");
    assert_eq!(
        info["content_type"], "text/plain; charset=utf-8",
        "create: {info}"
    );
    assert!(info.get("last_modified").is_some(), "create: {info}");
    assert!(info.get("cache_control").is_some(), "create: {info}");
    assert_eq!(
        reply.header("etag"),
        Some(etag_of(&v1).as_str()),
        "create etag header"
    );
    let served = app.get("/assets/table/a.txt", &[]);
    assert_eq!(served.body, v1, "served v1");
    let lm1 = assert_date_between(served.header("last-modified"), before, after, "v1");
    assert_last_modified_field(&info["last_modified"], lm1, "create");

    let v2 = b"second version, longer\n".to_vec();
    let reply = app.put(
        "table/a.txt",
        &v2,
        &[("content-type", "text/plain; charset=utf-8")],
    );
    assert_eq!(reply.status, 200, "replace: {}", reply.text());
    let info2 = reply.json();
    assert_eq!(info2["size"], v2.len(), "replace: {info2}");
    assert_eq!(info2["etag"], etag_of(&v2), "replace: {info2}");
    assert_eq!(app.get("/assets/table/a.txt", &[]).body, v2, "served v2");

    // The same bytes again: 200, and the stored object (its date) is kept.
    let kept = app.get("/assets/table/a.txt", &[]);
    std::thread::sleep(Duration::from_millis(1100));
    let reply = app.put(
        "table/a.txt",
        &v2,
        &[("content-type", "text/plain; charset=utf-8")],
    );
    assert_eq!(reply.status, 200, "identical re-upload: {}", reply.text());
    let info3 = reply.json();
    assert_eq!(info3["etag"], info2["etag"], "identical re-upload etag");
    assert_eq!(
        info3["last_modified"], info2["last_modified"],
        "identical re-upload date"
    );
    let again = app.get("/assets/table/a.txt", &[]);
    assert_eq!(
        again.header("etag"),
        kept.header("etag"),
        "identical re-upload: served etag"
    );
    assert_eq!(
        again.header("last-modified"),
        kept.header("last-modified"),
        "identical re-upload: served Last-Modified"
    );

    // Preconditions on uploads.
    let reply = app.put("table/a.txt", b"v3", &[("if-none-match", "*")]);
    assert_problem_status(&reply, 412, "If-None-Match: * on an existing object");
    let reply = app.put("table/a.txt", b"v3", &[("if-match", "\"0000\"")]);
    assert_problem_status(&reply, 412, "If-Match other etag");
    assert_eq!(
        app.get("/assets/table/a.txt", &[]).body,
        v2,
        "412s stored nothing"
    );
    let current = etag_of(&v2);
    let reply = app.put("table/a.txt", b"v3", &[("if-match", &current)]);
    assert_eq!(reply.status, 200, "If-Match current etag: {}", reply.text());
    let reply = app.put("table/new.txt", b"new", &[("if-none-match", "*")]);
    assert_eq!(
        reply.status,
        201,
        "If-None-Match: * on a new path: {}",
        reply.text()
    );
    let reply = app.put("table/other.txt", b"new", &[("if-match", "*")]);
    assert_problem_status(&reply, 412, "If-Match: * on a missing object");

    // Listing, sorted by path, with a prefix.
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("table/a.txt", b"v3".to_vec()),
        ("table/new.txt", b"new".to_vec()),
        ("table/c/d.bin", pseudo_random(3000, 9)),
        ("table/b.css", b"body { color: red }".to_vec()),
        ("tablex.txt", b"outside the prefix".to_vec()),
        ("other/x.txt", b"elsewhere".to_vec()),
    ];
    for (path, body) in &objects[2..] {
        app.upload(path, body, &[]);
    }
    let listing = app.admin_call("GET", "/admin/assets?prefix=table/");
    assert_eq!(listing.status, 200, "listing: {}", listing.text());
    let listed = listing.json();
    let mut expected: Vec<&(&str, Vec<u8>)> = objects
        .iter()
        .filter(|(p, _)| p.starts_with("table/"))
        .collect();
    expected.sort_by_key(|(p, _)| *p);
    let got = listed["objects"].as_array().expect("objects array");
    assert_eq!(
        got.iter().map(|o| o["path"].clone()).collect::<Vec<_>>(),
        expected.iter().map(|(p, _)| json!(p)).collect::<Vec<_>>(),
        "listed paths: {listed}"
    );
    for (object, (path, body)) in got.iter().zip(&expected) {
        assert_eq!(object["size"], body.len(), "{path} size: {object}");
        assert_eq!(object["etag"], etag_of(body), "{path} etag: {object}");
        assert!(
            object["content_type"].is_string(),
            "{path} content_type: {object}"
        );
        assert!(
            object.get("last_modified").is_some(),
            "{path} last_modified: {object}"
        );
        assert!(
            object.get("cache_control").is_some(),
            "{path} cache_control: {object}"
        );
    }
    let everything = app.admin_call("GET", "/admin/assets").json();
    let mut all: Vec<&str> = objects.iter().map(|(p, _)| *p).collect();
    all.sort();
    assert_eq!(
        everything["objects"]
            .as_array()
            .expect("objects array")
            .iter()
            .map(|o| o["path"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>(),
        all,
        "unprefixed listing: {everything}"
    );

    // Delete.
    let css = b"body { color: red }".to_vec();
    let reply = app.admin_call("DELETE", "/admin/assets/table/b.css");
    assert_eq!(reply.status, 200, "delete: {}", reply.text());
    let removed = reply.json();
    assert_eq!(removed["path"], "table/b.css", "delete: {removed}");
    assert_eq!(removed["etag"], etag_of(&css), "delete: {removed}");
    assert_eq!(removed["size"], css.len(), "delete: {removed}");
    let gone = app.get("/assets/table/b.css", &[]);
    assert_problem_status(&gone, 404, "GET after delete");
    let again = app.admin_call("DELETE", "/admin/assets/table/b.css");
    assert_problem_status(&again, 404, "second delete");
    let listed = app.admin_call("GET", "/admin/assets?prefix=table/b").json();
    assert_eq!(
        listed["objects"],
        json!([]),
        "listing after delete: {listed}"
    );
    drop(app);

    // The size limit.
    let app = start(
        target,
        "assets-limit",
        &[("assets_max_object_bytes", "1000")],
    );
    let reply = app.put("limit/exact.bin", &[7u8; 1000], &[]);
    assert_eq!(reply.status, 201, "exactly the limit: {}", reply.text());
    let reply = app.put("limit/over.bin", &[7u8; 1001], &[]);
    assert_problem_status(&reply, 413, "one byte over the limit");
    let reply = app.raw_announced(
        "PUT",
        "/admin/assets/limit/far-over.bin",
        Some(&app.admin),
        200_000,
        &[7u8; 100],
    );
    assert_problem_status(&reply, 413, "far over the limit");
    assert_problem_status(
        &app.get("/assets/limit/far-over.bin", &[]),
        404,
        "far over the limit stored nothing",
    );
    assert_problem_status(
        &app.get("/assets/limit/over.bin", &[]),
        404,
        "413 stored nothing",
    );
}

/// The JSON `last_modified` is the upload time: Unix seconds or the same IMF-fixdate.
fn assert_last_modified_field(value: &Value, secs: u64, what: &str) {
    match value {
        Value::Number(n) => assert_eq!(n.as_u64(), Some(secs), "{what}: last_modified {value}"),
        Value::String(s) => assert_eq!(s, &imf_fixdate(secs), "{what}: last_modified {value}"),
        other => panic!("{what}: last_modified is {other}"),
    }
}

// ---------------------------------------------------------------------------
// 6. Cache-Control and Content-Type.

on_both_targets!(cache_control_and_content_type_defaults);

/// (path, upload headers, expected Cache-Control, expected Content-Type or its essence)
type CacheCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
);

fn cache_control_and_content_type_defaults(target: Target) {
    let rules = r#"{"cc/rules/": "public, max-age=7", "cc/rules/deep/": "private, max-age=9"}"#;
    let app = start(target, "assets-cc", &[("assets_cache_control", rules)]);
    let cases: Vec<CacheCase> = vec![
        (
            "cc/app.3f2a9c1b.js",
            vec![],
            IMMUTABLE_POLICY,
            "text/javascript",
        ),
        (
            "cc/main-BXy2Kd8f.js",
            vec![],
            IMMUTABLE_POLICY,
            "text/javascript",
        ),
        ("cc/index.html", vec![], "no-cache", "text/html"),
        ("cc/plain.txt", vec![], DEFAULT_POLICY, "text/plain"),
        (
            "cc/site.css",
            vec![],
            DEFAULT_POLICY,
            "text/css; charset=utf-8",
        ),
        (
            "cc/own.txt",
            vec![("cache-control", "public, max-age=5")],
            "public, max-age=5",
            "text/plain",
        ),
        (
            "cc/own.3f2a9c1b.js",
            vec![("cache-control", "no-store")],
            "no-store",
            "text/javascript",
        ),
        (
            "cc/typed.css",
            vec![("content-type", "application/x-custom")],
            DEFAULT_POLICY,
            "application/x-custom",
        ),
        (
            "cc/rules/page.txt",
            vec![],
            "public, max-age=7",
            "text/plain",
        ),
        (
            "cc/rules/index.html",
            vec![],
            "public, max-age=7",
            "text/html",
        ),
        (
            "cc/rules/deep/x.txt",
            vec![],
            "private, max-age=9",
            "text/plain",
        ),
        (
            "cc/rules/own.txt",
            vec![("cache-control", "no-store")],
            "no-store",
            "text/plain",
        ),
    ];
    for (path, headers, _, _) in &cases {
        let body = format!("content of {path}\n");
        let info = app.upload(path, body.as_bytes(), headers);
        if let Some((_, own)) = headers.iter().find(|(n, _)| *n == "cache-control") {
            assert_eq!(
                info["cache_control"], *own,
                "{path}: stored cache_control: {info}"
            );
        }
    }
    for (path, _, policy, content_type) in &cases {
        let reply = app.get(&format!("/assets/{path}"), &[]);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(
            reply.header("cache-control"),
            Some(*policy),
            "{path}: cache-control"
        );
        if content_type.contains(';') || content_type.starts_with("application/") {
            assert_eq!(
                reply.header("content-type"),
                Some(*content_type),
                "{path}: content-type"
            );
        } else {
            assert_eq!(
                essence(reply.header("content-type")),
                *content_type,
                "{path}: content-type {:?}",
                reply.header("content-type")
            );
        }
        assert_eq!(reply.text(), format!("content of {path}\n"), "{path}: body");
        // A 304 carries the same policy.
        let etag = reply.header("etag").unwrap_or("").to_string();
        let not_modified = app.get(&format!("/assets/{path}"), &[("if-none-match", &etag)]);
        assert_eq!(not_modified.status, 304, "{path}: revalidation");
        assert_eq!(
            not_modified.header("cache-control"),
            Some(*policy),
            "{path}: cache-control on 304"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. Precompressed variants.

on_both_targets!(precompressed_variants_are_negotiated);

fn precompressed_variants_are_negotiated(target: Target) {
    let app = start(target, "assets-variants", &[]);
    let identity = b"console.log('identity representation of app.js');\n".to_vec();
    let br = pseudo_random(37, 21);
    let gz = pseudo_random(41, 22);
    app.upload("v/app.js", &identity, &[]);
    app.upload("v/app.js.br", &br, &[]);
    app.upload("v/app.js.gz", &gz, &[]);
    let base_type = app
        .get("/assets/v/app.js", &[("accept-encoding", "identity")])
        .header("content-type")
        .map(str::to_string);
    assert_eq!(
        essence(base_type.as_deref()),
        "text/javascript",
        "base content-type"
    );

    // (name, Accept-Encoding or none, expected coding or none for identity)
    let cases: Vec<(&str, Option<&str>, Option<&str>)> = vec![
        ("br and gzip", Some("br, gzip"), Some("br")),
        ("gzip and br", Some("gzip, br"), Some("br")),
        ("gzip only", Some("gzip"), Some("gzip")),
        ("br only", Some("br"), Some("br")),
        (
            "br preferred by q",
            Some("gzip;q=0.5, br;q=0.8"),
            Some("br"),
        ),
        ("gzip preferred by q", Some("br;q=0.5, gzip"), Some("gzip")),
        ("wildcard", Some("*"), Some("br")),
        ("br refused", Some("br;q=0, gzip"), Some("gzip")),
        ("both refused", Some("br;q=0, gzip;q=0"), None),
        ("identity", Some("identity"), None),
        ("unknown coding", Some("zstd"), None),
        ("no Accept-Encoding", None, None),
    ];
    for (name, accept, coding) in &cases {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept-encoding", *a)).collect();
        let reply = app.get("/assets/v/app.js", &headers);
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        let bytes: &[u8] = match coding {
            Some("br") => &br,
            Some("gzip") => &gz,
            _ => &identity,
        };
        assert_eq!(
            reply.header("content-encoding"),
            *coding,
            "{name}: content-encoding"
        );
        assert!(
            reply.body == bytes,
            "{name}: body is not the {coding:?} representation"
        );
        assert_eq!(
            reply.header("content-length"),
            Some(bytes.len().to_string().as_str()),
            "{name}: content-length"
        );
        assert_eq!(
            reply.header("etag"),
            Some(etag_of(bytes).as_str()),
            "{name}: etag"
        );
        assert_eq!(
            reply.header("content-type").map(str::to_string),
            base_type,
            "{name}: content-type is the base's"
        );
        assert!(
            vary_has(&reply, "accept-encoding"),
            "{name}: Vary {:?}",
            header_all(&reply, "vary")
        );
    }

    // Validation and ranges apply to the selected representation.
    let etag_br = etag_of(&br);
    let reply = app.get(
        "/assets/v/app.js",
        &[("accept-encoding", "br"), ("if-none-match", &etag_br)],
    );
    assert_eq!(reply.status, 304, "br revalidated with its own etag");
    assert!(vary_has(&reply, "accept-encoding"), "Vary on the 304");
    let reply = app.get(
        "/assets/v/app.js",
        &[("accept-encoding", "gzip"), ("if-none-match", &etag_br)],
    );
    assert_eq!(reply.status, 200, "gzip is not matched by the br etag");
    assert!(reply.body == gz, "gzip body after a non-matching etag");
    let reply = app.get(
        "/assets/v/app.js",
        &[("accept-encoding", "br"), ("range", "bytes=0-9")],
    );
    assert_eq!(reply.status, 206, "range of the br variant");
    assert_eq!(
        reply.header("content-encoding"),
        Some("br"),
        "range of the br variant"
    );
    assert_eq!(
        reply.header("content-range"),
        Some(format!("bytes 0-9/{}", br.len()).as_str()),
        "range of the br variant"
    );
    assert!(reply.body == br[..10], "range of the br variant: bytes");
    let head = app.head("/assets/v/app.js", &[("accept-encoding", "gzip")]);
    assert_eq!(head.header("content-encoding"), Some("gzip"), "HEAD gzip");
    assert_eq!(
        head.header("etag"),
        Some(etag_of(&gz).as_str()),
        "HEAD gzip etag"
    );
    assert!(head.body.is_empty(), "HEAD gzip body");
}

// ---------------------------------------------------------------------------
// 8. The site root, 404 pages and directories.

on_both_targets!(site_root_404_pages_and_directories);

fn site_root_404_pages_and_directories(target: Target) {
    let app = start(target, "assets-site", &[]);
    let index = b"<!doctype html><title>home</title>\n".to_vec();
    let about = b"<!doctype html><title>about</title>\n".to_vec();
    let missing = b"<!doctype html><title>not here</title>\n".to_vec();
    let docs = b"<!doctype html><title>docs</title>\n".to_vec();
    app.upload("site/index.html", &index, &[]);
    app.upload("site/about.html", &about, &[]);
    app.upload("site/404.html", &missing, &[]);
    app.upload("docs/index.html", &docs, &[]);

    let home = app.get("/", &[]);
    assert_eq!(home.status, 200, "/: {}", home.text());
    assert_eq!(home.body, index, "/ body");
    assert_eq!(
        essence(home.header("content-type")),
        "text/html",
        "/ content-type"
    );
    assert_eq!(
        home.header("etag"),
        Some(etag_of(&index).as_str()),
        "/ etag"
    );
    assert_eq!(
        home.header("cache-control"),
        Some("no-cache"),
        "/ cache-control"
    );
    let home_head = app.head("/", &[]);
    assert_eq!(home_head.status, 200, "HEAD /");
    assert!(home_head.body.is_empty(), "HEAD / body");
    assert_eq!(
        home_head.header("content-length"),
        Some(index.len().to_string().as_str()),
        "HEAD / content-length"
    );
    let revalidated = app.get("/", &[("if-none-match", &etag_of(&index))]);
    assert_eq!(revalidated.status, 304, "/ revalidated");

    let page = app.get("/about.html", &[]);
    assert_eq!(page.status, 200, "/about.html: {}", page.text());
    assert_eq!(page.body, about, "/about.html body");

    let nope = app.get("/nope", &[]);
    assert_eq!(nope.status, 404, "/nope: {}", nope.text());
    assert_eq!(nope.body, missing, "/nope body is site/404.html");
    assert_eq!(
        essence(nope.header("content-type")),
        "text/html",
        "/nope content-type"
    );

    // API paths are never served from the site.
    assert_problem_status(&app.get("/api/nope", &[]), 404, "/api/nope");

    // /assets has no 404.html at its root yet.
    let problem = assert_problem_status(
        &app.get("/assets/missing.txt", &[]),
        404,
        "/assets/missing.txt",
    );
    // README: every problem carries `instance`, the request path.
    assert_eq!(
        problem["instance"], "/assets/missing.txt",
        "/assets/missing.txt: problem instance: {problem}"
    );
    assert_problem_status(
        &app.get("/assets/site/none.html", &[]),
        404,
        "/assets/site/none.html",
    );

    // Directories.
    let dir = app.get("/assets/docs/", &[]);
    assert_eq!(dir.status, 200, "/assets/docs/: {}", dir.text());
    assert_eq!(dir.body, docs, "/assets/docs/ body");
    assert_eq!(
        essence(dir.header("content-type")),
        "text/html",
        "/assets/docs/ content-type"
    );
    let no_redirects = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let redirect = Reply::from(no_redirects.get(&app.url("/assets/docs")).call().unwrap());
    assert_eq!(redirect.status, 301, "/assets/docs: {}", redirect.text());
    assert_eq!(
        redirect.header("location"),
        Some("docs/"),
        "/assets/docs location"
    );
    // The site mount has directories too.
    app.upload("site/guide/index.html", &docs, &[]);
    assert_eq!(app.get("/guide/", &[]).body, docs, "/guide/ body");
    let redirect = Reply::from(no_redirects.get(&app.url("/guide")).call().unwrap());
    assert_eq!(redirect.status, 301, "/guide: {}", redirect.text());
    assert_eq!(
        redirect.header("location"),
        Some("guide/"),
        "/guide location"
    );

    // With a 404.html at the root of /assets, it is the not-found page there.
    let assets_missing = b"<!doctype html><title>no such asset</title>\n".to_vec();
    app.upload("404.html", &assets_missing, &[]);
    let reply = app.get("/assets/missing.txt", &[]);
    assert_eq!(reply.status, 404, "/assets/missing.txt with 404.html");
    assert_eq!(
        reply.body, assets_missing,
        "/assets/missing.txt body is 404.html"
    );
    assert_eq!(
        essence(reply.header("content-type")),
        "text/html",
        "404.html content-type"
    );
}

#[test]
fn imf_fixdate_helper_matches_rfc_9110_examples() {
    assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(imf_fixdate(4_102_444_800), FUTURE);
}

// ---------------------------------------------------------------------------
// README: every problem names the request path in `instance`.

on_both_targets!(asset_problems_name_the_request_path);

fn asset_problems_name_the_request_path(target: Target) {
    let app = start(
        target,
        "assets-instance",
        &[("assets_max_object_bytes", "1000")],
    );
    app.upload("p/data.bin", &pseudo_random(100, 3), &[]);
    let cases = [
        (
            "/assets/p/data.bin",
            app.get("/assets/p/data.bin", &[("range", "bytes=500-")]),
            416,
        ),
        (
            "/assets/p/data.bin",
            app.get("/assets/p/data.bin", &[("if-match", "\"0000\"")]),
            412,
        ),
        (
            "/assets/p/missing.bin",
            app.get("/assets/p/missing.bin", &[]),
            404,
        ),
        (
            "/admin/assets/p/missing.bin",
            app.admin_call("DELETE", "/admin/assets/p/missing.bin"),
            404,
        ),
        (
            "/admin/assets/p/big.bin",
            app.put("p/big.bin", &[1u8; 1001], &[]),
            413,
        ),
        (
            "/admin/assets/p/data.bin",
            app.put("p/data.bin", b"x", &[("if-match", "\"0000\"")]),
            412,
        ),
        (
            "/admin/assets/a//b",
            app.raw("PUT", "/admin/assets/a//b", Some(&app.admin), b"x"),
            400,
        ),
    ];
    let mut missing = Vec::new();
    for (path, reply, status) in &cases {
        let what = format!("{status} at {path}");
        let problem = assert_problem_status(reply, *status, &what);
        if problem["instance"] != *path {
            missing.push(format!("{what}: instance: {problem}"));
        }
    }
    assert!(
        missing.is_empty(),
        "problems without the request path as instance:\n{}",
        missing.join("\n")
    );
}

/// Runs `portico assets sync` against the app; returns (success, stdout, stderr).
fn sync(app: &App, dir: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["assets", "sync"])
        .arg(dir)
        .args(["--prefix", "synced", "--url", &app.host.url])
        .args(extra)
        .env("PORTICO_TOKEN", &app.admin)
        .output()
        .expect("run portico assets sync");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

on_both_targets!(sync_uploads_only_changes_and_deletes_on_request);
fn sync_uploads_only_changes_and_deletes_on_request(target: Target) {
    let app = start(target, "assets-sync", &[]);
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    std::fs::create_dir_all(root.join("css")).unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("index.html", b"<h1>synced</h1>"),
        ("css/site.css", b"body { margin: 0 }"),
        ("blob.bin", &[7u8; 300_000]),
    ];
    for (path, bytes) in files {
        std::fs::write(root.join(path), bytes).unwrap();
    }

    let (ok, _, stderr) = sync(&app, root, &[]);
    assert!(ok, "first sync failed: {stderr}");
    assert!(stderr.contains("uploaded 3"), "first sync: {stderr}");
    for (path, bytes) in files {
        let reply = get(&app.url(&format!("/assets/synced/{path}")));
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body, bytes, "{path}");
        assert_eq!(
            reply.header("etag"),
            Some(etag_of(bytes).as_str()),
            "{path}"
        );
    }
    let before = app.admin_call("GET", "/admin/assets?prefix=synced/").json();

    // Nothing changed: nothing is uploaded, and the objects keep their
    // validators (a re-upload would move Last-Modified).
    std::thread::sleep(Duration::from_millis(1100));
    let (ok, _, stderr) = sync(&app, root, &[]);
    assert!(ok, "second sync failed: {stderr}");
    assert!(
        stderr.contains("uploaded 0") && stderr.contains("unchanged 3"),
        "second sync: {stderr}"
    );
    let after = app.admin_call("GET", "/admin/assets?prefix=synced/").json();
    assert_eq!(before, after, "a no-op sync changed the store");

    // One file changed, one removed: only the change is uploaded, and the
    // removal only takes effect with --delete.
    std::fs::write(root.join("css/site.css"), b"body { margin: 1px }").unwrap();
    std::fs::remove_file(root.join("blob.bin")).unwrap();
    let (ok, _, stderr) = sync(&app, root, &[]);
    assert!(ok, "third sync failed: {stderr}");
    assert!(stderr.contains("uploaded 1"), "third sync: {stderr}");
    assert_eq!(get(&app.url("/assets/synced/blob.bin")).status, 200);
    assert_eq!(
        get(&app.url("/assets/synced/css/site.css")).body,
        b"body { margin: 1px }"
    );
    let (ok, _, stderr) = sync(&app, root, &["--delete"]);
    assert!(ok, "delete sync failed: {stderr}");
    assert!(
        stderr.contains("uploaded 0") && stderr.contains("deleted 1"),
        "delete sync: {stderr}"
    );
    get(&app.url("/assets/synced/blob.bin")).assert_problem(404, "not-found");
    let listing = app.admin_call("GET", "/admin/assets?prefix=synced/").json();
    let paths: Vec<&str> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["synced/css/site.css", "synced/index.html"]);
}

on_both_targets!(site_root_off_serves_no_site);
fn site_root_off_serves_no_site(target: Target) {
    let app = start(target, "assets-site-off", &[("assets_site_root", "off")]);
    app.upload("site/index.html", b"<p>home</p>", &[]);
    // The object exists and is reachable under /assets/, but `/` is no page.
    assert_eq!(app.get("/assets/site/index.html", &[]).body, b"<p>home</p>");
    app.get("/", &[]).assert_problem(404, "not-found");
}

// ---------------------------------------------------------------------------
// Streaming: bodies move a chunk at a time in both directions.

/// Peak resident memory of the host so far, in MiB (`VmHWM`).
fn peak_rss_mib(host: &Host) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

/// A body produced piece by piece, so the client never holds it whole and
/// sends it chunked (no `Content-Length`).
struct Generated {
    data: std::sync::Arc<Vec<u8>>,
    at: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.at).min(64 * 1024);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The SHA-256 of a response body read to its end, and its length.
fn digest_of_download(url: &str, headers: &[(&str, &str)]) -> (u16, u64, String) {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.call().expect("GET");
    let status = response.status().as_u16();
    let mut reader = response.into_body().into_reader();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buffer).expect("reading the body");
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (status, total, hex)
}

on_both_targets!(large_objects_stream_in_and_out_in_bounded_memory);

/// A 128 MiB object sent chunked (no `Content-Length`), then downloaded by
/// six clients at once, whole and as a two-part multipart range with parts
/// of several MiB starting and ending inside chunks: every byte matches
/// (by SHA-256), and the host's peak memory grows by less than one copy of
/// the object. Buffering bodies whole grows it by several copies.
fn large_objects_stream_in_and_out_in_bounded_memory(target: Target) {
    let app = start(target, "assets-stream", &[]);
    let size = 128usize << 20;
    let data = std::sync::Arc::new(pseudo_random(size, 7));
    let digest = sha256_hex(&data);
    let before = peak_rss_mib(&app.host);

    let reply = Reply::from(
        client()
            .put(&app.url("/admin/assets/big/object.bin"))
            .header("authorization", format!("Bearer {}", app.admin))
            .send(ureq::SendBody::from_owned_reader(Generated {
                data: data.clone(),
                at: 0,
            }))
            .expect("PUT"),
    );
    assert_eq!(reply.status, 201, "chunked upload: {}", reply.text());
    assert_eq!(reply.json()["size"], size, "{}", reply.text());
    assert_eq!(reply.json()["etag"], format!("\"{digest}\""));

    let url = app.url("/assets/big/object.bin");
    let (first, last) = (CHUNK * 3 + 17, CHUNK * 19 + 5);
    let (first2, last2) = (size - 5 * CHUNK - 3, size - 2);
    let ranges = format!("bytes={first}-{last},{first2}-{last2}");
    std::thread::scope(|scope| {
        let downloads: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| digest_of_download(&url, &[])))
            .collect();
        let multipart = scope.spawn(|| {
            Reply::from(
                client()
                    .get(&url)
                    .header("range", &ranges)
                    .call()
                    .expect("GET"),
            )
        });
        for download in downloads {
            let (status, length, got) = download.join().unwrap();
            assert_eq!((status, length), (200, size as u64), "whole download");
            assert_eq!(got, digest, "whole download: bytes differ");
        }
        let reply = multipart.join().unwrap();
        assert_eq!(reply.status, 206, "multipart: {}", reply.text());
        let parts = parse_byteranges(
            &reply.body,
            reply.header("content-type").unwrap_or(""),
            "streamed multipart",
        );
        assert_eq!(parts.len(), 2, "streamed multipart: parts");
        assert!(parts[0].2 == data[first..=last], "part 1 bytes");
        assert!(parts[1].2 == data[first2..=last2], "part 2 bytes");
        assert_eq!(
            reply.header("content-length"),
            Some(reply.body.len().to_string().as_str()),
            "multipart Content-Length"
        );
    });
    let grown = peak_rss_mib(&app.host).saturating_sub(before);
    assert!(
        grown < (size >> 20) as u64,
        "a {} MiB upload and 7 concurrent downloads grew the host's peak RSS by {grown} MiB",
        size >> 20
    );
}

/// A client that reads `url`'s response slowly: a small receive window, a
/// first read of `first` bytes, then the rest when asked.
struct SlowReader {
    stream: std::net::TcpStream,
    received: Vec<u8>,
}

impl SlowReader {
    fn start(app: &App, path: &str, first: usize) -> SlowReader {
        use socket2::{Domain, Socket, Type};
        let address = app.host.url.trim_start_matches("http://").to_string();
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        let target: std::net::SocketAddr = address.parse().unwrap();
        socket.connect(&target.into()).expect("connect");
        let mut stream: std::net::TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reader = SlowReader {
            stream,
            received: Vec::new(),
        };
        let mut buffer = vec![0u8; 8 * 1024];
        while reader.received.len() < first {
            let n = reader.stream.read(&mut buffer).expect("first bytes");
            assert!(n > 0, "closed after {} bytes", reader.received.len());
            reader.received.extend_from_slice(&buffer[..n]);
        }
        reader
    }

    /// Reads to the end (close, or an error such as a reset): the head and
    /// the body bytes that arrived.
    fn finish(mut self) -> (String, Vec<u8>) {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = self.stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buffer[..n]);
        }
        let end = self
            .received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&self.received[..end]).to_lowercase();
        (head, self.received[end + 4..].to_vec())
    }
}

on_both_targets!(a_download_finishes_with_the_version_it_started);

/// A slow download of a 32 MiB object is overtaken by a replacement and
/// then a delete: it still receives the version it started, whole, while
/// new requests see the change at once. With no grace period
/// (`assets_replaced_grace = 0`) the same download is cut, never completed
/// with another version's bytes, and the replaced chunks are deleted.
fn a_download_finishes_with_the_version_it_started(target: Target) {
    let size = 32usize << 20;
    let a = pseudo_random(size, 11);
    let b = pseudo_random(size / 2, 12);
    for grace in ["900", "0"] {
        let app = start(target, "assets-grace", &[("assets_replaced_grace", grace)]);
        app.upload("v/object.bin", &a, &[]);
        let slow = SlowReader::start(&app, "/assets/v/object.bin", 512 * 1024);
        app.upload("v/object.bin", &b, &[]);
        let now = app.get("/assets/v/object.bin", &[]);
        assert!(
            now.body == b,
            "grace {grace}: a new request gets the new version"
        );
        let (head, body) = slow.finish();
        assert!(head.starts_with("http/1.1 200"), "grace {grace}: {head}");
        assert!(
            head.contains(&format!("content-length: {size}")),
            "grace {grace}: {head}"
        );
        assert!(
            body.len() <= size && body[..] == a[..body.len()],
            "grace {grace}: the download mixed versions ({} bytes)",
            body.len()
        );
        if grace == "900" {
            assert_eq!(body.len(), size, "the started version arrives whole");
            // Deleted while another download of B is under way: it too
            // finishes, and the object is gone for everyone else.
            let slow = SlowReader::start(&app, "/assets/v/object.bin", 512 * 1024);
            assert_eq!(
                app.admin_call("DELETE", "/admin/assets/v/object.bin")
                    .status,
                200
            );
            assert_problem_status(&app.get("/assets/v/object.bin", &[]), 404, "deleted");
            let (_, body) = slow.finish();
            assert!(body == b, "a download overtaken by a delete arrives whole");
        } else {
            assert!(
                body.len() < size,
                "with no grace period the old chunks are deleted at once, so the download is cut"
            );
            let chunks = crate::harness::raw_keys(target, app._data.path(), "assets/c/");
            assert_eq!(
                chunks,
                (size / 2).div_ceil(CHUNK),
                "only the current version's chunks are left"
            );
        }
    }
}

on_both_targets!(uploads_that_overrun_or_fall_short_store_nothing);

/// A chunked upload (no `Content-Length`) is stopped at the size limit by
/// the bytes actually sent, and one that ends before its `Content-Length`
/// is refused: neither stores an object or leaves a chunk behind, and the
/// object they would have replaced is untouched.
fn uploads_that_overrun_or_fall_short_store_nothing(target: Target) {
    let limit = 3 * CHUNK + 100;
    let app = start(
        target,
        "assets-overrun",
        &[("assets_max_object_bytes", &limit.to_string())],
    );
    let kept = pseudo_random(CHUNK + 3, 21);
    app.upload("o/kept.bin", &kept, &[]);

    let over = std::sync::Arc::new(pseudo_random(limit + 1, 22));
    let reply = Reply::from(
        client()
            .put(&app.url("/admin/assets/o/kept.bin"))
            .header("authorization", format!("Bearer {}", app.admin))
            .send(ureq::SendBody::from_owned_reader(Generated {
                data: over,
                at: 0,
            }))
            .expect("PUT"),
    );
    assert_problem_status(&reply, 413, "a chunked upload one byte over the limit");

    // Announces 700 KiB (within the limit), sends 600 KiB, then ends its
    // side of the connection.
    let address = app.host.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "PUT /admin/assets/o/short.bin HTTP/1.1\r\nhost: {address}\r\n\
         authorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        app.admin,
        700 * 1024
    )
    .unwrap();
    stream.write_all(&pseudo_random(600 * 1024, 23)).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a body shorter than its Content-Length: {answer}"
    );

    let still = app.get("/assets/o/kept.bin", &[]);
    assert!(still.body == kept, "the stored object is untouched");
    assert_problem_status(&app.get("/assets/o/short.bin", &[]), 404, "short upload");
    // Bounded: the host finishes the abandoned upload's request on its own.
    let mut chunks = usize::MAX;
    for _ in 0..50 {
        chunks = crate::harness::raw_keys(target, app._data.path(), "assets/c/");
        if chunks == kept.len().div_ceil(CHUNK) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        chunks,
        kept.len().div_ceil(CHUNK),
        "only the kept object's chunks are stored"
    );
}
