//! End-to-end tests: the composed wasm running in the `portico` host, spoken
//! to over real HTTP on 127.0.0.1, with real SQLite (or real files) beneath.
//!
//! Each behaviour is checked on both targets (`--target spin` with
//! `dist/portico-spin.wasm`, `--target wasi` with `dist/portico-wasi.wasm`).

mod harness;

/// Expands `fn name(target)` into one test per target.
macro_rules! on_both_targets {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn spin() {
                    // Stock wasmtime serve runs dist/portico-wasi.wasm only.
                    if crate::harness::runtime() == crate::harness::Runtime::WasmtimeServe {
                        return;
                    }
                    super::$name(portico::serve::Target::Spin);
                }
                #[test]
                fn wasi() {
                    super::$name(portico::serve::Target::Wasi);
                }
            }
        )*
    };
}

mod artifacts;
mod assets;
mod auth;
mod browser;
mod cli;
mod cors;
mod crash;
mod faults;
mod flags;
mod gateway;
mod limits;
mod operations;
mod origin;
mod platform;
mod ratelimit;
mod upstream;
