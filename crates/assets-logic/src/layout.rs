//! How an object is laid out in the KV store, shared by the `assets`
//! component and `portico up` (which publishes `pages/` before serving):
//! a JSON [`Manifest`] under [`manifest_key`] and the content in
//! [`CHUNK_BYTES`] chunks under [`chunk_key`], named by the upload.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Content is stored in chunks of this size (well under every KV value limit).
pub const CHUNK_BYTES: u64 = 256 * 1024;
/// Object paths are limited so that their manifest key fits a KV key (250 bytes).
pub const MAX_PATH_BYTES: usize = 200;
pub const MANIFEST_PREFIX: &str = "assets/o/";
pub const CHUNK_PREFIX: &str = "assets/c/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub path: String,
    pub size: u64,
    pub content_type: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Unix seconds of the upload.
    pub modified: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Names the chunk keys of this upload.
    pub upload: String,
    pub chunk_bytes: u64,
    /// Codings (`br`, `gzip`) stored as `<path>.br` / `<path>.gz`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<String>,
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
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert_eq!(
            Manifest::new("e", b"", String::new(), None, Default::default()).chunk_count(),
            0
        );
    }
}
