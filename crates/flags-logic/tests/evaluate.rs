//! End-to-end evaluation over the fixture in `tests/fixtures/flags.json`.

use portico_flags_logic::definitions::{FlagSet, parse_definitions};
use portico_flags_logic::evaluate::{
    Context, ErrorCode, EvalOptions, Reason, Resolution, ValueType, evaluate, evaluate_all,
    evaluate_typed, evaluate_with,
};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

fn fixture() -> FlagSet {
    let set = parse_definitions(include_str!("fixtures/flags.json")).expect("fixture parses");
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    set
}

fn eval(set: &FlagSet, key: &str, ctx: &Context) -> Resolution {
    evaluate(set, key, ctx, NOW)
}

fn ok(r: &Resolution, value: Value, variant: &str, reason: Reason) {
    assert_eq!(r.error_code, None, "{r:?}");
    assert_eq!(r.value.as_ref(), Some(&value), "{r:?}");
    assert_eq!(r.variant.as_deref(), Some(variant), "{r:?}");
    assert_eq!(r.reason, reason, "{r:?}");
}

#[test]
fn static_flags_of_every_type() {
    let set = fixture();
    let ctx = Context::new();
    ok(
        &eval(&set, "bool-static", &ctx),
        json!(true),
        "on",
        Reason::Static,
    );
    ok(
        &eval(&set, "string-static", &ctx),
        json!("#00f"),
        "blue",
        Reason::Static,
    );
    ok(
        &eval(&set, "int-static", &ctx),
        json!(10),
        "ten",
        Reason::Static,
    );
    ok(
        &eval(&set, "float-static", &ctx),
        json!(0.5),
        "half",
        Reason::Static,
    );
    ok(
        &eval(&set, "object-static", &ctx),
        json!({"limit": 5, "tags": ["x"]}),
        "small",
        Reason::Static,
    );
    ok(
        &eval(&set, "empty-targeting", &ctx),
        json!("B"),
        "b",
        Reason::Static,
    );
}

#[test]
fn metadata_merges_set_and_flag() {
    let set = fixture();
    let r = eval(&set, "string-static", &Context::new());
    assert_eq!(
        Value::Object(r.metadata),
        json!({"flagSetId": "portico-test", "version": "2", "owner": "web"})
    );
    let r = eval(&set, "bool-static", &Context::new());
    assert_eq!(
        Value::Object(r.metadata),
        json!({"flagSetId": "portico-test", "version": "1"})
    );
}

#[test]
fn boolean_results_name_variants() {
    let set = fixture();
    let gold = Context::new().attr("tier", json!("gold"));
    ok(
        &eval(&set, "bool-targeted", &gold),
        json!(true),
        "true",
        Reason::TargetingMatch,
    );
    let silver = Context::new().attr("tier", json!("silver"));
    ok(
        &eval(&set, "bool-targeted", &silver),
        json!(false),
        "false",
        Reason::TargetingMatch,
    );
}

#[test]
fn starts_and_ends_with() {
    let set = fixture();
    let inside = Context::new().attr("ip", json!("10.1.2.3"));
    ok(
        &eval(&set, "starts-with", &inside),
        json!("internal"),
        "internal",
        Reason::TargetingMatch,
    );
    let outside = Context::new().attr("ip", json!("192.168.0.1"));
    ok(
        &eval(&set, "starts-with", &outside),
        json!("external"),
        "external",
        Reason::Default,
    );
    // Non-string input: operator yields null -> falsy -> else branch.
    let weird = Context::new().attr("ip", json!(10));
    ok(
        &eval(&set, "starts-with", &weird),
        json!("external"),
        "external",
        Reason::Default,
    );

    let staff = Context::new().attr("email", json!("ann@example.com"));
    ok(
        &eval(&set, "ends-with", &staff),
        json!(1),
        "staff",
        Reason::TargetingMatch,
    );
    let public = Context::new().attr("email", json!("ann@elsewhere.org"));
    ok(
        &eval(&set, "ends-with", &public),
        json!(0),
        "public",
        Reason::TargetingMatch,
    );
}

#[test]
fn sem_ver_operator() {
    let set = fixture();
    let v = |s: &str| Context::new().attr("appVersion", json!(s));
    ok(
        &eval(&set, "semver", &v("2.1.0")),
        json!("new"),
        "new",
        Reason::TargetingMatch,
    );
    ok(
        &eval(&set, "semver", &v("v3.0.0-rc.1")),
        json!("new"),
        "new",
        Reason::TargetingMatch,
    );
    ok(
        &eval(&set, "semver", &v("2.0.7")),
        json!("patch"),
        "patch",
        Reason::TargetingMatch,
    );
    ok(
        &eval(&set, "semver", &v("2.0.0-rc.1")),
        json!("patch"),
        "patch",
        Reason::TargetingMatch,
    );
    // 2.1.0-alpha < 2.1.0 and is not ~2.0.0: falls through to null.
    ok(
        &eval(&set, "semver", &v("2.1.0-alpha")),
        json!("old"),
        "old",
        Reason::Default,
    );
    ok(
        &eval(&set, "semver", &v("1.9.9")),
        json!("old"),
        "old",
        Reason::Default,
    );
    ok(
        &eval(&set, "semver", &v("not-a-version")),
        json!("old"),
        "old",
        Reason::Default,
    );
}

#[test]
fn evaluator_refs() {
    let set = fixture();
    let beta_staff = Context::new()
        .attr("email", json!("ann@example.com"))
        .attr("appVersion", json!("3.4.0"));
    ok(
        &eval(&set, "ref-flag", &beta_staff),
        json!(true),
        "on",
        Reason::TargetingMatch,
    );
    let old_staff = Context::new()
        .attr("email", json!("ann@example.com"))
        .attr("appVersion", json!("2.9.0"));
    ok(
        &eval(&set, "ref-flag", &old_staff),
        json!(false),
        "off",
        Reason::Default,
    );
}

#[test]
fn flagd_properties_are_injected() {
    let set = fixture();
    let ctx = Context::new();
    ok(
        &eval(&set, "flagkey-flag", &ctx),
        json!("yes"),
        "yes",
        Reason::TargetingMatch,
    );
    ok(
        &eval(&set, "timestamp-flag", &ctx),
        json!("after"),
        "after",
        Reason::TargetingMatch,
    );
    let r = evaluate(&set, "timestamp-flag", &ctx, 1_600_000_000);
    ok(&r, json!("before"), "before", Reason::TargetingMatch);
    // A caller-supplied $flagd is overwritten.
    let spoof = Context::new().attr("$flagd", json!({"flagKey": "other", "timestamp": 0}));
    ok(
        &eval(&set, "flagkey-flag", &spoof),
        json!("yes"),
        "yes",
        Reason::TargetingMatch,
    );
}

#[test]
fn fractional_reports_split() {
    let set = fixture();
    let r = eval(
        &set,
        "fractional-default",
        &Context::with_targeting_key("user-1"),
    );
    assert_eq!(r.reason, Reason::Split, "{r:?}");
    assert!(matches!(r.variant.as_deref(), Some("a" | "b")));
    let r = eval(
        &set,
        "fractional-custom",
        &Context::new().attr("email", json!("x@y.z")),
    );
    assert_eq!(r.reason, Reason::Split, "{r:?}");
    // Through an `if`, still a split; the other branch is a plain match.
    let nz = Context::with_targeting_key("u").attr("country", json!("NZ"));
    assert_eq!(eval(&set, "fractional-in-if", &nz).reason, Reason::Split);
    let au = Context::with_targeting_key("u").attr("country", json!("AU"));
    ok(
        &eval(&set, "fractional-in-if", &au),
        json!(3),
        "c",
        Reason::TargetingMatch,
    );
}

#[test]
fn fractional_without_targeting_key() {
    let set = fixture();
    // flagd: fractional yields null -> DEFAULT with the default variant.
    let r = eval(&set, "fractional-default", &Context::new());
    ok(&r, json!("A"), "a", Reason::Default);
    // Strict mode reports TARGETING_KEY_MISSING.
    let strict = EvalOptions {
        strict_targeting_key: true,
        ..EvalOptions::default()
    };
    let r = evaluate_with(&set, "fractional-default", &Context::new(), NOW, &strict);
    assert_eq!(r.reason, Reason::Error);
    assert_eq!(r.error_code, Some(ErrorCode::TargetingKeyMissing));
    assert_eq!(r.value, None);
    // An explicit bucketing value needs no targeting key, even in strict mode.
    let r = evaluate_with(
        &set,
        "fractional-custom",
        &Context::new().attr("email", json!("a@b.c")),
        NOW,
        &strict,
    );
    assert_eq!(r.reason, Reason::Split);
    // Missing explicit bucketing value falls back to flagKey+targetingKey.
    let r = eval(&set, "fractional-custom", &Context::with_targeting_key("k"));
    assert_eq!(r.reason, Reason::Split);
}

#[test]
fn unknown_variant_and_code_default() {
    let set = fixture();
    ok(
        &eval(&set, "unknown-variant", &Context::new()),
        json!(2),
        "two",
        Reason::Default,
    );
    let flagd_like = EvalOptions {
        unknown_variant_is_error: true,
        ..EvalOptions::default()
    };
    let r = evaluate_with(&set, "unknown-variant", &Context::new(), NOW, &flagd_like);
    assert_eq!(
        (r.reason, r.error_code),
        (Reason::Error, Some(ErrorCode::General))
    );

    let r = eval(&set, "code-default", &Context::new());
    assert_eq!(
        (r.reason, r.value.clone(), r.variant.clone()),
        (Reason::Default, None, None)
    );
    let r = eval(
        &set,
        "code-default",
        &Context::new().attr("beta", json!(true)),
    );
    ok(&r, json!("on"), "on", Reason::TargetingMatch);
}

#[test]
fn disabled_and_missing() {
    let set = fixture();
    let r = eval(&set, "disabled-flag", &Context::new());
    assert_eq!(r.reason, Reason::Disabled);
    assert_eq!((r.value, r.variant, r.error_code), (None, None, None));
    assert_eq!(r.metadata.get("owner"), Some(&json!("ops")));

    let r = eval(&set, "no-such-flag", &Context::new());
    assert_eq!(r.reason, Reason::Error);
    assert_eq!(r.error_code, Some(ErrorCode::FlagNotFound));
    assert!(r.error_message.unwrap_or_default().contains("no-such-flag"));
}

#[test]
fn typed_evaluation() {
    let set = fixture();
    let ctx = Context::new();
    let t = |key: &str, ty: ValueType| evaluate_typed(&set, key, &ctx, NOW, ty);
    assert_eq!(
        t("bool-static", ValueType::Boolean).value,
        Some(json!(true))
    );
    assert_eq!(
        t("string-static", ValueType::String).value,
        Some(json!("#00f"))
    );
    assert_eq!(t("int-static", ValueType::Integer).value, Some(json!(10)));
    assert_eq!(t("int-static", ValueType::Float).value, Some(json!(10)));
    assert_eq!(t("float-static", ValueType::Float).value, Some(json!(0.5)));
    assert_eq!(
        t("object-static", ValueType::Object).variant.as_deref(),
        Some("small")
    );
    for (key, ty) in [
        ("bool-static", ValueType::String),
        ("string-static", ValueType::Boolean),
        ("float-static", ValueType::Integer),
        ("int-static", ValueType::Object),
        ("object-static", ValueType::Float),
    ] {
        let r = t(key, ty);
        assert_eq!(
            r.error_code,
            Some(ErrorCode::TypeMismatch),
            "{key} as {ty:?}"
        );
        assert_eq!((r.reason, r.value), (Reason::Error, None));
    }
    assert_eq!(
        t("disabled-flag", ValueType::String).reason,
        Reason::Disabled
    );
    assert_eq!(
        t("missing", ValueType::String).error_code,
        Some(ErrorCode::FlagNotFound)
    );
}

#[test]
fn bulk_evaluation_covers_every_flag_in_order() {
    let set = fixture();
    let all = evaluate_all(&set, &Context::with_targeting_key("bulk-user"), NOW);
    let keys: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert_eq!(all.len(), set.flags.len());
    let disabled = all
        .iter()
        .find(|r| r.key == "disabled-flag")
        .map(|r| r.reason);
    assert_eq!(disabled, Some(Reason::Disabled));
    assert!(all.iter().all(|r| r.error_code.is_none()), "{all:?}");
}

/// A bulk evaluation shares one budget across its flags: fifty flags that
/// each scan a 40,000-element context array cannot each spend their own:
/// about half of them get their answer.
#[test]
fn bulk_evaluation_has_one_budget_for_all_flags() {
    let flags: serde_json::Map<String, Value> = (0..50)
        .map(|i| {
            (
                format!("scan-{i:02}"),
                json!({
                    "state": "ENABLED",
                    "variants": {"on": true, "off": false},
                    "defaultVariant": "off",
                    "targeting": {"if": [{"in": ["needle", {"var": "xs"}]}, "on", "off"]}
                }),
            )
        })
        .collect();
    let set = parse_definitions(&json!({"flags": flags}).to_string()).unwrap();
    let xs: Vec<Value> = (0..40_000).map(Value::from).collect();
    let ctx = Context::with_targeting_key("u").attr("xs", Value::Array(xs));
    let all = evaluate_all(&set, &ctx, NOW);
    assert_eq!(all.len(), 50);
    assert_eq!(all[0].error_code, None, "{:?}", all[0]);
    assert_eq!(all[0].value, Some(json!(false)));
    let out_of_budget: Vec<_> = all
        .iter()
        .filter(|r| {
            r.reason == Reason::Error
                && r.error_message
                    .as_deref()
                    .is_some_and(|m| m.contains("budget"))
        })
        .collect();
    assert!(
        (20..=30).contains(&out_of_budget.len()),
        "{} of 50 flags ran out of the shared budget",
        out_of_budget.len()
    );
    // Alone, one such flag evaluates within its own budget.
    let one = evaluate(&set, "scan-49", &ctx, NOW);
    assert_eq!(one.error_code, None, "{one:?}");
}
