//! OFREP shapes over the fixture.

use portico_flags_logic::definitions::parse_definitions;
use portico_flags_logic::evaluate::{
    Context, EvalOptions, ValueType, evaluate, evaluate_all, evaluate_typed, evaluate_with,
};
use portico_flags_logic::ofrep::{
    OfrepErrorCode, bulk_response, etag_for, if_none_match, parse_request, request_error_response,
    single_response,
};
use serde_json::json;

const NOW: u64 = 1_800_000_000;

#[test]
fn request_parsing() {
    let ctx = parse_request(br#"{"context": {"targetingKey": "u1", "email": "a@b.c"}}"#).unwrap();
    assert_eq!(ctx.targeting_key.as_deref(), Some("u1"));
    assert_eq!(ctx.attributes.get("email"), Some(&json!("a@b.c")));
    assert!(!ctx.attributes.contains_key("targetingKey"));

    assert_eq!(parse_request(b"").unwrap(), Context::default());
    assert_eq!(parse_request(b"  \n").unwrap(), Context::default());
    assert_eq!(parse_request(b"{}").unwrap(), Context::default());
    assert_eq!(
        parse_request(br#"{"context": null}"#).unwrap(),
        Context::default()
    );
    assert_eq!(
        parse_request(br#"{"context": {"targetingKey": null}}"#)
            .unwrap()
            .targeting_key,
        None
    );

    // Size and attribute caps: a context is a user's attributes.
    let many: serde_json::Map<String, serde_json::Value> =
        (0..257).map(|i| (format!("a{i}"), json!(i))).collect();
    let e = parse_request(json!({"context": many}).to_string().as_bytes()).unwrap_err();
    assert_eq!(e.code, OfrepErrorCode::InvalidContext);
    assert!(e.details.contains("256"), "{}", e.details);
    let big = json!({"context": {"pad": "x".repeat(64 * 1024)}}).to_string();
    let e = parse_request(big.as_bytes()).unwrap_err();
    assert_eq!(e.code, OfrepErrorCode::InvalidContext);
    assert!(e.details.contains("65536"), "{}", e.details);

    for (body, code) in [
        (&b"{not json"[..], OfrepErrorCode::ParseError),
        (&b"\xff\xfe"[..], OfrepErrorCode::ParseError),
        (&b"[1,2]"[..], OfrepErrorCode::InvalidContext),
        (&br#"{"context": "x"}"#[..], OfrepErrorCode::InvalidContext),
        (
            &br#"{"context": {"targetingKey": 42}}"#[..],
            OfrepErrorCode::InvalidContext,
        ),
    ] {
        let e = parse_request(body).unwrap_err();
        assert_eq!(e.code, code, "{body:?}");
        let single = request_error_response(&e, Some("f"));
        assert_eq!(single.status, 400);
        assert_eq!(single.body["key"], json!("f"));
        assert_eq!(single.body["errorCode"], json!(code.as_str()));
        assert!(single.body["errorDetails"].is_string());
        let bulk = request_error_response(&e, None);
        assert_eq!(bulk.status, 400);
        assert!(bulk.body.get("key").is_none());
    }
}

fn set() -> portico_flags_logic::FlagSet {
    parse_definitions(include_str!("fixtures/flags.json")).unwrap()
}

#[test]
fn single_success_and_errors() {
    let set = set();
    let ctx = Context::new().attr("tier", json!("gold"));
    let r = single_response(&evaluate(&set, "bool-targeted", &ctx, NOW));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"key": "bool-targeted", "value": true, "variant": "true", "reason": "TARGETING_MATCH",
               "metadata": {"flagSetId": "portico-test", "version": "1"}})
    );

    let r = single_response(&evaluate(&set, "nope", &ctx, NOW));
    assert_eq!(r.status, 404);
    assert_eq!(r.body["errorCode"], json!("FLAG_NOT_FOUND"));
    assert_eq!(r.body["key"], json!("nope"));
    assert!(
        r.body["errorDetails"]
            .as_str()
            .is_some_and(|d| d.contains("nope"))
    );

    let r = single_response(&evaluate_typed(
        &set,
        "bool-static",
        &ctx,
        NOW,
        ValueType::String,
    ));
    assert_eq!(
        (r.status, r.body["errorCode"].clone()),
        (400, json!("TYPE_MISMATCH"))
    );

    let strict = EvalOptions {
        strict_targeting_key: true,
        ..EvalOptions::default()
    };
    let r = single_response(&evaluate_with(
        &set,
        "fractional-default",
        &ctx,
        NOW,
        &strict,
    ));
    assert_eq!(
        (r.status, r.body["errorCode"].clone()),
        (400, json!("TARGETING_KEY_MISSING"))
    );
}

#[test]
fn disabled_and_code_default_are_valueless_successes() {
    let set = set();
    let r = single_response(&evaluate(&set, "disabled-flag", &Context::new(), NOW));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"key": "disabled-flag", "reason": "DISABLED",
               "metadata": {"flagSetId": "portico-test", "version": "1", "owner": "ops"}})
    );
    let r = single_response(&evaluate(&set, "code-default", &Context::new(), NOW));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["reason"], json!("DEFAULT"));
    assert!(r.body.get("value").is_none() && r.body.get("variant").is_none());
}

#[test]
fn bulk_and_etag() {
    let set = set();
    let ctx = Context::with_targeting_key("bulk");
    let res = evaluate_all(&set, &ctx, NOW);
    let bulk = bulk_response(&res, Some(&set.metadata));
    assert_eq!(bulk.status, 200);
    let flags = bulk.body["flags"].as_array().unwrap();
    assert_eq!(flags.len(), set.flags.len());
    assert_eq!(bulk.body["metadata"]["flagSetId"], json!("portico-test"));
    assert!(
        flags
            .iter()
            .all(|f| f["key"].is_string() && f.get("reason").is_some())
    );

    // An error entry inside a bulk response carries its key.
    let mut mixed = res.clone();
    mixed.push(evaluate(&set, "gone", &ctx, NOW));
    let body = bulk_response(&mixed, None).body;
    let last = body["flags"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap();
    assert_eq!(
        last,
        json!({"key": "gone", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag \"gone\" not found"})
    );
    assert!(body.get("metadata").is_none());

    // ETag: deterministic, quoted hex, content-sensitive.
    let tag = etag_for(&bulk.body);
    assert_eq!(
        tag,
        etag_for(&bulk_response(&evaluate_all(&set, &ctx, NOW), Some(&set.metadata)).body)
    );
    assert_eq!(tag.len(), 18);
    assert!(tag.starts_with('"') && tag.ends_with('"'));
    assert!(tag[1..17].chars().all(|c| c.is_ascii_hexdigit()));
    let other = bulk_response(
        &evaluate_all(&set, &Context::new().attr("tier", json!("gold")), NOW),
        None,
    );
    assert_ne!(tag, etag_for(&other.body));
    // Key order of the input does not matter (canonical, sorted maps).
    let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":1}}"#).unwrap();
    let b: serde_json::Value = serde_json::from_str(r#"{"a":{"x":1,"y":2},"b":1}"#).unwrap();
    assert_eq!(etag_for(&a), etag_for(&b));

    assert!(if_none_match(&tag, &tag));
    assert!(if_none_match(&format!("W/{tag}"), &tag));
    assert!(if_none_match(&format!("\"zzz\", {tag}"), &tag));
    assert!(if_none_match("*", &tag));
    assert!(!if_none_match("\"0000000000000000\"", &tag));
}
