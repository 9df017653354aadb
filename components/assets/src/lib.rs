//! `portico:assets`: an object store for static files in the KV store,
//! served with the HTTP semantics the best file servers get right: strong
//! ETags, conditional requests with RFC 9110's precedence, single and
//! multipart ranges, `If-Range`, and precompressed variants.
//!
//! Imports `portico:platform/{kv,config}`; exports `portico:assets/store`.
//! - [`objects`]: manifests and chunks in KV (atomic replacement, retired
//!   versions kept for a grace period).
//! - [`serve`]: `GET`/`HEAD` semantics over `portico_assets_logic`, with
//!   large bodies written from storage to the response stream (the `body`
//!   resource).
//! - [`upload`]: uploads streamed in (the `upload` resource).
//! - [`settings`]: the component's variables.

mod objects;
mod problems;
mod serve;
mod settings;
mod upload;

wit_bindgen::generate!({
    path: [
        "../../wit/deps/wasi-io",
        "../../wit/types",
        "../../wit/platform",
        "../../wit/streaming",
        "../../wit/assets",
    ],
    world: "portico:assets/component",
    // Bodies are written to the runtime's own streams (`wasip2`'s types).
    with: {
        "wasi:io/streams@0.2.4": wasip2::io::streams,
        "wasi:io/error@0.2.4": wasip2::io::error,
        "wasi:io/poll@0.2.4": wasip2::io::poll,
    },
    generate_all,
});

use exports::portico::assets::store::{
    self as store, Compaction, Guest, GuestBody, ObjectInfo, PutOptions, Served,
};
use portico::types::http::{Problem, Request};
use portico_assets_logic::media;

struct Assets;

export!(Assets);

fn info(manifest: &objects::Manifest) -> ObjectInfo {
    ObjectInfo {
        path: manifest.path.clone(),
        size: manifest.size,
        content_type: manifest.content_type.clone(),
        etag: manifest.etag(),
        last_modified: manifest.modified,
        cache_control: manifest.cache_control.clone(),
    }
}

/// A header value the client supplied, refused if it could inject lines.
fn header_value(name: &str, value: Option<String>) -> Result<Option<String>, Problem> {
    match value.map(|v| v.trim().to_string()) {
        Some(v) if v.chars().any(char::is_control) => Err(problems::bad_header(name)),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl GuestBody for serve::Rest {
    fn send_to(&self, out: &wasip2::io::streams::OutputStream) -> Result<(), Problem> {
        serve::Rest::send_to(self, out)
    }
}

impl Guest for Assets {
    type Body = serve::Rest;
    type Upload = upload::Upload;

    fn serve(root: String, request: Request) -> Result<Served, Problem> {
        let answer = serve::serve(&root, &request)?;
        Ok(Served {
            response: answer.response,
            rest: answer.rest.map(store::Body::new),
        })
    }

    fn start_upload(
        path: String,
        options: PutOptions,
        declared_size: Option<u64>,
    ) -> Result<store::Upload, Problem> {
        let key = serve::key_of("", &path)?;
        let max = settings::max_object_bytes()?;
        if let Some(declared) = declared_size
            && declared > max
        {
            return Err(problems::too_large(declared, max));
        }
        let content_type = header_value("Content-Type", options.content_type)?
            .unwrap_or_else(|| media::content_type_for(&key).to_string());
        let cache_control = header_value("Cache-Control", options.cache_control)?;
        let conditions = upload::Conditions {
            if_match: options.if_match,
            if_none_match: options.if_none_match,
        };
        // Refused before any byte is read; checked again at `finish`.
        conditions.check(objects::load(&key)?.as_ref())?;
        let metadata = objects::Metadata {
            content_type,
            cache_control,
        };
        Ok(store::Upload::new(upload::Upload::start(
            key,
            metadata,
            conditions,
            declared_size,
            max,
        )))
    }

    fn delete(path: String) -> Result<ObjectInfo, Problem> {
        let key = serve::key_of("", &path)?;
        let manifest = objects::load(&key)?.ok_or_else(|| problems::not_found(&key))?;
        objects::remove(&manifest)?;
        Ok(info(&manifest))
    }

    fn list(prefix: String) -> Result<Vec<ObjectInfo>, Problem> {
        Ok(objects::list(&prefix)?.iter().map(info).collect())
    }

    fn compact(cursor: Option<String>, max: u32) -> Result<Compaction, Problem> {
        let done = objects::compact(cursor.as_deref(), max)?;
        Ok(Compaction {
            scanned: done.scanned,
            removed: done.removed,
            next: done.next,
        })
    }
}
