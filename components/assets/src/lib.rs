//! `portico:assets`: an object store for static files in the KV store,
//! served with the HTTP semantics the best file servers get right: strong
//! ETags, conditional requests with RFC 9110's precedence, single and
//! multipart ranges, `If-Range`, and precompressed variants.
//!
//! Imports `portico:platform/{kv,config}`; exports `portico:assets/store`.
//! - [`objects`]: manifests and chunks in KV (atomic replacement).
//! - [`serve`]: `GET`/`HEAD` semantics over `portico_assets_logic`.
//! - [`settings`]: the component's variables.

mod objects;
mod problems;
mod serve;
mod settings;

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/assets"],
    world: "portico:assets/component",
    generate_all,
});

use exports::portico::assets::store::{Compaction, Guest, ObjectInfo, PutOptions, PutOutcome};
use portico::types::http::{Problem, Request, Response};
use portico_assets_logic::conditional::{Condition, Preconditions};
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

impl Guest for Assets {
    fn serve(root: String, request: Request) -> Result<Response, Problem> {
        serve::serve(&root, &request)
    }

    fn put(path: String, body: Vec<u8>, options: PutOptions) -> Result<PutOutcome, Problem> {
        let key = serve::key_of("", &path)?;
        let max = settings::max_object_bytes()?;
        if body.len() as u64 > max {
            return Err(problems::too_large(body.len(), max));
        }
        let content_type = header_value("Content-Type", options.content_type)?
            .unwrap_or_else(|| media::content_type_for(&key).to_string());
        let cache_control = header_value("Cache-Control", options.cache_control)?;
        let current = objects::load(&key)?;
        let preconditions = Preconditions {
            if_match: options.if_match.as_deref(),
            if_none_match: options.if_none_match.as_deref(),
            ..Preconditions::default()
        };
        let failed = match &current {
            Some(current) => {
                preconditions.evaluate("PUT", &current.etag(), current.modified)
                    != Condition::Proceed
            }
            // Only `If-Match` can fail against an absent object.
            None => preconditions.if_match.is_some(),
        };
        if failed {
            return Err(problems::precondition_failed(
                "the stored asset does not match the request's If-Match or If-None-Match",
            ));
        }
        let upload = objects::Upload {
            path: &key,
            body: &body,
            content_type,
            cache_control,
        };
        let stored = objects::store(upload, current.as_ref())?;
        Ok(PutOutcome {
            created: current.is_none(),
            info: info(&stored),
        })
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
