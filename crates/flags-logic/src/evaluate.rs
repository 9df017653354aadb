//! Flag evaluation with OpenFeature resolution semantics, as flagd does it.
//!
//! **Job:** resolve a flag of a [`FlagSet`] for an evaluation [`Context`] into
//! a [`Resolution`] (value, variant, reason, error code, metadata), singly,
//! typed, or in bulk.
//!
//! **Standards followed:** OpenFeature specification — resolution details,
//! reasons (`STATIC`, `TARGETING_MATCH`, `SPLIT`, `DEFAULT`, `DISABLED`,
//! `ERROR`) and error codes (`FLAG_NOT_FOUND`, `PARSE_ERROR`, `TYPE_MISMATCH`,
//! `TARGETING_KEY_MISSING`, `GENERAL`) — and flagd's evaluator rules:
//! * the JSONLogic data is the context attributes plus `targetingKey` and
//!   `$flagd: {"flagKey", "timestamp"}` (the caller passes `now_secs`; any
//!   `$flagd` in the context is overwritten, as flagd does);
//! * no targeting (absent or `{}`) → `STATIC` with `defaultVariant`;
//! * targeting yields a variant name → `TARGETING_MATCH`; booleans and numbers
//!   are rendered to text (`true` → `"true"`, `1` → `"1"`) before the lookup,
//!   which is what flagd's quote-stripping of the JSON result amounts to;
//! * targeting yields `null` → `DEFAULT` with `defaultVariant`;
//! * flag metadata = flag-set metadata overlaid with the flag's own metadata.
//!
//! **Choices and why:**
//! * `SPLIT` is reported when the matched variant came straight out of a
//!   `fractional` (the OpenFeature meaning of SPLIT). flagd itself reports
//!   `TARGETING_MATCH` there.
//! * A targeting result that is not a variant name (unknown string, object…)
//!   → `DEFAULT` with `defaultVariant`, per the flag-definitions doc ("If an
//!   invalid or null value is returned by the targeting rule, the
//!   defaultVariant value is used"). flagd itself answers `ERROR` (`GENERAL`
//!   in the current flagd-testbed, `PARSE_ERROR` in older cores); set
//!   [`EvalOptions::unknown_variant_is_error`] for that.
//! * Disabled flags → reason `DISABLED`, no value/variant, no error: the
//!   caller uses its code default. This is flagd's current behaviour (ADR
//!   "disabled flag evaluation", flagd #1966); older flagd answered
//!   `FLAG_DISABLED`, which its OFREP layer rewrote to a 404 `FLAG_NOT_FOUND`.
//!   [`evaluate_all`] includes disabled flags, again like current flagd.
//! * `defaultVariant: null` (code default): where the default variant would be
//!   served we return reason `DEFAULT` with no value/variant.
//! * `fractional` without a bucketing value and without a targetingKey yields
//!   `null`; by default that is `DEFAULT` (flagd's behaviour). With
//!   [`EvalOptions::strict_targeting_key`] the result is instead `ERROR` +
//!   `TARGETING_KEY_MISSING`, which OFREP maps to a 400.
//! * Evaluation guard failures (rule too deep, step budget) → `ERROR` +
//!   `GENERAL` (flagd maps JSONLogic failures to `PARSE_ERROR`; ours cannot be
//!   parse problems because rules were validated at load).
//! * Typed evaluation checks the flag's declared type; `Integer` additionally
//!   requires an integral value, `Float` accepts any number. A type error gives
//!   `ERROR` + `TYPE_MISMATCH` and no value.

use serde_json::{Map, Value};

use crate::definitions::{Flag, FlagSet, FlagState, FlagType};
use crate::jsonlogic::{self, Limits, to_js_string};

/// The evaluation context: an optional targeting key plus free attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Context {
    pub targeting_key: Option<String>,
    pub attributes: Map<String, Value>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_targeting_key(key: impl Into<String>) -> Self {
        Context {
            targeting_key: Some(key.into()),
            attributes: Map::new(),
        }
    }

    /// Builder-style attribute insertion.
    pub fn attr(mut self, name: impl Into<String>, value: Value) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    /// The JSONLogic data flagd evaluates rules against.
    pub fn data_for(&self, flag_key: &str, now_secs: u64) -> Value {
        let mut m = self.attributes.clone();
        if let Some(tk) = &self.targeting_key {
            m.insert("targetingKey".into(), Value::String(tk.clone()));
        }
        let mut flagd = Map::new();
        flagd.insert("flagKey".into(), Value::String(flag_key.to_owned()));
        flagd.insert("timestamp".into(), Value::from(now_secs));
        m.insert("$flagd".into(), Value::Object(flagd));
        Value::Object(m)
    }
}

/// OpenFeature resolution reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Static,
    TargetingMatch,
    Split,
    Default,
    Disabled,
    Error,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Default => "DEFAULT",
            Reason::Disabled => "DISABLED",
            Reason::Error => "ERROR",
        }
    }
}

/// OpenFeature error codes produced by evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    FlagNotFound,
    ParseError,
    TypeMismatch,
    TargetingKeyMissing,
    General,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The outcome of evaluating one flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub key: String,
    /// `None` on errors, for disabled flags, and when the code default applies.
    pub value: Option<Value>,
    pub variant: Option<String>,
    pub reason: Reason,
    pub error_code: Option<ErrorCode>,
    pub error_message: Option<String>,
    pub metadata: Map<String, Value>,
}

impl Resolution {
    pub fn is_error(&self) -> bool {
        self.error_code.is_some()
    }

    fn error(key: &str, code: ErrorCode, message: String, metadata: Map<String, Value>) -> Self {
        Resolution {
            key: key.to_owned(),
            value: None,
            variant: None,
            reason: Reason::Error,
            error_code: Some(code),
            error_message: Some(message),
            metadata,
        }
    }
}

/// The type a typed evaluation asks for (OpenFeature's five flag types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Boolean => "boolean",
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Float => "float",
            ValueType::Object => "object",
        }
    }
}

/// Knobs for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EvalOptions {
    /// Report `TARGETING_KEY_MISSING` (instead of flagd's `DEFAULT`) when a
    /// `fractional` lacked a targetingKey and the rule produced no variant.
    pub strict_targeting_key: bool,
    /// Treat a targeting result that names no variant as `ERROR` +
    /// `GENERAL` (flagd / flagd-testbed behaviour) instead of serving the
    /// default variant with reason `DEFAULT` (the default here).
    pub unknown_variant_is_error: bool,
    /// JSONLogic depth / step limits.
    pub limits: Limits,
}

/// Evaluate `key` with default options.
pub fn evaluate(set: &FlagSet, key: &str, ctx: &Context, now_secs: u64) -> Resolution {
    evaluate_with(set, key, ctx, now_secs, &EvalOptions::default())
}

/// Evaluate `key` with explicit options.
pub fn evaluate_with(
    set: &FlagSet,
    key: &str,
    ctx: &Context,
    now_secs: u64,
    opts: &EvalOptions,
) -> Resolution {
    match set.flags.get(key) {
        Some(flag) => evaluate_flag(set, flag, &mut RuleData::new(ctx, now_secs), opts).0,
        None => not_found(set, key),
    }
}

/// Evaluate `key` expecting a value of type `expected`.
pub fn evaluate_typed(
    set: &FlagSet,
    key: &str,
    ctx: &Context,
    now_secs: u64,
    expected: ValueType,
) -> Resolution {
    evaluate_typed_with(set, key, ctx, now_secs, expected, &EvalOptions::default())
}

/// [`evaluate_typed`] with explicit options.
pub fn evaluate_typed_with(
    set: &FlagSet,
    key: &str,
    ctx: &Context,
    now_secs: u64,
    expected: ValueType,
    opts: &EvalOptions,
) -> Resolution {
    let Some(flag) = set.flags.get(key) else {
        return not_found(set, key);
    };
    let res = evaluate_flag(set, flag, &mut RuleData::new(ctx, now_secs), opts).0;
    if matches!(res.reason, Reason::Disabled | Reason::Error) {
        return res;
    }
    let type_ok = match expected {
        ValueType::Boolean => flag.flag_type == FlagType::Boolean,
        ValueType::String => flag.flag_type == FlagType::String,
        ValueType::Float => flag.flag_type == FlagType::Number,
        ValueType::Object => flag.flag_type == FlagType::Object,
        ValueType::Integer => {
            flag.flag_type == FlagType::Number && res.value.as_ref().is_none_or(is_integral)
        }
    };
    if type_ok {
        return res;
    }
    let got = match (&res.value, flag.flag_type) {
        (Some(v), FlagType::Number) if !is_integral(v) => "non-integral number".to_owned(),
        _ => flag.flag_type.as_str().to_owned(),
    };
    Resolution::error(
        key,
        ErrorCode::TypeMismatch,
        format!("flag {key:?} is a {got} flag, not {}", expected.as_str()),
        res.metadata,
    )
}

/// Evaluate every flag (key order), disabled ones included.
pub fn evaluate_all(set: &FlagSet, ctx: &Context, now_secs: u64) -> Vec<Resolution> {
    evaluate_all_with(set, ctx, now_secs, &EvalOptions::default())
}

/// [`evaluate_all`] with explicit options.
pub fn evaluate_all_with(
    set: &FlagSet,
    ctx: &Context,
    now_secs: u64,
    opts: &EvalOptions,
) -> Vec<Resolution> {
    let mut data = RuleData::new(ctx, now_secs);
    let mut left = BULK_BUDGET.max(opts.limits.step_budget);
    set.flags
        .values()
        .map(|flag| {
            let mut opts = *opts;
            opts.limits.step_budget = opts.limits.step_budget.min(left);
            let (resolution, work) = evaluate_flag(set, flag, &mut data, &opts);
            left = left.saturating_sub(work);
            resolution
        })
        .collect()
}

/// The work one bulk evaluation may do across all its flags (each flag
/// also has its own [`Limits::step_budget`]): five flags' worth, so many
/// cheap flags evaluate, while a public request cannot make every flag of a
/// large set spend its whole budget.
pub const BULK_BUDGET: u64 = 5 * crate::jsonlogic::DEFAULT_STEP_BUDGET;

/// The JSONLogic data of one request's context, built on first use and
/// shared by every flag it evaluates: only `$flagd.flagKey` differs.
struct RuleData<'a> {
    ctx: &'a Context,
    now_secs: u64,
    data: Option<Value>,
}

impl<'a> RuleData<'a> {
    fn new(ctx: &'a Context, now_secs: u64) -> Self {
        RuleData {
            ctx,
            now_secs,
            data: None,
        }
    }

    fn for_flag(&mut self, flag_key: &str) -> &Value {
        let data = self
            .data
            .get_or_insert_with(|| self.ctx.data_for(flag_key, self.now_secs));
        if let Some(Value::Object(flagd)) = data.get_mut("$flagd") {
            flagd.insert("flagKey".into(), Value::String(flag_key.to_owned()));
        }
        data
    }
}

fn is_integral(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn not_found(set: &FlagSet, key: &str) -> Resolution {
    Resolution::error(
        key,
        ErrorCode::FlagNotFound,
        format!("flag {key:?} not found"),
        set.metadata.clone(),
    )
}

fn merged_metadata(set: &FlagSet, flag: &Flag) -> Map<String, Value> {
    let mut m = set.metadata.clone();
    for (k, v) in &flag.metadata {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn serve_default(flag: &Flag, reason: Reason, metadata: Map<String, Value>) -> Resolution {
    let chosen = flag
        .default_variant
        .as_ref()
        .and_then(|dv| flag.variants.get(dv).map(|v| (dv.clone(), v.clone())));
    match chosen {
        Some((variant, value)) => Resolution {
            key: flag.key.clone(),
            value: Some(value),
            variant: Some(variant),
            reason,
            error_code: None,
            error_message: None,
            metadata,
        },
        None => Resolution {
            key: flag.key.clone(),
            value: None,
            variant: None,
            reason: Reason::Default,
            error_code: None,
            error_message: None,
            metadata,
        },
    }
}

/// The variant name a targeting result designates, if any.
fn variant_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(to_js_string(v)),
        _ => None,
    }
}

/// One flag's resolution, and the evaluation work it took.
fn evaluate_flag(
    set: &FlagSet,
    flag: &Flag,
    data: &mut RuleData<'_>,
    opts: &EvalOptions,
) -> (Resolution, u64) {
    let Some(rule) = flag
        .targeting
        .as_ref()
        .filter(|_| flag.state != FlagState::Disabled)
    else {
        return (resolve(set, flag, None, opts), 0);
    };
    match jsonlogic::apply_traced(rule, data.for_flag(&flag.key), opts.limits) {
        Ok((result, trace)) => (
            resolve(set, flag, Some(Ok((result, trace))), opts),
            trace.work,
        ),
        Err(e) => (
            resolve(set, flag, Some(Err(e)), opts),
            opts.limits.step_budget,
        ),
    }
}

fn resolve(
    set: &FlagSet,
    flag: &Flag,
    evaluated: Option<Result<(Value, jsonlogic::Trace), jsonlogic::EvalError>>,
    opts: &EvalOptions,
) -> Resolution {
    let metadata = merged_metadata(set, flag);
    if flag.state == FlagState::Disabled {
        return Resolution {
            key: flag.key.clone(),
            value: None,
            variant: None,
            reason: Reason::Disabled,
            error_code: None,
            error_message: None,
            metadata,
        };
    }
    let Some(evaluated) = evaluated else {
        return serve_default(flag, Reason::Static, metadata);
    };
    let (result, trace) = match evaluated {
        Ok(r) => r,
        Err(e) => {
            return Resolution::error(
                &flag.key,
                ErrorCode::General,
                format!("flag {:?}: {e}", flag.key),
                metadata,
            );
        }
    };
    if result.is_null() && trace.fractional_missing_key && opts.strict_targeting_key {
        return Resolution::error(
            &flag.key,
            ErrorCode::TargetingKeyMissing,
            format!(
                "flag {:?}: fractional targeting needs a targetingKey (or an explicit bucketing value)",
                flag.key
            ),
            metadata,
        );
    }
    match variant_name(&result).and_then(|n| flag.variants.get(&n).map(|v| (n, v))) {
        Some((name, value)) => Resolution {
            key: flag.key.clone(),
            value: Some(value.clone()),
            variant: Some(name),
            reason: if trace.split {
                Reason::Split
            } else {
                Reason::TargetingMatch
            },
            error_code: None,
            error_message: None,
            metadata,
        },
        None if opts.unknown_variant_is_error && !result.is_null() => Resolution::error(
            &flag.key,
            ErrorCode::General,
            format!(
                "flag {:?}: targeting returned {result}, which is not a variant",
                flag.key
            ),
            metadata,
        ),
        None => serve_default(flag, Reason::Default, metadata),
    }
}

/// Applies a forced assignment (a sticky A/B override) to a resolution: when
/// the flag exists, is enabled and has `variant`, the answer becomes that
/// variant with reason `TARGETING_MATCH` and metadata `override: true`.
/// Anything else (unknown variant, disabled or missing flag) leaves the
/// resolution as it was, so a stale override can never produce a value the
/// definitions do not allow.
pub fn with_override(set: &FlagSet, resolution: Resolution, variant: &str) -> Resolution {
    let Some(flag) = set.flags.get(&resolution.key) else {
        return resolution;
    };
    if flag.state != FlagState::Enabled {
        return resolution;
    }
    let Some(value) = flag.variants.get(variant) else {
        return resolution;
    };
    let mut metadata = resolution.metadata;
    metadata.insert("override".into(), Value::Bool(true));
    Resolution {
        key: resolution.key,
        value: Some(value.clone()),
        variant: Some(variant.to_owned()),
        reason: Reason::TargetingMatch,
        error_code: None,
        error_message: None,
        metadata,
    }
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use crate::definitions::parse_definitions;

    fn set() -> FlagSet {
        parse_definitions(
            r#"{"flags":{
                "exp":{"state":"ENABLED","variants":{"a":"A","b":"B"},"defaultVariant":"a"},
                "off":{"state":"DISABLED","variants":{"a":"A","b":"B"},"defaultVariant":"a"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn override_forces_a_known_variant() {
        let set = set();
        let base = evaluate(&set, "exp", &Context::with_targeting_key("u"), 0);
        let forced = with_override(&set, base, "b");
        assert_eq!(forced.value, Some(Value::from("B")));
        assert_eq!(forced.variant.as_deref(), Some("b"));
        assert_eq!(forced.reason, Reason::TargetingMatch);
        assert_eq!(forced.metadata["override"], Value::Bool(true));
    }

    #[test]
    fn override_never_invents_values() {
        let set = set();
        for (key, variant) in [("exp", "zzz"), ("off", "b"), ("missing", "a")] {
            let base = evaluate(&set, key, &Context::with_targeting_key("u"), 0);
            let after = with_override(&set, base.clone(), variant);
            assert_eq!(after, base, "{key} {variant}");
        }
    }
}
