//! `fractional`: bucket arithmetic, distribution, stability, and vectors
//! from the flagd conformance testbed (open-feature/flagd-testbed,
//! `gherkin/targeting.feature`, "@fractional-v2" examples).

use portico_flags_logic::definitions::parse_definitions;
use portico_flags_logic::evaluate::{Context, Reason, evaluate};
use portico_flags_logic::jsonlogic::{apply, bucket_for_hash, fractional_index, pick_bucket};
use portico_flags_logic::murmur3::murmur3_x86_32;
use serde_json::{Value, json};

#[test]
fn bucket_edges() {
    // (hash, total_weight, expected bucket) — floor(hash * total / 2^32).
    let cases: &[(u32, u32, u32)] = &[
        (0, 100, 0),
        (1, 100, 0),
        (0x7fff_ffff, 100, 49),
        (0x8000_0000, 100, 50),
        (0xffff_ffff, 100, 99),
        (0, 2, 0),
        (0x7fff_ffff, 2, 0),
        (0x8000_0000, 2, 1),
        (0xffff_ffff, 2, 1),
        (0xffff_ffff, 1, 0),
        (0xffff_ffff, 0, 0),
        (0, i32::MAX as u32, 0),
        (0x7fff_ffff, i32::MAX as u32, 1_073_741_823),
        (0x8000_0000, i32::MAX as u32, 1_073_741_823),
        (0xffff_ffff, i32::MAX as u32, 2_147_483_646),
        (0xffff_ffff, u32::MAX, u32::MAX - 1),
    ];
    for &(hash, total, want) in cases {
        assert_eq!(
            bucket_for_hash(hash, total),
            want,
            "hash={hash:#x} total={total}"
        );
        if total > 0 {
            assert!(bucket_for_hash(hash, total) < total);
        }
    }
}

#[test]
fn cumulative_pick() {
    assert_eq!(pick_bucket(0, &[50, 50]), Some(0));
    assert_eq!(pick_bucket(49, &[50, 50]), Some(0));
    assert_eq!(pick_bucket(50, &[50, 50]), Some(1));
    assert_eq!(pick_bucket(99, &[50, 50]), Some(1));
    assert_eq!(pick_bucket(100, &[50, 50]), None);
    assert_eq!(pick_bucket(9, &[10, 20, 70]), Some(0));
    assert_eq!(pick_bucket(10, &[10, 20, 70]), Some(1));
    assert_eq!(pick_bucket(29, &[10, 20, 70]), Some(1));
    assert_eq!(pick_bucket(30, &[10, 20, 70]), Some(2));
    assert_eq!(pick_bucket(0, &[0, 5]), Some(1)); // zero weight never chosen
    assert_eq!(pick_bucket(4, &[0, 5, 0]), Some(1));
    assert_eq!(pick_bucket(0, &[]), None);
}

#[test]
fn hash_edge_keys_from_flagd_testbed() {
    // Exact MurmurHash3 preimages published in flagd-testbed for the bucket
    // boundaries, and the resulting 50/50 lower/upper choice.
    let cases = [
        ("ejOoVL", 0u32, 0usize),
        ("bY9fO-", 1, 0),
        ("SI7p-", 0x7fff_ffff, 0),
        ("6LvT0", 0x8000_0000, 1),
        ("ceQdGm", 0xffff_ffff, 1),
    ];
    for (key, hash, idx) in cases {
        assert_eq!(murmur3_x86_32(key.as_bytes(), 0), hash, "{key}");
        assert_eq!(fractional_index(key, &[50, 50]), Some(idx), "{key}");
        let logic = json!({"fractional": [{"var": "targetingKey"}, ["lower", 50], ["upper", 50]]});
        let want = if idx == 0 { "lower" } else { "upper" };
        assert_eq!(
            apply(&logic, &json!({"targetingKey": key})),
            Ok(json!(want))
        );
    }
}

#[test]
fn flagd_testbed_v2_vectors() {
    let set = parse_definitions(
        r#"{"flags": {
          "fractional-flag": {"state": "ENABLED",
            "variants": {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades", "wild": "wild"},
            "defaultVariant": "wild",
            "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]},
              ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]}},
          "fractional-flag-A-shared-seed": {"state": "ENABLED",
            "variants": {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades", "wild": "wild"},
            "defaultVariant": "wild",
            "targeting": {"fractional": [{"cat": ["shared-seed", {"var": "user.name"}]},
              ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]}},
          "fractional-nested-if-flag": {"state": "ENABLED",
            "variants": {"premium": "premium", "standard": "standard"},
            "defaultVariant": "standard",
            "targeting": {"fractional": [{"var": "targetingKey"},
              [{"if": [{"==": [{"var": "tier"}, "premium"]}, "premium", "standard"]}, 50],
              ["standard", 50]]}},
          "fractional-negative-weight-flag": {"state": "ENABLED",
            "variants": {"one": "one", "two": "two", "fallback": "fallback"},
            "defaultVariant": "fallback",
            "targeting": {"fractional": [["one", -50], ["two", 100]]}},
          "fractional-zero-weights-flag": {"state": "ENABLED",
            "variants": {"one": "one", "fallback": "fallback"},
            "defaultVariant": "fallback",
            "targeting": {"fractional": [["one", 0], ["fallback", 0]]}}
        }}"#,
    )
    .expect("parses");
    let name = |n: &str| Context::new().attr("user", json!({"name": n}));
    for (n, want) in [
        ("jack", "hearts"),
        ("queen", "spades"),
        ("ten", "clubs"),
        ("nine", "diamonds"),
        ("3", "clubs"),
    ] {
        let r = evaluate(&set, "fractional-flag", &name(n), 0);
        assert_eq!(r.value, Some(json!(want)), "{n}");
        assert_eq!(r.reason, Reason::Split);
    }
    for (n, want) in [
        ("seven", "hearts"),
        ("eight", "diamonds"),
        ("nine", "clubs"),
        ("two", "spades"),
    ] {
        let r = evaluate(&set, "fractional-flag-A-shared-seed", &name(n), 0);
        assert_eq!(r.value, Some(json!(want)), "{n}");
    }
    for (tk, tier, want) in [
        ("jon@company.com", "premium", "premium"),
        ("jon@company.com", "basic", "standard"),
        ("user1", "premium", "standard"),
        ("user1", "basic", "standard"),
    ] {
        let ctx = Context::with_targeting_key(tk).attr("tier", json!(tier));
        let r = evaluate(&set, "fractional-nested-if-flag", &ctx, 0);
        assert_eq!(r.value, Some(json!(want)), "{tk}/{tier}");
    }
    // Negative weights count as 0 (warned at load); all-zero -> DEFAULT.
    assert!(!set.warnings.is_empty());
    let r = evaluate(
        &set,
        "fractional-negative-weight-flag",
        &Context::with_targeting_key("any-user"),
        0,
    );
    assert_eq!(r.value, Some(json!("two")));
    let r = evaluate(
        &set,
        "fractional-zero-weights-flag",
        &Context::with_targeting_key("any-user"),
        0,
    );
    assert_eq!(
        (r.value, r.reason),
        (Some(json!("fallback")), Reason::Default)
    );
}

fn distribution(flag_key: &str, weights: &[(&str, u32)], n: usize) -> Vec<usize> {
    let buckets: Vec<Value> = weights.iter().map(|(v, w)| json!([v, w])).collect();
    let logic = json!({"fractional": buckets});
    let mut counts = vec![0usize; weights.len()];
    for i in 0..n {
        let data = json!({"targetingKey": format!("user-{i}"), "$flagd": {"flagKey": flag_key}});
        let got = apply(&logic, &data).expect("evaluates");
        let idx = weights
            .iter()
            .position(|(v, _)| got == json!(v))
            .expect("a listed variant");
        counts[idx] += 1;
    }
    counts
}

fn assert_within_2pct(counts: &[usize], weights: &[(&str, u32)], n: usize) {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    for (c, (name, w)) in counts.iter().zip(weights) {
        let observed = *c as f64 / n as f64;
        let expected = f64::from(*w) / f64::from(total);
        assert!(
            (observed - expected).abs() <= 0.02,
            "{name}: observed {observed:.4}, expected {expected:.4} ({counts:?})"
        );
    }
}

#[test]
fn distribution_50_50() {
    let w = [("a", 50), ("b", 50)];
    let counts = distribution("rollout", &w, 10_000);
    assert_within_2pct(&counts, &w, 10_000);
}

#[test]
fn distribution_10_20_70() {
    let w = [("red", 10), ("green", 20), ("blue", 70)];
    let counts = distribution("colours", &w, 10_000);
    assert_within_2pct(&counts, &w, 10_000);
}

#[test]
fn distribution_small_weights_and_singletons() {
    // [name] entries weigh 1: three equal buckets.
    let logic = json!({"fractional": [["x"], ["y"], ["z"]]});
    let mut counts = [0usize; 3];
    for i in 0..9_000 {
        let got = apply(&logic, &json!({"targetingKey": format!("k{i}")})).expect("evaluates");
        let idx = ["x", "y", "z"]
            .iter()
            .position(|v| got == json!(v))
            .expect("listed");
        counts[idx] += 1;
    }
    for c in counts {
        assert!((c as f64 / 9_000.0 - 1.0 / 3.0).abs() <= 0.02, "{counts:?}");
    }
}

#[test]
fn stability() {
    let logic = json!({"fractional": [["a", 10], ["b", 20], ["c", 70]]});
    for i in 0..500 {
        let data = json!({"targetingKey": format!("user-{i}"), "$flagd": {"flagKey": "f"}});
        let first = apply(&logic, &data);
        for _ in 0..3 {
            assert_eq!(apply(&logic, &data), first);
        }
        // Same bucketing string through the explicit form gives the same answer.
        let explicit =
            json!({"fractional": [format!("fuser-{i}"), ["a", 10], ["b", 20], ["c", 70]]});
        assert_eq!(apply(&explicit, &json!({})), first);
    }
    // A different flag key reshuffles users (independent rollouts).
    let moved = (0..1_000)
        .filter(|i| {
            let d1 = json!({"targetingKey": format!("u{i}"), "$flagd": {"flagKey": "one"}});
            let d2 = json!({"targetingKey": format!("u{i}"), "$flagd": {"flagKey": "two"}});
            apply(&logic, &d1) != apply(&logic, &d2)
        })
        .count();
    assert!(moved > 200, "{moved}");
}

#[test]
fn missing_bucketing_value_yields_null() {
    let logic = json!({"fractional": [["a", 1], ["b", 1]]});
    assert_eq!(apply(&logic, &json!({})), Ok(Value::Null));
    // Explicit expression evaluating to null falls back to targetingKey.
    let logic = json!({"fractional": [{"var": "email"}, ["a", 1], ["b", 1]]});
    assert_eq!(apply(&logic, &json!({})), Ok(Value::Null));
    assert!(apply(&logic, &json!({"targetingKey": "t"})).is_ok_and(|v| v.is_string()));
    // Non-string bucketing value: unusable, null (as flagd).
    let logic = json!({"fractional": [{"var": "n"}, ["a", 1], ["b", 1]]});
    assert_eq!(
        apply(&logic, &json!({"n": 5, "targetingKey": "t"})),
        Ok(Value::Null)
    );
}
