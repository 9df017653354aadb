//! Property tests for the two parsers of flag configuration: flagd
//! definition documents and the JSONLogic rules inside them. Rules run
//! against evaluation contexts that clients send, so `apply` must never
//! panic and must stop within its step budget whatever the rule and the
//! context; a document that loads must re-serialise to one that loads the
//! same.

use std::time::{Duration, Instant};

use portico_flags_logic::definitions::{
    FlagSet, MAX_SAFE_INTEGER, parse_definitions, parse_definitions_value,
};
use portico_flags_logic::jsonlogic::{self, EvalError, Limits, MAX_DEPTH, OPERATORS};
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

/// Far above what a 200,000-step evaluation costs even unoptimised; only
/// work the budget does not count could come near it.
const WALL_CLOCK_CAP: Duration = Duration::from_secs(2);

const KEYS: &[&str] = &[
    "a",
    "b",
    "tier",
    "targetingKey",
    "$flagd",
    "big",
    "list",
    "0",
    "",
];

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-5i64..20).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        2 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

/// Numbers as people write them in flag files: integers and decimals of at
/// most 15 significant digits with a modest exponent. serde_json (built
/// without its `float_roundtrip` feature) reads back every one of these
/// exactly from its own output, which it does not do for every `f64`.
fn written_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => (-999_999_999_999_999i64..=999_999_999_999_999, -20i32..=20).prop_filter_map(
            "finite",
            |(mantissa, exp)| {
                let text = format!("{mantissa}e{exp}");
                serde_json::from_str::<Value>(&text).ok()
            },
        ),
        1 => (-1_000_000i64..1_000_000, 0i32..=4).prop_map(|(n, places)| json!(n as f64 / 10f64.powi(places))),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    scalar_with(number().boxed())
}

fn scalar_with(number: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number,
        3 => prop_oneof![
            "[a-z0-9.]{0,6}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{0,6})?(\\+[a-z]{0,3})?",
            "v?[0-9]{1,2}(\\.[0-9x*]{1,2}){0,3}",
            "\\PC{0,12}",
            prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            "[a-z]{1,3}(\\.[a-z0-9]{1,3}){1,3}",
        ]
        .prop_map(Value::String),
    ]
}

/// Contexts with the keys the rules look up, some nested, some large.
fn data() -> impl Strategy<Value = Value> {
    let leaf = scalar();
    let value = leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(prop::sample::select(KEYS.to_vec()), inner, 0..5)
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
        ]
    });
    (
        proptest::collection::btree_map(prop::sample::select(KEYS.to_vec()), value, 0..6),
        proptest::option::of("[a-z ]{0,2000}"),
        proptest::option::of(proptest::collection::vec(number(), 0..300)),
    )
        .prop_map(|(m, big, list)| {
            let mut map: Map<String, Value> =
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(big) = big {
                map.insert("big".into(), Value::String(big));
            }
            if let Some(list) = list {
                map.insert("list".into(), Value::Array(list));
            }
            Value::Object(map)
        })
}

fn operator() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => prop::sample::select(OPERATORS.to_vec()).prop_map(str::to_owned),
        1 => Just("$ref".to_owned()),
        1 => "[a-z_]{1,6}",
    ]
}

/// JSONLogic rules: every operator, with argument lists of any length and
/// shape, `var` paths that hit the context, and literals of every type.
fn logic() -> impl Strategy<Value = Value> {
    logic_with(number().boxed())
}

fn logic_with(number: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => scalar_with(number),
        2 => prop_oneof![
            prop::sample::select(KEYS.to_vec()).prop_map(Value::from),
            "[a-z0-9]{0,3}(\\.[a-z0-9]{0,3}){0,2}".prop_map(Value::from),
            Just(json!(["list", 0])),
            Just(json!("big")),
        ]
        .prop_map(|path| json!({ "var": path })),
        1 => Just(json!({"var": ""})),
    ];
    leaf.prop_recursive(6, 64, 5, |inner| {
        prop_oneof![
            6 => (operator(), proptest::collection::vec(inner.clone(), 0..5))
                .prop_map(|(op, args)| json!({ op: args })),
            2 => (operator(), inner.clone()).prop_map(|(op, arg)| json!({ op: arg })),
            1 => proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            1 => proptest::collection::btree_map("[a-z]{1,3}", inner, 2..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::default()),
        1 => (1usize..=MAX_DEPTH, 1u64..5_000).prop_map(|(max_depth, step_budget)| Limits { max_depth, step_budget }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn apply_never_panics_and_stops_within_its_budget(
        logic in logic(),
        data in data(),
        limits in limits(),
    ) {
        let started = Instant::now();
        let result = jsonlogic::apply_traced(&logic, &data, limits);
        let elapsed = started.elapsed();
        prop_assert!(elapsed < WALL_CLOCK_CAP, "{:?} for {}", elapsed, logic);
        match result {
            Ok((_, trace)) => prop_assert!(trace.work <= limits.step_budget, "{} > {}", trace.work, limits.step_budget),
            Err(EvalError::BudgetExceeded | EvalError::DepthExceeded) => {}
            Err(EvalError::UnresolvedRef(_) | EvalError::UnknownOperator(_)) => {
                // Only reachable for rules that validation would refuse.
                prop_assert!(jsonlogic::validate(&logic, "", false).is_err());
            }
        }
        prop_assert_eq!(jsonlogic::apply(&logic, &data).is_ok(), jsonlogic::apply_traced(&logic, &data, Limits::default()).is_ok());
    }

    #[test]
    fn validated_rules_only_fail_on_their_limits(logic in logic(), data in data()) {
        prop_assume!(jsonlogic::validate(&logic, "", false).is_ok());
        let _ = jsonlogic::lint(&logic, "");
        match jsonlogic::apply(&logic, &data) {
            Ok(_) | Err(EvalError::BudgetExceeded | EvalError::DepthExceeded) => {}
            Err(other) => prop_assert!(false, "validated rule failed with {:?}", other),
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed(depth in 100usize..3_000, op in prop::sample::select(vec!["!", "if", "and", "+", "var"])) {
        let mut logic = json!(true);
        for _ in 0..depth {
            logic = Value::Object(Map::from_iter([(op.to_owned(), Value::Array(vec![logic]))]));
        }
        let result = jsonlogic::apply(&logic, &json!({}));
        if depth > MAX_DEPTH + 1 {
            prop_assert_eq!(result, Err(EvalError::DepthExceeded));
            prop_assert!(jsonlogic::validate(&logic, "", false).is_err());
        }
        // Dropping a deep `Value` recurses too; keep it shallow for the
        // drop glue by taking it apart iteratively.
        let mut stack = vec![logic];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Flag definitions
// ---------------------------------------------------------------------------

fn variants() -> impl Strategy<Value = Value> {
    let of = |values: BoxedStrategy<Value>| {
        proptest::collection::btree_map("[a-z]{1,4}|\\PC{0,3}", values, 1..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    };
    prop_oneof![
        3 => of(any::<bool>().prop_map(Value::Bool).boxed()),
        3 => of("\\PC{0,6}".prop_map(Value::String).boxed()),
        3 => of(written_number().boxed()),
        2 => of(prop_oneof![Just(json!({})), Just(json!({"limit": 5, "tags": ["x"]}))].boxed()),
        1 => of(scalar_with(written_number().boxed()).boxed()),
        1 => of(prop_oneof![Just(json!(null)), Just(json!([1]))].boxed()),
        1 => Just(json!({})),
        1 => Just(json!([])),
    ]
}

/// A flag: usually well-formed, with targeting from the rule generator,
/// `$ref`s to shared evaluators, and now and then a broken member.
fn flag() -> impl Strategy<Value = Value> {
    (
        prop_oneof![8 => Just(json!("ENABLED")), 2 => Just(json!("DISABLED")), 1 => Just(json!("enabled"))],
        variants(),
        // Which `defaultVariant`: mostly a real variant, else absent,
        // `null`, an unknown name or a number.
        0u8..8,
        prop_oneof![
            3 => Just(None),
            3 => logic_with(written_number().boxed()).prop_map(Some),
            1 => Just(Some(json!({}))),
            1 => Just(Some(Value::Null)),
            2 => "[a-c]".prop_map(|name| Some(json!({"if": [{"$ref": name}, "on", null]}))),
            1 => Just(Some(json!({"fractional": [["on", 50], ["off", 50]]}))),
        ],
        prop_oneof![
            4 => Just(None),
            2 => Just(Some(json!({"owner": "web", "version": 2, "beta": true}))),
            1 => Just(Some(json!({"bad": [1]}))),
        ],
        proptest::option::weighted(0.05, Just(("defualtVariant", json!("x")))),
    )
        .prop_map(|(state, variants, default, targeting, metadata, typo)| {
            let mut f = Map::new();
            f.insert("state".into(), state);
            let first = variants.as_object().and_then(|v| v.keys().next().cloned());
            let default = match default {
                0..=3 => first.map(Value::String),
                4 => None,
                5 => Some(Value::Null),
                6 => Some(json!("zz-missing")),
                _ => Some(json!(1)),
            };
            f.insert("variants".into(), variants);
            if let Some(d) = default {
                f.insert("defaultVariant".into(), d);
            }
            if let Some(t) = targeting {
                f.insert("targeting".into(), t);
            }
            if let Some(m) = metadata {
                f.insert("metadata".into(), m);
            }
            if let Some((k, v)) = typo {
                f.insert(k.into(), v);
            }
            Value::Object(f)
        })
}

fn document() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(prop_oneof![
            4 => Just(json!("https://flagd.dev/schema/v0/flags.json")),
            1 => Just(json!(null)),
            1 => Just(json!(3)),
        ]),
        proptest::collection::btree_map(
            prop_oneof![6 => "[a-z-]{1,6}", 1 => "\\PC{0,4}"],
            flag(),
            1..4,
        ),
        proptest::option::of(proptest::collection::btree_map(
            "[a-c]",
            prop_oneof![
                3 => logic_with(written_number().boxed()),
                1 => "[a-c]".prop_map(|n| json!({"$ref": n})),
            ],
            0..3,
        )),
        proptest::option::weighted(
            0.3,
            prop_oneof![4 => Just(json!({"flagSetId": "x"})), 1 => Just(json!({"n": null}))],
        ),
    )
        .prop_map(|(schema, flags, evaluators, metadata)| {
            let mut root = Map::new();
            if let Some(s) = schema {
                root.insert("$schema".into(), s);
            }
            root.insert("flags".into(), Value::Object(flags.into_iter().collect()));
            if let Some(e) = evaluators {
                root.insert("$evaluators".into(), Value::Object(e.into_iter().collect()));
            }
            if let Some(m) = metadata {
                root.insert("metadata".into(), m);
            }
            Value::Object(root)
        })
}

fn check_reloads(set: &FlagSet) -> Result<(), TestCaseError> {
    let again = parse_definitions_value(&set.to_value())
        .map_err(|e| TestCaseError::fail(format!("canonical form refused: {e}")))?;
    prop_assert_eq!(&again, set);
    let text = set.to_canonical_string();
    let reparsed = parse_definitions(&text)
        .map_err(|e| TestCaseError::fail(format!("canonical text refused: {e}")))?;
    prop_assert_eq!(reparsed.to_canonical_string(), text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn loaded_documents_reload_from_their_canonical_form(doc in document()) {
        if let Ok(set) = parse_definitions_value(&doc) {
            for flag in set.flags.values() {
                prop_assert!(!flag.variants.is_empty());
                prop_assert!(flag.default_variant.as_ref().is_none_or(|d| flag.variants.contains_key(d)));
            }
            check_reloads(&set)?;
        }
    }

    #[test]
    fn parse_definitions_never_panics_on_text(
        text in prop_oneof![
            3 => document().prop_map(|d| d.to_string()),
            // Cut a real document anywhere: truncated uploads.
            2 => (document(), any::<prop::sample::Index>()).prop_map(|(d, at)| {
                let s = d.to_string();
                let cut = at.index(s.len() + 1);
                let cut = (0..=cut).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                s[..cut].to_owned()
            }),
            1 => any::<String>(),
        ],
    ) {
        if let Ok(set) = parse_definitions(&text) {
            check_reloads(&set)?;
        }
    }
}
