//! What a request did, for its log line and the metrics: layers and routes
//! note facts as they happen ([`note`]); the access-log layer takes them
//! when the response is ready. Notes live for one request (one instance
//! serves one request on every target).
//!
//! - [`log`]: the JSON log line.
//! - [`metrics`]: counter deltas per request, and the Prometheus text.
//! - [`trace`]: W3C trace context.

pub mod log;
pub mod metrics;
pub mod trace;

use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// The route pattern that answered (bounded cardinality, for metrics).
    pub route: Option<String>,
    pub client: Option<String>,
    pub subject: Option<String>,
    /// `allowed`, `limited`, `exempt` or `error`.
    pub rate_limit: Option<String>,
    /// The policy that refused the request, if one did.
    pub limited_policy: Option<String>,
    /// A/B variants the request was given: flag -> variant.
    pub variants: BTreeMap<String, String>,
    /// Evaluation reasons of the flags evaluated for this request.
    pub flag_reasons: Vec<String>,
    /// Upstream route names whose origin failed.
    pub upstream_failures: Vec<String>,
}

thread_local! {
    static NOTES: RefCell<Notes> = RefCell::new(Notes::default());
}

/// Records a fact about the current request.
pub fn note(update: impl FnOnce(&mut Notes)) {
    NOTES.with(|notes| update(&mut notes.borrow_mut()));
}

/// Everything noted for the current request (and forgets it).
pub fn take() -> Notes {
    NOTES.with(|notes| std::mem::take(&mut *notes.borrow_mut()))
}
