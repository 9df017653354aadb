//! How an object is laid out in the KV store, shared by the `assets`
//! component and `portico up` (which publishes `pages/` before serving):
//! a JSON [`Manifest`] under [`manifest_key`] and the content in
//! [`CHUNK_BYTES`] chunks under [`chunk_key`], named by the upload.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Content is stored in chunks of this size (well under every KV value limit).
pub const CHUNK_BYTES: u64 = 256 * 1024;
/// Object paths are limited so that their manifest key fits a KV key (250 bytes).
pub const MAX_PATH_BYTES: usize = 200;
pub const MANIFEST_PREFIX: &str = "assets/o/";
pub const CHUNK_PREFIX: &str = "assets/c/";
/// A replaced or deleted upload's chunks are named here until they are
/// deleted, so downloads that started before the change can finish.
pub const RETIRED_PREFIX: &str = "assets/r/";
/// How long a replaced or deleted object's chunks stay readable by default
/// (`assets_replaced_grace`): longer than any download the server's own
/// limits let run at the minimum transfer rate for a typical object.
pub const DEFAULT_REPLACED_GRACE_SECS: u64 = 900;

/// An object's record under [`manifest_key`], stored as a JSON object with
/// these field names (`cache_control` and `encodings` only when set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub path: String,
    pub size: u64,
    pub content_type: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Unix seconds of the upload.
    pub modified: u64,
    pub cache_control: Option<String>,
    /// Names the chunk keys of this upload.
    pub upload: String,
    pub chunk_bytes: u64,
    /// Codings (`br`, `gzip`) stored as `<path>.br` / `<path>.gz`.
    pub encodings: Vec<String>,
}

/// Why stored manifest bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(String);

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ManifestError {}

// Manifests go through `serde_json::Value` rather than derived serializers:
// the `assets` component links `Value` for its settings anyway, and the
// derived visitors were about 2 KB gzip of a component held to a size budget.
impl Manifest {
    /// The stored form: a JSON object.
    pub fn to_json(&self) -> Vec<u8> {
        let mut object = Map::new();
        object.insert("path".into(), self.path.clone().into());
        object.insert("size".into(), self.size.into());
        object.insert("content_type".into(), self.content_type.clone().into());
        object.insert("sha256".into(), self.sha256.clone().into());
        object.insert("modified".into(), self.modified.into());
        if let Some(cache_control) = &self.cache_control {
            object.insert("cache_control".into(), cache_control.clone().into());
        }
        object.insert("upload".into(), self.upload.clone().into());
        object.insert("chunk_bytes".into(), self.chunk_bytes.into());
        if !self.encodings.is_empty() {
            object.insert("encodings".into(), self.encodings.clone().into());
        }
        Value::Object(object).to_string().into_bytes()
    }

    /// A manifest from its stored form. Unknown fields are ignored (a newer
    /// version may add some); a missing or mistyped one is an error naming it.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|err| ManifestError(format!("not JSON: {err}")))?;
        let Value::Object(mut object) = value else {
            return Err(ManifestError("not a JSON object".into()));
        };
        let mut take = |name: &str| object.remove(name).unwrap_or(Value::Null);
        let string = |name: &str, value: Value| match value {
            Value::String(text) => Ok(text),
            _ => Err(ManifestError(format!("field `{name}` must be a string"))),
        };
        let number = |name: &str, value: Value| {
            value.as_u64().ok_or_else(|| {
                ManifestError(format!("field `{name}` must be a non-negative integer"))
            })
        };
        Ok(Manifest {
            path: string("path", take("path"))?,
            size: number("size", take("size"))?,
            content_type: string("content_type", take("content_type"))?,
            sha256: string("sha256", take("sha256"))?,
            modified: number("modified", take("modified"))?,
            cache_control: match take("cache_control") {
                Value::Null => None,
                value => Some(string("cache_control", value)?),
            },
            upload: string("upload", take("upload"))?,
            chunk_bytes: number("chunk_bytes", take("chunk_bytes"))?,
            encodings: match take("encodings") {
                Value::Null => Vec::new(),
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| string("encodings", item))
                    .collect::<Result<_, _>>()?,
                _ => return Err(ManifestError("field `encodings` must be an array".into())),
            },
        })
    }
}

impl Manifest {
    /// A manifest for `body` uploaded now at `path`, under a fresh upload id.
    pub fn new(
        path: &str,
        body: &[u8],
        content_type: String,
        cache_control: Option<String>,
        now: std::time::Duration,
    ) -> Manifest {
        let sha256 = hex_sha256(body);
        Manifest {
            path: path.to_string(),
            size: body.len() as u64,
            content_type,
            upload: format!("{}-{:x}", &sha256[..16], now.as_nanos()),
            sha256,
            modified: now.as_secs(),
            cache_control,
            chunk_bytes: CHUNK_BYTES,
            encodings: Vec::new(),
        }
    }

    /// A manifest for content already written as chunks of `upload`
    /// (see [`Chunker`]), stored now at `path`.
    pub fn written(
        path: &str,
        content: Written,
        content_type: String,
        cache_control: Option<String>,
        now: std::time::Duration,
    ) -> Manifest {
        Manifest {
            path: path.to_string(),
            size: content.size,
            content_type,
            upload: content.upload,
            sha256: content.sha256,
            modified: now.as_secs(),
            cache_control,
            chunk_bytes: CHUNK_BYTES,
            encodings: Vec::new(),
        }
    }

    /// The strong entity tag, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.sha256)
    }

    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_bytes.max(1))
    }

    /// The KV keys of this upload's chunks, in order.
    pub fn chunk_keys(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.chunk_count()).map(|index| chunk_key(&self.upload, index))
    }
}

pub fn manifest_key(path: &str) -> String {
    format!("{MANIFEST_PREFIX}{path}")
}

pub fn chunk_key(upload: &str, index: u64) -> String {
    format!("{CHUNK_PREFIX}{upload}/{index}")
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh upload id for `path` started at `now`: unique per path and
/// instant, and ending in the start time (hex nanoseconds), which
/// [`upload_started`] reads back for compaction.
pub fn upload_id(path: &str, now: std::time::Duration) -> String {
    format!(
        "{}-{:x}",
        &hex_sha256(path.as_bytes())[..16],
        now.as_nanos()
    )
}

/// The start time encoded in an upload id.
pub fn upload_started(upload: &str) -> Option<std::time::Duration> {
    let nanos = u128::from_str_radix(upload.rsplit('-').next()?, 16).ok()?;
    Some(std::time::Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// What a finished [`Chunker`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub upload: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of all the bytes.
    pub sha256: String,
    pub chunks: u64,
}

/// Cuts a stream of bytes of any piece sizes into [`CHUNK_BYTES`] chunks,
/// hashing as it goes, so an upload never holds more than one chunk.
pub struct Chunker {
    upload: String,
    hasher: Sha256,
    pending: Vec<u8>,
    size: u64,
    chunks: u64,
}

impl Chunker {
    pub fn new(upload: String) -> Chunker {
        Chunker {
            upload,
            hasher: Sha256::new(),
            pending: Vec::new(),
            size: 0,
            chunks: 0,
        }
    }

    pub fn upload(&self) -> &str {
        &self.upload
    }

    /// Bytes taken so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Chunks handed out so far (the keys written, if every one was stored).
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Takes `bytes`; hands every chunk they complete to `store` with its
    /// key, stopping at the first error.
    pub fn push<E>(
        &mut self,
        mut bytes: &[u8],
        mut store: impl FnMut(&str, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        let chunk = CHUNK_BYTES as usize;
        while !bytes.is_empty() {
            let take = (chunk - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == chunk {
                self.flush(&mut store)?;
            }
        }
        Ok(())
    }

    fn flush<E>(&mut self, store: &mut impl FnMut(&str, &[u8]) -> Result<(), E>) -> Result<(), E> {
        let key = chunk_key(&self.upload, self.chunks);
        self.chunks += 1;
        let result = store(&key, &self.pending);
        self.pending.clear();
        result
    }

    /// Hands the last, partial chunk (if any) to `store` and says what was written.
    pub fn finish<E>(
        mut self,
        mut store: impl FnMut(&str, &[u8]) -> Result<(), E>,
    ) -> Result<Written, E> {
        if !self.pending.is_empty() {
            self.flush(&mut store)?;
        }
        Ok(Written {
            upload: self.upload,
            size: self.size,
            sha256: hex(&self.hasher.finalize()),
            chunks: self.chunks,
        })
    }
}

/// The key of the marker that says `upload` was replaced or deleted.
pub fn retired_key(upload: &str) -> String {
    format!("{RETIRED_PREFIX}{upload}")
}

/// A retired upload: when it stopped being current and how many chunks it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    /// Unix seconds.
    pub at: u64,
    pub chunks: u64,
}

impl Retired {
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.at, self.chunks).into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<Retired> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (at, chunks) = text.split_once(' ')?;
        Some(Retired {
            at: at.parse().ok()?,
            chunks: chunks.parse().ok()?,
        })
    }

    /// Whether its chunks may be deleted at `now` (Unix seconds).
    pub fn expired(&self, now: u64, grace_secs: u64) -> bool {
        now >= self.at.saturating_add(grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_name_their_chunks() {
        let body = vec![1u8; CHUNK_BYTES as usize + 1];
        let m = Manifest::new(
            "a/b.bin",
            &body,
            "x/y".into(),
            None,
            std::time::Duration::from_secs(5),
        );
        assert_eq!(m.chunk_count(), 2);
        let keys: Vec<String> = m.chunk_keys().collect();
        assert_eq!(keys[1], format!("assets/c/{}/1", m.upload));
        assert_eq!(m.modified, 5);
        assert_eq!(m.etag().len(), 66);
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(
            Manifest::new("e", b"", String::new(), None, Default::default()).chunk_count(),
            0
        );
    }

    /// What the earlier serde-derived writer stored (fields in declaration
    /// order, optional ones left out or present): still read the same.
    #[test]
    fn manifests_written_by_earlier_versions_still_read() {
        let stored = br#"{"path":"a/b.css","size":12,"content_type":"text/css","sha256":"ab","modified":1700000000,"cache_control":"public, max-age=60","upload":"ab-1","chunk_bytes":262144,"encodings":["br","gzip"]}"#;
        let m = Manifest::from_json(stored).unwrap();
        assert_eq!(
            m,
            Manifest {
                path: "a/b.css".into(),
                size: 12,
                content_type: "text/css".into(),
                sha256: "ab".into(),
                modified: 1_700_000_000,
                cache_control: Some("public, max-age=60".into()),
                upload: "ab-1".into(),
                chunk_bytes: 262_144,
                encodings: vec!["br".into(), "gzip".into()],
            }
        );
        let plain = br#"{"path":"p","size":0,"content_type":"","sha256":"","modified":0,"upload":"u","chunk_bytes":1,"later_field":true}"#;
        let m = Manifest::from_json(plain).unwrap();
        assert_eq!((m.cache_control, m.encodings), (None, Vec::new()));
        // Optional fields are written only when set, as before.
        let written: Value =
            serde_json::from_slice(&Manifest::from_json(plain).unwrap().to_json()).unwrap();
        assert!(written.get("cache_control").is_none() && written.get("encodings").is_none());
        assert_eq!(written["chunk_bytes"], 1);
    }

    #[test]
    fn unreadable_manifests_name_what_is_wrong() {
        for (stored, expected) in [
            (&br#"not json"#[..], "not JSON"),
            (br#"[1]"#, "not a JSON object"),
            (br#"{"path":"p","content_type":"","sha256":"","modified":0,"upload":"u","chunk_bytes":1}"#, "`size`"),
            (br#"{"path":"p","size":-1,"content_type":"","sha256":"","modified":0,"upload":"u","chunk_bytes":1}"#, "`size`"),
            (br#"{"path":7,"size":1,"content_type":"","sha256":"","modified":0,"upload":"u","chunk_bytes":1}"#, "`path`"),
            (br#"{"path":"p","size":1,"content_type":"","sha256":"","modified":0,"upload":"u","chunk_bytes":1,"encodings":"br"}"#, "`encodings`"),
        ] {
            let err = Manifest::from_json(stored).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should name {expected}");
        }
    }

    #[test]
    fn a_chunker_writes_what_a_whole_upload_would() {
        let body: Vec<u8> = (0..(2 * CHUNK_BYTES as usize + 1234))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let whole = Manifest::new("p", &body, String::new(), None, Default::default());
        // Pieces of awkward sizes, crossing chunk boundaries.
        for piece in [1usize, 1000, 65_536, CHUNK_BYTES as usize, 300_000] {
            let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
            let mut chunker = Chunker::new("u-1".into());
            for part in body.chunks(piece) {
                chunker
                    .push(part, |key, bytes| {
                        stored.push((key.to_string(), bytes.to_vec()));
                        Ok::<(), ()>(())
                    })
                    .unwrap();
            }
            let written = chunker
                .finish(|key, bytes| {
                    stored.push((key.to_string(), bytes.to_vec()));
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!(written.sha256, whole.sha256, "piece {piece}");
            assert_eq!(written.size, body.len() as u64);
            assert_eq!(written.chunks, whole.chunk_count());
            let keys: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
            let expected: Vec<String> = (0..written.chunks).map(|i| chunk_key("u-1", i)).collect();
            assert_eq!(keys, expected);
            let joined: Vec<u8> = stored.into_iter().flat_map(|(_, b)| b).collect();
            assert_eq!(joined, body);
        }
    }

    #[test]
    fn a_chunker_stops_at_the_first_storage_error() {
        let mut chunker = Chunker::new("u".into());
        let mut calls = 0;
        let result = chunker.push(&vec![0u8; 3 * CHUNK_BYTES as usize], |_, _| {
            calls += 1;
            Err("full")
        });
        assert_eq!(result, Err("full"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn upload_ids_carry_their_start_and_retired_markers_round_trip() {
        let now = std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let id = upload_id("css/site.css", now);
        assert_eq!(upload_started(&id), Some(now));
        assert_ne!(id, upload_id("css/other.css", now));
        let retired = Retired { at: 100, chunks: 7 };
        assert_eq!(Retired::decode(&retired.encode()), Some(retired));
        assert_eq!(Retired::decode(b"100"), None);
        assert!(!retired.expired(199, 100));
        assert!(retired.expired(200, 100));
    }
}
