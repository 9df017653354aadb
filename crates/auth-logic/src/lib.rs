//! Pure authentication logic for Portico's `auth` component.
//!
//! Nothing in this crate touches the clock, a random source, the network or
//! any WebAssembly binding: callers inject `now` and random bytes, so every
//! function is deterministic and can be tested natively with `cargo test`.

#![forbid(unsafe_code)]

pub mod jwt;
pub mod password;
pub mod secret;
pub mod user;
