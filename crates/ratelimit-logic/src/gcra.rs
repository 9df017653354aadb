//! Generic Cell Rate Algorithm (GCRA) admission decisions.
//!
//! **Job.** Given the stored state of one key, the current time and a
//! [`Policy`], decide whether a request of some `cost` is admitted, what to
//! write back, and what to tell the client. No clock, no storage: callers
//! pass `now_ms` (Unix milliseconds) and persist [`Decision::new_tat`].
//!
//! **Standard.** GCRA as in ITU-T I.371 / ATM Forum TM 4.1 ("virtual
//! scheduling"), the algorithm behind redis-cell and similar limiters.
//! State is one *theoretical arrival time* (TAT). With emission interval
//! `T = window / limit` and burst `B` (default `limit`), the classic
//! tolerance is `tau = T·(B − 1)`. A request costing `c` conforms iff
//!
//! ```text
//! tat' = max(tat, now) + c·T        and        tat' − B·T ≤ now
//! ```
//!
//! which for `c = 1` is exactly the textbook test `max(tat, now) − tau ≤ now`.
//! A fresh key (`tat ≤ now`) therefore admits exactly `B` requests back to
//! back, then one more each `T`.
//!
//! **Units, and why there is no drift.** `T` is rarely a whole number of
//! milliseconds (100 per 60 001 ms, 7 per second). Rounding `T`, or rounding
//! a millisecond TAT on every write, loses or gains a little on each
//! request: a 1.5 ms interval stored in whole ms would admit a third fewer
//! requests. So:
//!
//! * all arithmetic is exact integer math in `u128` *scaled units* of
//!   `1/limit` ns, where `T = window_ms × 10⁶` exactly; for every `u64`/`u32`
//!   input the products stay below 2¹¹⁸, so nothing can overflow;
//! * the state (`tat`, `u64`) is in **nanoseconds** since the Unix epoch
//!   ([`NANOS_PER_MS`] per ms), written rounded *up*;
//! * every exact TAT is a multiple of `10⁶·gcd(limit, window_ms)` scaled
//!   units (integer-ms clocks plus whole intervals), and that grid is at
//!   least 1 ns wide whenever `limit ≤ 1 000 000` (which
//!   [`Policy::validate`] enforces), so reading the state back snaps to the
//!   grid and recovers the exact TAT. Rounding error never accumulates: the
//!   long-run rate is exactly `limit / window`.
//!
//! An unvalidated policy with a larger limit is still safe: reading snaps
//! *up* by less than 1 ns per write, so it can only under-admit. If a
//! policy is edited, old state is read on the new grid, at most 1 ms early.
//! `u64` nanoseconds last until the year 2554; a TAT that cannot be stored
//! fails closed (denied, [`Decision::impossible`]).
//!
//! **Clock going backwards.** A stored TAT is never lowered:
//! `tat = max(stored, now)`, and admission needs `tat' − B·T ≤ now`, so an
//! earlier `now` can only make admission harder — it never refunds quota.
//! `retry_after_ms` is then measured on the caller's (earlier) clock.
//!
//! **Several policies on one request.** Decide each with the same cost and
//! write the `new_tat`s only if *all* allowed; otherwise nothing was
//! served and no quota should be spent.

use crate::policy::Policy;

/// Nanoseconds per millisecond: the unit of the stored TAT.
pub const NANOS_PER_MS: u64 = 1_000_000;

/// Outcome of one [`decide`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request conforms and may be served.
    pub allowed: bool,
    /// The request can never conform: `cost` exceeds the burst, the policy
    /// is invalid (zero limit, window or burst), or the resulting TAT cannot
    /// be stored. Retrying cannot help, so answer 413/400 rather than 429.
    pub impossible: bool,
    /// New TAT (ns) to store; `Some` only when the state must be written
    /// (allowed with `cost > 0`).
    pub new_tat: Option<u64>,
    /// Cost-1 requests that would still be admitted right now, after this
    /// decision (`0..=burst`).
    pub remaining: u32,
    /// Milliseconds until the quota is fully refilled (`tat − now`, rounded
    /// up); 0 means the key is as good as fresh.
    pub reset_after_ms: u64,
    /// 0 when allowed; when denied, milliseconds (rounded up) until this
    /// same cost would be admitted; `u64::MAX` when [`Self::impossible`].
    pub retry_after_ms: u64,
}

impl Decision {
    fn never(remaining: u32, reset_after_ms: u64) -> Self {
        Decision {
            allowed: false,
            impossible: true,
            new_tat: None,
            remaining,
            reset_after_ms,
            retry_after_ms: u64::MAX,
        }
    }
}

/// A policy's constants in scaled units (1 unit = `1/limit` ns).
struct Rate {
    limit: u128,
    /// Scaled units per millisecond: `10⁶ × limit`.
    per_ms: u128,
    /// Emission interval `T = window_ms × 10⁶`.
    interval: u128,
    /// `B × T`, i.e. `tau + T`.
    tolerance: u128,
    /// Grid every exact TAT lies on: `10⁶ × gcd(limit, window_ms)`.
    step: u128,
    burst: u32,
}

impl Rate {
    fn new(policy: &Policy) -> Option<Self> {
        let burst = policy.effective_burst();
        if policy.limit == 0 || policy.window_ms == 0 || burst == 0 {
            return None;
        }
        let ns = u128::from(NANOS_PER_MS);
        let limit = u128::from(policy.limit);
        let window = u128::from(policy.window_ms);
        let interval = window.saturating_mul(ns);
        Some(Rate {
            limit,
            per_ms: ns.saturating_mul(limit),
            interval,
            tolerance: u128::from(burst).saturating_mul(interval),
            step: ns.saturating_mul(gcd(limit, window)),
            burst,
        })
    }

    /// Stored ns → exact scaled TAT (largest grid point not after it).
    fn decode(&self, tat_ns: u64) -> u128 {
        let scaled = u128::from(tat_ns).saturating_mul(self.limit);
        scaled / self.step * self.step
    }

    /// Scaled TAT → ns, rounded up; `None` if it does not fit the state.
    fn encode(&self, tat: u128) -> Option<u64> {
        u64::try_from(tat.div_ceil(self.limit)).ok()
    }

    /// Scaled duration → whole milliseconds, rounded up, saturating.
    fn ceil_ms(&self, duration: u128) -> u64 {
        u64::try_from(duration.div_ceil(self.per_ms)).unwrap_or(u64::MAX)
    }

    /// Cost-1 requests admissible at `now` if the TAT is `tat`.
    fn remaining(&self, now: u128, tat: u128) -> u32 {
        let slack = now.saturating_add(self.tolerance).saturating_sub(tat);
        let count = (slack / self.interval).min(u128::from(self.burst));
        u32::try_from(count).unwrap_or(self.burst)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Decides one request of `cost` units for a key whose stored TAT is
/// `state` (`None` for a key never seen or expired).
///
/// `cost == 0` is a pure query: always allowed, never writes, and reports
/// `remaining`/`reset_after_ms` for the current state.
pub fn decide(state: Option<u64>, now_ms: u64, policy: &Policy, cost: u32) -> Decision {
    let Some(rate) = Rate::new(policy) else {
        return Decision::never(0, 0);
    };
    let now = u128::from(now_ms).saturating_mul(rate.per_ms);
    let tat = state.map_or(now, |s| rate.decode(s).max(now));
    let remaining = rate.remaining(now, tat);
    let reset_after_ms = rate.ceil_ms(tat.saturating_sub(now));

    if cost > rate.burst {
        return Decision::never(remaining, reset_after_ms);
    }
    if cost == 0 {
        return Decision {
            allowed: true,
            impossible: false,
            new_tat: None,
            remaining,
            reset_after_ms,
            retry_after_ms: 0,
        };
    }

    let new_tat = tat.saturating_add(u128::from(cost).saturating_mul(rate.interval));
    let allow_at = new_tat.saturating_sub(rate.tolerance);
    if allow_at > now {
        return Decision {
            allowed: false,
            impossible: false,
            new_tat: None,
            remaining,
            reset_after_ms,
            retry_after_ms: rate.ceil_ms(allow_at.saturating_sub(now)),
        };
    }
    match rate.encode(new_tat) {
        Some(stored) => Decision {
            allowed: true,
            impossible: false,
            new_tat: Some(stored),
            remaining: rate.remaining(now, new_tat),
            reset_after_ms: rate.ceil_ms(new_tat.saturating_sub(now)),
            retry_after_ms: 0,
        },
        None => Decision::never(remaining, reset_after_ms),
    }
}

/// Unix ms from which the state `tat` is indistinguishable from no state
/// (its TAT is not after `now`), whatever the policy: the moment storage
/// may delete it.
pub fn expires_at(tat: u64) -> u64 {
    tat.div_ceil(NANOS_PER_MS)
}

/// Storage TTL for `tat` at `now_ms`: `expires_at(tat) − now_ms`, or 0 when
/// the state can already be deleted.
pub fn ttl_ms(tat: u64, now_ms: u64) -> u64 {
    expires_at(tat).saturating_sub(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arbitrary, deliberately unaligned wall-clock start.
    const T0: u64 = 1_700_000_000_007;

    fn policy(limit: u32, window_ms: u64, burst: Option<u32>) -> Policy {
        Policy {
            name: "p".into(),
            limit,
            window_ms,
            burst,
        }
    }

    /// One key in a store; the test drives the clock.
    #[derive(Default)]
    struct Key {
        state: Option<u64>,
    }

    impl Key {
        fn hit(&mut self, now_ms: u64, p: &Policy, cost: u32) -> Decision {
            let d = decide(self.state, now_ms, p, cost);
            assert!(
                d.new_tat.is_none() || d.allowed,
                "denied decisions never write"
            );
            if let Some(tat) = d.new_tat {
                assert!(self.state.is_none_or(|s| tat >= s), "TAT never decreases");
                self.state = Some(tat);
            }
            d
        }

        fn admitted(&mut self, now_ms: u64, p: &Policy, tries: u32) -> u32 {
            (0..tries)
                .map(|_| u32::from(self.hit(now_ms, p, 1).allowed))
                .sum()
        }
    }

    #[test]
    fn fresh_key_admits_exactly_the_burst_back_to_back() {
        // (limit, window_ms, burst, extra attempts)
        let cases = [
            (1, 1_000, None, 3),
            (3, 1_000, None, 1),
            (100, 60_000, None, 50),
            (7, 1_000, None, 10),
            (100, 60_001, None, 5),
            (10, 10_000, Some(3), 5),
            (10, 10_000, Some(25), 5),
            (1_000_000, 1, None, 2),
        ];
        for (limit, window, burst, extra) in cases {
            let p = policy(limit, window, burst);
            let b = p.effective_burst();
            let mut key = Key::default();
            assert_eq!(key.admitted(T0, &p, b + extra), b, "{p:?}");
        }
    }

    #[test]
    fn one_more_request_is_admitted_after_each_emission_interval() {
        let p = policy(100, 60_000, None); // T = 600 ms
        let mut key = Key::default();
        assert_eq!(key.admitted(T0, &p, 100), 100);
        let denied = key.hit(T0 + 599, &p, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_ms, 1);
        assert!(key.hit(T0 + 600, &p, 1).allowed);
        assert!(!key.hit(T0 + 600, &p, 1).allowed);
        assert_eq!(key.admitted(T0 + 1_199, &p, 5), 0);
        assert_eq!(key.admitted(T0 + 1_200, &p, 5), 1);
        // After a long pause the key is full again: exactly B once more.
        assert_eq!(key.admitted(T0 + 1_200 + 60_000, &p, 200), 100);
    }

    #[test]
    fn admission_boundary_is_exactly_tat_minus_tau() {
        let p = policy(10, 10_000, None); // T = 1 000 ms, tau = 9 000 ms
        let tau = 9_000;
        let mut key = Key::default();
        assert_eq!(key.admitted(T0, &p, 10), 10);
        let tat_ms = expires_at(key.state.unwrap());
        assert_eq!(tat_ms, T0 + 10_000);
        let before = key.hit(tat_ms - tau - 1, &p, 1);
        assert!(!before.allowed);
        assert_eq!(before.retry_after_ms, 1);
        assert!(key.hit(tat_ms - tau, &p, 1).allowed);
    }

    #[test]
    fn burst_option_changes_the_initial_allowance_but_not_the_rate() {
        for burst in [1, 3, 10, 25] {
            let p = policy(10, 10_000, Some(burst)); // T = 1 000 ms
            let mut key = Key::default();
            assert_eq!(key.admitted(T0, &p, 100), burst, "burst {burst}");
            for step in 1..=20 {
                let now = T0 + step * 1_000;
                assert_eq!(key.admitted(now - 1, &p, 3), 0, "burst {burst} step {step}");
                assert_eq!(key.admitted(now, &p, 3), 1, "burst {burst} step {step}");
            }
        }
    }

    #[test]
    fn cost_above_one_spends_that_many_units() {
        let p = policy(10, 10_000, None); // T = 1 000 ms
        let mut key = Key::default();
        let cases = [
            // (now offset, cost, allowed, remaining, retry_after_ms, reset_after_ms)
            (0, 4, true, 6, 0, 4_000),
            (0, 4, true, 2, 0, 8_000),
            (0, 4, false, 2, 2_000, 8_000),
            (0, 2, true, 0, 0, 10_000),
            (1_500, 2, false, 1, 500, 8_500),
            (2_000, 2, true, 0, 0, 10_000),
        ];
        for (offset, cost, allowed, remaining, retry, reset) in cases {
            let d = key.hit(T0 + offset, &p, cost);
            assert_eq!(
                (d.allowed, d.remaining, d.retry_after_ms, d.reset_after_ms),
                (allowed, remaining, retry, reset),
                "t+{offset} cost {cost}"
            );
            assert!(!d.impossible);
        }
    }

    #[test]
    fn cost_above_burst_is_impossible_and_never_writes() {
        for (burst, cost) in [(None, 11), (Some(3), 4), (None, u32::MAX)] {
            let p = policy(10, 10_000, burst);
            let d = decide(None, T0, &p, cost);
            assert_eq!(
                d,
                Decision {
                    allowed: false,
                    impossible: true,
                    new_tat: None,
                    remaining: p.effective_burst(),
                    reset_after_ms: 0,
                    retry_after_ms: u64::MAX,
                }
            );
        }
        let p = policy(10, 10_000, None);
        assert!(
            decide(None, T0, &p, 10).allowed,
            "cost == burst is possible"
        );
    }

    #[test]
    fn cost_zero_is_a_pure_query() {
        let p = policy(10, 10_000, None);
        let mut key = Key::default();
        let fresh = key.hit(T0, &p, 0);
        assert_eq!(
            fresh,
            Decision {
                allowed: true,
                impossible: false,
                new_tat: None,
                remaining: 10,
                reset_after_ms: 0,
                retry_after_ms: 0,
            }
        );
        assert_eq!(key.state, None);
        assert_eq!(key.admitted(T0, &p, 3), 3);
        let before = key.state;
        let query = key.hit(T0, &p, 0);
        assert_eq!(
            (query.remaining, query.reset_after_ms, query.new_tat),
            (7, 3_000, None)
        );
        assert_eq!(key.state, before);
        assert_eq!(key.admitted(T0, &p, 20), 7);
        let exhausted = key.hit(T0, &p, 0);
        assert!(exhausted.allowed);
        assert_eq!((exhausted.remaining, exhausted.reset_after_ms), (0, 10_000));
    }

    #[test]
    fn clock_going_backwards_never_admits_extra_requests() {
        let p = policy(10, 10_000, None); // T = 1 000 ms
        for back in [1, 999, 1_000, 5_000, 60_000, T0] {
            let mut key = Key::default();
            assert_eq!(key.admitted(T0, &p, 10), 10);
            let earlier = T0 - back;
            let d = key.hit(earlier, &p, 1);
            assert!(!d.allowed, "back {back}");
            assert_eq!(d.remaining, 0);
            // Admission resumes one interval after the real-time slot, on the
            // caller's clock.
            assert_eq!(d.retry_after_ms, 1_000 + back);
            assert_eq!(key.admitted(earlier, &p, 50), 0);
            assert_eq!(key.admitted(T0 + 999, &p, 5), 0);
            assert_eq!(key.admitted(T0 + 1_000, &p, 5), 1);
        }
        // A half-spent key shows no more remaining on an earlier clock.
        let mut key = Key::default();
        assert_eq!(key.admitted(T0, &p, 4), 4);
        for back in [0, 1, 500, 3_000, 100_000] {
            let q = key.hit(T0 - back, &p, 0);
            assert!(q.remaining <= 6, "back {back}: {q:?}");
            let spendable = decide(key.state, T0 - back, &p, 7);
            assert!(!spendable.allowed, "back {back}");
        }
    }

    #[test]
    fn long_run_rate_is_exact_when_window_is_not_divisible_by_limit() {
        // A client hammering every millisecond gets exactly B + floor(t·N/W)
        // by elapsed time t: no drift in either direction.
        let cases = [
            (3, 1_000, 5_000),
            (7, 1_000, 5_000),
            (1_000, 1_001, 20_000),
            (2, 3, 10_000),
            (100, 60_001, 200_000),
        ];
        for (limit, window, span) in cases {
            let p = policy(limit, window, None);
            let mut key = Key::default();
            let mut admitted = 0_u64;
            for t in 0..=span {
                let tries = if t == 0 { limit + 3 } else { 3 };
                admitted += u64::from(key.admitted(T0 + t, &p, tries));
                let expected = u64::from(limit) + t * u64::from(limit) / window;
                assert_eq!(admitted, expected, "{limit}/{window}ms at t+{t}");
            }
        }
    }

    #[test]
    fn largest_valid_limit_is_tracked_to_the_nanosecond() {
        let p = policy(1_000_000, 1_000, None); // T = 1 µs
        p.validate().unwrap();
        let mut key = Key::default();
        assert!(key.hit(T0, &p, 999_999).allowed);
        assert!(key.hit(T0, &p, 1).allowed);
        assert!(!key.hit(T0, &p, 1).allowed);
        assert!(key.hit(T0 + 1, &p, 1_000).allowed);
        assert!(!key.hit(T0 + 1, &p, 1).allowed);
    }

    #[test]
    fn fresh_and_remaining_fields_report_the_state_after_the_decision() {
        let p = policy(100, 60_000, None);
        let d = decide(None, T0, &p, 1);
        assert!(d.allowed && !d.impossible);
        assert_eq!(
            (d.remaining, d.reset_after_ms, d.retry_after_ms),
            (99, 600, 0)
        );
        assert_eq!(d.new_tat, Some((T0 + 600) * NANOS_PER_MS));
        // Fractional interval: reset rounds up, never down.
        let d = decide(None, T0, &policy(3, 1_000, None), 1);
        assert_eq!((d.remaining, d.reset_after_ms), (2, 334));
    }

    #[test]
    fn state_expires_exactly_when_it_equals_a_fresh_key() {
        let p = policy(100, 60_000, None);
        let mut key = Key::default();
        assert_eq!(key.admitted(T0, &p, 100), 100);
        let tat = key.state.unwrap();
        assert_eq!(expires_at(tat), T0 + 60_000);
        assert_eq!(ttl_ms(tat, T0), 60_000);
        assert_eq!(ttl_ms(tat, T0 + 60_000), 0);
        assert_eq!(ttl_ms(tat, u64::MAX), 0);
        let at = expires_at(tat);
        assert_eq!(decide(Some(tat), at, &p, 1), decide(None, at, &p, 1));
        assert_ne!(
            decide(Some(tat), at - 1, &p, 1),
            decide(None, at - 1, &p, 1)
        );
        // Fractional TATs round the expiry up.
        assert_eq!(expires_at(1), 1);
        assert_eq!(expires_at(u64::MAX), u64::MAX / NANOS_PER_MS + 1);
    }

    #[test]
    fn invalid_policies_fail_closed() {
        for p in [
            policy(0, 1_000, None),
            policy(1, 0, None),
            policy(1, 1_000, Some(0)),
        ] {
            let d = decide(None, T0, &p, 1);
            assert!(!d.allowed && d.impossible, "{p:?}");
            assert_eq!(d.new_tat, None);
        }
    }

    #[test]
    fn extreme_inputs_never_panic_and_never_over_admit() {
        let policies = [
            policy(u32::MAX, u64::MAX, Some(u32::MAX)),
            policy(1, u64::MAX, None),
            policy(u32::MAX, 1, None),
            policy(1_000_000, 1, None),
            policy(1, 1, Some(u32::MAX)),
        ];
        let states = [None, Some(0), Some(1), Some(u64::MAX / 2), Some(u64::MAX)];
        let nows = [0, 1, T0, u64::MAX / NANOS_PER_MS, u64::MAX - 1, u64::MAX];
        let costs = [0, 1, 2, u32::MAX];
        for p in &policies {
            for state in states {
                for now in nows {
                    for cost in costs {
                        let d = decide(state, now, p, cost);
                        let ctx = format!("{p:?} {state:?} {now} {cost}: {d:?}");
                        assert!(d.remaining <= p.effective_burst(), "{ctx}");
                        assert_eq!(d.allowed && cost > 0, d.new_tat.is_some(), "{ctx}");
                        assert!(!(d.allowed && d.impossible), "{ctx}");
                        assert!(d.allowed == (d.retry_after_ms == 0), "{ctx}");
                        if let (Some(old), Some(new)) = (state, d.new_tat) {
                            assert!(new >= old, "{ctx}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn times_past_the_state_range_fail_closed() {
        let p = policy(10, 10_000, None);
        let beyond = u64::MAX / NANOS_PER_MS; // + 10 s no longer fits in ns
        let d = decide(None, beyond, &p, 1);
        assert!(!d.allowed && d.impossible);
        assert!(decide(None, beyond, &p, 0).allowed, "queries still answer");
        let d = decide(Some(u64::MAX), 0, &p, 1);
        assert!(!d.allowed && !d.impossible);
        assert_eq!(d.remaining, 0);
    }
}
