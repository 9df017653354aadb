//! Pure, binding-free HTTP logic for Portico's `assets` component: a
//! static-file object store served with full HTTP semantics.
//!
//! Nothing here performs I/O or depends on WASI bindings, so every module
//! compiles for `wasm32-wasip2` and is tested natively.
//!
//! - [`range`]: `Range` / `Content-Range` / `multipart/byteranges` (RFC 9110 §14).
//! - [`conditional`]: preconditions and HTTP dates (RFC 9110 §13, §5.6.7).
//! - [`path`]: request path to object key, with traversal confinement.
//! - [`media`]: media types, cache policy, fingerprints, precompressed variants.
//! - [`layout`]: how objects are laid out in the KV store (manifest + chunks),
//!   and the chunking, hashing writer uploads stream through.
//! - [`stream`]: a response body as a plan of pieces, read a chunk at a time.
//!
//! No function panics on any input; none unwraps request data.

pub mod conditional;
pub mod layout;
pub mod media;
pub mod path;
pub mod range;
pub mod stream;
