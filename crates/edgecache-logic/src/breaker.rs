//! Circuit breaker as a pure state machine whose state is a small value that
//! can live in durable storage (17 bytes or a short JSON object).
//!
//! States: `Closed{failures_in_window, window_start}` counts failures in a
//! fixed window of `window_secs`; reaching `failure_threshold` opens the
//! breaker for `open_secs`; afterwards ONE probe is let through (`HalfOpen`);
//! its success closes the breaker, its failure re-opens it.
//!
//! No RFC governs breakers; `retry_after` is in seconds so it can feed an
//! HTTP `Retry-After` (RFC 9110 10.2.3) on a 503.
//!
//! Choices and why:
//! * Fixed (not sliding) window: two integers of state, cheap to persist. A
//!   failure after the window has elapsed starts a new window at `now`.
//!   Successes do not reset the count (it is "N failures within W", not "N in
//!   a row").
//! * Single probe: while `HalfOpen`, every other caller is rejected with
//!   `retry_after` = time left on the probe. If no result arrives within
//!   `probe_timeout_secs` (the probing instance died), the next caller becomes
//!   the new probe rather than the breaker staying stuck.
//! * Results arriving while `Open` (requests admitted before it opened) are
//!   ignored. In `HalfOpen` any result decides: with shared storage we cannot
//!   tell the probe's result from a straggler's, and both are fresh evidence.
//! * `failure_threshold` 0 and `window_secs`/`probe_timeout_secs` 0 are taken
//!   as 1 (a zero would make the machine meaningless). Time arithmetic
//!   saturates; a clock that goes backwards never panics.
//! * Serialisation: bytes = version 1, tag (0 closed, 1 open, 2 half-open),
//!   little-endian fields; JSON = `{"state":"closed","failures_in_window":2,
//!   "window_start":100}` via serde (a hand-written JSON reader for data read
//!   back from storage is more risk than the standard crate). Decoding never
//!   panics; callers typically fall back to `BreakerState::default()`
//!   (closed) on a decode error, i.e. fail open.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Persistent breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed {
        failures_in_window: u32,
        window_start: u64,
    },
    Open {
        until: u64,
    },
    HalfOpen {
        probe_started_at: u64,
    },
}

impl Default for BreakerState {
    fn default() -> Self {
        BreakerState::Closed {
            failures_in_window: 0,
            window_start: 0,
        }
    }
}

/// Breaker parameters (all times in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// N: failures within the window that open the breaker.
    pub failure_threshold: u32,
    /// W.
    pub window_secs: u64,
    /// D.
    pub open_secs: u64,
    pub probe_timeout_secs: u64,
}

/// Verdict of [`before_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Allow,
    /// Allowed as the single half-open probe; report with [`on_result`].
    Probe,
    Reject {
        retry_after: u64,
    },
}

/// Admission decision and the state to persist.
pub fn before_request(
    config: &BreakerConfig,
    state: BreakerState,
    now: u64,
) -> (Permit, BreakerState) {
    match state {
        BreakerState::Closed { .. } => (Permit::Allow, state),
        BreakerState::Open { until } => {
            if now < until {
                (
                    Permit::Reject {
                        retry_after: until - now,
                    },
                    state,
                )
            } else {
                (
                    Permit::Probe,
                    BreakerState::HalfOpen {
                        probe_started_at: now,
                    },
                )
            }
        }
        BreakerState::HalfOpen { probe_started_at } => {
            let timeout = config.probe_timeout_secs.max(1);
            let elapsed = now.saturating_sub(probe_started_at);
            if elapsed >= timeout {
                (
                    Permit::Probe,
                    BreakerState::HalfOpen {
                        probe_started_at: now,
                    },
                )
            } else {
                (
                    Permit::Reject {
                        retry_after: timeout - elapsed,
                    },
                    state,
                )
            }
        }
    }
}

/// State after a request admitted earlier finished (`success` as judged by
/// the caller, e.g. not a connect error / 5xx).
pub fn on_result(
    config: &BreakerConfig,
    state: BreakerState,
    success: bool,
    now: u64,
) -> BreakerState {
    let open = BreakerState::Open {
        until: now.saturating_add(config.open_secs),
    };
    match state {
        BreakerState::Closed {
            failures_in_window,
            window_start,
        } => {
            let expired = now.saturating_sub(window_start) >= config.window_secs.max(1);
            if success {
                if expired && failures_in_window > 0 {
                    BreakerState::Closed {
                        failures_in_window: 0,
                        window_start: now,
                    }
                } else {
                    state
                }
            } else {
                let (count, start) = if expired {
                    (0, now)
                } else {
                    (failures_in_window, window_start)
                };
                let count = count.saturating_add(1);
                if count >= config.failure_threshold.max(1) {
                    open
                } else {
                    BreakerState::Closed {
                        failures_in_window: count,
                        window_start: start,
                    }
                }
            }
        }
        BreakerState::Open { .. } => state,
        BreakerState::HalfOpen { .. } => {
            if success {
                BreakerState::Closed {
                    failures_in_window: 0,
                    window_start: now,
                }
            } else {
                open
            }
        }
    }
}

/// Why stored state could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid breaker state: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

const FORMAT_VERSION: u8 = 1;

impl BreakerState {
    /// Compact binary form (10 or 14 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_VERSION];
        match *self {
            BreakerState::Closed {
                failures_in_window,
                window_start,
            } => {
                out.push(0);
                out.extend_from_slice(&failures_in_window.to_le_bytes());
                out.extend_from_slice(&window_start.to_le_bytes());
            }
            BreakerState::Open { until } => {
                out.push(1);
                out.extend_from_slice(&until.to_le_bytes());
            }
            BreakerState::HalfOpen { probe_started_at } => {
                out.push(2);
                out.extend_from_slice(&probe_started_at.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let err = |m: &str| DecodeError(m.to_string());
        let (&version, rest) = bytes.split_first().ok_or_else(|| err("empty"))?;
        if version != FORMAT_VERSION {
            return Err(err("unknown version"));
        }
        let (&tag, body) = rest.split_first().ok_or_else(|| err("missing tag"))?;
        let u64_at = |b: &[u8]| -> Result<u64, DecodeError> {
            <[u8; 8]>::try_from(b)
                .map(u64::from_le_bytes)
                .map_err(|_| err("bad length"))
        };
        match tag {
            0 => {
                if body.len() != 12 {
                    return Err(err("bad length"));
                }
                let (f, w) = body.split_at(4);
                let failures = <[u8; 4]>::try_from(f)
                    .map(u32::from_le_bytes)
                    .map_err(|_| err("bad length"))?;
                Ok(BreakerState::Closed {
                    failures_in_window: failures,
                    window_start: u64_at(w)?,
                })
            }
            1 => Ok(BreakerState::Open {
                until: u64_at(body)?,
            }),
            2 => Ok(BreakerState::HalfOpen {
                probe_started_at: u64_at(body)?,
            }),
            _ => Err(err("unknown tag")),
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising this plain enum cannot fail; never panic regardless.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<Self, DecodeError> {
        serde_json::from_slice(s.as_bytes()).map_err(|e| DecodeError(e.to_string()))
    }
}
