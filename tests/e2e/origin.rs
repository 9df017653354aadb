//! A scripted HTTP/1.1 origin server for the upstream tests, on std::net
//! only: one listener on 127.0.0.1:0, a thread per connection (at most
//! [`MAX_CONNECTIONS`] at a time), keep-alive with an idle timeout, request
//! bodies by `Content-Length` or chunked. Each test gives it a handler that
//! scripts the answer (status, headers, body, a delay, or a dropped
//! connection); every request is recorded (method, target, headers, body)
//! and counted per path. Shut down when dropped.
//!
//! Every loop is bounded: by a deadline (reads poll in [`POLL`] steps), by a
//! byte limit, or by a count.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections served at once; more are answered `503` and closed.
const MAX_CONNECTIONS: usize = 64;
/// Requests served on one keep-alive connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// The longest request head (request line + fields).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The longest request body.
const MAX_BODY_BYTES: usize = 32 << 20;
/// How long a connection may sit idle between requests, and how long one
/// request may take to arrive.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The granularity at which blocking waits look at the stop flag.
const POLL: Duration = Duration::from_millis(10);
/// The longest scripted delay honoured.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// The longest an origin lives (a backstop for the accept loop).
const MAX_LIFETIME: Duration = Duration::from_secs(900);

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct OriginRequest {
    pub method: String,
    /// Path and query, exactly as on the request line.
    pub target: String,
    /// Field names in lower case, values trimmed, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// 1-based: this request is the `nth` the origin received for its path
    /// (without the query), any method.
    pub nth: usize,
    /// When its head had arrived.
    pub arrived: Instant,
}

impl OriginRequest {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The first value of a field (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field joined with ", " (RFC 9110 §5.3), if any.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// What the handler wants the origin to do.
#[derive(Clone, Debug)]
pub struct OriginResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waited before answering (or before dropping the connection).
    pub delay: Duration,
    /// Close the connection without answering (a failed origin).
    pub drop_connection: bool,
    /// Send no `Date` (otherwise one is added when the script sets none).
    pub omit_date: bool,
}

impl OriginResponse {
    pub fn new(status: u16) -> OriginResponse {
        OriginResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            drop_connection: false,
            omit_date: false,
        }
    }

    /// `200` with a body.
    pub fn ok(body: impl Into<Vec<u8>>) -> OriginResponse {
        OriginResponse::new(200).body(body)
    }

    /// Closes the connection without a response.
    pub fn dropped() -> OriginResponse {
        OriginResponse {
            drop_connection: true,
            ..OriginResponse::new(0)
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> OriginResponse {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> OriginResponse {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, delay: Duration) -> OriginResponse {
        self.delay = delay;
        self
    }

    /// Answers without a `Date` field (an origin without a clock).
    pub fn without_date(mut self) -> OriginResponse {
        self.omit_date = true;
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

type Handler = dyn Fn(&OriginRequest) -> OriginResponse + Send + Sync + 'static;

struct Shared {
    handler: Box<Handler>,
    stop: AtomicBool,
    active: AtomicUsize,
    log: Mutex<Vec<OriginRequest>>,
    per_path: Mutex<HashMap<String, usize>>,
    /// Paths of the requests whose head has arrived, before their bodies.
    heads: Mutex<Vec<String>>,
}

/// A running origin; stopped when dropped.
pub struct Origin {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Origin {
    pub fn start(
        handler: impl Fn(&OriginRequest) -> OriginResponse + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the origin");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            per_path: Mutex::new(HashMap::new()),
            heads: Mutex::new(Vec::new()),
        });
        let state = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, state));
        Origin {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// `127.0.0.1:<port>`
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Requests to `path` whose head has arrived, their bodies complete or
    /// not (a body still streaming in counts).
    pub fn heads_seen(&self, path: &str) -> usize {
        let heads = self.shared.heads.lock().unwrap();
        heads.iter().filter(|p| p.as_str() == path).count()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<OriginRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The requests received for `path` (without the query), any method.
    pub fn requests_to(&self, path: &str) -> Vec<OriginRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }

    /// The number of requests received for `path` (without the query).
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .per_path
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The number of requests received with exactly this path and query.
    pub fn count_target(&self, target: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.target == target)
            .count()
    }

    /// The number of `method` requests received for `path`.
    pub fn count_method(&self, method: &str, path: &str) -> usize {
        self.requests_to(path)
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// The last request received for `path`.
    pub fn last(&self, path: &str) -> OriginRequest {
        self.requests_to(path)
            .pop()
            .unwrap_or_else(|| panic!("the origin received no request for {path}"))
    }

    /// Waits (at most `limit`) until `path` was requested `n` times; returns
    /// the count it saw last.
    pub fn wait_for_count(&self, path: &str, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.count(path);
            if seen >= n || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Connection threads see the flag within POLL; wait for them a little.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let born = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) && born.elapsed() < MAX_LIFETIME {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                if shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    shared.active.fetch_sub(1, Ordering::SeqCst);
                    let mut stream = stream;
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &state);
                    state.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

struct Conn<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: &'a Shared,
}

fn stopped() -> io::Error {
    io::Error::other("origin stopped")
}

impl Conn<'_> {
    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Err(stopped());
            }
            if Instant::now() >= deadline {
                return Err(ErrorKind::TimedOut.into());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The bytes up to and including the first `delimiter`; `None` at a
    /// clean end of stream before any byte.
    fn take_until(
        &mut self,
        delimiter: &[u8],
        limit: usize,
        deadline: Instant,
    ) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = find(&self.buf, delimiter) {
                let rest = self.buf.split_off(at + delimiter.len());
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.buf.len() > limit {
                return Err(io::Error::new(ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill(deadline)? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    fn take_exact(&mut self, n: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill(deadline)? {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    fn take_line(&mut self, deadline: Instant) -> io::Result<String> {
        let line = self
            .take_until(b"\r\n", 8 * 1024, deadline)?
            .ok_or(ErrorKind::UnexpectedEof)?;
        Ok(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned())
    }

    fn chunked_body(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        for _ in 0..100_000 {
            let line = self.take_line(deadline)?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(ErrorKind::InvalidData, "chunk size"))?;
            if size == 0 {
                // Trailer section, up to the empty line.
                for _ in 0..1000 {
                    if self.take_line(deadline)?.is_empty() {
                        return Ok(body);
                    }
                }
                return Err(io::Error::new(ErrorKind::InvalidData, "trailers"));
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err(io::Error::new(ErrorKind::InvalidData, "body too large"));
            }
            body.extend(self.take_exact(size, deadline)?);
            if !self.take_line(deadline)?.is_empty() {
                return Err(io::Error::new(ErrorKind::InvalidData, "chunk end"));
            }
        }
        Err(io::Error::new(ErrorKind::InvalidData, "too many chunks"))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        shared,
    };
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let deadline = Instant::now() + IDLE_TIMEOUT;
        let Some(head) = conn.take_until(b"\r\n\r\n", MAX_HEAD_BYTES, deadline)? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&head[..head.len() - 4]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v)) if !m.is_empty() && t.starts_with('/') => {
                (m.to_string(), t.to_string(), v.to_string())
            }
            _ => {
                let _ = conn.stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                return Ok(());
            }
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let field = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let path = target.split('?').next().unwrap_or("").to_string();
        shared.heads.lock().unwrap().push(path);
        let body = if has_token(field("transfer-encoding"), "chunked") {
            conn.chunked_body(deadline)?
        } else {
            let length = match field("content-length") {
                Some(v) => v
                    .parse::<usize>()
                    .map_err(|_| io::Error::new(ErrorKind::InvalidData, "content-length"))?,
                None => 0,
            };
            if length > MAX_BODY_BYTES {
                return Err(io::Error::new(ErrorKind::InvalidData, "body too large"));
            }
            conn.take_exact(length, deadline)?
        };
        let client_closes = has_token(field("connection"), "close")
            || (version == "HTTP/1.0" && !has_token(field("connection"), "keep-alive"));

        let mut request = OriginRequest {
            method,
            target,
            headers,
            body,
            nth: 0,
            arrived: Instant::now(),
        };
        {
            let mut counts = shared.per_path.lock().unwrap();
            let n = counts.entry(request.path().to_string()).or_insert(0);
            *n += 1;
            request.nth = *n;
            shared.log.lock().unwrap().push(request.clone());
        }
        let response = catch_unwind(AssertUnwindSafe(|| (shared.handler)(&request)))
            .unwrap_or_else(|_| OriginResponse::ok("the origin's handler panicked").status(500));

        let until = Instant::now() + response.delay.min(MAX_DELAY);
        while Instant::now() < until {
            if shared.stop.load(Ordering::SeqCst) {
                return Err(stopped());
            }
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
        if response.drop_connection {
            let _ = conn.stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        let server_closes = response
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && has_token(Some(v), "close"));
        let close = client_closes || server_closes;
        conn.stream
            .write_all(&serialize(&request, &response, close))?;
        conn.stream.flush()?;
        if close {
            let _ = conn.stream.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
    Ok(())
}

impl OriginResponse {
    fn status(mut self, status: u16) -> OriginResponse {
        self.status = status;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn serialize(request: &OriginRequest, response: &OriginResponse, close: bool) -> Vec<u8> {
    let bodiless = matches!(response.status, 100..=199 | 204 | 304);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !response.has_header("date") && !response.omit_date {
        out.push_str(&format!("date: {}\r\n", http_date(SystemTime::now())));
    }
    if !bodiless && !response.has_header("content-length") {
        out.push_str(&format!("content-length: {}\r\n", response.body.len()));
    }
    if close && !response.has_header("connection") {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !bodiless && !request.method.eq_ignore_ascii_case("HEAD") {
        bytes.extend_from_slice(&response.body);
    }
    bytes
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
