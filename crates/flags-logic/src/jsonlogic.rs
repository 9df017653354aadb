//! A JSONLogic evaluator over `serde_json::Value`, with flagd's extensions.
//!
//! **Job:** evaluate flagd `targeting` rules against an evaluation context, and
//! statically validate rules (unknown operators, malformed custom-operator
//! arguments) when flag definitions are loaded.
//!
//! **Standards followed:**
//! * JSONLogic (<https://jsonlogic.com/operations.html>), using the reference
//!   `json-logic-js` semantics: JavaScript truthiness (`[]`, `""`, `0`, `null`
//!   are falsy; `{}` is truthy), `==`/`!=` with JS loose coercion, `===`/`!==`
//!   strict, `<`/`<=` with a 3-argument "between" form, `and`/`or` returning the
//!   deciding operand, `var` with dotted paths and a default, `missing`,
//!   `missing_some`, `if`/`?:`, arithmetic, `min`/`max`, `in`, `cat`, `substr`,
//!   `merge`, `map`/`filter`/`reduce`/`all`/`none`/`some`.
//! * flagd custom operators (<https://flagd.dev/reference/custom-operations/>):
//!   `fractional`, `sem_ver`, `starts_with`, `ends_with`, and `$ref` to shared
//!   `$evaluators`.
//!
//! **Choices and why:**
//! * `$ref` is resolved at *parse time* by [`resolve_refs`] (cycles, missing
//!   names, and expansion blow-up are load errors, like flagd's own
//!   pre-processing); [`apply`] treats a leftover `$ref` as an error.
//! * Load-time checking is split in two: [`validate`] rejects unknown
//!   operators (hard error); [`lint`] reports schema-level argument problems
//!   of custom operators as warnings, because flagd loads such rules and the
//!   operator then yields `null` at run time (flagd #1874: `sem_ver`,
//!   `starts_with`, `ends_with` and `fractional` return `null`, not `false`,
//!   on bad input, so the default variant is served).
//! * Evaluation never panics: every operator tolerates any argument shape
//!   (bad input yields `null`/`false` like json-logic-js), nesting depth is
//!   capped ([`MAX_DEPTH`]) and every call has a budget
//!   ([`DEFAULT_STEP_BUDGET`]) charged by work, not by rule nodes: one unit
//!   per node visited plus the size of every value an operator produces (an
//!   element, or 64 bytes of a string). Copying a large context array, or
//!   merging a growing accumulator in `reduce` (quadratic), runs the budget
//!   out instead of the CPU, so hostile rules/contexts cannot exhaust an edge
//!   worker. Non-finite arithmetic results (`1/0`, `NaN`) become `null`,
//!   because JSON cannot carry them. Integral results are emitted as JSON
//!   integers so that `{"+": [1, 1]}` renders as `2`, as in JS.
//! * Numeric coercion of strings follows JS `Number()` (`"12abc"` is NaN), used
//!   by comparisons and arithmetic alike (json-logic-js uses `parseFloat` for
//!   `+`/`*`; we prefer one rule). String ordering compares Unicode scalar
//!   values (JS compares UTF-16 units; only astral vs. U+E000–U+FFFF differ).
//! * `fractional` follows flagd's high-precision bucketing (flagd ≥ PR #1909):
//!   `hash = murmur3_x86_32(utf8(bucketing value), 0)`,
//!   `bucket = (hash as u64 * total_weight as u64) >> 32` ([`bucket_for_hash`]),
//!   then the first entry whose cumulative weight exceeds the bucket
//!   ([`pick_bucket`]). The optional first argument is the bucketing value; if
//!   it is absent (first argument is already a bucket) or evaluates to `null`,
//!   the default `$flagd.flagKey + targetingKey` is used; if there is no string
//!   `targetingKey` the operator yields `null` and [`Trace::fractional_missing_key`]
//!   is set so the caller can report `TARGETING_KEY_MISSING` or fall back to
//!   the default variant (flagd does the latter). Weights must be integers in
//!   `0..=i32::MAX` with a sum `<= i32::MAX` (negative weights count as 0,
//!   like flagd); an entry `[name]` weighs 1;
//!   variants and weights may be computed by nested expressions (including a
//!   nested `fractional`); a zero total yields `null`.
//! * [`apply_traced`] also reports whether the final value came straight from a
//!   `fractional` (through `if`/`?:`/`and`/`or` only), which lets the
//!   evaluator report reason `SPLIT`.

use std::fmt;

use serde_json::{Map, Number, Value};

use crate::murmur3::murmur3_x86_32;
use crate::semver;

/// Maximum logic nesting depth, during validation, `$ref` expansion and evaluation.
pub const MAX_DEPTH: usize = 128;
/// Default work allowed per [`apply`]: node visits plus the size of every
/// value an operator produced (see the module docs).
pub const DEFAULT_STEP_BUDGET: u64 = 200_000;
/// Maximum number of JSON nodes a rule may expand to once `$ref`s are inlined.
pub const MAX_EXPANDED_NODES: usize = 100_000;
/// Maximum total `fractional` weight (flagd: `math.MaxInt32`).
pub const MAX_WEIGHT_SUM: u64 = i32::MAX as u64;

/// Every operator this evaluator implements (`$ref` aside).
pub const OPERATORS: &[&str] = &[
    "var",
    "missing",
    "missing_some",
    "if",
    "?:",
    "==",
    "===",
    "!=",
    "!==",
    "!",
    "!!",
    "or",
    "and",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "min",
    "max",
    "in",
    "cat",
    "substr",
    "merge",
    "map",
    "filter",
    "reduce",
    "all",
    "none",
    "some",
    "fractional",
    "sem_ver",
    "starts_with",
    "ends_with",
];

/// A static (load-time) problem in a rule, located by a dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for LogicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for LogicError {}

/// A run-time failure. Ordinary bad input never errors; these are guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// Logic nested deeper than the configured limit.
    DepthExceeded,
    /// The step budget ran out.
    BudgetExceeded,
    /// A `$ref` was not resolved before evaluation.
    UnresolvedRef(String),
    /// An operator outside [`OPERATORS`] (only if validation was skipped).
    UnknownOperator(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::DepthExceeded => f.write_str("targeting rule nesting too deep"),
            EvalError::BudgetExceeded => f.write_str("targeting rule evaluation budget exceeded"),
            EvalError::UnresolvedRef(n) => write!(f, "unresolved $ref {n:?}"),
            EvalError::UnknownOperator(op) => write!(f, "unknown JSONLogic operator {op:?}"),
        }
    }
}

impl std::error::Error for EvalError {}

/// Evaluation limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub step_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            step_budget: DEFAULT_STEP_BUDGET,
        }
    }
}

/// Side information gathered while evaluating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trace {
    /// The result was produced by a `fractional` (passed through only
    /// `if`/`?:`/`and`/`or`).
    pub split: bool,
    /// Some `fractional` needed the default bucketing value but the data had
    /// no string `targetingKey`.
    pub fractional_missing_key: bool,
    /// The budget the evaluation used.
    pub work: u64,
}

// ---------------------------------------------------------------------------
// Public helpers
// ---------------------------------------------------------------------------

/// JSONLogic (JavaScript) truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// flagd's bucket for a 32-bit hash: `(hash * total_weight) >> 32`, i.e. a
/// value in `0..total_weight` (0 when `total_weight` is 0).
pub fn bucket_for_hash(hash: u32, total_weight: u32) -> u32 {
    // The product is < 2^64 and the shifted value is < total_weight <= u32::MAX.
    ((u64::from(hash) * u64::from(total_weight)) >> 32) as u32
}

/// Index of the first weight whose cumulative sum exceeds `bucket`, or `None`
/// when `bucket` is beyond the total.
pub fn pick_bucket(bucket: u32, weights: &[u32]) -> Option<usize> {
    let mut cumulative: u64 = 0;
    for (i, w) in weights.iter().enumerate() {
        cumulative += u64::from(*w);
        if u64::from(bucket) < cumulative {
            return Some(i);
        }
    }
    None
}

/// Hash + bucket + pick in one go; returns the chosen index.
pub fn fractional_index(bucketing_value: &str, weights: &[u32]) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 || total > MAX_WEIGHT_SUM {
        return None;
    }
    let hash = murmur3_x86_32(bucketing_value.as_bytes(), 0);
    pick_bucket(bucket_for_hash(hash, total as u32), weights)
}

/// Evaluate `logic` against `data` with default [`Limits`].
pub fn apply(logic: &Value, data: &Value) -> Result<Value, EvalError> {
    apply_traced(logic, data, Limits::default()).map(|(v, _)| v)
}

/// Evaluate and also return the [`Trace`].
pub fn apply_traced(
    logic: &Value,
    data: &Value,
    limits: Limits,
) -> Result<(Value, Trace), EvalError> {
    let mut engine = Engine {
        steps: 0,
        limits,
        missing_key: false,
    };
    let out = engine.eval(logic, data, 0)?;
    Ok((
        out.v,
        Trace {
            split: out.split,
            fractional_missing_key: engine.missing_key,
            work: engine.steps,
        },
    ))
}

// ---------------------------------------------------------------------------
// Static validation and $ref resolution
// ---------------------------------------------------------------------------

fn err(path: &str, message: impl Into<String>) -> LogicError {
    LogicError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// `parent.key`, or `parent["key"]` when the key is empty or contains
/// `.`, `[`, `]`, `"` or whitespace (so paths stay unambiguous).
pub fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && !key
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '"') || c.is_whitespace() || c.is_control());
    if !plain {
        format!("{parent}[{}]", Value::String(key.to_owned()))
    } else if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn child(path: &str, seg: &str) -> String {
    child_path(path, seg)
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Validate a rule (hard errors): every single-key object must be a known
/// operator. When `allow_refs` is true, `{"$ref": "name"}` is accepted
/// (resolution is a separate step, see [`resolve_refs`]). Errors are located
/// under `path`. Argument-shape problems are only [`lint`] warnings, because
/// flagd loads such rules and evaluates the faulty operator to `null`.
pub fn validate(logic: &Value, path: &str, allow_refs: bool) -> Result<(), LogicError> {
    validate_node(logic, path, allow_refs, 0)
}

fn validate_node(v: &Value, path: &str, allow_refs: bool, depth: usize) -> Result<(), LogicError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("nesting deeper than {MAX_DEPTH}")));
    }
    match v {
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                validate_node(it, &index(path, i), allow_refs, depth + 1)?;
            }
            Ok(())
        }
        Value::Object(m) if m.len() == 1 => {
            let Some((op, args)) = m.iter().next() else {
                return Ok(());
            };
            let p = child(path, op);
            if op == "$ref" {
                if !allow_refs {
                    return Err(err(&p, "unresolved $ref"));
                }
                return match args {
                    Value::String(_) => Ok(()),
                    _ => Err(err(&p, "$ref must be the name of an evaluator (a string)")),
                };
            }
            if !OPERATORS.contains(&op.as_str()) {
                return Err(err(&p, format!("unknown JSONLogic operator {op:?}")));
            }
            match args {
                Value::Array(items) => {
                    for (i, it) in items.iter().enumerate() {
                        validate_node(it, &index(&p, i), allow_refs, depth + 1)?;
                    }
                    Ok(())
                }
                other => validate_node(other, &p, allow_refs, depth + 1),
            }
        }
        // Zero or several keys: a literal object, as in json-logic-js.
        _ => Ok(()),
    }
}

/// Schema-level warnings for custom-operator arguments given as literals:
/// `starts_with`/`ends_with` arity, `sem_ver` arity / operator / version
/// literals, `fractional` bucket shapes and weights (decimal, negative, sum
/// over `i32::MAX`). These mirror the flagd JSON schema; flagd itself only
/// warns and evaluates the operator to `null` (negative weights count as 0).
pub fn lint(logic: &Value, path: &str) -> Vec<LogicError> {
    let mut out = Vec::new();
    lint_node(logic, path, 0, &mut out);
    out
}

fn lint_node(v: &Value, path: &str, depth: usize, out: &mut Vec<LogicError>) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                lint_node(it, &index(path, i), depth + 1, out);
            }
        }
        Value::Object(m) if m.len() == 1 => {
            let Some((op, args)) = m.iter().next() else {
                return;
            };
            let p = child(path, op);
            if let Err(e) = check_custom_args(op, args, &p) {
                out.push(e);
            }
            match args {
                Value::Array(items) => {
                    for (i, it) in items.iter().enumerate() {
                        lint_node(it, &index(&p, i), depth + 1, out);
                    }
                }
                other => lint_node(other, &p, depth + 1, out),
            }
        }
        _ => {}
    }
}

fn is_expression(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.len() == 1)
}

fn check_custom_args(op: &str, args: &Value, p: &str) -> Result<(), LogicError> {
    match op {
        "starts_with" | "ends_with" => match args {
            Value::Array(a) if a.len() == 2 => Ok(()),
            _ => Err(err(p, format!("{op} takes exactly 2 arguments"))),
        },
        "sem_ver" => {
            let Value::Array(a) = args else {
                return Err(err(
                    p,
                    "sem_ver takes exactly 3 arguments [version, operator, version]",
                ));
            };
            if a.len() != 3 {
                return Err(err(
                    p,
                    "sem_ver takes exactly 3 arguments [version, operator, version]",
                ));
            }
            if let Some(Value::String(o)) = a.get(1)
                && !semver::OPERATORS.contains(&o.as_str())
            {
                return Err(err(
                    &index(p, 1),
                    format!("sem_ver operator {o:?} is not one of = != < <= > >= ^ ~"),
                ));
            }
            for i in [0, 2] {
                match a.get(i) {
                    Some(v @ (Value::String(_) | Value::Number(_)))
                        if semver::parse(&to_js_string(v)).is_none() =>
                    {
                        return Err(err(
                            &index(p, i),
                            format!("{v} is not a valid semantic version"),
                        ));
                    }
                    Some(Value::String(_) | Value::Number(_) | Value::Object(_)) => {}
                    _ => {
                        return Err(err(
                            &index(p, i),
                            "sem_ver versions must be strings or expressions",
                        ));
                    }
                }
            }
            Ok(())
        }
        "fractional" => check_fractional_args(args, p),
        _ => Ok(()),
    }
}

fn check_fractional_args(args: &Value, p: &str) -> Result<(), LogicError> {
    let Value::Array(a) = args else {
        return Err(err(p, "fractional takes an array of buckets"));
    };
    let start = match a.first() {
        None => return Err(err(p, "fractional needs at least one bucket")),
        Some(Value::Array(_)) => 0,
        Some(Value::String(_)) | Some(Value::Null) => 1,
        Some(v) if is_expression(v) => 1,
        Some(_) => {
            return Err(err(
                &index(p, 0),
                "bucketing value must be a string or an expression",
            ));
        }
    };
    if a.len() <= start {
        return Err(err(p, "fractional needs at least one bucket"));
    }
    let mut literal_sum: u64 = 0;
    for (i, bucket) in a.iter().enumerate().skip(start) {
        let bp = index(p, i);
        match bucket {
            Value::Array(entry) => {
                if entry.is_empty() || entry.len() > 2 {
                    return Err(err(&bp, "a bucket is [variant] or [variant, weight]"));
                }
                match entry.first() {
                    Some(Value::Array(_)) => {
                        return Err(err(&index(&bp, 0), "a bucket's variant cannot be an array"));
                    }
                    Some(Value::Object(m)) if m.len() != 1 => {
                        return Err(err(
                            &index(&bp, 0),
                            "a bucket's variant cannot be an object",
                        ));
                    }
                    _ => {}
                }
                match entry.get(1) {
                    None | Some(Value::Null) => literal_sum += 1,
                    Some(Value::Number(n)) => {
                        let w = n.as_f64().unwrap_or(f64::NAN);
                        if w < 0.0 {
                            return Err(err(
                                &index(&bp, 1),
                                format!("negative weight {n} (treated as 0)"),
                            ));
                        }
                        if !(w.fract() == 0.0 && w <= MAX_WEIGHT_SUM as f64) {
                            return Err(err(
                                &index(&bp, 1),
                                format!(
                                    "weight {n} must be an integer between 0 and {MAX_WEIGHT_SUM}"
                                ),
                            ));
                        }
                        literal_sum += w as u64;
                    }
                    Some(v) if is_expression(v) => {}
                    Some(_) => {
                        return Err(err(&index(&bp, 1), "weight must be an integer"));
                    }
                }
            }
            v if is_expression(v) => {}
            _ => return Err(err(&bp, "a bucket is [variant] or [variant, weight]")),
        }
    }
    if literal_sum > MAX_WEIGHT_SUM {
        return Err(err(
            p,
            format!("sum of weights {literal_sum} exceeds {MAX_WEIGHT_SUM}"),
        ));
    }
    Ok(())
}

/// Resolve the body of evaluator `name` (located as `$evaluators.<name>`),
/// reporting cycles that start at `name` as `name -> ... -> name`.
pub fn resolve_evaluator(name: &str, evaluators: &Map<String, Value>) -> Result<Value, LogicError> {
    let path = child_path("$evaluators", name);
    let Some(body) = evaluators.get(name) else {
        return Err(err(&path, format!("evaluator {name:?} is not defined")));
    };
    let mut stack = vec![name.to_owned()];
    let mut budget = MAX_EXPANDED_NODES;
    resolve_node(body, evaluators, &path, &mut stack, &mut budget, 0)
}

/// Inline every `{"$ref": "name"}` with the (recursively resolved) body of
/// `evaluators[name]`. Errors: unknown name, non-string `$ref`, reference
/// cycles, and expansions larger than [`MAX_EXPANDED_NODES`] or deeper than
/// [`MAX_DEPTH`]. Evaluator bodies are located as `$evaluators.<name>`.
pub fn resolve_refs(
    logic: &Value,
    evaluators: &Map<String, Value>,
    path: &str,
) -> Result<Value, LogicError> {
    let mut stack = Vec::new();
    let mut budget = MAX_EXPANDED_NODES;
    resolve_node(logic, evaluators, path, &mut stack, &mut budget, 0)
}

fn resolve_node(
    v: &Value,
    evs: &Map<String, Value>,
    path: &str,
    stack: &mut Vec<String>,
    budget: &mut usize,
    depth: usize,
) -> Result<Value, LogicError> {
    *budget = budget.checked_sub(1).ok_or_else(|| {
        err(
            path,
            format!("rule expands to more than {MAX_EXPANDED_NODES} nodes"),
        )
    })?;
    if depth > MAX_DEPTH {
        return Err(err(
            path,
            format!("rule nests deeper than {MAX_DEPTH} after $ref expansion"),
        ));
    }
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$ref") => {
            let p = child(path, "$ref");
            let Some(Value::String(name)) = m.get("$ref") else {
                return Err(err(&p, "$ref must be the name of an evaluator (a string)"));
            };
            let Some(body) = evs.get(name) else {
                return Err(err(
                    &p,
                    format!("evaluator {name:?} is not defined in $evaluators"),
                ));
            };
            if stack.iter().any(|s| s == name) {
                let mut chain = stack.clone();
                chain.push(name.clone());
                return Err(err(&p, format!("$ref cycle: {}", chain.join(" -> "))));
            }
            stack.push(name.clone());
            let r = resolve_node(
                body,
                evs,
                &child_path("$evaluators", name),
                stack,
                budget,
                depth,
            );
            stack.pop();
            r
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                out.insert(
                    k.clone(),
                    resolve_node(val, evs, &child(path, k), stack, budget, depth + 1)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, it) in a.iter().enumerate() {
                out.push(resolve_node(
                    it,
                    evs,
                    &index(path, i),
                    stack,
                    budget,
                    depth + 1,
                )?);
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    }
}

// ---------------------------------------------------------------------------
// JS-style coercions
// ---------------------------------------------------------------------------

/// A JSON number for `f`: integral values within ±2^53 become integers,
/// non-finite values become `null`.
pub fn number_value(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        return Value::from(f as i64);
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// JavaScript `Number::toString` for `f` (ECMA-262 6.1.6.1.20): the shortest
/// digits that read back as `f`, laid out as JavaScript does (`1e+21`,
/// `1e-7`, `0.000001`, `123456789012345680000`).
///
/// The digits come from serde_json's own shortest-round-trip formatter,
/// which this crate links anyway: `core`'s float `Display` would add its
/// Grisu and Dragon tables (about 9 KB gzip) to the flags component for this
/// one function, and lays numbers out differently from JavaScript besides.
fn js_number_string(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if f == 0.0 {
        // Both zeros: String(-0) is "0".
        return "0".to_owned();
    }
    let Some(shortest) = Number::from_f64(f.abs()).map(|n| n.to_string()) else {
        return "NaN".to_owned();
    };
    let (digits, exponent) = shortest_digits(&shortest);
    let mut out = String::with_capacity(digits.len() + 8);
    if f < 0.0 {
        out.push('-');
    }
    js_layout(&mut out, &digits, exponent);
    out
}

/// Splits a finite, positive decimal (`123.45`, `1e21`, `1.5e-7`, `100.0`)
/// into its significant digits `s` (no leading or trailing zeros) and the
/// exponent `n` with value `0.s × 10^n`, the `s` and `n` of ECMA-262.
fn shortest_digits(decimal: &str) -> (String, i32) {
    let (int, frac, exp) = decimal_parts(decimal);
    let exp = exp.and_then(|e| e.parse::<i32>().ok()).unwrap_or(0);
    let all: String = int.chars().chain(frac.chars()).collect();
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0').to_owned();
    // The value is 0.<all> × 10^(int.len() + exp); leading zeros shift it.
    let n = int.len() as i32 + exp - leading as i32;
    (digits, n)
}

/// The text of an unsigned decimal `int[.fraction][e|E exponent]`, split
/// (nothing checked): what both directions of the number conversions read.
fn decimal_parts(text: &str) -> (&str, &str, Option<&str>) {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (int, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    (int, fraction, exponent)
}

/// Lays out digits `s` with exponent `n` as `Number::toString` does.
fn js_layout(out: &mut String, s: &str, n: i32) {
    let k = s.len() as i32;
    if k <= n && n <= 21 {
        out.push_str(s);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&s[..n as usize]);
        out.push('.');
        out.push_str(&s[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(s);
    } else {
        out.push_str(&s[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&s[1..]);
        }
        out.push('e');
        out.push(if n >= 1 { '+' } else { '-' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
}

/// JavaScript `String(v)` for JSON values.
pub fn to_js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => js_number_string(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::Null => String::new(),
                other => to_js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

fn str_to_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    decimal_literal(t).unwrap_or(f64::NAN)
}

/// A JavaScript `StrDecimalLiteral` (`12`, `-1.5e3`, `.5`, `5.`, `+007`) as
/// a number, `None` when `text` is not one.
///
/// It is rewritten as a JSON number and read by serde_json, which this crate
/// links anyway: `core`'s own float parser would add its 10 KB table of
/// powers of five to the flags component. serde_json is exact for up to 15
/// significant digits and within an ulp beyond, as for the numbers in flag
/// definitions themselves.
fn decimal_literal(text: &str) -> Option<f64> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, fraction, exponent) = decimal_parts(unsigned);
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && fraction.is_empty()) || !digits(int) || !digits(fraction) {
        return None;
    }
    let mut json = String::with_capacity(text.len() + 2);
    if negative {
        json.push('-');
    }
    let int = int.trim_start_matches('0');
    json.push_str(if int.is_empty() { "0" } else { int });
    if !fraction.is_empty() {
        json.push('.');
        json.push_str(fraction);
    }
    if let Some(exponent) = exponent {
        let unsigned_exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        if unsigned_exponent.is_empty() || !digits(unsigned_exponent) {
            return None;
        }
        json.push('e');
        json.push_str(exponent);
    }
    // The text is a valid JSON number now, so serde_json refuses it only
    // when it is too large for an f64: JavaScript's Infinity.
    Some(
        serde_json::from_slice::<f64>(json.as_bytes()).unwrap_or(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
    )
}

/// JavaScript `Number(v)` for JSON values.
pub fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => str_to_number(s),
        Value::Array(_) => str_to_number(&to_js_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// JavaScript `===` (arrays/objects are never strictly equal: no identity in JSON).
pub fn strict_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// JavaScript `==` (abstract equality) for JSON values.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Bool(_), Bool(_)) | (Number(_), Number(_)) | (String(_), String(_)) => strict_eq(a, b),
        (Array(_) | Object(_), Array(_) | Object(_)) => false,
        (Bool(_), _) => loose_eq(&number_value(to_number(a)), b),
        (_, Bool(_)) => loose_eq(a, &number_value(to_number(b))),
        (Number(_), String(_)) | (String(_), Number(_)) => to_number(a) == to_number(b),
        (Array(_) | Object(_), _) => loose_eq(&String(to_js_string(a)), b),
        (_, Array(_) | Object(_)) => loose_eq(a, &String(to_js_string(b))),
    }
}

fn to_primitive(v: &Value) -> Value {
    match v {
        Value::Array(_) | Value::Object(_) => Value::String(to_js_string(v)),
        other => other.clone(),
    }
}

/// JS relational comparison: strings compare as strings, anything else
/// numerically; `None` when a side is NaN.
fn js_compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let (pa, pb) = (to_primitive(a), to_primitive(b));
    if let (Value::String(x), Value::String(y)) = (&pa, &pb) {
        return Some(x.cmp(y));
    }
    to_number(&pa).partial_cmp(&to_number(&pb))
}

fn js_lt(a: &Value, b: &Value) -> bool {
    js_compare(a, b) == Some(std::cmp::Ordering::Less)
}

fn js_le(a: &Value, b: &Value) -> bool {
    matches!(
        js_compare(a, b),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// Look a dotted path up in `data` (objects by key, arrays by index).
fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = data;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `var`'s path argument as a string, or `None` for "the whole data".
fn path_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        other => Some(to_js_string(other)),
    }
}

fn var_get(data: &Value, path: &Value) -> Option<Value> {
    match path_of(path) {
        None => Some(data.clone()),
        Some(p) => lookup(data, &p).cloned(),
    }
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// The size of `value` (a unit per scalar, per container and per 64 bytes
/// of text), counting stopped once it passes `cap`.
fn size_within(value: &Value, cap: u64) -> u64 {
    let mut size = 0u64;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        size += 1;
        match v {
            Value::String(s) => size += s.len() as u64 / 64,
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(m) => {
                for (k, v) in m {
                    size += k.len() as u64 / 64;
                    stack.push(v);
                }
            }
            _ => {}
        }
        if size > cap {
            break;
        }
    }
    size
}

struct Out {
    v: Value,
    split: bool,
}

impl Out {
    fn plain(v: Value) -> Out {
        Out { v, split: false }
    }
}

struct Engine {
    steps: u64,
    limits: Limits,
    missing_key: bool,
}

impl Engine {
    fn eval(&mut self, logic: &Value, data: &Value, depth: usize) -> Result<Out, EvalError> {
        self.steps += 1;
        if self.steps > self.limits.step_budget {
            return Err(EvalError::BudgetExceeded);
        }
        if depth > self.limits.max_depth {
            return Err(EvalError::DepthExceeded);
        }
        match logic {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    out.push(self.eval(it, data, depth + 1)?.v);
                }
                Ok(Out::plain(Value::Array(out)))
            }
            Value::Object(m) if m.len() == 1 => match m.iter().next() {
                Some((op, args)) => {
                    let out = self.op(op, args, data, depth)?;
                    self.charge(&out.v)?;
                    Ok(out)
                }
                None => Ok(Out::plain(Value::Null)),
            },
            other => Ok(Out::plain(other.clone())),
        }
    }

    /// Charges the work of producing `value`: its size in elements (and in
    /// 64-byte pieces of strings), counted no further than the budget left.
    fn charge(&mut self, value: &Value) -> Result<(), EvalError> {
        let left = self.limits.step_budget.saturating_sub(self.steps);
        let size = size_within(value, left);
        self.steps += size;
        if self.steps > self.limits.step_budget {
            return Err(EvalError::BudgetExceeded);
        }
        Ok(())
    }

    fn eval_v(&mut self, logic: &Value, data: &Value, depth: usize) -> Result<Value, EvalError> {
        self.eval(logic, data, depth).map(|o| o.v)
    }

    fn op(&mut self, op: &str, args: &Value, data: &Value, depth: usize) -> Result<Out, EvalError> {
        let raw: &[Value] = match args {
            Value::Array(a) => a.as_slice(),
            other => std::slice::from_ref(other),
        };
        let d = depth + 1;
        match op {
            "if" | "?:" => self.op_if(raw, data, d),
            "and" | "or" => {
                let want = op == "or";
                let mut last = Out::plain(Value::Null);
                for a in raw {
                    last = self.eval(a, data, d)?;
                    if truthy(&last.v) == want {
                        return Ok(last);
                    }
                }
                Ok(last)
            }
            "map" | "filter" | "reduce" | "all" | "none" | "some" => {
                self.op_iter(op, raw, data, d).map(Out::plain)
            }
            "$ref" => Err(EvalError::UnresolvedRef(to_js_string(args))),
            _ if !OPERATORS.contains(&op) => Err(EvalError::UnknownOperator(op.to_owned())),
            _ => {
                let mut vals = Vec::with_capacity(raw.len());
                for a in raw {
                    vals.push(self.eval_v(a, data, d)?);
                }
                if op == "fractional" {
                    return Ok(self.op_fractional(&vals, data));
                }
                Ok(Out::plain(strict_op(op, &vals, data)))
            }
        }
    }

    fn op_if(&mut self, raw: &[Value], data: &Value, d: usize) -> Result<Out, EvalError> {
        let mut i = 0;
        while let (Some(cond), Some(then)) = (raw.get(i), raw.get(i + 1)) {
            if truthy(&self.eval_v(cond, data, d)?) {
                return self.eval(then, data, d);
            }
            i += 2;
        }
        match raw.get(i) {
            Some(otherwise) => self.eval(otherwise, data, d),
            None => Ok(Out::plain(Value::Null)),
        }
    }

    fn op_iter(
        &mut self,
        op: &str,
        raw: &[Value],
        data: &Value,
        d: usize,
    ) -> Result<Value, EvalError> {
        let items = match raw.first() {
            Some(l) => match self.eval_v(l, data, d)? {
                Value::Array(a) => a,
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        let null = Value::Null;
        let logic = raw.get(1).unwrap_or(&null);
        match op {
            "map" => {
                let mut out = Vec::with_capacity(items.len());
                for it in &items {
                    out.push(self.eval_v(logic, it, d)?);
                }
                Ok(Value::Array(out))
            }
            "filter" => {
                let mut out = Vec::new();
                for it in items {
                    if truthy(&self.eval_v(logic, &it, d)?) {
                        out.push(it);
                    }
                }
                Ok(Value::Array(out))
            }
            "reduce" => {
                let mut acc = match raw.get(2) {
                    Some(init) => self.eval_v(init, data, d)?,
                    None => Value::Null,
                };
                for it in items {
                    let mut ctx = Map::new();
                    ctx.insert("current".to_owned(), it);
                    ctx.insert("accumulator".to_owned(), acc);
                    acc = self.eval_v(logic, &Value::Object(ctx), d)?;
                }
                Ok(acc)
            }
            "all" => {
                if items.is_empty() {
                    return Ok(Value::Bool(false));
                }
                for it in &items {
                    if !truthy(&self.eval_v(logic, it, d)?) {
                        return Ok(Value::Bool(false));
                    }
                }
                Ok(Value::Bool(true))
            }
            // "none" | "some"
            _ => {
                let mut any = false;
                for it in &items {
                    if truthy(&self.eval_v(logic, it, d)?) {
                        any = true;
                        break;
                    }
                }
                Ok(Value::Bool(if op == "some" { any } else { !any }))
            }
        }
    }

    fn op_fractional(&mut self, vals: &[Value], data: &Value) -> Out {
        let null = Out::plain(Value::Null);
        let rest = vals.get(1..).unwrap_or(&[]);
        let (explicit, entries): (Option<&str>, &[Value]) = match vals.first() {
            None => return null,
            Some(Value::String(s)) => (Some(s.as_str()), rest),
            Some(Value::Null) => (None, rest),
            Some(Value::Array(_)) => (None, vals),
            // flagd: a non-string bucketing value is unusable.
            Some(_) => return null,
        };
        let bucketing = match explicit {
            Some(s) => s.to_owned(),
            None => match data.get("targetingKey") {
                Some(Value::String(tk)) => {
                    let flag_key = data
                        .get("$flagd")
                        .and_then(|f| f.get("flagKey"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    format!("{flag_key}{tk}")
                }
                _ => {
                    self.missing_key = true;
                    return null;
                }
            },
        };
        if entries.is_empty() {
            return null;
        }
        let mut variants = Vec::with_capacity(entries.len());
        let mut weights = Vec::with_capacity(entries.len());
        let mut total: u64 = 0;
        for e in entries {
            let Value::Array(entry) = e else { return null };
            let variant = match entry.first() {
                Some(v @ (Value::String(_) | Value::Bool(_) | Value::Number(_) | Value::Null)) => v,
                _ => return null,
            };
            let weight: u64 = match entry.get(1) {
                None | Some(Value::Null) => 1,
                Some(Value::Number(n)) => {
                    let w = n.as_f64().unwrap_or(f64::NAN);
                    if w.fract() != 0.0 || w > MAX_WEIGHT_SUM as f64 {
                        return null;
                    }
                    // flagd: a negative weight counts as 0.
                    w.max(0.0) as u64
                }
                Some(_) => return null,
            };
            total += weight;
            if total > MAX_WEIGHT_SUM {
                return null;
            }
            variants.push(variant);
            weights.push(weight as u32);
        }
        if total == 0 {
            return null;
        }
        let hash = murmur3_x86_32(bucketing.as_bytes(), 0);
        let bucket = bucket_for_hash(hash, total as u32);
        match pick_bucket(bucket, &weights).and_then(|i| variants.get(i)) {
            Some(v) => Out {
                split: !v.is_null(),
                v: (*v).clone(),
            },
            None => null,
        }
    }
}

fn arg(vals: &[Value], i: usize) -> &Value {
    const NULL: &Value = &Value::Null;
    vals.get(i).unwrap_or(NULL)
}

fn missing_keys(vals: &[Value], data: &Value) -> Vec<Value> {
    let keys: &[Value] = match vals.first() {
        Some(Value::Array(a)) => a.as_slice(),
        _ => vals,
    };
    keys.iter()
        .filter(|k| match var_get(data, k) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        })
        .cloned()
        .collect()
}

fn substr(vals: &[Value]) -> Value {
    let chars: Vec<char> = to_js_string(arg(vals, 0)).chars().collect();
    let len = chars.len() as i64;
    let to_int = |v: &Value| {
        let f = to_number(v);
        if f.is_nan() { 0 } else { f.trunc() as i64 }
    };
    let mut start = to_int(arg(vals, 1));
    if start < 0 {
        start = (len + start).max(0);
    }
    let start = start.min(len);
    let avail = len - start;
    let take = match vals.get(2) {
        None | Some(Value::Null) => avail,
        Some(v) => {
            let n = to_int(v);
            if n < 0 {
                (avail + n).max(0)
            } else {
                n.min(avail)
            }
        }
    };
    let s = usize::try_from(start).unwrap_or(0);
    let t = usize::try_from(take).unwrap_or(0);
    Value::String(chars.iter().skip(s).take(t).collect())
}

fn min_max(vals: &[Value], is_max: bool) -> Value {
    if vals.is_empty() {
        return Value::Null;
    }
    let mut acc = if is_max {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    for v in vals {
        let n = to_number(v);
        if n.is_nan() {
            return Value::Null;
        }
        acc = if is_max { acc.max(n) } else { acc.min(n) };
    }
    number_value(acc)
}

fn strict_op(op: &str, vals: &[Value], data: &Value) -> Value {
    let a = arg(vals, 0);
    let b = arg(vals, 1);
    match op {
        "var" => match var_get(data, a) {
            Some(v) => v,
            None => b.clone(),
        },
        "missing" => Value::Array(missing_keys(vals, data)),
        "missing_some" => {
            let need = to_number(a);
            let keys = match b {
                Value::Array(k) => k.clone(),
                _ => Vec::new(),
            };
            let missing = missing_keys(std::slice::from_ref(&Value::Array(keys.clone())), data);
            if ((keys.len() - missing.len()) as f64) >= need {
                Value::Array(Vec::new())
            } else {
                Value::Array(missing)
            }
        }
        "==" => Value::Bool(loose_eq(a, b)),
        "!=" => Value::Bool(!loose_eq(a, b)),
        "===" => Value::Bool(strict_eq(a, b)),
        "!==" => Value::Bool(!strict_eq(a, b)),
        "!" => Value::Bool(!truthy(a)),
        "!!" => Value::Bool(truthy(a)),
        "<" | "<=" => {
            let cmp = if op == "<" { js_lt } else { js_le };
            Value::Bool(match vals.len() {
                2 => cmp(a, b),
                3 => cmp(a, b) && cmp(b, arg(vals, 2)),
                _ => false,
            })
        }
        ">" => Value::Bool(vals.len() >= 2 && js_lt(b, a)),
        ">=" => Value::Bool(vals.len() >= 2 && js_le(b, a)),
        "+" => number_value(vals.iter().map(to_number).sum()),
        "*" => {
            if vals.is_empty() {
                Value::Null
            } else {
                number_value(vals.iter().map(to_number).product())
            }
        }
        "-" => match vals.len() {
            0 => Value::Null,
            1 => number_value(-to_number(a)),
            _ => number_value(to_number(a) - to_number(b)),
        },
        "/" => number_value(to_number(a) / to_number(b)),
        "%" => number_value(to_number(a) % to_number(b)),
        "min" => min_max(vals, false),
        "max" => min_max(vals, true),
        "in" => Value::Bool(match b {
            Value::String(hay) => hay.contains(&to_js_string(a)),
            Value::Array(items) => items.iter().any(|x| strict_eq(x, a)),
            _ => false,
        }),
        "cat" => Value::String(vals.iter().map(to_js_string).collect()),
        "substr" => substr(vals),
        "merge" => {
            let mut out = Vec::new();
            for v in vals {
                match v {
                    Value::Array(items) => out.extend(items.iter().cloned()),
                    other => out.push(other.clone()),
                }
            }
            Value::Array(out)
        }
        // flagd (#1874): custom operators yield null, not false, on bad input.
        "starts_with" | "ends_with" => match (a, b) {
            (Value::String(s), Value::String(p)) if vals.len() == 2 => {
                Value::Bool(if op == "starts_with" {
                    s.starts_with(p.as_str())
                } else {
                    s.ends_with(p.as_str())
                })
            }
            _ => Value::Null,
        },
        "sem_ver" => {
            let version = |v: &Value| match v {
                Value::String(_) | Value::Number(_) => Some(to_js_string(v)),
                _ => None,
            };
            match (version(a), b, version(arg(vals, 2))) {
                (Some(x), Value::String(o), Some(y)) if vals.len() == 3 => {
                    semver::check(&x, o, &y).map_or(Value::Null, Value::Bool)
                }
                _ => Value::Null,
            }
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `String(x)` as Node.js 20 prints it, for numbers whose layout differs
    /// between JavaScript and Rust's `Display` (exponents, long integers).
    #[test]
    fn numbers_become_strings_as_javascript_writes_them() {
        let cases = [
            (0.1_f64, "0.1"),
            (0.5_f64, "0.5"),
            (1.5_f64, "1.5"),
            (-2.25_f64, "-2.25"),
            (100.5_f64, "100.5"),
            (1e+21_f64, "1e+21"),
            (1.5e+21_f64, "1.5e+21"),
            (1e-7_f64, "1e-7"),
            (1.5e-7_f64, "1.5e-7"),
            (0.000001_f64, "0.000001"),
            (0.0000015_f64, "0.0000015"),
            (123456789012345680000.0_f64, "123456789012345680000"),
            (100000000000000000000.0_f64, "100000000000000000000"),
            (5e-324_f64, "5e-324"),
            (1.7976931348623157e+308_f64, "1.7976931348623157e+308"),
            (-0.001_f64, "-0.001"),
            (0.30000000000000004_f64, "0.30000000000000004"),
            (9007199254740994.0_f64, "9007199254740994"),
            (0.3333333333333333_f64, "0.3333333333333333"),
            (12345.678_f64, "12345.678"),
            (9.5e-7_f64, "9.5e-7"),
            (4.35_f64, "4.35"),
            (-1e+100_f64, "-1e+100"),
            (-0.0_f64, "0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (number, javascript) in cases {
            assert_eq!(js_number_string(number), javascript, "String({number:e})");
        }
    }

    /// `Number(text)` as Node.js 20 computes it.
    #[test]
    fn strings_become_numbers_as_javascript_reads_them() {
        let cases = [
            (" 12 ", 12.0),
            ("", 0.0),
            ("  ", 0.0),
            ("1e3", 1000.0),
            ("-1.5E+3", -1500.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("+5", 5.0),
            ("007", 7.0),
            ("0.1", 0.1),
            ("123456789.125", 123456789.125),
            ("1e400", f64::INFINITY),
            ("-1e400", f64::NEG_INFINITY),
            ("1e-400", 0.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (text, javascript) in cases {
            assert_eq!(str_to_number(text), javascript, "Number({text:?})");
        }
        assert!(str_to_number("-0").is_sign_negative());
        for not_a_number in [
            "1e", "e5", ".", "1.2.3", "--1", "+-1", "1_000", "12px", "1e+", "0x",
        ] {
            assert!(
                str_to_number(not_a_number).is_nan(),
                "Number({not_a_number:?})"
            );
        }
    }

    #[test]
    fn cat_writes_fractions_and_large_numbers_as_javascript_does() {
        let rule = json!({"cat": [1.5e21, " ", 1e-7, " ", 0.25]});
        assert_eq!(run(rule, json!({})), json!("1.5e+21 1e-7 0.25"));
    }

    fn run(logic: Value, data: Value) -> Value {
        validate(&logic, "", false).expect("valid");
        apply(&logic, &data).expect("evaluates")
    }

    #[test]
    fn var_and_defaults() {
        let d = json!({"a": {"b": [10, 20]}, "n": null, "x": 1});
        assert_eq!(run(json!({"var": "a.b.1"}), d.clone()), json!(20));
        assert_eq!(
            run(json!({"var": ["a.c", "dflt"]}), d.clone()),
            json!("dflt")
        );
        assert_eq!(run(json!({"var": "nope"}), d.clone()), Value::Null);
        assert_eq!(run(json!({"var": ""}), d.clone()), d);
        assert_eq!(run(json!({"var": [["x"]]}), d.clone()), json!(1));
        assert_eq!(run(json!({"var": 0}), json!(["zero"])), json!("zero"));
        assert_eq!(run(json!({"var": "n.deep"}), d), Value::Null);
    }

    #[test]
    fn missing_ops() {
        let d = json!({"a": 1, "b": "", "c": null});
        assert_eq!(
            run(json!({"missing": ["a", "b", "c", "d"]}), d.clone()),
            json!(["b", "c", "d"])
        );
        assert_eq!(
            run(json!({"missing_some": [1, ["a", "z"]]}), d.clone()),
            json!([])
        );
        assert_eq!(
            run(json!({"missing_some": [2, ["a", "z"]]}), d.clone()),
            json!(["z"])
        );
        assert_eq!(
            run(json!({"missing": {"merge": ["a", ["q"]]}}), d),
            json!(["q"])
        );
    }

    #[test]
    fn logic_and_truthiness() {
        let d = json!({});
        assert_eq!(
            run(json!({"if": [true, "yes", "no"]}), d.clone()),
            json!("yes")
        );
        assert_eq!(
            run(
                json!({"if": [false, "yes", false, "no", "maybe"]}),
                d.clone()
            ),
            json!("maybe")
        );
        assert_eq!(run(json!({"if": [false, "yes"]}), d.clone()), Value::Null);
        assert_eq!(run(json!({"?:": [[], "a", "b"]}), d.clone()), json!("b"));
        assert_eq!(run(json!({"or": [0, "", "x"]}), d.clone()), json!("x"));
        assert_eq!(run(json!({"and": [1, 0, "x"]}), d.clone()), json!(0));
        assert_eq!(run(json!({"and": [1, "x"]}), d.clone()), json!("x"));
        assert_eq!(run(json!({"!": [[]]}), d.clone()), json!(true));
        assert_eq!(run(json!({"!!": ["0"]}), d.clone()), json!(true));
        assert_eq!(run(json!({"!!": [{}]}), d.clone()), json!(true)); // `{}` is a literal, truthy
        assert!(truthy(&json!({})));
        assert!(!truthy(&json!("")));
    }

    #[test]
    fn equality_and_comparison() {
        let d = json!({});
        for (logic, want) in [
            (json!({"==": [1, "1"]}), true),
            (json!({"==": [0, false]}), true),
            (json!({"==": [null, 0]}), false),
            (json!({"==": [[1], 1]}), true),
            (json!({"===": [1, "1"]}), false),
            (json!({"===": [1, 1.0]}), true),
            (json!({"!=": [1, 2]}), true),
            (json!({"!==": [1, "1"]}), true),
            (json!({"<": [1, 2]}), true),
            (json!({"<": ["a", "b"]}), true),
            (json!({"<": ["10", 9]}), false),
            (json!({"<": [1, 5, 10]}), true),
            (json!({"<": [1, 11, 10]}), false),
            (json!({"<=": [1, 1, 10]}), true),
            (json!({">": [2, 1]}), true),
            (json!({">=": [1, 1]}), true),
            (json!({"<": ["abc", 1]}), false),
            (json!({">=": ["abc", 1]}), false),
            (json!({"<=": [null, 0]}), true),
        ] {
            assert_eq!(run(logic.clone(), d.clone()), json!(want), "{logic}");
        }
    }

    #[test]
    fn arithmetic() {
        let d = json!({});
        assert_eq!(run(json!({"+": [1, "2", 3.5]}), d.clone()), json!(6.5));
        assert_eq!(run(json!({"+": [1, 1]}), d.clone()), json!(2));
        assert_eq!(run(json!({"-": [5]}), d.clone()), json!(-5));
        assert_eq!(run(json!({"-": [5, 7]}), d.clone()), json!(-2));
        assert_eq!(run(json!({"*": [2, 3]}), d.clone()), json!(6));
        assert_eq!(run(json!({"/": [1, 4]}), d.clone()), json!(0.25));
        assert_eq!(run(json!({"/": [1, 0]}), d.clone()), Value::Null);
        assert_eq!(run(json!({"%": [7, 3]}), d.clone()), json!(1));
        assert_eq!(run(json!({"min": [3, 1, 2]}), d.clone()), json!(1));
        assert_eq!(run(json!({"max": [3, "9", 2]}), d.clone()), json!(9));
        assert_eq!(run(json!({"max": []}), d.clone()), Value::Null);
        assert_eq!(run(json!({"+": ["x", 1]}), d), Value::Null);
    }

    #[test]
    fn strings_and_arrays() {
        let d = json!({"email": "bob@faas.com", "list": [1, 2, 3, 4]});
        assert_eq!(
            run(json!({"in": ["@faas.com", {"var": "email"}]}), d.clone()),
            json!(true)
        );
        assert_eq!(
            run(json!({"in": ["Mike", ["Bob", "Mike"]]}), d.clone()),
            json!(true)
        );
        assert_eq!(run(json!({"in": [1, ["1"]]}), d.clone()), json!(false));
        assert_eq!(
            run(json!({"cat": ["a", 1, null, true, 2.5]}), d.clone()),
            json!("a1nulltrue2.5")
        );
        assert_eq!(
            run(json!({"substr": ["jsonlogic", 4]}), d.clone()),
            json!("logic")
        );
        assert_eq!(
            run(json!({"substr": ["jsonlogic", -5]}), d.clone()),
            json!("logic")
        );
        assert_eq!(
            run(json!({"substr": ["jsonlogic", 1, 3]}), d.clone()),
            json!("son")
        );
        assert_eq!(
            run(json!({"substr": ["jsonlogic", 4, -2]}), d.clone()),
            json!("log")
        );
        assert_eq!(
            run(json!({"substr": ["héllo", 1, 1]}), d.clone()),
            json!("é")
        );
        assert_eq!(
            run(json!({"merge": [1, [2, 3], [[4]]]}), d.clone()),
            json!([1, 2, 3, [4]])
        );
        assert_eq!(
            run(
                json!({"map": [{"var": "list"}, {"*": [{"var": ""}, 2]}]}),
                d.clone()
            ),
            json!([2, 4, 6, 8])
        );
        assert_eq!(
            run(
                json!({"filter": [{"var": "list"}, {"%": [{"var": ""}, 2]}]}),
                d.clone()
            ),
            json!([1, 3])
        );
        assert_eq!(
            run(
                json!({"reduce": [{"var": "list"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}),
                d.clone()
            ),
            json!(10)
        );
        assert_eq!(
            run(
                json!({"all": [{"var": "list"}, {">": [{"var": ""}, 0]}]}),
                d.clone()
            ),
            json!(true)
        );
        assert_eq!(run(json!({"all": [[], true]}), d.clone()), json!(false));
        assert_eq!(
            run(
                json!({"none": [{"var": "list"}, {">": [{"var": ""}, 9]}]}),
                d.clone()
            ),
            json!(true)
        );
        assert_eq!(
            run(
                json!({"some": [{"var": "list"}, {">": [{"var": ""}, 3]}]}),
                d
            ),
            json!(true)
        );
    }

    #[test]
    fn custom_string_and_semver_ops() {
        let d = json!({"ip": "192.168.0.1", "v": "v2.1.0"});
        assert_eq!(
            run(
                json!({"starts_with": [{"var": "ip"}, "192.168"]}),
                d.clone()
            ),
            json!(true)
        );
        assert_eq!(
            run(json!({"ends_with": [{"var": "ip"}, ".2"]}), d.clone()),
            json!(false)
        );
        // Bad input yields null (flagd #1874), not false.
        assert_eq!(
            run(json!({"starts_with": [1, "1"]}), d.clone()),
            Value::Null
        );
        assert_eq!(run(json!({"ends_with": ["a"]}), d.clone()), Value::Null);
        assert_eq!(
            run(json!({"sem_ver": [{"var": "v"}, ">=", "2.0.0"]}), d.clone()),
            json!(true)
        );
        assert_eq!(
            run(json!({"sem_ver": [{"var": "v"}, "^", "2.9.9"]}), d.clone()),
            json!(true)
        );
        assert_eq!(
            run(json!({"sem_ver": [1, "=", "1.0.0"]}), d.clone()),
            json!(true)
        );
        assert_eq!(
            run(
                json!({"sem_ver": [{"var": "missing"}, "=", "1.0.0"]}),
                d.clone()
            ),
            Value::Null
        );
        assert_eq!(
            run(json!({"sem_ver": ["1.0.0", "=>", "1.0.0"]}), d.clone()),
            Value::Null
        );
        assert_eq!(run(json!({"sem_ver": ["1.0.0", "="]}), d), Value::Null);
    }

    #[test]
    fn validation_errors() {
        let e = validate(&json!({"if": [{"strats_with": [1, 2]}, 1, 2]}), "t", false).unwrap_err();
        assert_eq!(e.path, "t.if[0].strats_with");
        assert!(e.message.contains("unknown JSONLogic operator"));
        // Argument problems are warnings, located, and do not stop the walk.
        for bad in [
            json!({"sem_ver": ["1.0.0", "=>", "1.0.0"]}),
            json!({"sem_ver": ["1.0", "="]}),
            json!({"sem_ver": ["x.y", "=", "1.0.0"]}),
            json!({"starts_with": ["a"]}),
            json!({"fractional": [["a", 1.5]]}),
            json!({"fractional": [["a", -1]]}),
            json!({"fractional": [["a", "1"]]}),
            json!({"fractional": [{"var": "x"}]}),
            json!({"fractional": [["a", 2147483647], ["b", 1]]}),
        ] {
            assert!(validate(&bad, "", false).is_ok(), "{bad}");
            assert_eq!(lint(&bad, "t").len(), 1, "{bad}");
        }
        let w = lint(
            &json!({"if": [{"sem_ver": ["1", "=>", "1"]}, {"ends_with": [1]}, null]}),
            "t",
        );
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].path, "t.if[0].sem_ver[1]");
        assert_eq!(w[1].path, "t.if[1].ends_with");
        assert!(
            lint(
                &json!({"fractional": [{"var": "x"}, ["a"], ["b", {"var": "w"}]]}),
                ""
            )
            .is_empty()
        );
        assert!(validate(&json!({"$ref": "x"}), "", false).is_err());
        assert!(validate(&json!({"$ref": "x"}), "", true).is_ok());
        // literal multi-key objects are data, not operators
        assert!(validate(&json!({"a": 1, "b": {"zzz": 1}}), "", false).is_ok());
    }

    #[test]
    fn refs_resolve_and_guard_cycles() {
        let evs = json!({"a": {"in": ["@x", {"var": "email"}]}, "b": {"!": {"$ref": "a"}},
                         "c": {"$ref": "d"}, "d": {"$ref": "c"}});
        let evs = evs.as_object().cloned().unwrap_or_default();
        let r = resolve_refs(&json!({"if": [{"$ref": "b"}, "on", null]}), &evs, "t").unwrap();
        assert_eq!(
            r,
            json!({"if": [{"!": {"in": ["@x", {"var": "email"}]}}, "on", null]})
        );
        let e = resolve_refs(&json!({"$ref": "c"}), &evs, "t").unwrap_err();
        assert!(e.message.contains("cycle"), "{e}");
        let e = resolve_refs(&json!({"or": [{"$ref": "nope"}]}), &evs, "t").unwrap_err();
        assert_eq!(e.path, "t.or[0].$ref");
        assert_eq!(
            apply(&json!({"$ref": "a"}), &json!({})),
            Err(EvalError::UnresolvedRef("a".into()))
        );
    }

    #[test]
    fn refs_expansion_blowup_is_rejected() {
        // e0 = [1,1], e(n) = [e(n-1), e(n-1)] doubles: 2^30 nodes if unguarded.
        let mut evs = Map::new();
        evs.insert("e0".into(), json!({"cat": [1, 1]}));
        for i in 1..30 {
            let prev = format!("e{}", i - 1);
            evs.insert(
                format!("e{i}"),
                json!({"cat": [{"$ref": prev}, {"$ref": prev}]}),
            );
        }
        assert!(resolve_refs(&json!({"$ref": "e29"}), &evs, "t").is_err());
    }

    #[test]
    fn guards_never_panic() {
        // depth
        let mut deep = json!(true);
        for _ in 0..(MAX_DEPTH + 5) {
            deep = json!({"!": [deep]});
        }
        assert_eq!(apply(&deep, &json!({})), Err(EvalError::DepthExceeded));
        // budget: a map over a big array
        let big: Vec<Value> = (0..1000).map(Value::from).collect();
        let logic = json!({"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]});
        let data = json!({"xs": big});
        assert!(apply(&logic, &data).is_ok());
        let small = Limits {
            step_budget: 1_000,
            ..Limits::default()
        };
        assert_eq!(
            apply_traced(&logic, &data, small).map(|_| ()),
            Err(EvalError::BudgetExceeded)
        );
        // Work, not rule nodes: merging a growing accumulator over a
        // 10,000-element context array is a handful of nodes but quadratic
        // work, and runs out of budget; copying the array is charged too.
        let xs: Vec<Value> = (0..10_000).map(Value::from).collect();
        let data = json!({"xs": xs});
        let quadratic = json!({"reduce": [
            {"var": "xs"},
            {"merge": [{"var": "accumulator"}, [{"var": "current"}]]},
            []
        ]});
        assert_eq!(apply(&quadratic, &data), Err(EvalError::BudgetExceeded));
        let (_, trace) = apply_traced(&json!({"var": "xs"}), &data, Limits::default()).unwrap();
        assert!(trace.work > 10_000, "{}", trace.work);
        let long = json!({"s": "x".repeat(64 * 1000)});
        let (_, trace) = apply_traced(
            &json!({"cat": [{"var": "s"}, "y"]}),
            &long,
            Limits::default(),
        )
        .unwrap();
        assert!(trace.work > 2_000, "{}", trace.work);
        // Odd shapes degrade to null/false rather than panicking.
        for logic in [
            json!({"substr": []}),
            json!({"substr": ["abc", 1e300, -1e300]}),
            json!({"missing_some": ["x", "y"]}),
            json!({"fractional": []}),
            json!({"fractional": [1]}),
            json!({"fractional": ["k", "notabucket"]}),
            json!({"fractional": ["k", [[1], 1]]}),
            json!({"fractional": ["k", ["a", 1e300]]}),
            json!({"in": [1, 2]}),
            json!({"var": [{}, 1]}),
            json!({"%": [1, 0]}),
            json!({"sem_ver": [1, 2, 3]}),
            json!({"reduce": [1]}),
            json!({"unknownop": 1}),
        ] {
            let _ = apply(&logic, &json!({"a": [1]}));
        }
        assert_eq!(
            apply(&json!({"nope": 1}), &json!({})),
            Err(EvalError::UnknownOperator("nope".into()))
        );
    }
}
