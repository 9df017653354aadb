//! One request to an upstream route, through the shared cache (RFC 9111,
//! RFC 5861), with retries, backoff and the route's circuit breaker.

use portico_assets_logic::conditional::{Condition, Preconditions};
use portico_edgecache_logic::backoff;
use portico_edgecache_logic::breaker::Permit;
use portico_edgecache_logic::cache_control::CacheControl;
use portico_edgecache_logic::cache_status::{CacheStatus, Fwd};
use portico_edgecache_logic::freshness::{self, Freshness, StoredMeta};
use portico_edgecache_logic::{parse_http_date, validation, vary};

use super::breaker;
use super::cache::{self, Entry, Lookup};
use super::client::{self, FetchError, Fetched, Outgoing};
use super::config::Route;
use super::forward;
use crate::http::{BodyStream, Request, Response};
use crate::problem::Problem;

/// Retry backoff: 50 ms doubling, capped at 1 s, full jitter.
const BACKOFF_BASE_MS: u64 = 50;
const BACKOFF_CAP_MS: u64 = 1_000;
/// How long one background revalidation may hold its URI's lease.
const REVALIDATION_LEASE_MS: u64 = 30_000;
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why the origin gave no usable answer.
#[derive(Debug, Clone)]
pub enum Failure {
    Open { retry_after: u64 },
    Fetch(FetchError),
}

impl Failure {
    pub fn problem(&self, route: &Route) -> Problem {
        match self {
            Failure::Open { retry_after } => Problem::new(
                503,
                "circuit-open",
                "Upstream circuit open",
                format!(
                    "{} failed repeatedly; requests resume in {retry_after} s",
                    route.name
                ),
            )
            .with_header("retry-after", &(*retry_after).max(1).to_string()),
            Failure::Fetch(FetchError::Timeout) => Problem::new(
                504,
                "upstream-timeout",
                "Upstream timeout",
                format!(
                    "{} did not answer within {} ms",
                    route.name, route.timeout_ms
                ),
            ),
            Failure::Fetch(FetchError::Denied(why)) => Problem::new(
                502,
                "upstream-denied",
                "Upstream request refused",
                format!(
                    "{}: {why} (is the origin listed in allowed_outbound_hosts?)",
                    route.name
                ),
            ),
            Failure::Fetch(FetchError::Client(problem)) => problem.clone(),
            Failure::Fetch(FetchError::Unreachable(why)) => Problem::new(
                502,
                "upstream-unreachable",
                "Upstream unreachable",
                format!("{}: {why}", route.name),
            ),
        }
    }
}

/// Whether the origin failed (a client whose body failed says nothing of it).
fn is_failure(result: &Result<Fetched, FetchError>) -> bool {
    match result {
        Ok(fetched) => fetched.status >= 500,
        Err(FetchError::Client(_)) => false,
        Err(_) => true,
    }
}

fn worth_retrying(result: &Result<Fetched, FetchError>) -> bool {
    match result {
        Ok(fetched) => matches!(fetched.status, 502..=504),
        Err(FetchError::Denied(_) | FetchError::Client(_)) => false,
        Err(_) => true,
    }
}

/// Whether a request for `route` sends the client's body on as it arrives:
/// only when it is sent once (a retry would have to send it again).
pub fn streams_body(route: &Route, method: &str) -> bool {
    route.retries == 0 || !backoff::retryable(method)
}

/// Sends `outgoing` to the route's origin: the breaker decides whether it
/// may, idempotent methods are retried with backoff, and the outcome is
/// reported back to the breaker.
pub fn fetch(route: &Route, outgoing: &Outgoing) -> Result<Fetched, Failure> {
    let attempts = match breaker::permit(route) {
        Permit::Reject { retry_after } => return Err(Failure::Open { retry_after }),
        // A half-open probe is one request, not a burst.
        Permit::Probe => 1,
        // A body sent as it arrives cannot be sent again.
        Permit::Allow if outgoing.body_to_stream.is_some() => 1,
        Permit::Allow if backoff::retryable(&outgoing.method) => 1 + route.retries,
        Permit::Allow => 1,
    };
    let mut result = client::fetch(&route.target, outgoing, route.timeout_ms);
    for attempt in 1..attempts {
        if !worth_retrying(&result) {
            break;
        }
        let jitter = wasip2::random::random::get_random_u64() as u32;
        client::sleep_ms(backoff::delay(
            attempt - 1,
            BACKOFF_BASE_MS,
            BACKOFF_CAP_MS,
            jitter,
        ));
        result = client::fetch(&route.target, outgoing, route.timeout_ms);
    }
    let failed = is_failure(&result);
    if failed {
        crate::observe::note(|n| n.upstream_failures.push(route.name.clone()));
    }
    breaker::report(route, !failed);
    result.map_err(Failure::Fetch)
}

/// The client-facing URI without scheme: `host/path?query` (the cache key).
pub fn cache_uri(request: &Request) -> String {
    let host = request
        .header("host")
        .unwrap_or("localhost")
        .to_ascii_lowercase();
    format!("{host}{}", request.path_and_query())
}

fn status_header(status: &CacheStatus) -> (String, String) {
    ("cache-status".into(), status.to_field_value())
}

/// An origin's response as the client gets it. A body read whole is sent
/// with its length; the rest of a larger one is piped as it arrives, under
/// the origin's own `Content-Length` (which the runtime holds it to) or
/// chunked.
fn passed_on(fetched: Fetched, head: bool, status: CacheStatus) -> Response {
    let mut headers = forward::response_headers(&fetched.headers);
    let declared = first(&fetched.headers, "content-length").map(str::to_string);
    let has_body = !matches!(fetched.status, 100..=199 | 204 | 304);
    let length = match (&declared, &fetched.rest) {
        _ if head || !has_body => declared.filter(|_| has_body),
        (_, None) => Some(fetched.body.len().to_string()),
        (declared, Some(_)) => declared.clone(),
    };
    if let Some(length) = length {
        headers.push(("content-length".into(), length));
    }
    headers.push(status_header(&status));
    Response {
        status: fetched.status,
        headers,
        body: fetched.body,
        rest: fetched
            .rest
            .map(|unread| BodyStream::new(move |out| unread.pipe_to(out))),
    }
}

/// The stored response as the client gets it: with its `Content-Length`
/// (so not chunked), `Age` set, and a `304` when the client's own
/// validators match.
fn from_cache(entry: &Entry, request: &Request, age: u64, status: CacheStatus) -> Response {
    // Entries stored before they kept their Content-Length get one too.
    let mut headers: Vec<(String, String)> =
        validation::stored_content_length(&entry.headers, entry.status, entry.body.len())
            .into_iter()
            .filter(|(n, _)| n != "age")
            .collect();
    headers.push(("age".into(), age.to_string()));
    headers.push(status_header(&status));
    if client_validators_match(entry.status, &headers, request) {
        return not_modified(headers);
    }
    Response {
        status: entry.status,
        headers,
        body: entry.body.clone(),
        rest: None,
    }
}

fn first<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Turns a fresh origin response into a cache entry, if a shared cache may
/// store it (and it is small enough, and sets no cookie).
pub fn storable_entry(
    uri: &str,
    outgoing: &Outgoing,
    fetched: &Fetched,
    request_time: u64,
    response_time: u64,
) -> Option<Entry> {
    // Identity sent to the origin makes the request an authenticated one
    // (RFC 9111 section 3.5): stored only if the origin explicitly allows.
    let mut judged = outgoing.headers.clone();
    if judged
        .iter()
        .any(|(n, _)| n.starts_with(forward::IDENTITY_PREFIX))
    {
        judged.push(("authorization".into(), "forwarded-identity".into()));
    }
    freshness::storable("GET", fetched.status, &judged, &fetched.headers).ok()?;
    // A body too large to read whole is streamed past the cache, not stored.
    if fetched.rest.is_some()
        || fetched.body.len() > cache::MAX_STORED_BODY
        || fetched.headers.iter().any(|(n, _)| n == "set-cookie")
    {
        return None;
    }
    let vary_lines: Vec<String> = fetched
        .headers
        .iter()
        .filter(|(n, _)| n == "vary")
        .map(|(_, v)| v.clone())
        .collect();
    let secondary = vary::secondary_key(&vary_lines, &outgoing.headers)?;
    // The stored response keeps its Content-Length (the whole body is here).
    let headers = freshness::stamp_date(
        &validation::stored_content_length(
            &validation::strip_unstorable(&forward::end_to_end(&fetched.headers)),
            fetched.status,
            fetched.body.len(),
        ),
        response_time,
    );
    Some(Entry {
        uri: uri.to_string(),
        status: fetched.status,
        headers,
        request_time,
        response_time,
        vary: vary_lines,
        secondary,
        body: fetched.body.clone(),
    })
}

fn ttl_of(entry: &Entry, now: u64) -> i64 {
    let lifetime = freshness::freshness_lifetime(entry.status, &entry.headers).unwrap_or(0);
    let age = freshness::current_age(&entry.headers, entry.request_time, entry.response_time, now);
    lifetime as i64 - age as i64
}

/// A fetched response for the client, stored first when allowed.
fn forwarded(
    uri: &str,
    outgoing: &Outgoing,
    fetched: Fetched,
    request_time: u64,
    head: bool,
    status: CacheStatus,
) -> Response {
    let now = now_secs();
    let mut status = status.fwd_status(fetched.status);
    if let Some(entry) = storable_entry(uri, outgoing, &fetched, request_time, now) {
        cache::store(&entry);
        status = status.stored().ttl(ttl_of(&entry, now));
    }
    passed_on(fetched, head, status)
}

/// What revalidating a stored entry gave.
enum Revalidated {
    /// `304`: the entry, with refreshed headers, stored again.
    Fresh(Entry),
    /// A new response replaced it (or the origin answered something else).
    Replaced(Fetched),
}

fn revalidate(
    route: &Route,
    outgoing: &Outgoing,
    entry: &Entry,
) -> Result<(Revalidated, u64), Failure> {
    let request_time = now_secs();
    let conditional = Outgoing {
        headers: validation::revalidation_request(&outgoing.headers, &entry.headers),
        ..outgoing.clone()
    };
    let fetched = fetch(route, &conditional)?;
    if fetched.status == 304 && validation::selects_for_update(&entry.headers, &fetched.headers) {
        let now = now_secs();
        // Fields the 304 carries replace the stored ones, except framing and
        // coding (Content-Length, Content-Encoding, Content-Range, ...); the
        // rest are kept; Date and Age are the 304's (RFC 9111 3.2, 4.3.4).
        let updates = validation::strip_unstorable(&forward::response_headers(&fetched.headers));
        let mut refreshed = entry.clone();
        refreshed.headers = validation::freshen(&entry.headers, &updates, now);
        refreshed.request_time = request_time;
        refreshed.response_time = now;
        cache::store(&refreshed);
        return Ok((Revalidated::Fresh(refreshed), request_time));
    }
    if fetched.status == 304 {
        // A 304 that selects no stored response (another validator) can
        // neither refresh the entry nor answer a client that did not ask
        // conditionally (RFC 9111 section 4.3.4): ask again, unconditionally.
        let request_time = now_secs();
        let fetched = fetch(route, outgoing)?;
        return Ok((Revalidated::Replaced(fetched), request_time));
    }
    Ok((Revalidated::Replaced(fetched), request_time))
}

fn lease_id(uri: &str) -> String {
    // Durable ids are short: the cache key's hash names the lease.
    use sha2::{Digest, Sha256};
    Sha256::digest(uri.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The request for the route's origin that forwards `request`.
pub fn outgoing(route: &Route, request: &Request, variants: &[(String, String)]) -> Outgoing {
    Outgoing {
        method: request.method.clone(),
        path_and_query: route.upstream_path(&request.path, request.query.as_deref()),
        headers: forward::request_headers(request, route, variants),
        body: request.body.clone(),
        body_to_stream: request.pending_body.clone(),
    }
}

/// `outgoing` as the cache sends it: a whole-representation `GET`, without
/// the client's conditionals (the cache answers those itself).
pub fn for_cache(mut outgoing: Outgoing) -> Outgoing {
    outgoing.method = "GET".into();
    outgoing
        .headers
        .retain(|(n, _)| !validation::CONDITIONAL_REQUEST_FIELDS.contains(&n.as_str()));
    outgoing
}

/// What the freshness rules need to know about a stored entry.
pub fn stored_meta(entry: &Entry) -> StoredMeta {
    StoredMeta {
        status: entry.status,
        response_headers: entry.headers.clone(),
        request_time: entry.request_time,
        response_time: entry.response_time,
    }
}

/// Answers a request for an upstream route.
pub fn handle(route: &Route, request: &Request, variants: &[(String, String)]) -> Response {
    let head = request.method == "HEAD";
    let outgoing = outgoing(route, request, variants);
    let uri = cache_uri(request);

    let bypass = if !route.cache {
        Some(CacheStatus::new().fwd(Fwd::Bypass))
    } else if !matches!(request.method.as_str(), "GET" | "HEAD") {
        Some(CacheStatus::new().fwd(Fwd::Method))
    } else if request.header("range").is_some() {
        Some(CacheStatus::new().fwd(Fwd::Bypass).detail("range"))
    } else {
        None
    };
    if let Some(status) = bypass {
        return match fetch(route, &outgoing) {
            Ok(fetched) => {
                let code = fetched.status;
                if validation::invalidates(&request.method, fetched.status) {
                    let absolute = format!("http://{uri}");
                    for target in validation::uris_to_invalidate(
                        &request.method,
                        fetched.status,
                        &absolute,
                        &fetched.headers,
                    ) {
                        let bare = target
                            .trim_start_matches("http://")
                            .trim_start_matches("https://");
                        cache::purge(bare);
                    }
                }
                passed_on(fetched, head, status.fwd_status(code))
            }
            Err(failure) => failure.problem(route).into_response(&request.path),
        };
    }

    let outgoing = for_cache(outgoing);
    let answer = |fetched: Fetched, request_time: u64, status: CacheStatus| {
        let response = forwarded(&uri, &outgoing, fetched, request_time, false, status);
        finish_for_client(response, request)
    };

    let entry = match cache::lookup(&uri, &outgoing.headers) {
        Lookup::Found(entry) => *entry,
        miss => {
            let fwd = if matches!(miss, Lookup::VaryMiss) {
                Fwd::VaryMiss
            } else {
                Fwd::UriMiss
            };
            let request_time = now_secs();
            return match fetch(route, &outgoing) {
                Ok(fetched) => answer(fetched, request_time, CacheStatus::new().fwd(fwd)),
                Err(failure) => failure.problem(route).into_response(&request.path),
            };
        }
    };

    let now = now_secs();
    let meta = stored_meta(&entry);
    let (age, within_swr, within_sie, within_max_stale) =
        match freshness::evaluate(&meta, &request.headers, now) {
            Freshness::Fresh { age, ttl } => {
                return from_cache(
                    &entry,
                    request,
                    age,
                    CacheStatus::new().hit().ttl(ttl as i64),
                );
            }
            Freshness::Stale {
                age,
                within_swr,
                within_sie,
                within_max_stale,
            } => (age, within_swr, within_sie, within_max_stale),
            Freshness::MustRevalidate => {
                let age = freshness::current_age(
                    &entry.headers,
                    entry.request_time,
                    entry.response_time,
                    now,
                );
                (age, false, false, false)
            }
        };
    let ttl = ttl_of(&entry, now);

    if within_swr {
        let lease = lease_id(&uri);
        if breaker::try_lease(&lease, REVALIDATION_LEASE_MS) {
            let (route, outgoing, stale) = (route.clone(), outgoing.clone(), entry.clone());
            crate::background::defer(move || {
                match revalidate(&route, &outgoing, &stale) {
                    Ok((Revalidated::Replaced(fetched), request_time)) => {
                        if let Some(new) = storable_entry(
                            &stale.uri,
                            &outgoing,
                            &fetched,
                            request_time,
                            now_secs(),
                        ) {
                            cache::store(&new);
                        }
                    }
                    Ok((Revalidated::Fresh(_), _)) => {}
                    Err(failure) => eprintln!(
                        "cache: background revalidation of {:?} failed: {failure:?}",
                        stale.uri
                    ),
                }
                breaker::release_lease(&lease);
            });
        }
        let status = CacheStatus::new()
            .hit()
            .ttl(ttl)
            .detail("stale-while-revalidate");
        return from_cache(&entry, request, age, status);
    }
    if within_max_stale {
        return from_cache(&entry, request, age, CacheStatus::new().hit().ttl(ttl));
    }

    let forced = CacheControl::from_request(&request.headers).no_cache;
    let fwd = if forced { Fwd::Request } else { Fwd::Stale };
    match revalidate(route, &outgoing, &entry) {
        Ok((Revalidated::Fresh(refreshed), _)) => {
            let now = now_secs();
            let age = freshness::current_age(
                &refreshed.headers,
                refreshed.request_time,
                refreshed.response_time,
                now,
            );
            let status = CacheStatus::new()
                .fwd(fwd)
                .fwd_status(304)
                .stored()
                .ttl(ttl_of(&refreshed, now));
            from_cache(&refreshed, request, age, status)
        }
        Ok((Revalidated::Replaced(fetched), request_time)) => {
            if fetched.status >= 500 && within_sie {
                let status = CacheStatus::new()
                    .fwd(fwd)
                    .fwd_status(fetched.status)
                    .ttl(ttl)
                    .detail("stale-if-error");
                return from_cache(&entry, request, age, status);
            }
            answer(fetched, request_time, CacheStatus::new().fwd(fwd))
        }
        Err(Failure::Open { retry_after }) => {
            // Serving stale beats an error while the origin recovers.
            let status = CacheStatus::new().fwd(fwd).ttl(ttl).detail("circuit-open");
            let mut response = from_cache(&entry, request, age, status);
            response
                .headers
                .push(("retry-after".into(), retry_after.max(1).to_string()));
            response
        }
        Err(failure) if within_sie => {
            let code = match failure {
                Failure::Fetch(FetchError::Timeout) => 504,
                _ => 502,
            };
            let status = CacheStatus::new()
                .fwd(fwd)
                .fwd_status(code)
                .ttl(ttl)
                .detail("stale-if-error");
            from_cache(&entry, request, age, status)
        }
        Err(failure) => failure.problem(route).into_response(&request.path),
    }
}

/// A response fetched for the cache, checked against the client's own
/// validators (which were not sent upstream).
fn finish_for_client(response: Response, request: &Request) -> Response {
    if client_validators_match(response.status, &response.headers, request) {
        return not_modified(response.headers);
    }
    response
}

/// Whether the client's `If-None-Match` / `If-Modified-Since` hold for a
/// `200` with these headers, so the cache answers `304` itself.
fn client_validators_match(status: u16, headers: &[(String, String)], request: &Request) -> bool {
    if status != 200 {
        return false;
    }
    let etag = first(headers, "etag").unwrap_or_default();
    let last_modified = first(headers, "last-modified").and_then(parse_http_date);
    let preconditions = Preconditions {
        if_none_match: first(&request.headers, "if-none-match"),
        // Without a Last-Modified, If-Modified-Since cannot hold.
        if_modified_since: first(&request.headers, "if-modified-since")
            .filter(|_| last_modified.is_some()),
        ..Preconditions::default()
    };
    preconditions.evaluate("GET", etag, last_modified.unwrap_or(u64::MAX)) == Condition::NotModified
}

/// A `304` with the fields RFC 9110 section 15.4.5 has it carry (and this
/// cache's `Age` and `Cache-Status`).
fn not_modified(mut headers: Vec<(String, String)>) -> Response {
    const KEEP: [&str; 9] = [
        "etag",
        "last-modified",
        "cache-control",
        "expires",
        "vary",
        "date",
        "content-location",
        "age",
        "cache-status",
    ];
    headers.retain(|(n, _)| KEEP.contains(&n.as_str()));
    Response {
        status: 304,
        headers,
        body: Vec::new(),
        rest: None,
    }
}
