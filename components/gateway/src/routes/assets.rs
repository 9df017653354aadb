//! Static files, answered by `portico:assets/store`: `/assets/*`, the site
//! root (any other `GET`/`HEAD` no route claims), and the admin API.

use serde_json::{Value, json};

use crate::http::{BodyStream, Request, Response};
use crate::portico::assets::store::{self, ObjectInfo, PutOptions};
use crate::portico::platform::config as variables;
use crate::portico::types::http as wire;
use crate::problem::Problem;

/// Where `/assets/*` is mounted.
const MOUNT: &str = "/assets";
/// Where the admin API is mounted.
const ADMIN_MOUNT: &str = "/admin/assets";
/// The key prefix the site root is served from unless `assets_site_root` says otherwise.
const DEFAULT_SITE_ROOT: &str = "site/";
/// Paths that belong to APIs: a miss there is an API 404, never a page.
const API_PREFIXES: [&str; 3] = ["/api/", "/admin/", "/ofrep/"];

fn serve(root: &str, path: &str, request: &Request) -> Result<Response, Problem> {
    let wire_request = wire::Request {
        method: request.method.clone(),
        path: path.to_string(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: Vec::new(),
    };
    let served = store::serve(root, &wire_request).map_err(Problem::from)?;
    let rest = served
        .rest
        .map(|rest| BodyStream::new(move |out| rest.send_to(out).map_err(|p| p.detail)));
    let mut response = Response {
        status: served.response.status,
        headers: served.response.headers,
        body: served.response.body,
        rest,
    };
    name_instance(&mut response, &request.path);
    Ok(response)
}

/// A problem the store answered as a whole response (a 416 carries
/// `Content-Range`) names the request path as its `instance`, as every other
/// problem does; the store only knows the mount-relative path.
fn name_instance(response: &mut Response, path: &str) {
    if response.header("content-type") != Some("application/problem+json") {
        return;
    }
    let Ok(Value::Object(mut members)) = serde_json::from_slice::<Value>(&response.body) else {
        return;
    };
    members.insert("instance".into(), Value::String(path.to_string()));
    response.body = Value::Object(members).to_string().into_bytes();
    let len = response.body.len().to_string();
    response.set_header("content-length", &len);
}

/// `GET`/`HEAD /assets/{path}`: any object but the site's pages behind
/// authorisation (`/admin/` and the protected prefixes), which are served
/// only at their own paths, where the authorising layer sees them.
pub fn get(request: &Request) -> Result<Response, Problem> {
    let path = request.path.strip_prefix(MOUNT).unwrap_or("/");
    if let Some(page) = site_root().and_then(|root| {
        path.trim_start_matches('/')
            .strip_prefix(root.as_str())
            .map(|rest| format!("/{rest}"))
    }) && (page.starts_with("/admin/")
        || crate::app::protected_prefixes()
            .iter()
            .any(|prefix| page.starts_with(prefix.as_str())))
    {
        return Err(Problem::new(
            404,
            "not-found",
            "Not found",
            format!("no asset at {}", path.trim_start_matches('/')),
        ));
    }
    serve("", path, request)
}

/// The key prefix of the site (`assets_site_root`); `None` when it is `off`
/// (platforms read an empty variable as unset, so `off` is the switch).
fn site_root() -> Option<String> {
    match variables::get("assets_site_root") {
        Ok(Some(root)) if root.trim().eq_ignore_ascii_case("off") => None,
        Ok(Some(root)) => Some(root.trim().to_string()),
        Ok(None) => Some(DEFAULT_SITE_ROOT.to_string()),
        Err(_) => None,
    }
}

/// `GET`/`HEAD` of a path no route claims: the static site, from the
/// objects under `assets_site_root` (default `site/`; `off` turns it off).
pub fn site(request: &Request) -> Option<Result<Response, Problem>> {
    if !matches!(request.method.as_str(), "GET" | "HEAD")
        || API_PREFIXES.iter().any(|p| request.path.starts_with(p))
    {
        return None;
    }
    let root = site_root()?;
    crate::observe::note(|n| n.route = Some("site".into()));
    Some(serve(&root, &request.path, request))
}

/// `GET /admin/`: the admin page, from the site (the authorisation layer
/// has already required role `admin`).
pub fn admin_page(request: &Request) -> Result<Response, Problem> {
    let root = site_root().unwrap_or_else(|| DEFAULT_SITE_ROOT.to_string());
    let mut response = serve(&root, &request.path, request)?;
    // Personal: never kept by shared caches.
    response.set_header("cache-control", "private, no-cache");
    Ok(response)
}

fn info_json(info: &ObjectInfo) -> Value {
    json!({
        "path": info.path,
        "size": info.size,
        "content_type": info.content_type,
        "etag": info.etag,
        "last_modified": info.last_modified,
        "cache_control": info.cache_control,
    })
}

fn object_path(request: &Request) -> &str {
    request.path.strip_prefix(ADMIN_MOUNT).unwrap_or("/")
}

/// `PUT /admin/assets/{path}`: the body is the object, streamed into the
/// store as it arrives (the gateway holds at most one piece of it).
pub fn put(request: &Request) -> Result<Response, Problem> {
    let header = |name: &str| request.header(name).map(str::to_string);
    let options = PutOptions {
        content_type: header("content-type"),
        cache_control: header("cache-control"),
        if_match: header("if-match"),
        if_none_match: header("if-none-match"),
    };
    let declared = match request.header("content-length") {
        None => None,
        Some(value) => Some(value.trim().parse::<u64>().map_err(|_| {
            Problem::bad_request(format!("Content-Length {value:?} is not a byte count"))
        })?),
    };
    let upload =
        store::start_upload(object_path(request), &options, declared).map_err(Problem::from)?;
    match &request.pending_body {
        // The pieces come 256 KiB at a time (`wasi::read_body` gathers them).
        Some(pending) => {
            pending.read_pieces(&mut |bytes| upload.write(&bytes).map_err(Problem::from))?
        }
        // Read already (a caller that is not the HTTP entry point).
        None if !request.body.is_empty() => upload.write(&request.body).map_err(Problem::from)?,
        None => {}
    }
    let outcome = upload.finish().map_err(Problem::from)?;
    let status = if outcome.created { 201 } else { 200 };
    let mut response = Response::json(status, info_json(&outcome.info).to_string())
        .with_header("etag", &outcome.info.etag);
    if outcome.created {
        response = response.with_header(
            "location",
            &format!("{MOUNT}/{}", percent_encode_path(&outcome.info.path)),
        );
    }
    Ok(response)
}

/// `DELETE /admin/assets/{path}`.
pub fn delete(request: &Request) -> Result<Response, Problem> {
    let removed = store::delete(object_path(request)).map_err(Problem::from)?;
    Ok(Response::json(200, info_json(&removed).to_string()))
}

/// `GET /admin/assets?prefix=P`.
pub fn list(request: &Request) -> Result<Response, Problem> {
    let prefix = request.query_param("prefix").unwrap_or_default();
    let objects = store::list(&prefix).map_err(Problem::from)?;
    let body = json!({ "objects": objects.iter().map(info_json).collect::<Vec<_>>() });
    Ok(Response::json(200, body.to_string()).with_header("cache-control", "no-store"))
}

/// `path` with every byte outside RFC 3986's unreserved set and `/` escaped.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
