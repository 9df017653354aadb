//! The observing layer: starts the request's trace span, times it, and once
//! the response exists writes its access-log line and adds its metrics (one
//! storage write, before the response is sent: work deferred past the
//! response has no back-pressure, so a fast client could pile up instances
//! still writing metrics).
//!
//! Probe paths (`/healthz`) are logged but not counted: a liveness probe
//! answers from the gateway alone, with no storage call, so that it says
//! whether the process serves, not whether storage is fast.

use super::{Middleware, Next};
use crate::http::{Request, Response};
use crate::observe::{self, log, metrics, trace::TraceContext};

pub struct Observe {
    /// Milliseconds on a monotonic clock (for durations).
    pub monotonic_ms: fn() -> f64,
    /// Unix milliseconds (for the log's timestamp).
    pub wall_ms: fn() -> u64,
    /// 128 random bits as hex (trace and span ids).
    pub random: fn() -> String,
    /// Writes one log line.
    pub log: fn(&str),
    /// Adds counter deltas (after the response).
    pub record: fn(Vec<(String, i64)>),
    /// Paths whose requests are logged but not counted in the metrics.
    pub unrecorded: &'static [&'static str],
}

impl Middleware for Observe {
    fn handle(&self, mut request: Request, next: Next<'_>) -> Response {
        let started = (self.monotonic_ms)();
        let unix_ms = (self.wall_ms)();
        let trace = TraceContext::continue_or_start(request.header("traceparent"), self.random);
        request.context.insert("trace_id", trace.trace_id.clone());
        request.context.insert("traceparent", trace.header());
        let request_id = request
            .context
            .get("request_id")
            .cloned()
            .unwrap_or_default();
        let (method, path) = (request.method.clone(), request.path.clone());

        let response = next.run(request);

        let seconds = (((self.monotonic_ms)() - started) / 1000.0).max(0.0);
        let notes = observe::take();
        let cache = response.header("cache-status");
        (self.log)(&log::line(&log::Entry {
            unix_ms,
            request_id: &request_id,
            trace_id: &trace.trace_id,
            method: &method,
            path: &path,
            status: response.status,
            duration_ms: seconds * 1000.0,
            // A streamed body is logged at the length its head declares.
            bytes: match &response.rest {
                None => response.body.len(),
                Some(_) => response
                    .header("content-length")
                    .and_then(|len| len.parse().ok())
                    .unwrap_or(response.body.len()),
            },
            cache,
            notes: &notes,
        }));
        if !self.unrecorded.contains(&path.as_str()) {
            (self.record)(metrics::deltas(&notes, response.status, seconds, cache));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        static RECORDED: RefCell<Vec<(String, i64)>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn one_line_and_one_batch_per_request_with_the_trace_continued() {
        let layer = Observe {
            monotonic_ms: || 10.0,
            wall_ms: || 0,
            random: || "0123456789abcdef0123456789abcdef".into(),
            log: |line| LINES.with(|l| l.borrow_mut().push(line.to_string())),
            record: |deltas| RECORDED.with(|r| r.borrow_mut().extend(deltas)),
            unrecorded: &["/healthz"],
        };
        let endpoint = |request: Request| {
            observe::note(|n| n.route = Some("/x".into()));
            Response::new(200).with_body(request.context["traceparent"].clone().into_bytes())
        };
        let layers: [&dyn Middleware; 1] = [&layer];
        let request = Request {
            method: "GET".into(),
            path: "/x".into(),
            headers: vec![(
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            )],
            ..Request::default()
        };
        let response = Next::new(&layers, &endpoint).run(request);
        assert_eq!(
            String::from_utf8(response.body).unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0123456789abcdef-01"
        );
        let lines = LINES.with(|l| l.borrow().clone());
        assert_eq!(lines.len(), 1);
        let value: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(value["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(value["route"], "/x");
        let recorded = RECORDED.with(|r| r.borrow().clone());
        assert!(recorded.contains(&(
            "portico_requests_total{route=\"/x\",status=\"2xx\"}".into(),
            1
        )));
    }
}

#[cfg(test)]
mod probe_tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        static RECORDS: Cell<usize> = const { Cell::new(0) };
    }

    #[test]
    fn probes_are_logged_but_not_counted() {
        let layer = Observe {
            monotonic_ms: || 0.0,
            wall_ms: || 0,
            random: || "0123456789abcdef0123456789abcdef".into(),
            log: |_| {},
            record: |_| RECORDS.with(|r| r.set(r.get() + 1)),
            unrecorded: &["/healthz"],
        };
        let endpoint = |_: Request| Response::new(200);
        let layers: [&dyn Middleware; 1] = [&layer];
        for path in ["/healthz", "/api/config", "/healthz/x"] {
            let request = Request {
                method: "GET".into(),
                path: path.into(),
                ..Request::default()
            };
            Next::new(&layers, &endpoint).run(request);
        }
        assert_eq!(RECORDS.with(Cell::get), 2);
    }
}
