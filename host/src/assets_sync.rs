//! `portico assets sync|ls|rm`: mirrors a local folder into the `assets`
//! object store of a running server through its admin HTTP API.
//!
//! ```text
//! GET    /admin/assets?prefix=P     -> {"objects":[{"path","size","content_type","etag",...}]}
//! PUT    /admin/assets/{path}       body = the file's bytes
//! DELETE /admin/assets/{path}
//! ```
//!
//! A sync walks the folder, hashes every file (SHA-256, which is what the
//! server's strong ETag is: `"<hex>"`), compares with the listing and uploads
//! only new or changed files; with `delete` it then removes listed objects
//! under the prefix that no longer exist locally. Uploads come before deletes
//! so a site never references a file that is already gone.
//!
//! Choices:
//! - Dot-files and dot-folders are skipped, and remote objects whose path
//!   below the prefix has such a segment are never deleted (as rsync protects
//!   excluded files): `.well-known/` uploaded by other means survives.
//! - Symbolic links are followed only when their target is inside the folder
//!   (no loops); others are skipped and reported.
//! - The sync prefix names a folder: `site` is taken as `site/`, so a
//!   `--delete` of `site` never touches `site2/...`.
//! - No `Content-Type` is sent (the server picks one from the extension). An
//!   object's own `Cache-Control` policy, when the listing shows one, is sent
//!   again when the object is replaced, so updating a file keeps its policy.
//!
//! - Answers `429`/`503` (the gateway's rate limiter allows 100 requests a
//!   minute by default) are retried after their `Retry-After`, so syncing
//!   many files is slowed down, not failed.
//!
//! The pure parts ([`normalize_prefix`], [`object_path`], [`encode_path`],
//! [`plan`], [`retry_delay`]) are unit-tested below; [`Client`] and [`sync`] do the I/O.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The admin route of the object store.
const ADMIN_ASSETS: &str = "/admin/assets";
/// The largest JSON answer read (a listing of many objects).
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// Why an assets command failed. `Display` says what failed; the cause of an
/// [`Io`](Self::Io) or [`Transport`](Self::Transport) error is its
/// [`source`](std::error::Error::source) (`{:#}` of an `anyhow` error shows
/// both).
#[derive(Debug)]
pub enum SyncError {
    /// Reading the local folder or a file failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A local name or the prefix cannot be an object path.
    BadName { name: String, reason: &'static str },
    /// The server could not be reached or the exchange broke off.
    Transport {
        method: &'static str,
        path: String,
        source: ureq::Error,
    },
    /// The server answered with an error status (`detail` of its problem+json).
    Http {
        method: &'static str,
        path: String,
        status: u16,
        detail: String,
    },
    /// The server's answer is not what the contract says.
    BadAnswer { path: String, reason: String },
    /// A file changed while it was being uploaded (the stored ETag differs).
    Changed { path: String },
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, .. } => write!(f, "{}", path.display()),
            Self::BadName { name, reason } => write!(f, "{name:?}: {reason}"),
            Self::Transport { method, path, .. } => write!(f, "{method} {path}"),
            Self::Http {
                method,
                path,
                status,
                detail,
            } => {
                let reason = http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "{method} {path}: {status} {reason}: {detail}")
            }
            Self::BadAnswer { path, reason } => {
                write!(f, "unexpected answer to {path}: {reason}")
            }
            Self::Changed { path } => write!(
                f,
                "{path}: the file changed while it was uploaded (the stored ETag differs); run the sync again"
            ),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Transport { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
    move |source| SyncError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One object as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteObject {
    pub path: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub content_type: String,
    /// Strong entity tag with its quotes: `"<hex SHA-256>"`.
    pub etag: String,
    /// Unix seconds (or a date string; shown as given).
    #[serde(default)]
    pub last_modified: Option<serde_json::Value>,
    /// The object's own `Cache-Control`, when it was uploaded with one.
    #[serde(default)]
    pub cache_control: Option<String>,
}

#[derive(Deserialize)]
struct Listing {
    objects: Vec<RemoteObject>,
}

/// One local file to mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The object path (prefix included, `/` separators, not encoded).
    pub path: String,
    /// Where it is on disk.
    pub file: PathBuf,
    pub size: u64,
    /// The ETag the server will give it: `"<hex SHA-256>"`.
    pub etag: String,
}

/// A local entry that is not mirrored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadReason {
    New,
    Changed,
}

/// One planned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub local: LocalFile,
    pub reason: UploadReason,
    /// The object's own `Cache-Control` to keep when it is replaced.
    pub cache_control: Option<String>,
}

/// What a sync does: uploads, then deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub uploads: Vec<Upload>,
    /// Object paths whose local file has the same content.
    pub unchanged: Vec<String>,
    /// Listed objects with no local file (only with `delete`).
    pub deletes: Vec<RemoteObject>,
}

impl Plan {
    pub fn upload_bytes(&self) -> u64 {
        self.uploads.iter().map(|u| u.local.size).sum()
    }
}

/// RFC 3986 unreserved characters, the only ones left as they are.
fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes one path segment: every byte but the unreserved ones
/// (so `/`, `%`, `?`, `#`, spaces and non-ASCII are all encoded).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &byte in segment.as_bytes() {
        if unreserved(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-encodes an object path segment by segment, keeping the `/`s.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// The URL of the admin resource for object `path` (or of the listing when
/// `path` is empty).
pub fn admin_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if path.is_empty() {
        format!("{base}{ADMIN_ASSETS}")
    } else {
        format!("{base}{ADMIN_ASSETS}/{}", encode_path(path))
    }
}

/// The URL of the listing of objects under `prefix`.
pub fn listing_url(base: &str, prefix: &str) -> String {
    let url = admin_url(base, "");
    if prefix.is_empty() {
        url
    } else {
        format!("{url}?prefix={}", encode_path(prefix))
    }
}

/// Why `segment` cannot be part of an object path, if it cannot.
fn bad_segment(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        Some("empty path segments ('//') are not allowed")
    } else if segment == "." || segment == ".." {
        Some("'.' and '..' segments are not allowed")
    } else if segment.contains('\\') {
        Some("a backslash is not allowed in an object path")
    } else if segment.chars().any(char::is_control) {
        Some("control characters are not allowed in an object path")
    } else {
        None
    }
}

/// The sync prefix as a folder: no leading `/`, and a trailing `/` unless
/// empty (`site` -> `site/`), so it never matches `site2/...`.
pub fn normalize_prefix(prefix: &str) -> Result<String, SyncError> {
    let trimmed = prefix.trim_start_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let folder = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if let Some(reason) = folder.split('/').find_map(bad_segment) {
        return Err(SyncError::BadName {
            name: prefix.to_string(),
            reason,
        });
    }
    Ok(format!("{folder}/"))
}

/// The object path of the file at `relative` (below the synced folder):
/// `prefix` + the relative path with `/` separators.
pub fn object_path(prefix: &str, relative: &Path) -> Result<String, SyncError> {
    let bad = |reason| SyncError::BadName {
        name: relative.display().to_string(),
        reason,
    };
    let mut segments = Vec::new();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(bad("not a plain relative path"));
        };
        let name = name.to_str().ok_or_else(|| bad("the name is not UTF-8"))?;
        if let Some(reason) = bad_segment(name) {
            return Err(bad(reason));
        }
        segments.push(name);
    }
    if segments.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(format!("{prefix}{}", segments.join("/")))
}

/// Whether a path below the prefix has a dot-file or dot-folder segment
/// (such objects are never synced, so never deleted).
fn hidden(relative: &str) -> bool {
    relative.split('/').any(|segment| segment.starts_with('.'))
}

/// Compares the local files with the listing: a file is uploaded when no
/// object has its path or the object's ETag differs from the file's.
/// With `delete`, listed objects under `prefix` without a local file (and
/// not hidden) are deleted.
pub fn plan(local: Vec<LocalFile>, remote: &[RemoteObject], prefix: &str, delete: bool) -> Plan {
    let listed: BTreeMap<&str, &RemoteObject> =
        remote.iter().map(|o| (o.path.as_str(), o)).collect();
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    for file in local {
        seen.insert(file.path.clone());
        match listed.get(file.path.as_str()) {
            Some(object) if object.etag == file.etag => plan.unchanged.push(file.path),
            Some(object) => plan.uploads.push(Upload {
                cache_control: object.cache_control.clone(),
                local: file,
                reason: UploadReason::Changed,
            }),
            None => plan.uploads.push(Upload {
                local: file,
                reason: UploadReason::New,
                cache_control: None,
            }),
        }
    }
    if delete {
        plan.deletes = listed
            .into_values()
            .filter(|object| {
                object
                    .path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| !rest.is_empty() && !hidden(rest))
                    && !seen.contains(&object.path)
            })
            .cloned()
            .collect();
    }
    plan
}

/// The lower-case hex SHA-256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String, SyncError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The files below `dir` (recursively, sorted by path), as object paths under
/// `prefix`, hashed; and what was skipped.
pub fn scan(dir: &Path, prefix: &str) -> Result<(Vec<LocalFile>, Vec<Skipped>), SyncError> {
    let root = dir.canonicalize().map_err(io_error(dir))?;
    if !root.is_dir() {
        return Err(SyncError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let mut ancestors = vec![root.clone()];
    walk(
        &root,
        dir,
        Path::new(""),
        &mut ancestors,
        &mut found,
        &mut skipped,
    )?;
    let mut files = Vec::with_capacity(found.len());
    for (relative, file) in found {
        let path = match object_path(prefix, &relative) {
            Ok(path) => path,
            Err(err) => {
                skipped.push(Skipped {
                    file,
                    reason: match err {
                        SyncError::BadName { reason, .. } => reason.to_string(),
                        other => other.to_string(),
                    },
                });
                continue;
            }
        };
        let size = std::fs::metadata(&file).map_err(io_error(&file))?.len();
        let etag = format!("\"{}\"", sha256_file(&file)?);
        files.push(LocalFile {
            path,
            file,
            size,
            etag,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, skipped))
}

/// Collects `(relative path, disk path)` of the regular files below `dir`.
/// `ancestors` holds the canonical folders being walked (loop detection).
fn walk(
    root: &Path,
    dir: &Path,
    relative: &Path,
    ancestors: &mut Vec<PathBuf>,
    found: &mut Vec<(PathBuf, PathBuf)>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), SyncError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error(dir))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let relative = relative.join(&name);
        let mut kind = entry.file_type().map_err(io_error(&path))?;
        let mut canonical = None;
        if kind.is_symlink() {
            let skip = |reason: &str| Skipped {
                file: path.clone(),
                reason: reason.to_string(),
            };
            let Ok(target) = path.canonicalize() else {
                skipped.push(skip("broken symbolic link"));
                continue;
            };
            if !target.starts_with(root) {
                skipped.push(skip("symbolic link to outside the folder"));
                continue;
            }
            kind = std::fs::metadata(&target)
                .map_err(io_error(&target))?
                .file_type();
            if kind.is_dir() && ancestors.contains(&target) {
                skipped.push(skip("symbolic link loop"));
                continue;
            }
            canonical = Some(target);
        }
        if kind.is_dir() {
            let canonical = match canonical {
                Some(target) => target,
                None => path.canonicalize().map_err(io_error(&path))?,
            };
            ancestors.push(canonical);
            walk(root, &path, &relative, ancestors, found, skipped)?;
            ancestors.pop();
        } else if kind.is_file() {
            found.push((relative, path));
        } else {
            skipped.push(Skipped {
                file: path,
                reason: "not a regular file".to_string(),
            });
        }
    }
    Ok(())
}

/// How many times one request is retried when the server asks to wait.
const MAX_RETRIES: u32 = 20;
/// The longest wait asked for that is honoured.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// How long to wait before retrying an answer with `status`, if it is one to
/// retry: `429 Too Many Requests` (the rate limiter) and `503 Service
/// Unavailable`, after their `Retry-After` seconds (1 s when absent or a
/// date; at most [`MAX_WAIT`]).
pub fn retry_delay(status: u16, retry_after: Option<&str>) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let seconds = retry_after
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Some(Duration::from_secs(seconds.max(1)).min(MAX_WAIT))
}

/// Progress of one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bytes of the file sent so far (restarts at 0 on a retry).
    Sent(u64),
    /// The server asked to wait (rate limited); the upload is retried after.
    Waiting(Duration),
}

/// The outcome of one exchange.
enum Answer {
    Done(String),
    RetryAfter(Duration),
}

/// The admin API of a running server. Requests the server answers with
/// `429` or `503` are retried after its `Retry-After` (at most
/// [`MAX_RETRIES`] times), so a sync of many files gets through the default
/// rate limit.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// `base` is the server's URL (`http://127.0.0.1:3000`), `token` an admin
    /// session token.
    pub fn new(base: &str, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    /// Sends one request. An error status becomes [`SyncError::Http`] with
    /// the problem's `detail`, unless it is one to retry and `last` is false.
    fn attempt(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, String)],
        body: ureq::SendBody,
        last: bool,
    ) -> Result<Answer, SyncError> {
        let transport = |source| SyncError::Transport {
            method,
            path: url.to_string(),
            source,
        };
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {}", self.token));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(body).map_err(|err| SyncError::BadName {
            name: url.to_string(),
            reason: if err.is::<http::uri::InvalidUri>() {
                "not a valid URL"
            } else {
                "not a valid request"
            },
        })?;
        let response = self.agent.run(request).map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(transport)?;
        if status.is_success() {
            return Ok(Answer::Done(text));
        }
        if !last && let Some(wait) = retry_delay(status.as_u16(), retry_after.as_deref()) {
            return Ok(Answer::RetryAfter(wait));
        }
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| p["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| match text.trim() {
                "" => "(no detail)".to_string(),
                text => text.to_string(),
            });
        Err(SyncError::Http {
            method,
            path: url.strip_prefix(&self.base).unwrap_or(url).to_string(),
            status: status.as_u16(),
            detail,
        })
    }

    /// A request without a body, retried when the server asks to wait.
    fn call(&self, method: &'static str, url: &str) -> Result<String, SyncError> {
        for attempt in 0.. {
            let last = attempt == MAX_RETRIES;
            match self.attempt(method, url, &[], ureq::SendBody::none(), last)? {
                Answer::Done(text) => return Ok(text),
                Answer::RetryAfter(wait) => std::thread::sleep(wait),
            }
        }
        unreachable!("the last attempt answers or fails")
    }

    fn parse<T: for<'de> Deserialize<'de>>(path: &str, text: &str) -> Result<T, SyncError> {
        serde_json::from_str(text).map_err(|err| SyncError::BadAnswer {
            path: path.to_string(),
            reason: err.to_string(),
        })
    }

    /// `GET /admin/assets?prefix=P`: the objects whose path starts with
    /// `prefix`, sorted by path.
    pub fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>, SyncError> {
        let text = self.call("GET", &listing_url(&self.base, prefix))?;
        let mut listing: Listing = Self::parse(ADMIN_ASSETS, &text)?;
        listing.objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing.objects)
    }

    /// `PUT /admin/assets/{path}` with the bytes of `file` (streamed, with a
    /// Content-Length, and `Cache-Control` when given): the stored object.
    pub fn put_file(
        &self,
        path: &str,
        file: &Path,
        cache_control: Option<&str>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RemoteObject, SyncError> {
        let url = admin_url(&self.base, path);
        for attempt in 0.. {
            let handle = File::open(file).map_err(io_error(file))?;
            let size = handle.metadata().map_err(io_error(file))?.len();
            let mut headers = vec![("content-length", size.to_string())];
            if let Some(policy) = cache_control {
                headers.push(("cache-control", policy.to_string()));
            }
            progress(Progress::Sent(0));
            let mut reader = Counting {
                inner: handle.take(size),
                sent: 0,
                progress: &mut *progress,
            };
            let body = ureq::SendBody::from_reader(&mut reader);
            let last = attempt == MAX_RETRIES;
            match self.attempt("PUT", &url, &headers, body, last)? {
                Answer::Done(text) => {
                    return Self::parse(&format!("{ADMIN_ASSETS}/{}", encode_path(path)), &text);
                }
                Answer::RetryAfter(wait) => {
                    progress(Progress::Waiting(wait));
                    std::thread::sleep(wait);
                }
            }
        }
        unreachable!("the last attempt answers or fails")
    }

    /// `DELETE /admin/assets/{path}`: the removed object.
    pub fn delete(&self, path: &str) -> Result<RemoteObject, SyncError> {
        let text = self.call("DELETE", &admin_url(&self.base, path))?;
        Self::parse(&format!("{ADMIN_ASSETS}/{}", encode_path(path)), &text)
    }
}

/// A reader that reports how many bytes went through.
struct Counting<'a, R> {
    inner: R,
    sent: u64,
    progress: &'a mut dyn FnMut(Progress),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        (self.progress)(Progress::Sent(self.sent));
        Ok(n)
    }
}

/// What `portico assets sync` is asked to do.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub dir: PathBuf,
    /// As given; see [`normalize_prefix`].
    pub prefix: String,
    pub delete: bool,
    pub dry_run: bool,
}

/// What a sync did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub unchanged: usize,
    pub deleted: usize,
    pub elapsed: Duration,
    pub dry_run: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (upload, delete) = if self.dry_run {
            ("would upload", "would delete")
        } else {
            ("uploaded", "deleted")
        };
        write!(
            f,
            "{upload} {} ({} bytes), unchanged {}, {delete} {} in {:.2} s",
            self.uploaded,
            self.uploaded_bytes,
            self.unchanged,
            self.deleted,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The upload progress bar on standard error; hidden when that is not a
/// terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
         {binary_bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Mirrors `options.dir` under the prefix: hashes, lists, plans, then (unless
/// dry) uploads and deletes, with a progress bar on standard error. A dry run
/// prints the plan on standard output. Skipped local entries are reported on
/// standard error.
pub fn sync(client: &Client, options: &SyncOptions) -> Result<Summary, SyncError> {
    let started = Instant::now();
    let prefix = normalize_prefix(&options.prefix)?;
    let (local, skipped) = scan(&options.dir, &prefix)?;
    for skip in &skipped {
        eprintln!("skipped {}: {}", skip.file.display(), skip.reason);
    }
    let remote = client.list(&prefix)?;
    let plan = plan(local, &remote, &prefix, options.delete);
    let mut summary = Summary {
        uploaded: plan.uploads.len(),
        uploaded_bytes: plan.upload_bytes(),
        unchanged: plan.unchanged.len(),
        deleted: plan.deletes.len(),
        elapsed: Duration::ZERO,
        dry_run: options.dry_run,
    };
    if options.dry_run {
        for upload in &plan.uploads {
            let why = match upload.reason {
                UploadReason::New => "new",
                UploadReason::Changed => "changed",
            };
            println!(
                "upload  {} ({} bytes, {why})",
                upload.local.path, upload.local.size
            );
        }
        for object in &plan.deletes {
            println!("delete  {} ({} bytes)", object.path, object.size);
        }
        summary.elapsed = started.elapsed();
        return Ok(summary);
    }

    let bar = progress_bar(plan.upload_bytes());
    let mut done = 0usize;
    let outcome = (|| {
        for upload in &plan.uploads {
            let base = bar.position();
            let name = &upload.local.path;
            bar.set_message(name.clone());
            let stored = client.put_file(
                name,
                &upload.local.file,
                upload.cache_control.as_deref(),
                &mut |event| match event {
                    Progress::Sent(sent) => bar.set_position(base + sent),
                    Progress::Waiting(wait) => bar.set_message(format!(
                        "{name} (rate limited: retrying in {} s)",
                        wait.as_secs()
                    )),
                },
            )?;
            bar.set_position(base + upload.local.size);
            if stored.etag != upload.local.etag {
                return Err(SyncError::Changed {
                    path: upload.local.path.clone(),
                });
            }
            done += 1;
        }
        bar.finish_and_clear();
        for object in &plan.deletes {
            client.delete(&object.path)?;
            done += 1;
        }
        Ok(())
    })();
    if let Err(err) = outcome {
        bar.abandon();
        if done > 0 {
            eprintln!(
                "stopped after {done} of {} changes",
                plan.uploads.len() + plan.deletes.len()
            );
        }
        return Err(err);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A listed object's `last_modified` for display: Unix seconds as
/// `YYYY-MM-DD hh:mm:ssZ`, anything else as given.
pub fn display_time(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(secs) => {
                let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
                let (y, m, d) = civil_from_days(days);
                format!(
                    "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
                    rem / 3600,
                    rem / 60 % 60,
                    rem % 60
                )
            }
            None => n.to_string(),
        },
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".to_string(),
    }
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag(hex: &str) -> String {
        format!("\"{hex}\"")
    }

    fn local(path: &str, tag: &str) -> LocalFile {
        LocalFile {
            path: path.to_string(),
            file: PathBuf::from(format!("/src/{path}")),
            size: 10,
            etag: etag(tag),
        }
    }

    fn remote(path: &str, tag: &str) -> RemoteObject {
        RemoteObject {
            path: path.to_string(),
            size: 10,
            content_type: "text/plain".to_string(),
            etag: etag(tag),
            last_modified: None,
            cache_control: None,
        }
    }

    #[test]
    fn segments_keep_only_unreserved_characters() {
        assert_eq!(encode_segment("site.css"), "site.css");
        assert_eq!(encode_segment("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(encode_segment("a b"), "a%20b");
        assert_eq!(encode_segment("100%.html"), "100%25.html");
        assert_eq!(encode_segment("q?x#y&z=+"), "q%3Fx%23y%26z%3D%2B");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment("日"), "%E6%97%A5");
        assert_eq!(encode_segment("it's(1)"), "it%27s%281%29");
    }

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("css/site.css"), "css/site.css");
        assert_eq!(encode_path("my docs/a b.html"), "my%20docs/a%20b.html");
        assert_eq!(
            admin_url("http://h:1/", "site/a b.txt"),
            "http://h:1/admin/assets/site/a%20b.txt"
        );
        assert_eq!(admin_url("http://h:1", ""), "http://h:1/admin/assets");
        assert_eq!(
            listing_url("http://h:1", "site/"),
            "http://h:1/admin/assets?prefix=site/"
        );
        assert_eq!(
            listing_url("http://h:1", "a&b/"),
            "http://h:1/admin/assets?prefix=a%26b/"
        );
        assert_eq!(listing_url("http://h:1", ""), "http://h:1/admin/assets");
    }

    #[test]
    fn prefixes_name_folders() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("site").unwrap(), "site/");
        assert_eq!(normalize_prefix("site/").unwrap(), "site/");
        assert_eq!(normalize_prefix("/a/b").unwrap(), "a/b/");
        for bad in ["a//b", "a/../b", "./a", "a\\b", "a\u{7}"] {
            assert!(
                matches!(normalize_prefix(bad), Err(SyncError::BadName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn files_map_to_prefixed_slash_paths() {
        assert_eq!(
            object_path("", Path::new("index.html")).unwrap(),
            "index.html"
        );
        assert_eq!(
            object_path("site/", Path::new("css/site.css")).unwrap(),
            "site/css/site.css"
        );
        assert_eq!(
            object_path("site/", &Path::new("a").join("b c").join("d.js")).unwrap(),
            "site/a/b c/d.js"
        );
        for bad in ["/abs", "../up", "a/../b", "./a", "", "a\\b", "tab\there"] {
            assert!(
                matches!(
                    object_path("p/", Path::new(bad)),
                    Err(SyncError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn plan_uploads_new_and_changed_files_only() {
        let files = vec![
            local("site/a.css", "aa"),
            local("site/b.js", "bb"),
            local("site/new.html", "nn"),
        ];
        let mut changed = remote("site/b.js", "old");
        changed.cache_control = Some("no-store".to_string());
        let listing = vec![remote("site/a.css", "aa"), changed];
        let plan = plan(files, &listing, "site/", false);
        assert_eq!(plan.unchanged, vec!["site/a.css"]);
        let uploads: Vec<_> = plan
            .uploads
            .iter()
            .map(|u| (u.local.path.as_str(), u.reason, u.cache_control.as_deref()))
            .collect();
        assert_eq!(
            uploads,
            vec![
                ("site/b.js", UploadReason::Changed, Some("no-store")),
                ("site/new.html", UploadReason::New, None),
            ]
        );
        assert_eq!(plan.upload_bytes(), 20);
        assert!(plan.deletes.is_empty());
    }

    #[test]
    fn plan_deletes_only_when_asked_and_only_under_the_prefix() {
        let files = vec![local("site/keep.txt", "k")];
        let listing = vec![
            remote("site/keep.txt", "k"),
            remote("site/gone.txt", "g"),
            remote("site/old/deep.txt", "d"),
            remote("site/.well-known/security.txt", "w"),
            remote("site2/other.txt", "o"),
            remote("elsewhere.txt", "e"),
        ];
        let kept = plan(files.clone(), &listing, "site/", false);
        assert!(kept.deletes.is_empty());
        let full = plan(files, &listing, "site/", true);
        let deleted: Vec<_> = full.deletes.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(deleted, vec!["site/gone.txt", "site/old/deep.txt"]);
        assert_eq!(full.unchanged, vec!["site/keep.txt"]);
        assert!(full.uploads.is_empty());
    }

    #[test]
    fn plan_with_empty_prefix_covers_every_object() {
        let listing = vec![remote("a.txt", "a"), remote("b/c.txt", "c")];
        let full = plan(vec![local("a.txt", "changed")], &listing, "", true);
        assert_eq!(full.uploads.len(), 1);
        let deleted: Vec<_> = full.deletes.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(deleted, vec!["b/c.txt"]);
    }

    #[test]
    fn scan_walks_hashes_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("index.html"), "").unwrap();
        std::fs::write(root.join("css/site.css"), "abc").unwrap();
        std::fs::write(root.join(".env"), "secret").unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink(outside.path().join("secret.txt"), root.join("leak.txt")).unwrap();
            symlink(root.join("css"), root.join("styles")).unwrap();
            symlink(root, root.join("css/loop")).unwrap();
            symlink(root.join("missing"), root.join("broken")).unwrap();
        }
        let (files, skipped) = scan(root, "site/").unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        #[cfg(unix)]
        assert_eq!(
            paths,
            vec![
                "site/css/site.css",
                "site/index.html",
                "site/styles/site.css"
            ]
        );
        #[cfg(not(unix))]
        assert_eq!(paths, vec!["site/css/site.css", "site/index.html"]);
        assert_eq!(
            files[0].etag,
            "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
        );
        assert_eq!(files[0].size, 3);
        assert_eq!(
            files[1].etag,
            "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
        );
        #[cfg(unix)]
        {
            let mut reasons: Vec<_> = skipped
                .iter()
                .map(|s| {
                    (
                        s.file.file_name().unwrap().to_str().unwrap(),
                        s.reason.as_str(),
                    )
                })
                .collect();
            reasons.sort();
            assert_eq!(
                reasons,
                vec![
                    ("broken", "broken symbolic link"),
                    ("leak.txt", "symbolic link to outside the folder"),
                    ("loop", "symbolic link loop"),
                    ("loop", "symbolic link loop"),
                ]
            );
        }
    }

    #[test]
    fn listing_json_parses() {
        let text = r#"{"objects":[{"path":"a.css","size":3,"content_type":"text/css; charset=utf-8",
            "etag":"\"ab\"","last_modified":86400,"cache_control":null}]}"#;
        let listing: Listing = serde_json::from_str(text).unwrap();
        assert_eq!(listing.objects[0].path, "a.css");
        assert_eq!(listing.objects[0].etag, "\"ab\"");
        assert_eq!(
            display_time(listing.objects[0].last_modified.as_ref()),
            "1970-01-02 00:00:00Z"
        );
    }

    #[test]
    fn times_display_as_utc() {
        let at = |secs: i64| display_time(Some(&serde_json::Value::from(secs)));
        assert_eq!(at(0), "1970-01-01 00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(
            display_time(Some(&serde_json::Value::from(
                "Tue, 14 Nov 2023 22:13:20 GMT"
            ))),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(display_time(None), "-");
    }

    #[test]
    fn rate_limited_answers_are_retried_after_retry_after() {
        assert_eq!(retry_delay(429, Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_delay(503, Some(" 2 ")), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(429, None), Some(Duration::from_secs(1)));
        assert_eq!(retry_delay(429, Some("0")), Some(Duration::from_secs(1)));
        assert_eq!(
            retry_delay(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_delay(429, Some("86400")), Some(MAX_WAIT));
        for status in [400, 401, 403, 404, 412, 413, 500] {
            assert_eq!(retry_delay(status, Some("1")), None, "{status}");
        }
    }

    #[test]
    fn summary_line() {
        let summary = Summary {
            uploaded: 2,
            uploaded_bytes: 1_052_672,
            unchanged: 3,
            deleted: 1,
            elapsed: Duration::from_millis(1500),
            dry_run: false,
        };
        assert_eq!(
            summary.to_string(),
            "uploaded 2 (1052672 bytes), unchanged 3, deleted 1 in 1.50 s"
        );
    }
}
