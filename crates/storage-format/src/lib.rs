//! The storage formats shared by Portico's platform adapters and the host.
//!
//! Spin's key-value store has no TTL and `wasmtime serve` has only files, so
//! both adapters (`components/platform-spin`, `components/platform-wasi`)
//! keep expiry in a small envelope around each value, and the host's offline
//! `portico kv` command reads and writes the same bytes. Keeping the formats in
//! one dependency-free crate is what lets the three agree; nothing here does
//! I/O. The same goes for the counter shard format ([`counters`]) and the
//! `durable_databases` mapping of namespaces to databases ([`locality`]), and the
//! bounded, resumable key scans of sweeps and compaction ([`scan`]).
//!
//! ```
//! use portico_storage_format::envelope;
//! let bytes = envelope::encode(b"hello", Some(2_000));
//! let stored = envelope::decode(&bytes);
//! assert_eq!(stored.value, b"hello");
//! assert!(stored.is_live(1_999));
//! assert!(!stored.is_live(2_000));
//! ```

pub mod counters;
pub mod envelope;
pub mod locality;
pub mod names;
pub mod record;
pub mod scan;
