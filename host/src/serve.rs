//! `portico serve`: an embedded wasmtime serving a composed component over
//! HTTP, the way `spin up` (`--target spin`) or `wasmtime serve -S cli`
//! (`--target wasi`) would.
//!
//! The component is compiled once (and cached on disk, keyed by its hash and
//! the engine's configuration), pre-instantiated once, and each request gets
//! a fresh instance from the pooling allocator: the isolation of
//! per-request instances at a cost of microseconds.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::limits::{ClientLimits, PacedBody, PacedConnection, ThrottledLog};
use crate::request_limits::{Budget, RequestLimits};
use crate::spin::{SpinBackend, SpinHost, SpinView};

/// Which runtime's host interfaces to provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Spin's key-value, SQLite and variables interfaces (for `dist/portico-spin.wasm`).
    Spin,
    /// Stock WASI only, like `wasmtime serve -S cli` (for `dist/portico-wasi.wasm`).
    Wasi,
}

impl Target {
    pub fn default_artifact(self) -> &'static str {
        match self {
            Target::Spin => "dist/portico-spin.wasm",
            Target::Wasi => "dist/portico-wasi.wasm",
        }
    }
}

pub struct ServeOptions {
    pub target: Target,
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub component: PathBuf,
    pub cache_dir: PathBuf,
    /// The component's variables (already resolved).
    pub variables: BTreeMap<String, String>,
    /// The SQLite databases the manifest defines and grants (`--target spin`).
    pub sqlite_databases: crate::spin::sqlite::Databases,
    /// Where the key-value store and the databases live, when not in the
    /// data folder (`--runtime-config-file`, `--target spin`).
    pub runtime_config: crate::runtime_config::RuntimeConfig,
    /// Maintenance tasks to call on timers (`--schedule`).
    pub schedule: Vec<crate::schedule::Job>,
    /// How long and how slowly one client may hold the server.
    pub limits: ClientLimits,
    /// Requests the server runs at once (instances in the pool); one more
    /// is answered `503 #overloaded`.
    pub max_instances: u32,
    /// What one request may take: time, CPU, memory.
    pub request_limits: RequestLimits,
}

/// Per-request store data.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    spin: Option<Arc<SpinBackend>>,
    hooks: crate::hop_by_hop::ProxyHooks,
    budget: Budget,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl SpinHost for RequestState {
    fn spin(&mut self) -> SpinView<'_> {
        SpinView {
            // Only linked for `--target spin`, where the backend is always set.
            backend: self
                .spin
                .as_deref()
                .expect("spin backend for --target spin"),
            table: &mut self.table,
        }
    }
}

/// A component compiled, linked and pre-instantiated for serving.
pub struct Server {
    pre: ProxyPre<RequestState>,
    target: Target,
    wasi_data: PathBuf,
    env: Vec<(String, String)>,
    spin: Option<Arc<SpinBackend>>,
    limits: ClientLimits,
    request_limits: RequestLimits,
}

/// How the instance pool treats memories and tables between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolTuning {
    /// What `portico serve` uses: pages kept resident and reset in place.
    Resident,
    /// Wasmtime's defaults: every page returned to the kernel after each
    /// request (kept for the benchmark that measures the difference).
    Decommit,
}

fn engine(tuning: PoolTuning, max_instances: u32) -> Result<Engine> {
    let mut pooling = PoolingAllocationConfig::new();
    // A composed app is ~8 components of a few core instances each.
    pooling
        .total_component_instances(max_instances)
        .total_core_instances(max_instances * 32)
        .total_memories(max_instances * 16)
        .total_tables(max_instances * 32)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memory_size(512 << 20);
    // Every request instantiates the composed app afresh: its linear
    // memories and tables would otherwise be returned to the kernel with
    // `madvise` after each request, and every fresh page faulted back in.
    // That decommit is a TLB shootdown across cores per memory, which
    // profiled as the largest single cost of a request. Instead the pages a
    // request touched are reset in place (found with the PAGEMAP_SCAN ioctl
    // where the kernel has it, Linux 6.7+) up to these sizes, and what
    // remains is decommitted in batches. Spin keeps 2 MiB of each memory and
    // 512 KiB of each table resident for the same reason.
    if tuning == PoolTuning::Resident {
        pooling
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(512 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto)
            .decommit_batch_size(64);
    }
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    // Time limits and fairness between requests (see `request_limits`).
    config.epoch_interruption(true);
    // `PORTICO_PROFILE=perfmap` names compiled guest functions for `perf`.
    if std::env::var("PORTICO_PROFILE").is_ok_and(|value| value == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Ok(Engine::new(&config)?)
}

/// Compiles `wasm`, or loads the result of an earlier compilation of the
/// same bytes by the same engine configuration.
fn load_component(engine: &Engine, wasm: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes = std::fs::read(wasm).with_context(|| {
        format!(
            "reading {} (run `portico build` first, or use `portico up`)",
            wasm.display()
        )
    })?;
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = format!("{digest}-{:016x}", engine_hash.finish());
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this same
        // engine configuration (the key includes its compatibility hash) into
        // a cache directory only Portico writes.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {}", wasm.display()))?;
    std::fs::create_dir_all(cache_dir)?;
    let tmp = cache_dir.join(format!("{key}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, &cached)?;
    Ok(component)
}

/// Compiles (or loads from the cache) and pre-instantiates the component
/// `options` name, with the host interfaces of its target.
pub fn prepare(options: &ServeOptions) -> Result<Server> {
    prepare_with(options, PoolTuning::Resident)
}

/// [`prepare`] with the instance pool tuned as `tuning` says.
pub fn prepare_with(options: &ServeOptions, tuning: PoolTuning) -> Result<Server> {
    if options.max_instances == 0 {
        bail!("--max-instances must be at least 1");
    }
    let engine = engine(tuning, options.max_instances)?;
    let component = load_component(&engine, &options.component, &options.cache_dir)?;
    let mut linker: Linker<RequestState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let spin = match options.target {
        Target::Spin => {
            crate::spin::add_to_linker(&mut linker)?;
            Some(SpinBackend::open(
                &options.data,
                &options.sqlite_databases,
                &options.runtime_config,
                options.variables.clone(),
            )?)
        }
        Target::Wasi => None,
    };
    let instance_pre = linker.instantiate_pre(&component).map_err(|err| {
        let hint = match options.target {
            Target::Wasi => " (a component that imports Spin interfaces needs --target spin)",
            Target::Spin => "",
        };
        anyhow::anyhow!(
            "{} cannot run on --target {:?}{hint}: {err:#}",
            options.component.display(),
            options.target
        )
    })?;
    let pre = ProxyPre::new(instance_pre)
        .map_err(anyhow::Error::from)
        .context("the component does not export wasi:http/incoming-handler")?;
    let wasi_data = options.data.join("wasi");
    if options.target == Target::Wasi {
        std::fs::create_dir_all(&wasi_data)
            .with_context(|| format!("creating {}", wasi_data.display()))?;
    }
    let env = options
        .variables
        .iter()
        .map(|(name, value)| {
            (
                portico_storage_format::names::env_var_for(name),
                value.clone(),
            )
        })
        .collect();
    Ok(Server {
        pre,
        target: options.target,
        wasi_data,
        env,
        spin,
        limits: options.limits,
        request_limits: options.request_limits,
    })
}

/// Response bodies as hyper sends them; the guest's body errors become I/O
/// errors (the connection is cut), which is all a client can be told mid-body.
type HostBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
type HostResponse = hyper::Response<HostBody>;

fn host_body(body: HyperOutgoingBody) -> HostBody {
    body.map_err(|code| std::io::Error::other(format!("{code:?}")))
        .boxed_unsync()
}

impl Server {
    fn new_store(&self) -> Result<Store<RequestState>> {
        let mut store = Store::new(
            self.pre.engine(),
            RequestState {
                wasi: self.wasi_ctx()?,
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                spin: self.spin.clone(),
                hooks: Default::default(),
                budget: Budget::new(&self.request_limits),
            },
        );
        store.limiter(|state| &mut state.budget);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| store.data_mut().budget.on_tick());
        Ok(store)
    }

    /// The engine, whose epoch `portico serve` ticks.
    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// What every request pays before the guest runs and after it ends: a
    /// store, a fresh instance of the whole (composed) component, and
    /// dropping both, which returns the instance's memories and tables to
    /// the pool. (`cargo bench -p portico --bench instantiate` times it.)
    pub async fn instantiate_and_drop(&self) -> Result<()> {
        let mut store = self.new_store()?;
        let _proxy = self.pre.instantiate_async(&mut store).await?;
        drop(store);
        Ok(())
    }

    fn wasi_ctx(&self) -> Result<WasiCtx> {
        let mut builder = WasiCtx::builder();
        builder.inherit_stdout().inherit_stderr();
        if self.target == Target::Wasi {
            builder.envs(&self.env);
            builder.preopened_dir(&self.wasi_data, "/data", FsPerms::ReadWrite)?;
            // A filesystem call on small files in the page cache takes
            // microseconds; a hop to tokio's blocking pool and back costs
            // more than the call, and a request makes a dozen. So they run
            // on the request's own thread. (Stock `wasmtime serve` hops.)
            builder.allow_blocking_current_thread(true);
        }
        Ok(builder.build())
    }

    async fn handle(
        self: Arc<Self>,
        mut request: hyper::Request<hyper::body::Incoming>,
        client: SocketAddr,
    ) -> Result<HostResponse> {
        let started = tokio::time::Instant::now();
        // HTTP/1.1 requires `Host` and HTTP/1.0 may leave it out; without it
        // (or an absolute URI) the request names no authority, and the
        // component could only fail on it. It is the client's mistake.
        if request.uri().authority().is_none()
            && !request.headers().contains_key(hyper::header::HOST)
        {
            return Ok(problem_response(
                400,
                "missing-host",
                "Host required",
                "the request has no Host header (required by HTTP/1.1) and no absolute URI"
                    .to_string(),
                request.uri().path(),
            ));
        }
        crate::hop_by_hop::strip_connection_fields(request.headers_mut());
        if self.target == Target::Spin {
            // What Spin's HTTP trigger tells a component about the request,
            // added as Spin adds it: after any value the client sent under
            // the same name (Spin keeps those), so the last value is Spin's.
            let headers = request.headers_mut();
            headers.append("spin-client-addr", client.to_string().parse()?);
            headers.append("spin-matched-route", "/...".parse()?);
            headers.append("spin-base-path", "/".parse()?);
            headers.append("spin-component-route", "".parse()?);
            headers.append("spin-raw-component-route", "/...".parse()?);
        }
        // A small body is read here, before an instance is taken, so a
        // client trickling it holds a socket rather than an instance slot.
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let (parts, body) = request.into_parts();
        let body = PacedBody::new(body, &self.limits);
        let body = match crate::limits::prebuffer(body, declared, self.limits.prebuffer_bytes).await
        {
            Ok(body) => body,
            Err(code) => return Ok(unreadable_body(&code, parts.uri.path())),
        };
        // A body streamed to the guest (a large upload) moves the request's
        // deadline on as it arrives: the deadline bounds the time to answer
        // once the body is in, while the body itself is bounded by the
        // client limits (stalls, minimum rate).
        let (deadline, deadline_rx) =
            tokio::sync::watch::channel(started + self.request_limits.timeout);
        let deadline = std::sync::Arc::new(deadline);
        let timeout = self.request_limits.timeout;
        let progress = deadline.clone();
        let body = body.on_progress(move || {
            let later = tokio::time::Instant::now() + timeout;
            progress.send_if_modified(|at| {
                let moved = *at < later;
                if moved {
                    *at = later;
                }
                moved
            });
        });
        let request = hyper::Request::from_parts(parts, body);
        let mut store = self.new_store()?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        // The guest may keep running after it has sent the response (e.g. to
        // revalidate a cache entry), so it runs in a task of its own.
        let task = tokio::task::spawn(async move {
            let call = async move {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(store, incoming, out)
                    .await
            };
            let result = crate::request_limits::within_deadline(call, deadline_rx).await;
            if let Some(hit) = result
                .as_ref()
                .err()
                .and_then(crate::request_limits::limit_hit)
            {
                tracing::warn!(%hit, "request stopped");
            }
            result
        });
        match receiver.await {
            Ok(Ok(response)) => {
                // From the head on, the body and any work after it have a
                // bound of their own.
                let _ =
                    deadline.send(tokio::time::Instant::now() + self.request_limits.after_response);
                Ok(response.map(host_body))
            }
            Ok(Err(code)) => Err(anyhow::anyhow!(
                "the component answered with an error code: {code:?}"
            )),
            Err(_) => {
                let err = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("the component never set a response"),
                    Ok(Err(err)) => err,
                    Err(err) => err.into(),
                };
                Err(err)
            }
        }
    }
}

/// The answer when the component traps or fails: a problem, never a bare
/// 500. Running out of instance slots is overload, not failure: `503` with
/// `Retry-After`, so clients back off instead of reporting a bug.
fn host_problem(err: &anyhow::Error, path: &str) -> HostResponse {
    if let Some(hit) = crate::request_limits::limit_hit(err) {
        let (kind, title) = hit.problem();
        return problem_response(503, kind, title, hit.to_string(), path);
    }
    let overloaded = err.chain().any(|cause| {
        cause
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
    });
    let (status, kind, title) = if overloaded {
        (503, "overloaded", "Too many requests in flight")
    } else {
        (500, "component-failure", "The component failed")
    };
    let mut response = problem_response(status, kind, title, format!("{err:#}"), path);
    if overloaded {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    response
}

/// The answer when a request body could not be read before the component
/// ran: too slow (`408`), or broken off. The connection is closed, since the
/// rest of the body will not be read.
fn unreadable_body(
    code: &wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
    path: &str,
) -> HostResponse {
    use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
    let mut response = if matches!(code, ErrorCode::ConnectionReadTimeout) {
        problem_response(
            408,
            "body-timeout",
            "Request body too slow",
            "the request body stalled or arrived below the server's minimum rate".to_string(),
            path,
        )
    } else {
        problem_response(
            400,
            "unreadable-body",
            "Request body unreadable",
            format!("the request body could not be read: {code:?}"),
            path,
        )
    };
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

/// An `application/problem+json` answer made by the host itself.
fn problem_response(
    status: u16,
    kind: &str,
    title: &str,
    detail: String,
    instance: &str,
) -> HostResponse {
    let body = serde_json::json!({
        "type": format!("https://portico.dev/problems#{kind}"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    })
    .to_string();
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let body: HostBody = body;
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

static REFUSED: ThrottledLog = ThrottledLog::new("connections refused: --max-connections reached");
static HEAD_TIMEOUTS: ThrottledLog =
    ThrottledLog::new("connections closed: no complete request head within --header-timeout");
static HEADS_TOO_LARGE: ThrottledLog =
    ThrottledLog::new("request heads over --max-header-bytes answered 431");

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves until Ctrl-C or SIGTERM, then lets in-flight requests finish (up to
/// five seconds).
pub async fn serve(options: ServeOptions) -> Result<()> {
    // A schedule without its token is a configuration mistake: say so
    // before serving anything.
    let schedule_token = if options.schedule.is_empty() {
        None
    } else {
        Some(
            options
                .variables
                .get("maintenance_token")
                .filter(|t| !t.trim().is_empty())
                .cloned()
                .context(
                    "--schedule calls /admin/maintenance/* with the maintenance_token variable; \
                     give it a value (e.g. --var maintenance_token=...)",
                )?,
        )
    };
    let server = Arc::new(prepare(&options)?);
    crate::request_limits::start_ticker(server.engine().clone());
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let address = listener.local_addr()?;
    println!(
        "portico: serving {} (--target {}) on http://{address}",
        options.component.display(),
        match options.target {
            Target::Spin => "spin",
            Target::Wasi => "wasi",
        }
    );
    if options.target == Target::Spin && options.runtime_config != Default::default() {
        eprintln!(
            "portico: key-value store: {}",
            crate::spin::key_value::Backend::describe(&crate::spin::key_value_store(
                &options.data,
                &options.runtime_config
            ))
        );
    }
    if let Some(token) = schedule_token {
        crate::schedule::spawn(format!("http://{address}"), token, options.schedule.clone());
    }
    let limits = options.limits;
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        tracing::warn!(%err, "accept failed");
                        continue;
                    }
                };
                // Past the cap a connection is closed at once, so a flood
                // of idle ones cannot exhaust the process's descriptors.
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    drop(stream);
                    REFUSED.note();
                    continue;
                };
                let server = server.clone();
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    let path = request.uri().path().to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(match server.handle(request, client).await {
                            Ok(response) => response,
                            Err(err) => {
                                tracing::error!(error = format!("{err:#}"), "request failed");
                                host_problem(&err, &path)
                            }
                        })
                    }
                });
                // The header timeout also closes keep-alive connections left
                // idle that long; the paced connection cuts slow readers.
                let connection = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .max_buf_size(limits.max_header_bytes.max(8192))
                    .keep_alive(true)
                    .serve_connection(
                        TokioIo::new(PacedConnection::new(stream, &limits)),
                        service,
                    );
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        if err.is_timeout() {
                            HEAD_TIMEOUTS.note();
                        } else if err.is_parse_too_large() {
                            HEADS_TOO_LARGE.note();
                        } else {
                            tracing::debug!(%err, "connection closed with an error");
                        }
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    // Refuse new connections at once; the ones open finish what they have.
    drop(listener);
    println!("portico: shutting down");
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        bail!("requests still in flight after 5s; stopped anyway");
    }
    Ok(())
}
