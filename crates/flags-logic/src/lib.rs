//! Binding-free logic for Portico's `flags` component.
//!
//! Pure Rust (no WASI/HTTP types, no I/O, no clock): the component wires these
//! modules to wasi-http; everything here is testable natively.
//!
//! * [`murmur3`] — MurmurHash3 x86 32-bit (flagd's `fractional` hash).
//! * [`semver`] — SemVer 2.0 parsing/comparison for `sem_ver`.
//! * [`jsonlogic`] — JSONLogic evaluator with flagd's custom operators.
//! * [`definitions`] — flagd flag-definition parsing, validation, canonical JSON.
//! * [`mod@evaluate`] — OpenFeature resolution semantics as flagd applies them.
//! * [`ofrep`] — OFREP request/response JSON shapes and ETags.

pub mod definitions;
pub mod evaluate;
pub mod jsonlogic;
pub mod murmur3;
pub mod ofrep;
pub mod semver;

pub use definitions::{DefinitionError, Flag, FlagSet, FlagState, FlagType, parse_definitions};
pub use evaluate::{
    Context, ErrorCode, EvalOptions, Reason, Resolution, ValueType, evaluate, evaluate_all,
    evaluate_typed,
};
