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
                    // A stock runtime runs dist/portico-wasi.wasm only.
                    if crate::harness::runtime() != crate::harness::Runtime::Embedded {
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

/// Expands `fn name(target)` into one test on `--target spin` with the
/// key-value store on Redis (`name::kv_on_redis`).
macro_rules! with_kv_on_redis {
    ($($name:ident),* $(,)?) => {
        mod kv_on_redis {
            $(
                #[test]
                fn $name() {
                    crate::harness::with_kv_on_redis(|| {
                        super::$name(portico::serve::Target::Spin)
                    });
                }
            )*
        }
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
mod scaling;
mod upstream;
