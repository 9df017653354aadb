//! `portico:flags`: feature flags in the KV store, evaluated with OpenFeature
//! semantics and answered in OFREP's shapes.
//!
//! Imports `portico:platform/{kv,durable,config}`; exports
//! `portico:flags/evaluator`. Definitions are flagd's flag-definition JSON,
//! validated on every write by `portico_flags_logic` (which also evaluates
//! JSONLogic targeting with flagd's `fractional`, `sem_ver`, `starts_with`
//! and `ends_with`): an A/B bucket is MurmurHash3 of flag key + targeting
//! key, so the same user lands in the same variant everywhere, flagd included,
//! without writing anything.
//!
//! Sticky overrides (`ab/<experiment>/<targeting key>`, with a TTL) force a
//! caller into a variant, e.g. for QA; they are ignored once the variant is
//! gone from the definitions.
//!
//! The set is one document under [`store::DEFINITIONS_KEY`], so replacing it
//! is one atomic write; single-flag writes are serialised by a short durable
//! lease so concurrent admins never lose each other's changes.

mod store;

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/flags"],
    world: "portico:%flags/component",
    generate_all,
});

use exports::portico::flags::evaluator::{Guest, Reply};
use portico::types::http::Problem;
use portico_flags_logic::definitions::FlagSet;
use portico_flags_logic::evaluate::{Context, Resolution, evaluate, evaluate_all, with_override};
use portico_flags_logic::ofrep;

struct Flags;

/// Applies the caller's sticky override, if one is stored for this flag.
fn overridden(
    set: &FlagSet,
    context: &Context,
    resolution: Resolution,
) -> Result<Resolution, Problem> {
    let Some(key) = &context.targeting_key else {
        return Ok(resolution);
    };
    match store::override_for(&resolution.key, key)? {
        Some(variant) => Ok(with_override(set, resolution, &variant)),
        None => Ok(resolution),
    }
}

export!(Flags);

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn reply(response: ofrep::OfrepResponse, etag: Option<String>) -> Reply {
    Reply {
        status: response.status,
        body: response.body.to_string(),
        etag,
    }
}

impl Guest for Flags {
    fn definitions() -> Result<String, Problem> {
        Ok(store::load()?.to_value().to_string())
    }

    fn replace(document: String) -> Result<(), Problem> {
        store::replace(&document)
    }

    fn put_flag(key: String, definition: Option<String>) -> Result<(), Problem> {
        store::put_flag(&key, definition.as_deref())
    }

    fn set_override(
        experiment: String,
        targeting_key: String,
        variant: Option<String>,
        ttl_seconds: Option<u64>,
    ) -> Result<(), Problem> {
        store::set_override(&experiment, &targeting_key, variant.as_deref(), ttl_seconds)
    }

    fn evaluate(key: String, request: String) -> Result<Reply, Problem> {
        let context = match ofrep::parse_request(request.as_bytes()) {
            Ok(context) => context,
            Err(err) => return Ok(reply(ofrep::request_error_response(&err, Some(&key)), None)),
        };
        let set = store::load()?;
        let resolution = overridden(&set, &context, evaluate(&set, &key, &context, now_secs()))?;
        Ok(reply(ofrep::single_response(&resolution), None))
    }

    fn evaluate_all(request: String) -> Result<Reply, Problem> {
        let context = match ofrep::parse_request(request.as_bytes()) {
            Ok(context) => context,
            Err(err) => return Ok(reply(ofrep::request_error_response(&err, None), None)),
        };
        let set = store::load()?;
        let resolutions = evaluate_all(&set, &context, now_secs())
            .into_iter()
            .map(|resolution| overridden(&set, &context, resolution))
            .collect::<Result<Vec<_>, _>>()?;
        let response = ofrep::bulk_response(&resolutions, Some(&set.metadata));
        let etag = ofrep::etag_for(&response.body);
        Ok(reply(response, Some(etag)))
    }
}
