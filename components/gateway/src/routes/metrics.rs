//! `GET /admin/metrics`: the stored counters in the Prometheus text format,
//! with each upstream route's circuit-breaker state as a gauge.

use portico_edgecache_logic::breaker::BreakerState;

use crate::http::{Request, Response};
use crate::observe::metrics;
use crate::portico::platform::counters;
use crate::problem::Problem;
use crate::upstream::{breaker, config};

pub fn get(_request: &Request) -> Result<Response, Problem> {
    let totals = counters::read(metrics::NAMESPACE).map_err(|err| {
        Problem::new(
            503,
            "storage-unavailable",
            "Metrics are unavailable",
            format!("the counters could not be read: {err:?}"),
        )
    })?;
    let gauges: Vec<(String, u8)> = config::load()
        .map(|upstreams| upstreams.routes)
        .unwrap_or_default()
        .iter()
        .map(|route| {
            let state = match breaker::state(&route.name) {
                BreakerState::Closed { .. } => 0,
                BreakerState::HalfOpen { .. } => 1,
                BreakerState::Open { .. } => 2,
            };
            metrics::breaker_gauge(&route.name, state)
        })
        .collect();
    Ok(Response::new(200)
        .with_header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .with_header("cache-control", "no-store")
        .with_body(metrics::render(&totals, &gauges).into_bytes()))
}
