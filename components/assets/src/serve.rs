//! `GET`/`HEAD` of an object: representation selection (precompressed
//! variants), validators, preconditions (RFC 9110 section 13) and ranges
//! (section 14), on top of [`crate::objects`]. Bodies up to one chunk are
//! answered whole; larger ones leave as a [`Rest`], read a chunk at a time.

use portico_assets_logic::conditional::{Condition, Preconditions, format_http_date};
use portico_assets_logic::media::{self, Encoding};
use portico_assets_logic::path::object_key;
use portico_assets_logic::range::{
    ByteRange, Multipart, RangeOutcome, content_range, content_range_unsatisfied, evaluate_range,
};
use portico_assets_logic::stream::{Plan, Step};

use portico_assets_logic::layout::chunk_key;
use wasip2::io::streams::OutputStream;

use crate::objects::{self, Manifest, ReadError};
use crate::portico::streaming::kv_copy;
use crate::portico::types::http::{Problem, Request, Response};
use crate::{problems, settings};

/// A reader that keeps losing the race with replacements gives up after this
/// many fresh starts (each start sees a newer, complete manifest).
const ATTEMPTS: usize = 4;

type Headers = Vec<(String, String)>;

/// Bodies up to this size are read at once and answered whole (one call
/// fewer); larger ones are written to the response stream from storage,
/// never copied through this component or the gateway.
const INLINE_BYTES: u64 = 64 * 1024;

/// An answer: the head (with the whole body when it is small), and the
/// rest of a large body still to be read.
pub struct Answer {
    pub response: Response,
    pub rest: Option<Rest>,
}

impl From<Response> for Answer {
    fn from(response: Response) -> Answer {
        Answer {
            response,
            rest: None,
        }
    }
}

/// The body of an answer still to be read: one version of one object
/// (its upload's chunks never change), a piece at a time.
pub struct Rest {
    path: String,
    upload: String,
    plan: std::cell::RefCell<Plan>,
}

impl Rest {
    /// Writes the rest of the body to `out`, straight from storage.
    pub fn send_to(&self, out: &OutputStream) -> Result<(), Problem> {
        let mut plan = self.plan.borrow_mut();
        while let Some(step) = plan.next_step() {
            match step {
                Step::Literal(bytes) => portico_output_stream::write_all(out, &bytes)
                    .map_err(|err| problems::client_gone(&err))?,
                Step::Chunk { index, from, to } => {
                    let key = chunk_key(&self.upload, index);
                    match kv_copy::copy_to(&key, from as u64, to as u64, out) {
                        Ok(true) => {}
                        Ok(false) => return Err(problems::gone_mid_body(&self.path)),
                        Err(err) => return Err(problems::storage(err)),
                    }
                }
            }
        }
        Ok(())
    }
}

/// An answer with the body `plan` describes over `repr` (none: no body, as
/// for `HEAD`): read now when small, else left to the caller as a [`Rest`].
fn answer(
    status: u16,
    headers: Headers,
    plan: Option<Plan>,
    repr: &Manifest,
) -> Result<Answer, ReadError> {
    let response = |body| Response {
        status,
        headers,
        body,
    };
    let Some(mut plan) = plan else {
        return Ok(response(Vec::new()).into());
    };
    if plan.length() > INLINE_BYTES {
        let rest = Rest {
            path: repr.path.clone(),
            upload: repr.upload.clone(),
            plan: std::cell::RefCell::new(plan),
        };
        return Ok(Answer {
            response: response(Vec::new()),
            rest: Some(rest),
        });
    }
    let mut body = Vec::with_capacity(plan.length() as usize);
    while let Some(step) = plan.next_step() {
        match step {
            Step::Literal(bytes) => body.extend(bytes),
            Step::Chunk { index, from, to } => {
                body.extend(objects::read_chunk(&repr.upload, index, from, to)?)
            }
        }
    }
    Ok(response(body).into())
}

/// The request's value of header `name`, repeated lines joined by `, `.
fn header(request: &Request, name: &str) -> Option<String> {
    let mut values = request
        .headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str());
    let first = values.next()?;
    Some(values.fold(first.to_string(), |mut all, v| {
        all.push_str(", ");
        all.push_str(v);
        all
    }))
}

/// The object key of a mount-relative request path.
pub fn key_of(root: &str, path: &str) -> Result<String, Problem> {
    let key = format!("{root}{}", object_key(path).map_err(problems::bad_path)?);
    if key.len() > objects::MAX_PATH_BYTES {
        return Err(problems::path_too_long(key.len(), objects::MAX_PATH_BYTES));
    }
    Ok(key)
}

pub fn serve(root: &str, request: &Request) -> Result<Answer, Problem> {
    let key = key_of(root, &request.path)?;
    for _ in 0..ATTEMPTS {
        match serve_once(root, &key, request) {
            Err(ReadError::Replaced) => continue,
            Err(ReadError::Problem(problem)) => return Err(problem),
            Ok(response) => return Ok(response),
        }
    }
    Err(problems::problem(
        503,
        "asset-changing",
        "Asset is changing",
        format!("{key:?} was replaced during every read attempt; try again"),
    ))
}

fn serve_once(root: &str, key: &str, request: &Request) -> Result<Answer, ReadError> {
    let Some(base) = objects::load(key).map_err(ReadError::Problem)? else {
        // Clean URLs: `/login` is `login.html` when there is no `login`.
        let last = key.rsplit('/').next().unwrap_or(key);
        if !request.path.ends_with('/') && !last.contains('.') {
            let page = format!("{key}.html");
            if objects::load(&page).map_err(ReadError::Problem)?.is_some() {
                return serve_once(root, &page, request);
            }
        }
        return missing(root, key, request).map_err(ReadError::Problem);
    };
    let (repr, coding) = representation(&base, request).map_err(ReadError::Problem)?;

    let etag = repr.etag();
    let mut headers: Headers = vec![
        ("etag".into(), etag.clone()),
        ("last-modified".into(), format_http_date(repr.modified)),
        (
            "cache-control".into(),
            cache_control(&base).map_err(ReadError::Problem)?,
        ),
    ];
    if !base.encodings.is_empty() {
        headers.push(("vary".into(), media::VARY_ACCEPT_ENCODING.into()));
    }

    let if_match = header(request, "if-match");
    let if_none_match = header(request, "if-none-match");
    let if_modified_since = header(request, "if-modified-since");
    let if_unmodified_since = header(request, "if-unmodified-since");
    let if_range = header(request, "if-range");
    let preconditions = Preconditions {
        if_match: if_match.as_deref(),
        if_none_match: if_none_match.as_deref(),
        if_modified_since: if_modified_since.as_deref(),
        if_unmodified_since: if_unmodified_since.as_deref(),
        if_range: if_range.as_deref(),
    };
    match preconditions.evaluate(&request.method, &etag, repr.modified) {
        Condition::Proceed => {}
        Condition::NotModified => {
            return Ok(Response {
                status: 304,
                headers,
                body: Vec::new(),
            }
            .into());
        }
        Condition::PreconditionFailed => {
            return Err(ReadError::Problem(problems::precondition_failed(
                "the asset does not match the request's If-Match or If-Unmodified-Since",
            )));
        }
    }

    headers.push(("accept-ranges".into(), "bytes".into()));
    if let Some(coding) = coding {
        headers.push(("content-encoding".into(), coding.token().into()));
    }
    let head = request.method == "HEAD";
    let size = repr.size;
    let range = if preconditions.range_applies(&request.method, &etag, repr.modified) {
        evaluate_range(header(request, "range").as_deref(), size)
    } else {
        RangeOutcome::Full
    };
    match range {
        RangeOutcome::Full => {
            headers.push(("content-type".into(), base.content_type.clone()));
            headers.push(("content-length".into(), size.to_string()));
            let whole = ByteRange {
                first: 0,
                last: size.saturating_sub(1),
            };
            let plan = (!head && size > 0).then(|| Plan::content(whole, repr.chunk_bytes));
            answer(200, headers, plan, &repr)
        }
        RangeOutcome::Partial(ranges) if ranges.len() == 1 => {
            let range = ranges[0];
            headers.push(("content-type".into(), base.content_type.clone()));
            headers.push(("content-range".into(), content_range(range, size)));
            headers.push(("content-length".into(), range.length().to_string()));
            let plan = (!head).then(|| Plan::content(range, repr.chunk_bytes));
            answer(206, headers, plan, &repr)
        }
        RangeOutcome::Partial(ranges) => {
            let boundary = format!("portico-{}", &repr.sha256[..24]);
            let corrupt = |err| ReadError::Problem(problems::corrupt(key, err));
            let multipart = Multipart::new(&boundary, &base.content_type, size).map_err(corrupt)?;
            let plan = Plan::multipart(&multipart, &ranges, repr.chunk_bytes).map_err(corrupt)?;
            headers.push(("content-type".into(), multipart.content_type_header()));
            headers.push(("content-length".into(), plan.length().to_string()));
            answer(206, headers, (!head).then_some(plan), &repr)
        }
        RangeOutcome::Unsatisfiable => {
            headers.push(("content-range".into(), content_range_unsatisfied(size)));
            Ok(problem_response(
                problems::problem(
                    416,
                    "range-not-satisfiable",
                    "Range not satisfiable",
                    format!("no requested range overlaps the asset's {size} bytes"),
                ),
                headers,
            )
            .into())
        }
    }
}

/// The stored representation to send: the object itself or a precompressed
/// variant the client accepts (RFC 9110 section 12.5.3).
fn representation(
    base: &Manifest,
    request: &Request,
) -> Result<(Manifest, Option<Encoding>), Problem> {
    if base.encodings.is_empty() {
        return Ok((base.clone(), None));
    }
    let available: Vec<Encoding> = base
        .encodings
        .iter()
        .filter_map(|coding| match coding.as_str() {
            "br" => Some(Encoding::Br),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        })
        .collect();
    let Some(chosen) =
        media::choose_encoding(header(request, "accept-encoding").as_deref(), &available)
    else {
        return Ok((base.clone(), None));
    };
    // A variant deleted since the base was read: fall back to identity.
    match objects::load(&format!("{}{}", base.path, chosen.file_suffix()))? {
        Some(variant) => Ok((variant, Some(chosen))),
        None => Ok((base.clone(), None)),
    }
}

/// The object's own policy, else the operator's rule for its prefix, else
/// the default for its name (immutable when fingerprinted).
fn cache_control(base: &Manifest) -> Result<String, Problem> {
    if let Some(policy) = &base.cache_control {
        return Ok(policy.clone());
    }
    if let Some(policy) = settings::cache_rule(&base.path)? {
        return Ok(policy);
    }
    let name = base.path.rsplit('/').next().unwrap_or(&base.path);
    Ok(media::cache_control_for(name, media::is_fingerprinted(name)).to_string())
}

/// No object at `key`: a directory redirect, the mount's `404.html`, or a
/// 404 problem.
fn missing(root: &str, key: &str, request: &Request) -> Result<Answer, Problem> {
    if !request.path.ends_with('/') && objects::load(&format!("{key}/index.html"))?.is_some() {
        // Relative, so it stays right under whatever prefix the mount has.
        let name = request.path.rsplit('/').next().unwrap_or_default();
        let location = match &request.query {
            Some(query) => format!("{name}/?{query}"),
            None => format!("{name}/"),
        };
        return Ok(Response {
            status: 301,
            headers: vec![
                ("location".into(), location),
                ("content-length".into(), "0".into()),
            ],
            body: Vec::new(),
        }
        .into());
    }
    let page_key = format!("{root}404.html");
    if page_key != key
        && let Some(page) = objects::load(&page_key)?
    {
        let headers = vec![
            ("content-type".into(), page.content_type.clone()),
            ("content-length".into(), page.size.to_string()),
            ("cache-control".into(), "no-cache".into()),
        ];
        let whole = ByteRange {
            first: 0,
            last: page.size.saturating_sub(1),
        };
        let plan = (request.method != "HEAD" && page.size > 0)
            .then(|| Plan::content(whole, page.chunk_bytes));
        // The page is being replaced: the plain problem will do.
        return answer(404, headers, plan, &page).map_err(|_| problems::not_found(key));
    }
    Err(problems::not_found(key))
}

/// A problem answered as a full response because it carries headers (a
/// 416's `Content-Range`) that the `problem` record cannot.
fn problem_response(problem: Problem, mut headers: Headers) -> Response {
    let body = serde_json::json!({
        "type": format!("https://portico.dev/problems#{}", problem.kind),
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    })
    .to_string()
    .into_bytes();
    headers.retain(|(name, _)| name != "etag" && name != "last-modified");
    headers.push(("content-type".into(), "application/problem+json".into()));
    headers.push(("content-length".into(), body.len().to_string()));
    Response {
        status: problem.status,
        headers,
        body,
    }
}
