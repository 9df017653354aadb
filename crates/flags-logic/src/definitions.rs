//! flagd flag-definition documents: parsing, validation, canonical output.
//!
//! **Job:** turn a flagd flag-definition JSON document into a typed, fully
//! validated [`FlagSet`] whose targeting rules are ready to evaluate, and
//! re-serialise a set canonically (for storage, diffing and ETags).
//!
//! **Standard followed:** flagd flag definitions
//! (<https://flagd.dev/reference/flag-definitions/>) and the flagd JSON schema
//! (`https://flagd.dev/schema/v0/flags.json`):
//! `{"$schema"?, "flags": {key: {"state", "variants", "defaultVariant",
//! "targeting"?, "metadata"?}}, "$evaluators"?, "metadata"?}`.
//!
//! **Choices and why:**
//! * Validation is fail-fast with a located message, e.g.
//!   `flags.my-flag.defaultVariant: "x" is not one of the variants`. Flags are
//!   visited in key order, so the reported error is deterministic. Keys
//!   containing `.`, `[`, `]`, `"` or whitespace are quoted (`flags["a.b"]`).
//! * `state` is required (`ENABLED`/`DISABLED`); `variants` is required and
//!   non-empty; every variant of a flag must share one type (boolean, string,
//!   number, object — arrays and `null` are rejected, as in the schema);
//!   integer variants must be within ±(2^53−1) (schema's safe-integer rule).
//! * `defaultVariant` may be a variant name, or `null`/absent meaning "use the
//!   caller's code default" (current flagd schema); it is `Option<String>`.
//! * Metadata (flag-set and per-flag) values must be string, number or boolean
//!   (schema + OpenFeature flag-metadata types).
//! * Unknown keys at the top level and inside a flag are **rejected** (to catch
//!   typos such as `defualtVariant`); flagd merely warns on schema violations.
//! * Targeting: `null`/absent/`{}` means "no targeting" (flagd treats `{}` so,
//!   giving reason STATIC); otherwise it must be a JSON object. Unknown
//!   JSONLogic operators are load errors (flagd loads them and answers
//!   `PARSE_ERROR` at evaluation). Malformed `fractional`/`sem_ver`/
//!   `starts_with`/`ends_with` literal arguments (what flagd's schema flags)
//!   are collected in [`FlagSet::warnings`] but do not fail the load: flagd
//!   accepts them and the operator yields `null` at run time.
//!   `$ref`s are resolved here, once:
//!   a reference to a missing evaluator, a reference cycle, or an expansion
//!   over the size/depth caps is an error. Each `$evaluators` entry is also
//!   validated on its own (errors located at `$evaluators.<name>`).
//! * [`FlagSet::to_value`] keeps rules *as written* (with `$ref`s) plus the
//!   `$evaluators`, so `parse(to_value(set)) == set`; object keys come out
//!   sorted (serde_json's default `Map` is ordered), empty optional members
//!   are omitted and `defaultVariant` is always present (`null` when unset).
//!   Only the `flags` map form is accepted (not flagd's import-only array form).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::jsonlogic;

/// The KV key the whole flag set is stored under (one document, so
/// replacing it is one write), shared by the `flags` component and the
/// host's `portico up`.
pub const DEFINITIONS_KEY: &str = "flags/definitions";

/// Largest integer a flagd number variant may hold (2^53 − 1).
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// A flag's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagState {
    Enabled,
    Disabled,
}

impl FlagState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagState::Enabled => "ENABLED",
            FlagState::Disabled => "DISABLED",
        }
    }
}

/// The single type shared by all variants of a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagType {
    Boolean,
    String,
    Number,
    Object,
}

impl FlagType {
    /// The type of a variant value; `None` for `null` and arrays.
    pub fn of(v: &Value) -> Option<FlagType> {
        match v {
            Value::Bool(_) => Some(FlagType::Boolean),
            Value::String(_) => Some(FlagType::String),
            Value::Number(_) => Some(FlagType::Number),
            Value::Object(_) => Some(FlagType::Object),
            Value::Null | Value::Array(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }
}

/// One validated flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub key: String,
    pub state: FlagState,
    pub flag_type: FlagType,
    pub variants: BTreeMap<String, Value>,
    /// `None`: no default variant — the caller's code default applies.
    pub default_variant: Option<String>,
    /// The rule with every `$ref` inlined; `None` when there is no targeting.
    pub targeting: Option<Value>,
    /// The rule as written (may contain `$ref`), for canonical output.
    pub targeting_source: Option<Value>,
    pub metadata: Map<String, Value>,
}

/// A validated flag-definition document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlagSet {
    pub schema: Option<String>,
    pub flags: BTreeMap<String, Flag>,
    /// Shared rules as written (`$evaluators`).
    pub evaluators: Map<String, Value>,
    /// Flag-set metadata (merged under each flag's metadata on evaluation).
    pub metadata: Map<String, Value>,
    /// Non-fatal, schema-level findings (see [`crate::jsonlogic::lint`]).
    pub warnings: Vec<DefinitionError>,
}

/// A definition problem: where (`path`) and what (`message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DefinitionError {}

impl From<jsonlogic::LogicError> for DefinitionError {
    fn from(e: jsonlogic::LogicError) -> Self {
        DefinitionError {
            path: e.path,
            message: e.message,
        }
    }
}

fn derr(path: &str, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// `parent.key`, or `parent["key"]` for keys containing `.`, `[`, `]`, `"`
/// or whitespace (see [`jsonlogic::child_path`]).
pub fn key_path(parent: &str, key: &str) -> String {
    jsonlogic::child_path(parent, key)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parse and validate a flagd flag-definition document.
pub fn parse_definitions(json: &str) -> Result<FlagSet, DefinitionError> {
    let doc: Value = serde_json::from_slice(json.as_bytes())
        .map_err(|e| derr("", format!("invalid JSON: {e}")))?;
    parse_definitions_value(&doc)
}

/// Validate an already-parsed document.
pub fn parse_definitions_value(doc: &Value) -> Result<FlagSet, DefinitionError> {
    let Value::Object(root) = doc else {
        return Err(derr(
            "",
            format!("the document must be a JSON object, not {}", type_name(doc)),
        ));
    };
    for k in root.keys() {
        if !matches!(k.as_str(), "$schema" | "flags" | "$evaluators" | "metadata") {
            return Err(derr(
                &key_path("", k),
                "unknown top-level key (expected $schema, flags, $evaluators, metadata)",
            ));
        }
    }
    let schema = match root.get("$schema") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(derr(
                "$schema",
                format!("must be a string, not {}", type_name(v)),
            ));
        }
    };
    let metadata = parse_metadata(root.get("metadata"), "metadata")?;

    let evaluators = match root.get("$evaluators") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(v) => {
            return Err(derr(
                "$evaluators",
                format!("must be an object, not {}", type_name(v)),
            ));
        }
    };
    let mut warnings = Vec::new();
    for (name, body) in &evaluators {
        let p = key_path("$evaluators", name);
        jsonlogic::validate(body, &p, true)?;
        jsonlogic::resolve_evaluator(name, &evaluators)?;
        warnings.extend(
            jsonlogic::lint(body, &p)
                .into_iter()
                .map(DefinitionError::from),
        );
    }

    let flags_v = match root.get("flags") {
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(derr(
                "flags",
                format!("must be an object, not {}", type_name(v)),
            ));
        }
        None => return Err(derr("flags", "is required")),
    };
    let mut flags = BTreeMap::new();
    for (key, fv) in flags_v {
        let flag = parse_flag(key, fv, &evaluators, &mut warnings)?;
        flags.insert(key.clone(), flag);
    }
    Ok(FlagSet {
        schema,
        flags,
        evaluators,
        metadata,
        warnings,
    })
}

fn parse_metadata(v: Option<&Value>, path: &str) -> Result<Map<String, Value>, DefinitionError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            for (k, val) in m {
                if !matches!(val, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(derr(
                        &key_path(path, k),
                        format!(
                            "metadata values must be string, number or boolean, not {}",
                            type_name(val)
                        ),
                    ));
                }
            }
            Ok(m.clone())
        }
        Some(v) => Err(derr(
            path,
            format!("must be an object, not {}", type_name(v)),
        )),
    }
}

fn parse_flag(
    key: &str,
    fv: &Value,
    evaluators: &Map<String, Value>,
    warnings: &mut Vec<DefinitionError>,
) -> Result<Flag, DefinitionError> {
    let fp = key_path("flags", key);
    if key.is_empty() {
        return Err(derr(&fp, "flag keys must not be empty"));
    }
    let Value::Object(f) = fv else {
        return Err(derr(
            &fp,
            format!("a flag must be an object, not {}", type_name(fv)),
        ));
    };
    for k in f.keys() {
        if !matches!(
            k.as_str(),
            "state" | "variants" | "defaultVariant" | "targeting" | "metadata"
        ) {
            return Err(derr(
                &key_path(&fp, k),
                "unknown flag property (expected state, variants, defaultVariant, targeting, metadata)",
            ));
        }
    }

    let sp = key_path(&fp, "state");
    let state = match f.get("state") {
        Some(Value::String(s)) if s == "ENABLED" => FlagState::Enabled,
        Some(Value::String(s)) if s == "DISABLED" => FlagState::Disabled,
        Some(v) => return Err(derr(&sp, format!("{v} is not ENABLED or DISABLED"))),
        None => return Err(derr(&sp, "is required (ENABLED or DISABLED)")),
    };

    let vp = key_path(&fp, "variants");
    let vmap = match f.get("variants") {
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(derr(
                &vp,
                format!("must be an object, not {}", type_name(v)),
            ));
        }
        None => return Err(derr(&vp, "is required")),
    };
    let mut variants = BTreeMap::new();
    let mut flag_type: Option<(FlagType, &str)> = None;
    for (name, val) in vmap {
        let p = key_path(&vp, name);
        let Some(t) = FlagType::of(val) else {
            return Err(derr(
                &p,
                format!(
                    "variant values must be boolean, string, number or object, not {}",
                    type_name(val)
                ),
            ));
        };
        if let Value::Number(n) = val {
            let too_big = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i),
                (None, Some(_)) => true,
                _ => false,
            };
            if too_big {
                return Err(derr(
                    &p,
                    format!("{n} is outside the safe integer range ±(2^53-1)"),
                ));
            }
        }
        match flag_type {
            None => flag_type = Some((t, name.as_str())),
            Some((ft, first)) if ft != t => {
                return Err(derr(
                    &p,
                    format!(
                        "is a {} but variant {first:?} is a {}; all variants of a flag must share one type",
                        t.as_str(),
                        ft.as_str()
                    ),
                ));
            }
            Some(_) => {}
        }
        variants.insert(name.clone(), val.clone());
    }
    let Some((flag_type, _)) = flag_type else {
        return Err(derr(&vp, "must define at least one variant"));
    };

    let dp = key_path(&fp, "defaultVariant");
    let default_variant = match f.get("defaultVariant") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if variants.contains_key(s) => Some(s.clone()),
        Some(Value::String(s)) => {
            return Err(derr(&dp, format!("{:?} is not one of the variants", s)));
        }
        Some(v) => {
            return Err(derr(
                &dp,
                format!(
                    "must be a variant name (string) or null, not {}",
                    type_name(v)
                ),
            ));
        }
    };

    let tp = key_path(&fp, "targeting");
    let (targeting_source, targeting) = match f.get("targeting") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(m)) if m.is_empty() => (None, None),
        Some(rule @ Value::Object(_)) => {
            jsonlogic::validate(rule, &tp, true)?;
            let resolved = jsonlogic::resolve_refs(rule, evaluators, &tp)?;
            warnings.extend(
                jsonlogic::lint(rule, &tp)
                    .into_iter()
                    .map(DefinitionError::from),
            );
            (Some(rule.clone()), Some(resolved))
        }
        Some(v) => {
            return Err(derr(
                &tp,
                format!("must be a JSONLogic object, not {}", type_name(v)),
            ));
        }
    };

    let metadata = parse_metadata(f.get("metadata"), &key_path(&fp, "metadata"))?;

    Ok(Flag {
        key: key.to_owned(),
        state,
        flag_type,
        variants,
        default_variant,
        targeting,
        targeting_source,
        metadata,
    })
}

impl Flag {
    /// Canonical JSON for this flag (without its key).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("state".into(), Value::from(self.state.as_str()));
        m.insert(
            "variants".into(),
            Value::Object(
                self.variants
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        );
        m.insert(
            "defaultVariant".into(),
            self.default_variant
                .clone()
                .map_or(Value::Null, Value::String),
        );
        if let Some(t) = &self.targeting_source {
            m.insert("targeting".into(), t.clone());
        }
        if !self.metadata.is_empty() {
            m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        Value::Object(m)
    }
}

impl FlagSet {
    /// Look a flag up by key.
    pub fn get(&self, key: &str) -> Option<&Flag> {
        self.flags.get(key)
    }

    /// Canonical JSON for the whole document (sorted keys, rules as written).
    pub fn to_value(&self) -> Value {
        let mut root = Map::new();
        if let Some(s) = &self.schema {
            root.insert("$schema".into(), Value::String(s.clone()));
        }
        root.insert(
            "flags".into(),
            Value::Object(
                self.flags
                    .iter()
                    .map(|(k, f)| (k.clone(), f.to_value()))
                    .collect(),
            ),
        );
        if !self.evaluators.is_empty() {
            root.insert("$evaluators".into(), Value::Object(self.evaluators.clone()));
        }
        if !self.metadata.is_empty() {
            root.insert("metadata".into(), Value::Object(self.metadata.clone()));
        }
        Value::Object(root)
    }

    /// Canonical compact JSON text of [`FlagSet::to_value`].
    pub fn to_canonical_string(&self) -> String {
        self.to_value().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(json: &str) -> String {
        parse_definitions(json).unwrap_err().to_string()
    }

    #[test]
    fn default_variant_must_exist() {
        let e = err_of(
            r#"{"flags":{"my-flag":{"state":"ENABLED","variants":{"a":true},"defaultVariant":"x"}}}"#,
        );
        assert_eq!(
            e,
            r#"flags.my-flag.defaultVariant: "x" is not one of the variants"#
        );
    }

    #[test]
    fn located_errors() {
        let cases = [
            (r#"[]"#, "the document must be a JSON object"),
            (
                r#"{"flags":{"f":{"state":"ON","variants":{"a":1},"defaultVariant":"a"}}}"#,
                "flags.f.state:",
            ),
            (
                r#"{"flags":{"f":{"variants":{"a":1},"defaultVariant":"a"}}}"#,
                "flags.f.state: is required",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","defaultVariant":"a"}}}"#,
                "flags.f.variants: is required",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{},"defaultVariant":null}}}"#,
                "at least one variant",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":true,"b":"x"},"defaultVariant":"a"}}}"#,
                "flags.f.variants.b: is a string but variant \"a\" is a boolean",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":[1]},"defaultVariant":"a"}}}"#,
                "flags.f.variants.a:",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":9007199254740992},"defaultVariant":"a"}}}"#,
                "safe integer",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","targeting":{"if":[{"bogus":[]},"a",null]}}}}"#,
                "flags.f.targeting.if[0].bogus: unknown JSONLogic operator",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","targeting":{"$ref":"nope"}}}}"#,
                "flags.f.targeting.$ref: evaluator \"nope\" is not defined in $evaluators",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","targeting":"a"}}}"#,
                "flags.f.targeting: must be a JSONLogic object",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":1},"defualtVariant":"a"}}}"#,
                "flags.f.defualtVariant: unknown flag property",
            ),
            (
                r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":1},"metadata":{"x":{}}}}}"#,
                "flags.f.metadata.x: metadata values must be",
            ),
            (r#"{"flags":{},"metadata":{"v":[1]}}"#, "metadata.v:"),
            (
                r#"{"flags":{},"$evaluators":{"a":{"$ref":"b"},"b":{"$ref":"a"}}}"#,
                "$ref cycle: a -> b -> a",
            ),
            (
                r#"{"flags":{},"$evaluators":{"a":{"nope":1}}}"#,
                "$evaluators.a.nope: unknown JSONLogic operator",
            ),
            (r#"{"flagz":{}}"#, "flagz: unknown top-level key"),
            (
                r#"{"flags":{"a.b":{"state":"ENABLED","variants":{"x":1},"defaultVariant":"y"}}}"#,
                "flags[\"a.b\"].defaultVariant",
            ),
            (r#"{"flags":"#, "invalid JSON"),
        ];
        for (json, want) in cases {
            let e = err_of(json);
            assert!(e.contains(want), "{json}\n  got: {e}\n  want: {want}");
        }
    }

    #[test]
    fn lint_findings_are_warnings() {
        let set = parse_definitions(
            r#"{"flags":{"f":{"state":"ENABLED","variants":{"a":"a"},"defaultVariant":"a",
                "targeting":{"if":[{"sem_ver":[{"var":"v"},"=>","1.0.0"]},"a",null]}}},
               "$evaluators":{"e":{"fractional":[["a",-5],["b",5]]}}}"#,
        )
        .unwrap();
        let w: Vec<String> = set.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("$evaluators.e.fractional[0][1]: negative weight"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("flags.f.targeting.if[0].sem_ver[1]:"),
            "{w:?}"
        );
    }

    #[test]
    fn canonical_round_trip() {
        let src = r#"{
          "$schema": "https://flagd.dev/schema/v0/flags.json",
          "metadata": {"version": "7"},
          "flags": {
            "z": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
            "a": {"state": "ENABLED", "variants": {"x": {"k": 1}}, "defaultVariant": null,
                  "targeting": {"if": [{"$ref": "staff"}, "x", null]}, "metadata": {"owner": "web"}},
            "e": {"state": "ENABLED", "variants": {"n": 1.5}, "defaultVariant": "n", "targeting": {}}
          },
          "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@corp.com"]}}
        }"#;
        let set = parse_definitions(src).unwrap();
        let canon = set.to_value();
        let again = parse_definitions_value(&canon).unwrap();
        assert_eq!(again, set);
        assert_eq!(again.to_canonical_string(), set.to_canonical_string());
        let text = set.to_canonical_string();
        // Sorted keys, `$ref` kept, `{}` targeting dropped, null default kept.
        assert!(text.starts_with(r#"{"$evaluators":"#), "{text}");
        assert!(text.contains(r#""a":{"defaultVariant":null,"metadata":{"owner":"web"},"state":"ENABLED","targeting":{"if":[{"$ref":"staff"},"x",null]}"#), "{text}");
        assert!(
            text.contains(r#""e":{"defaultVariant":"n","state":"ENABLED","variants":{"n":1.5}}"#),
            "{text}"
        );
        assert_eq!(
            set.flags["a"].targeting,
            Some(
                serde_json::json!({"if": [{"ends_with": [{"var": "email"}, "@corp.com"]}, "x", null]})
            )
        );
        assert_eq!(set.flags["z"].state, FlagState::Disabled);
        assert_eq!(set.flags["a"].flag_type, FlagType::Object);
    }
}
