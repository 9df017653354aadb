//! What one client may hold on to: how long the host waits for a request's
//! headers and body, how slowly a client may send a body or take a
//! response, and how much of a body the host reads itself before an
//! instance is taken.
//!
//! A request body is read inside the guest, so a client that trickles one
//! holds an instance slot (there are 256) for as long as it likes; one that
//! reads a response slowly does the same from the other side. The host
//! therefore reads small bodies whole before instantiating (the slow client
//! waits on a socket, not on a slot), and cuts any transfer that stalls or
//! stays below a minimum rate. The rate counts only the time the host was
//! waiting on the client: a guest slow to read or write is not the client's
//! fault.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

/// The limits, with the defaults `portico serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Longest wait for a request's complete header section, and for the
    /// next request on an idle keep-alive connection.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Longest wait for the client to take any response bytes.
    pub send_timeout: Duration,
    /// Bytes per second a client must sustain, sending a body or taking a
    /// response, once `rate_grace` of waiting on it has passed.
    pub min_rate: u64,
    pub rate_grace: Duration,
    /// Bodies up to this size (declared, or chunked and ending within it)
    /// are read whole before the component is instantiated.
    pub prebuffer_bytes: usize,
    /// The largest request head (request line and header fields); larger
    /// ones are answered `431`.
    pub max_header_bytes: usize,
    /// Connections open at once; past it new ones are closed on accept.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            // Apache's mod_reqtimeout asks for 500 B/s; a phone on a poor
            // link still manages several KiB/s.
            min_rate: 1024,
            rate_grace: Duration::from_secs(5),
            prebuffer_bytes: 64 * 1024,
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
        }
    }
}

/// A limit that may fire thousands of times a second (a flood): counted,
/// and logged at most once a second with the count since the last line.
pub struct ThrottledLog {
    message: &'static str,
    count: std::sync::atomic::AtomicU64,
    last_logged_ms: std::sync::atomic::AtomicU64,
}

impl ThrottledLog {
    pub const fn new(message: &'static str) -> ThrottledLog {
        ThrottledLog {
            message,
            count: std::sync::atomic::AtomicU64::new(0),
            last_logged_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn note(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        self.count.fetch_add(1, Relaxed);
        // Offset by a second so the very first one is logged.
        let now_ms = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
            + 1000;
        let last = self.last_logged_ms.load(Relaxed);
        if now_ms.saturating_sub(last) >= 1000
            && self
                .last_logged_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
        {
            let count = self.count.swap(0, Relaxed);
            tracing::warn!(count, "{}", self.message);
        }
    }
}

/// Parses a duration flag: `500ms`, `10s`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 10s, 2m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        _ => Err(format!(
            "{text:?}: give a unit, ms, s or m (e.g. 500ms, 10s, 2m)"
        )),
    }
}

/// Waiting on one client, in one direction: fails once a single wait
/// exceeds `timeout`, or the total waited exceeds both the grace and what
/// the bytes moved so far would take at `min_rate`.
struct Pace {
    timeout: Duration,
    min_rate: u64,
    grace: Duration,
    bytes: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
    alarm: Pin<Box<Sleep>>,
}

/// Why a transfer was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Nothing moved for the whole timeout.
    Timeout,
    /// Bytes moved, but below the minimum rate.
    TooSlow,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stall::Timeout => "the client sent or took nothing within the timeout",
            Stall::TooSlow => "the client stayed below the minimum transfer rate",
        })
    }
}

impl Pace {
    fn new(timeout: Duration, limits: &ClientLimits) -> Pace {
        Pace {
            timeout,
            min_rate: limits.min_rate,
            grace: limits.rate_grace,
            bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            alarm: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// How long the client may take in all, for what it has moved so far.
    fn allowance(&self) -> Duration {
        if self.min_rate == 0 {
            return Duration::MAX;
        }
        self.grace.max(Duration::from_secs_f64(
            self.bytes as f64 / self.min_rate as f64,
        ))
    }

    /// The transfer is waiting on the client: arms the alarm at the
    /// earlier of the stall timeout and the rate's allowance, and reports a
    /// stall once it has passed.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Result<(), Stall> {
        let now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        let by_timeout = since + self.timeout;
        let by_rate = since + self.allowance().saturating_sub(self.waited);
        let deadline = by_timeout.min(by_rate);
        if now >= deadline {
            return Err(if deadline == by_timeout {
                Stall::Timeout
            } else {
                Stall::TooSlow
            });
        }
        if self.alarm.deadline() != deadline {
            self.alarm.as_mut().reset(deadline);
        }
        // Registers the waker; the alarm cannot be due yet.
        if self.alarm.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        Ok(())
    }

    /// `bytes` moved: the wait (if any) is over.
    fn moved(&mut self, bytes: usize) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.bytes += bytes as u64;
    }
}

/// A request body read under the body timeout and minimum rate.
pub struct PacedBody<B> {
    inner: B,
    pace: Pace,
}

impl<B> PacedBody<B> {
    pub fn new(inner: B, limits: &ClientLimits) -> Self {
        PacedBody {
            inner,
            pace: Pace::new(limits.body_timeout, limits),
        }
    }
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.pace
                    .moved(frame.data_ref().map(Bytes::len).unwrap_or(0));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(ErrorCode::from(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.pace.poll_waiting(cx) {
                Ok(()) => Poll::Pending,
                Err(stall) => {
                    tracing::warn!(%stall, received = this.pace.bytes, "request body cut");
                    Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body whose first frames (or all of it) the host has read.
pub struct RequestBody<B> {
    read: VecDeque<Frame<Bytes>>,
    rest: Option<B>,
    /// Told of every frame the guest takes from the client (not of the
    /// prebuffered ones, which arrived before the guest started).
    on_progress: Option<Box<dyn Fn() + Send + Sync>>,
}

impl<B> RequestBody<B> {
    /// Calls `progress` whenever the guest receives more of the body from
    /// the client.
    pub fn on_progress(mut self, progress: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Box::new(progress));
        self
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes, Error = ErrorCode> + Unpin,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let polled = match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        if let (Poll::Ready(Some(Ok(_))), Some(progress)) = (&polled, &self.on_progress) {
            progress();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.as_ref().is_none_or(B::is_end_stream)
    }
}

/// Reads `body` whole when it is at most `limit` bytes (as declared, or as
/// it turns out when undeclared); a larger body is passed on after what was
/// read of it, to be read by the guest.
pub async fn prebuffer<B>(
    body: B,
    declared: Option<u64>,
    limit: usize,
) -> Result<RequestBody<B>, ErrorCode>
where
    B: Body<Data = Bytes, Error = ErrorCode> + Unpin,
{
    let mut read = VecDeque::new();
    if declared.is_some_and(|length| length > limit as u64) || body.is_end_stream() {
        return Ok(RequestBody {
            read,
            rest: Some(body),
            on_progress: None,
        });
    }
    let mut body = body;
    let mut total = 0usize;
    while total <= limit {
        match body.frame().await {
            Some(frame) => {
                let frame = frame?;
                total += frame.data_ref().map(Bytes::len).unwrap_or(0);
                read.push_back(frame);
            }
            None => {
                return Ok(RequestBody {
                    read,
                    rest: None,
                    on_progress: None,
                });
            }
        }
    }
    Ok(RequestBody {
        read,
        rest: Some(body),
        on_progress: None,
    })
}

/// A connection whose writes fail once the client stops taking bytes, or
/// takes them below the minimum rate, so a slow reader cannot keep the
/// instance that is writing to it.
pub struct PacedConnection<T> {
    inner: T,
    pace: Pace,
}

impl<T> PacedConnection<T> {
    pub fn new(inner: T, limits: &ClientLimits) -> Self {
        PacedConnection {
            inner,
            pace: Pace::new(limits.send_timeout, limits),
        }
    }

    /// A write's outcome, charged to the pace: bytes moved end a wait, and
    /// a pending write is a wait that may have gone on too long.
    fn paced(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(written)) => {
                self.pace.moved(written);
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => self.stalled(cx).map(Err),
        }
    }

    /// A write is pending: pending still, or the error that cuts it.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        match self.pace.poll_waiting(cx) {
            Ok(()) => Poll::Pending,
            Err(stall) => {
                tracing::warn!(%stall, sent = self.pace.bytes, "response cut");
                Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    stall.to_string(),
                ))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PacedConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PacedConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.paced(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.paced(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientLimits {
        ClientLimits {
            body_timeout: Duration::from_secs(2),
            min_rate: 100,
            rate_grace: Duration::from_secs(1),
            ..ClientLimits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_cut_at_the_timeout() {
        let mut pace = Pace::new(Duration::from_secs(2), &limits());
        pace.bytes = 10_000; // allowance 100 s: only the timeout applies
        let waker = futures_task_noop();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(pace.poll_waiting(&mut cx), Ok(()));
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert_eq!(pace.poll_waiting(&mut cx), Ok(()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(pace.poll_waiting(&mut cx), Err(Stall::Timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_once_below_the_rate_after_the_grace() {
        let mut pace = Pace::new(Duration::from_secs(2), &limits());
        let waker = futures_task_noop();
        let mut cx = Context::from_waker(&waker);
        // One byte every 0.9 s never trips the 2 s timeout, but at about
        // 1 B/s against 100 B/s the 1 s grace runs out on the second wait.
        assert_eq!(pace.poll_waiting(&mut cx), Ok(()));
        tokio::time::advance(Duration::from_millis(900)).await;
        pace.moved(1);
        assert_eq!(pace.poll_waiting(&mut cx), Ok(()));
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!(pace.poll_waiting(&mut cx), Err(Stall::TooSlow));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_guest_spends_is_not_charged_to_the_client() {
        let mut pace = Pace::new(Duration::from_secs(2), &limits());
        let waker = futures_task_noop();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..10 {
            assert_eq!(pace.poll_waiting(&mut cx), Ok(()));
            tokio::time::advance(Duration::from_millis(100)).await;
            pace.moved(100);
            // The guest takes a second between reads: not waiting.
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(pace.waited, Duration::from_secs(1));
        assert_eq!(pace.poll_waiting(&mut cx), Ok(()));
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").unwrap_err().contains("unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5h").is_err());
    }

    fn futures_task_noop() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }
}
