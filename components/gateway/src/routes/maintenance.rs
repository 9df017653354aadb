//! `POST /admin/maintenance/{task}`: the scheduled chores, each idempotent,
//! bounded per call (`?max=`, default 500) and resumable (`?cursor=` from the
//! previous answer's `next`), each reporting what it did. `portico serve
//! --schedule` (or a Spin cron trigger, or a Kubernetes CronJob) calls them.
//!
//! - `sweep-expired`: KV entries past their TTL (including edge-cache entries
//!   past their use), then expired durable records (rate-limit state,
//!   revocations, leases, breakers).
//! - `warm-cache`: refetches the paths in `warm_urls` through the cache.
//! - `compact-assets`: deletes chunks no asset manifest refers to.

use serde_json::{Value, json};

use crate::http::{Request, Response};
use crate::portico::assets::store as assets;
use crate::portico::platform::config as variables;
use crate::portico::platform::{durable, kv};
use crate::problem::Problem;
use crate::upstream::{config, proxy};

const DEFAULT_MAX: u32 = 500;
const MAX_MAX: u32 = 10_000;
/// Durable namespaces whose records carry TTLs.
const DURABLE_NAMESPACES: [&str; 5] = ["ratelimit", "revoked", "flags", "breaker", "cache-lease"];

fn storage(what: &str, err: impl std::fmt::Debug) -> Problem {
    Problem::new(
        503,
        "storage-unavailable",
        "Storage unavailable",
        format!("{what}: {err:?}"),
    )
}

pub fn run(request: &Request) -> Result<Response, Problem> {
    let task = request.path.trim_start_matches("/admin/maintenance/");
    let cursor = request.query_param("cursor").filter(|c| !c.is_empty());
    let max = match request.query_param("max") {
        None => DEFAULT_MAX,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|m| (1..=MAX_MAX).contains(m))
            .ok_or_else(|| Problem::bad_request(format!("max must be 1..={MAX_MAX}")))?,
    };
    let report = match task {
        "sweep-expired" => sweep_expired(cursor, max)?,
        "warm-cache" => warm_cache(request, cursor, max)?,
        "compact-assets" => {
            let done = assets::compact(cursor.as_deref(), max).map_err(Problem::from)?;
            json!({"scanned": done.scanned, "removed": done.removed, "next": done.next})
        }
        other => {
            return Err(Problem::new(
                404,
                "unknown-task",
                "Unknown maintenance task",
                format!(
                    "{other:?} is not a task; tasks: sweep-expired, warm-cache, compact-assets"
                ),
            ));
        }
    };
    let mut body = json!({ "task": task });
    if let (Value::Object(out), Value::Object(members)) = (&mut body, report) {
        out.extend(members);
    }
    Ok(Response::json(200, body.to_string()).with_header("cache-control", "no-store"))
}

fn sweep_expired(cursor: Option<String>, max: u32) -> Result<Value, Problem> {
    let swept = kv::sweep_expired("", cursor.as_deref(), max).map_err(|e| storage("kv", e))?;
    let mut durable_removed = serde_json::Map::new();
    // Durable sweeps delete only expired records, so they are idempotent
    // and each bounded by `max`; they run on every call.
    for ns in DURABLE_NAMESPACES {
        let removed = durable::sweep_expired(ns, max).map_err(|e| storage(ns, e))?;
        durable_removed.insert(ns.into(), removed.into());
    }
    Ok(json!({
        "kv": {"scanned": swept.scanned, "removed": swept.removed},
        "durable": durable_removed,
        "next": swept.next,
    }))
}

/// The configured warm list: `warm_urls`, comma-separated gateway paths.
fn warm_urls() -> Vec<String> {
    variables::get("warm_urls")
        .ok()
        .flatten()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
        .collect()
}

fn warm_cache(request: &Request, cursor: Option<String>, max: u32) -> Result<Value, Problem> {
    let upstreams = config::load()?;
    let urls = warm_urls();
    let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
    let host = request.header("host").unwrap_or("localhost").to_string();
    let mut results = Vec::new();
    let end = urls.len().min(start + max as usize);
    for path_and_query in urls.get(start..end).unwrap_or_default() {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.clone(), None),
        };
        let Some(route) = upstreams.route_for(&path) else {
            results.push(json!({"path": path_and_query, "error": "no upstream route"}));
            continue;
        };
        // `no-cache` makes the cache revalidate (or refetch) and store.
        let warm = Request {
            method: "GET".into(),
            path,
            query,
            headers: vec![
                ("host".into(), host.clone()),
                ("cache-control".into(), "no-cache".into()),
            ],
            context: request.context.clone(),
            ..Request::default()
        };
        let response = proxy::handle(route, &warm, &[]);
        results.push(json!({
            "path": path_and_query,
            "status": response.status,
            "cache": response.header("cache-status"),
        }));
    }
    let next = (end < urls.len()).then(|| end.to_string());
    Ok(json!({ "warmed": results, "next": next }))
}
