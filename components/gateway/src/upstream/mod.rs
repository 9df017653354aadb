//! The API gateway: upstream routes from the `upstreams` table, proxied
//! through an RFC 9111 shared cache in KV, with retries, a circuit breaker
//! per route, concurrent aggregation, and admin purge.
//!
//! - [`config`]: the table, validated.
//! - [`forward`]: which headers cross the proxy, both ways.
//! - [`client`]: `wasi:http/outgoing-handler`, single and concurrent.
//! - [`cache`]: entries in KV (primary and `Vary` secondary keys).
//! - [`breaker`]: breaker state and leases in durable storage.
//! - [`proxy`]: the cache and resilience decisions for one request.

pub mod breaker;
pub mod cache;
pub mod client;
pub mod config;
pub mod forward;
pub mod proxy;

use serde_json::{Map, Value, json};

use crate::http::{Request, Response};
use crate::portico::flags::evaluator as flags;
use crate::problem::Problem;
use crate::routes::config::targeting_key;
use cache::Lookup;
use portico_edgecache_logic::cache_status::{CacheStatus, Fwd};
use portico_edgecache_logic::freshness::{self, Freshness};

/// The flags' variants a route forwards, evaluated for this caller.
fn variants(route: &config::Route, request: &Request) -> Vec<(String, String)> {
    if route.variants.is_empty() {
        return Vec::new();
    }
    // The anonymous cookie is minted by the pages that show variants; an
    // upstream request without one is evaluated under a throwaway key.
    let (key, _) = targeting_key(request);
    let context = crate::routes::config::ofrep_request(request, &key);
    route
        .variants
        .iter()
        .filter_map(|flag| {
            let reply = flags::evaluate(flag, &context).ok()?;
            let value: Value = serde_json::from_slice(reply.body.as_bytes()).ok()?;
            let variant = value["variant"].as_str()?.to_string();
            Some((flag.clone(), variant))
        })
        .collect()
}

/// Answers a request on an upstream route, or declines (`None`) when no
/// route's prefix matches.
pub fn route(request: &Request) -> Option<Result<Response, Problem>> {
    let upstreams = match config::load() {
        Ok(upstreams) => upstreams,
        Err(problem) => return Some(Err(problem)),
    };
    let route = upstreams.route_for(&request.path)?;
    crate::observe::note(|n| n.route = Some(format!("upstream:{}", route.name)));
    let variants = variants(route, request);
    crate::observe::note(|n| n.variants.extend(variants.iter().cloned()));
    Some(Ok(proxy::handle(route, request, &variants)))
}

/// Whether `request` goes to an upstream route that sends the client's body
/// on to the origin as it arrives (rather than reading it whole first).
pub fn streams_body(request: &Request) -> bool {
    config::load().is_ok_and(|upstreams| {
        upstreams
            .route_for(&request.path)
            .is_some_and(|route| proxy::streams_body(route, &request.method))
    })
}

/// `GET /api/aggregate?source=a&source=b`: the named sources fetched
/// concurrently, one JSON object keyed by source.
pub fn aggregate(request: &Request) -> Result<Response, Problem> {
    let upstreams = config::load()?;
    let names = request.query_params("source");
    if names.is_empty() {
        return Err(Problem::bad_request(
            "name at least one source: /api/aggregate?source=a&source=b",
        ));
    }
    if names.len() > 16 {
        return Err(Problem::bad_request("at most 16 sources per request"));
    }
    let mut plans = Vec::new();
    for name in &names {
        let path = upstreams.sources.get(name).ok_or_else(|| {
            Problem::bad_request(format!(
                "unknown source {name:?}; configured: {}",
                upstreams
                    .sources
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path.clone(), None),
        };
        let route = upstreams.route_for(&path).ok_or_else(|| {
            Problem::new(
                500,
                "invalid-configuration",
                "Invalid configuration",
                format!("source {name:?} ({path}) matches no upstream route"),
            )
        })?;
        let sub = Request {
            method: "GET".into(),
            path,
            query,
            headers: request.headers.clone(),
            body: Vec::new(),
            pending_body: None,
            context: request.context.clone(),
            auth: request.auth.clone(),
        };
        plans.push((name.clone(), route.clone(), sub));
    }

    // Fresh cache hits answer at once; everything else goes out together.
    let now = proxy::now_secs();
    let mut results: Map<String, Value> = Map::new();
    let now_at_start = now;
    let (mut waiting, mut futures) = (Vec::new(), Vec::new());
    for (name, route, sub) in plans {
        let variants = variants(&route, &sub);
        let outgoing = proxy::for_cache(proxy::outgoing(&route, &sub, &variants));
        let uri = proxy::cache_uri(&sub);
        if route.cache
            && let Lookup::Found(entry) = cache::lookup(&uri, &outgoing.headers)
        {
            let meta = proxy::stored_meta(&entry);
            if let Freshness::Fresh { ttl, .. } = freshness::evaluate(&meta, &sub.headers, now) {
                let status = CacheStatus::new().hit().ttl(ttl as i64);
                results.insert(name, source_json(entry.status, &entry.body, &status));
                continue;
            }
        }
        match breaker::permit(&route) {
            portico_edgecache_logic::breaker::Permit::Reject { retry_after } => {
                let problem = proxy::Failure::Open { retry_after }.problem(&route);
                results.insert(name, error_json(problem));
            }
            _ => {
                let started = client::start(&route.target, &outgoing, route.timeout_ms);
                waiting.push((name, route, outgoing, uri));
                futures.push(started);
            }
        }
    }
    let fetched = client::finish_all(futures);
    for ((name, route, outgoing, uri), result) in waiting.into_iter().zip(fetched) {
        let now = proxy::now_secs();
        breaker::report(&route, matches!(&result, Ok(f) if f.status < 500));
        match result {
            Ok(fetched) => {
                let mut status = CacheStatus::new()
                    .fwd(Fwd::UriMiss)
                    .fwd_status(fetched.status);
                if route.cache
                    && let Some(entry) =
                        proxy::storable_entry(&uri, &outgoing, &fetched, now_at_start, now)
                {
                    cache::store(&entry);
                    status = status.stored();
                }
                results.insert(name, source_json(fetched.status, &fetched.body, &status));
            }
            Err(err) => {
                let problem = proxy::Failure::Fetch(err).problem(&route);
                results.insert(name, error_json(problem));
            }
        }
    }
    Ok(Response::json(200, Value::Object(results).to_string())
        .with_header("cache-control", "no-store"))
}

fn source_json(status: u16, body: &[u8], cache_status: &CacheStatus) -> Value {
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    json!({ "status": status, "body": body, "cache": cache_status.to_field_value() })
}

fn error_json(problem: Problem) -> Value {
    json!({ "status": problem.status, "error": problem.detail, "type": problem.kind })
}

/// `POST /admin/cache/purge` with `{"url": "..."}` or `{"prefix": "..."}`.
pub fn purge(request: &Request) -> Result<Response, Problem> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|err| Problem::bad_request(format!("body is not JSON: {err}")))?;
    let bare = |url: &str| {
        url.trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    };
    let purged = match (body["url"].as_str(), body["prefix"].as_str()) {
        (Some(url), None) => cache::purge(&bare(url)),
        (None, Some(prefix)) if !prefix.is_empty() => cache::purge_prefix(&bare(prefix)),
        _ => {
            return Err(Problem::bad_request(
                "send {\"url\": \"http://host/path\"} or {\"prefix\": \"http://host/path/\"}",
            ));
        }
    };
    Ok(Response::json(200, json!({ "purged": purged }).to_string()))
}

/// `GET /admin/upstreams`: the routes and their breakers.
pub fn admin_list(_request: &Request) -> Result<Response, Problem> {
    let upstreams = config::load()?;
    let routes: Vec<Value> = upstreams
        .routes
        .iter()
        .map(|route| {
            let state: Value =
                serde_json::from_slice(breaker::state(&route.name).to_json().as_bytes())
                    .unwrap_or(Value::Null);
            json!({
                "name": route.name,
                "prefix": route.prefix,
                "origin": route.origin,
                "cache": route.cache,
                "breaker": state,
            })
        })
        .collect();
    Ok(Response::json(
        200,
        json!({ "routes": routes, "sources": upstreams.sources }).to_string(),
    )
    .with_header("cache-control", "no-store"))
}
