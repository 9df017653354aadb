//! `portico`: builds, composes and serves the Portico components.
//!
//! - [`build`] compiles every component for `wasm32-wasip2` and composes the
//!   deployable artifacts into `dist/` with [`compose`] (`wac-graph`),
//!   made smaller by [`shrink`];
//! - [`serve`] runs a composed component on an embedded wasmtime, providing
//!   either Spin's host interfaces ([`spin`], backed by SQLite files) or only
//!   stock WASI, so a fresh machine needs nothing but Rust;
//! - [`variables`] resolves Spin variables as `spin up` does, and
//!   [`runtime_config`] reads Spin's runtime configuration file (the
//!   key-value store on Redis, databases at given paths);
//! - [`limits`] bounds how long and how slowly one client may hold the server,
//!   and [`request_limits`] what one request may take (time, CPU, memory);
//! - [`kv`] reads and writes an app's KV data directly, for seeding;
//! - [`assets_sync`] mirrors a folder into a running server's object store.
//!
//! ```text
//! portico up                         # build, then serve on 127.0.0.1:3000
//! portico serve --target wasi        # serve dist/portico-wasi.wasm
//! ```

pub mod assets_sync;
pub mod build;
pub mod compose;
pub mod first_run;
pub mod hop_by_hop;
pub mod kv;
pub mod limits;
pub mod publish;
pub mod request_limits;
pub mod runtime_config;
pub mod schedule;
pub mod serve;
pub mod shrink;
pub mod spin;
pub mod variables;
