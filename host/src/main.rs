//! The `portico` command line: `build`, `serve`, `up`, `kv`, `users`, and
//! `flags` and `assets` against a running server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use portico::assets_sync::{self, SyncOptions};
use portico::build;
use portico::kv::KvStore;
use portico::serve::{self, ServeOptions, Target};
use portico::variables::{App, parse_assignment};

#[derive(Parser)]
#[command(
    name = "portico",
    version,
    about = "Build, compose and serve the Portico edge app"
)]
struct Cli {
    /// The project folder (holding spin.toml); default: the nearest one above
    /// the current directory.
    #[arg(long, global = true)]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile the components and compose dist/*.wasm.
    Build,
    /// Serve a composed component.
    Serve(ServeArgs),
    /// Build, then serve (for development: generates missing secrets,
    /// publishes pages/, and on a fresh data folder seeds demo flags).
    Up {
        #[command(flatten)]
        serve: ServeArgs,
        /// Do not seed the demo flag set on a fresh data folder.
        #[arg(long)]
        no_demo: bool,
    },
    /// Read and change the flag set of a running server (admin).
    Flags {
        #[command(subcommand)]
        action: FlagsAction,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:3000", global = true)]
        url: String,
        /// An admin session token (from `POST /api/login`); or set PORTICO_TOKEN.
        #[arg(long, env = "PORTICO_TOKEN", global = true, hide_env_values = true)]
        token: Option<String>,
    },
    /// Sync, list and remove static assets of a running server (admin).
    Assets {
        #[command(subcommand)]
        action: AssetsAction,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:3000", global = true)]
        url: String,
        /// An admin session token (from `POST /api/login`); or set PORTICO_TOKEN.
        #[arg(long, env = "PORTICO_TOKEN", global = true, hide_env_values = true)]
        token: Option<String>,
    },
    /// Write the files of DIR as asset objects PREFIX<relative path> straight
    /// into the data folder (only new or changed files); `up` does this for
    /// `pages/`. For a running server elsewhere, use `assets sync`.
    Publish {
        dir: PathBuf,
        #[arg(long, default_value = "site/")]
        prefix: String,
        #[arg(long, value_enum, default_value = "spin")]
        target: Target,
        #[arg(long, default_value = ".portico")]
        data: PathBuf,
        /// The runtime configuration the server uses (its key-value store).
        #[arg(long)]
        runtime_config_file: Option<PathBuf>,
    },
    /// Manage users in the app's data folder.
    Users {
        #[command(subcommand)]
        action: UsersAction,
        #[arg(long, value_enum, default_value = "spin", global = true)]
        target: Target,
        #[arg(long, default_value = ".portico", global = true)]
        data: PathBuf,
        /// The runtime configuration the server uses (its key-value store).
        #[arg(long, global = true)]
        runtime_config_file: Option<PathBuf>,
    },
    /// Read or write the app's key-value data in its data folder.
    Kv {
        #[command(subcommand)]
        action: KvAction,
        #[arg(long, value_enum, default_value = "spin", global = true)]
        target: Target,
        #[arg(long, default_value = ".portico", global = true)]
        data: PathBuf,
        /// The runtime configuration the server uses (its key-value store).
        #[arg(long, global = true)]
        runtime_config_file: Option<PathBuf>,
    },
}

/// The store `portico kv`, `users` and `publish` work on: the data
/// folder's, or where a runtime configuration puts it.
fn kv_store(
    workspace: &Path,
    target: Target,
    data: &Path,
    runtime_config_file: Option<&Path>,
) -> Result<KvStore> {
    let runtime = runtime_config(workspace, target, runtime_config_file)?;
    Ok(KvStore::placed(target, &resolve(workspace, data), &runtime))
}

/// `--runtime-config-file`, read; none: every store in the data folder.
fn runtime_config(
    workspace: &Path,
    target: Target,
    file: Option<&Path>,
) -> Result<portico::runtime_config::RuntimeConfig> {
    let Some(file) = file else {
        return Ok(Default::default());
    };
    if target != Target::Spin {
        bail!(
            "--runtime-config-file configures Spin's stores: it needs --target spin \
             (on --target wasi, storage is the folder preopened at /data)"
        );
    }
    portico::runtime_config::RuntimeConfig::load(&resolve(workspace, file))
}

#[derive(Args)]
struct ServeArgs {
    /// Which runtime's interfaces to provide.
    #[arg(long, value_enum, default_value = "spin")]
    target: Target,
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The data folder (SQLite files for spin; `wasi/` is preopened at /data for wasi).
    #[arg(long, default_value = ".portico")]
    data: PathBuf,
    /// Set a variable: `--var name=value` (repeatable).
    #[arg(long = "var", value_parser = parse_assignment)]
    vars: Vec<(String, String)>,
    /// The component to serve; default: dist/portico-<target>.wasm.
    #[arg(long)]
    component: Option<PathBuf>,
    /// The Spin manifest whose variables apply.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Where compiled components are cached; default: <data>/cache.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Spin's runtime configuration file: the key-value store on Redis or
    /// a SQLite file, SQLite databases at given paths (--target spin).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Call maintenance tasks on timers: "sweep-expired=5m,warm-cache=1m"
    /// (needs the maintenance_token variable).
    #[arg(long)]
    schedule: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Requests served at once (component instances in the pool); further
    /// ones are answered 503 with Retry-After.
    #[arg(long, default_value_t = 256)]
    max_instances: u32,
}

/// How long and how slowly one client may hold the server, and what one
/// request may take.
#[derive(Args)]
struct LimitArgs {
    /// Longest wait for a request's headers, and for the next request on an
    /// idle keep-alive connection.
    #[arg(long, default_value = "10s", value_parser = portico::limits::parse_duration)]
    header_timeout: std::time::Duration,
    /// Longest wait for the next piece of a request body.
    #[arg(long, default_value = "10s", value_parser = portico::limits::parse_duration)]
    body_timeout: std::time::Duration,
    /// Longest wait for a client to take any response bytes.
    #[arg(long, default_value = "10s", value_parser = portico::limits::parse_duration)]
    send_timeout: std::time::Duration,
    /// Bytes per second a client must sustain sending a body or taking a
    /// response, once the grace has passed (0: no minimum).
    #[arg(long, default_value_t = 1024)]
    min_transfer_rate: u64,
    /// How long a client may wait-to-send or wait-to-read before the
    /// minimum rate applies.
    #[arg(long, default_value = "5s", value_parser = portico::limits::parse_duration)]
    rate_grace: std::time::Duration,
    /// Request bodies up to this many bytes are read whole before the
    /// component is instantiated.
    #[arg(long, default_value_t = 64 * 1024)]
    prebuffer_bytes: usize,
    /// The largest request head (request line and fields); larger: 431.
    #[arg(long, default_value = "64KiB", value_parser = portico::request_limits::parse_size)]
    max_header_bytes: usize,
    /// Connections open at once; past it new ones are closed at once.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Time from a request's arrival to its response head; past it: 503.
    #[arg(long, default_value = "30s", value_parser = portico::limits::parse_duration)]
    request_timeout: std::time::Duration,
    /// Time from the response head for the body and any work after it.
    #[arg(long, default_value = "5m", value_parser = portico::limits::parse_duration)]
    response_timeout: std::time::Duration,
    /// Guest CPU time a request may use (e.g. 50ms); default: not limited.
    #[arg(long, value_parser = portico::limits::parse_duration)]
    request_cpu: Option<std::time::Duration>,
    /// Memory a request's instance may grow to, all memories together.
    #[arg(long, default_value = "128MiB", value_parser = portico::request_limits::parse_size)]
    request_memory: usize,
}

impl LimitArgs {
    fn request_limits(&self) -> portico::request_limits::RequestLimits {
        portico::request_limits::RequestLimits {
            timeout: self.request_timeout,
            after_response: self.response_timeout,
            cpu: self.request_cpu,
            memory_bytes: self.request_memory,
        }
    }

    fn limits(&self) -> portico::limits::ClientLimits {
        portico::limits::ClientLimits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            send_timeout: self.send_timeout,
            min_rate: self.min_transfer_rate,
            rate_grace: self.rate_grace,
            prebuffer_bytes: self.prebuffer_bytes,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections,
        }
    }
}

#[derive(Subcommand)]
enum KvAction {
    /// Print the value of KEY.
    Get { key: String },
    /// Store VALUE (or the contents of --file) under KEY.
    Set {
        key: String,
        value: Option<String>,
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        ttl_ms: Option<u64>,
    },
    /// Remove KEY.
    Delete { key: String },
    /// List keys starting with PREFIX.
    List {
        #[arg(default_value = "")]
        prefix: String,
    },
}

#[derive(Subcommand)]
enum FlagsAction {
    /// Print the flag set.
    Get,
    /// Replace the flag set with the flagd JSON in FILE (validated by the server).
    Set { file: PathBuf },
    /// Set flag KEY's state to ENABLED.
    Enable { key: String },
    /// Set flag KEY's state to DISABLED.
    Disable { key: String },
}

#[derive(Subcommand)]
enum AssetsAction {
    /// Upload the files of DIR that are new or changed (by SHA-256 against the
    /// server's ETags) as objects PREFIX/<relative path>; dot-files are skipped.
    Sync {
        dir: PathBuf,
        /// The folder of objects to sync into (`site` means `site/`; `site/`
        /// is what the site root serves).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Also delete objects under the prefix that DIR no longer has.
        #[arg(long)]
        delete: bool,
        /// Print what would be uploaded and deleted, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the objects whose path starts with PREFIX.
    Ls {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Remove the object at PATH.
    Rm { path: String },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Create or replace user NAME; the password is read from standard input
    /// (its first line).
    Add {
        name: String,
        /// A role to grant (repeatable), e.g. `--role admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// PBKDF2 iterations for the hash.
        #[arg(long, default_value_t = portico_auth_logic::password::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

/// Writes a user record as the auth component would (same record, same hash
/// format), directly into the KV data.
fn add_user(store: &KvStore, name: &str, roles: Vec<String>, iterations: u32) -> Result<()> {
    use portico_auth_logic::password::hash_password;
    use portico_auth_logic::user::{UserRecord, valid_name, valid_role};
    if !valid_name(name) {
        bail!("user names are 1 to 64 of A-Z a-z 0-9 . _ - @");
    }
    if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
        bail!("role {bad:?}: roles are 1 to 32 of a-z 0-9 -");
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!(
            "no password on standard input (e.g. `echo \"$PASSWORD\" | portico users add {name}`)"
        );
    }
    portico_auth_logic::user::check_new_password(password).map_err(anyhow::Error::msg)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
    let record = UserRecord {
        name: name.to_string(),
        password: hash_password(password, &salt, iterations),
        roles,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let replaced = store.get(&UserRecord::key(name))?.is_some();
    store.set(&UserRecord::key(name), &serde_json::to_vec(&record)?, None)?;
    eprintln!("user {name:?} saved with roles {:?}", record.roles);
    if replaced {
        // The session generation lives in the app's durable store, which
        // only the running app writes.
        eprintln!(
            "note: {name:?} existed; sessions issued to it before stay valid until they expire. \
             End them with `DELETE /admin/users/{name}/sessions` on the running server, \
             or change users through `PUT /admin/users/{name}`, which does both."
        );
    }
    Ok(())
}

/// One admin call to a running server; a problem answer becomes the error.
fn admin_call(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", url.trim_end_matches('/')))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.unwrap_or_default())?;
    let response = agent
        .run(request)
        .with_context(|| format!("{method} {url}{path}"))?;
    let status = response.status();
    let text = response.into_body().read_to_string()?;
    if !status.is_success() {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| p["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{method} {path}: {status}: {detail}");
    }
    Ok(text)
}

fn run_flags(url: &str, token: Option<String>, action: FlagsAction) -> Result<()> {
    let Some(token) = token else {
        bail!("an admin session token is needed: --token or PORTICO_TOKEN (from POST /api/login)");
    };
    match action {
        FlagsAction::Get => {
            let text = admin_call(url, &token, "GET", "/admin/flags", None)?;
            let pretty: serde_json::Value = serde_json::from_str(&text)?;
            println!("{}", serde_json::to_string_pretty(&pretty)?);
        }
        FlagsAction::Set { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            admin_call(url, &token, "PUT", "/admin/flags", Some(text))?;
            eprintln!("flag set replaced from {}", file.display());
        }
        FlagsAction::Enable { key } => set_flag_state(url, &token, &key, "ENABLED")?,
        FlagsAction::Disable { key } => set_flag_state(url, &token, &key, "DISABLED")?,
    }
    Ok(())
}

fn run_assets(url: &str, token: Option<String>, action: AssetsAction) -> Result<()> {
    let Some(token) = token else {
        bail!("an admin session token is needed: --token or PORTICO_TOKEN (from POST /api/login)");
    };
    let client = assets_sync::Client::new(url, &token);
    match action {
        AssetsAction::Sync {
            dir,
            prefix,
            delete,
            dry_run,
        } => {
            let options = SyncOptions {
                dir,
                prefix,
                delete,
                dry_run,
            };
            let summary = assets_sync::sync(&client, &options)?;
            eprintln!("{summary}");
        }
        AssetsAction::Ls { prefix } => {
            let objects = client.list(&prefix)?;
            let mut out = std::io::stdout().lock();
            for object in &objects {
                writeln!(
                    out,
                    "{:>10}  {}  {:<26}  {}  {}",
                    object.size,
                    assets_sync::display_time(object.last_modified.as_ref()),
                    object.content_type,
                    short_etag(&object.etag),
                    object.path
                )?;
            }
            let total: u64 = objects.iter().map(|o| o.size).sum();
            eprintln!("{} objects, {total} bytes", objects.len());
        }
        AssetsAction::Rm { path } => {
            let removed = client.delete(path.trim_start_matches('/'))?;
            eprintln!("deleted {} ({} bytes)", removed.path, removed.size);
        }
    }
    Ok(())
}

/// The first 12 hex digits of an ETag, as `git log --oneline` shows hashes.
fn short_etag(etag: &str) -> &str {
    let hex = etag.trim_start_matches("W/").trim_matches('"');
    hex.get(..12).unwrap_or(hex)
}

fn set_flag_state(url: &str, token: &str, key: &str, state: &str) -> Result<()> {
    let set: serde_json::Value =
        serde_json::from_str(&admin_call(url, token, "GET", "/admin/flags", None)?)?;
    let Some(flag) = set["flags"].get(key) else {
        bail!("no flag {key:?} in the set");
    };
    let mut flag = flag.clone();
    flag["state"] = serde_json::Value::from(state);
    admin_call(
        url,
        token,
        "PATCH",
        &format!("/admin/flags/{key}"),
        Some(flag.to_string()),
    )?;
    eprintln!("flag {key:?} is now {state}");
    Ok(())
}

fn find_workspace(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|dir| dir.join("spin.toml").is_file() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no Portico project (spin.toml + Cargo.toml) at or above {}",
                cwd.display()
            )
        })
}

fn resolve(workspace: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.join(path)
    }
}

/// The development secrets `portico up` generated, kept across restarts so
/// sessions survive them.
fn dev_secrets(
    app: &App,
    data: &Path,
    values: &mut std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let missing: Vec<String> = app
        .missing_required(values)
        .into_iter()
        .filter(|name| app.is_secret(name))
        .map(str::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let file = data.join("dev-secrets.toml");
    let mut stored: toml::Table = match std::fs::read_to_string(&file) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("parsing {}", file.display()))?,
        Err(_) => toml::Table::new(),
    };
    for name in missing {
        let value = match stored.get(&name).and_then(|v| v.as_str()) {
            Some(value) => value.to_string(),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
                let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                stored.insert(name.clone(), toml::Value::String(value.clone()));
                value
            }
        };
        eprintln!(
            "portico up: using a generated development value for secret `{name}` ({}); \
             `portico serve` never does this: set it with --var {name}=... or SPIN_VARIABLE_{}",
            file.display(),
            name.to_ascii_uppercase()
        );
        values.insert(name, value);
    }
    std::fs::create_dir_all(data)?;
    std::fs::write(&file, toml::to_string(&stored)?)?;
    Ok(())
}

/// `portico up` publishes the app's pages (`pages/`) on the site before
/// serving, so the login and admin pages exist from the first request.
fn publish_pages(workspace: &Path, options: &ServeOptions) -> Result<()> {
    let pages = workspace.join("pages");
    if !pages.is_dir() {
        return Ok(());
    }
    // As the gateway reads it: unset or empty is `site/`, `off` is no site.
    let root = match options.variables.get("assets_site_root").map(|r| r.trim()) {
        Some(root) if root.eq_ignore_ascii_case("off") => return Ok(()),
        Some(root) if !root.is_empty() => root.to_string(),
        _ => "site/".to_string(),
    };
    let store = KvStore::placed(options.target, &options.data, &options.runtime_config);
    let done = portico::publish::publish(&store, &pages, &root)
        .with_context(|| format!("publishing {} as {root}", pages.display()))?;
    eprintln!(
        "portico: pages/ published as {root} ({} written, {} unchanged)",
        done.written, done.unchanged
    );
    Ok(())
}

/// `portico up` on a fresh data folder: the demo flags (unless `--no-demo`
/// or a flag set exists), and how to create the admin when there is none.
fn first_run(options: &ServeOptions, no_demo: bool) -> Result<()> {
    use portico::first_run::{Seeded, admin_exists, seed_demo_flags};
    let store = KvStore::placed(options.target, &options.data, &options.runtime_config);
    if !no_demo && seed_demo_flags(&store)? == Seeded::Demo {
        eprintln!(
            "portico up: seeded a demo flag set (new-checkout, a 50/50 A/B test, and \
             maintenance-banner); it is never seeded again or over flags you store; \
             --no-demo skips it"
        );
    }
    let bootstrap = options
        .variables
        .get("bootstrap_admin")
        .is_some_and(|value| !value.trim().is_empty());
    if !bootstrap && !admin_exists(&store)? {
        eprintln!(
            "portico up: no admin yet; create one (the password is read from standard input):\n  \
             echo 'a-long-password' | cargo run -- users add admin --role admin --target {} --data {}",
            match options.target {
                Target::Spin => "spin",
                Target::Wasi => "wasi",
            },
            options.data.display()
        );
    }
    Ok(())
}

fn serve_options(
    workspace: &Path,
    args: ServeArgs,
    generate_secrets: bool,
) -> Result<ServeOptions> {
    let manifest = resolve(workspace, &args.manifest);
    let app = App::load(&manifest)?;
    let data = resolve(workspace, &args.data);
    let mut values = app.application_values(std::env::vars(), &args.vars)?;
    if generate_secrets {
        dev_secrets(&app, &data, &mut values)?;
    }
    let variables = app
        .component_values(&values)
        .with_context(|| format!("variables of {}", manifest.display()))?;
    let component = resolve(
        workspace,
        args.component
            .as_deref()
            .unwrap_or(Path::new(args.target.default_artifact())),
    );
    Ok(ServeOptions {
        target: args.target,
        listen: args.listen,
        cache_dir: args
            .cache_dir
            .map(|dir| resolve(workspace, &dir))
            .unwrap_or_else(|| data.join("cache")),
        data,
        component,
        variables,
        sqlite_databases: app.sqlite_databases().clone(),
        runtime_config: runtime_config(
            workspace,
            args.target,
            args.runtime_config_file.as_deref(),
        )?,
        schedule: match &args.schedule {
            Some(spec) => portico::schedule::parse(spec)?,
            None => Vec::new(),
        },
        limits: args.limits.limits(),
        max_instances: args.max_instances,
        request_limits: args.limits.request_limits(),
    })
}

fn run_serve(options: ServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve::serve(options))
}

fn run(cli: Cli) -> Result<()> {
    // Talking to a server needs no project folder.
    if let Command::Assets { action, url, token } = cli.command {
        return run_assets(&url, token, action);
    }
    let workspace = find_workspace(cli.workspace)?;
    match cli.command {
        Command::Build => {
            let artifacts = build::build(&workspace)?;
            build::print_sizes(&workspace, &artifacts);
            Ok(())
        }
        Command::Serve(args) => run_serve(serve_options(&workspace, args, false)?),
        Command::Up {
            serve: args,
            no_demo,
        } => {
            let artifacts = build::build(&workspace)?;
            build::print_sizes(&workspace, &artifacts);
            let options = serve_options(&workspace, args, true)?;
            publish_pages(&workspace, &options)?;
            first_run(&options, no_demo)?;
            run_serve(options)
        }
        Command::Flags { action, url, token } => run_flags(&url, token, action),
        Command::Assets { action, url, token } => run_assets(&url, token, action),
        Command::Publish {
            dir,
            prefix,
            target,
            data,
            runtime_config_file,
        } => {
            let store = kv_store(&workspace, target, &data, runtime_config_file.as_deref())?;
            let done = portico::publish::publish(&store, &dir, &prefix)?;
            eprintln!(
                "published {} as {prefix}: {} written, {} unchanged",
                dir.display(),
                done.written,
                done.unchanged
            );
            Ok(())
        }
        Command::Users {
            action,
            target,
            data,
            runtime_config_file,
        } => {
            let store = kv_store(&workspace, target, &data, runtime_config_file.as_deref())?;
            match action {
                UsersAction::Add {
                    name,
                    roles,
                    iterations,
                } => add_user(&store, &name, roles, iterations),
            }
        }
        Command::Kv {
            action,
            target,
            data,
            runtime_config_file,
        } => {
            let store = kv_store(&workspace, target, &data, runtime_config_file.as_deref())?;
            match action {
                KvAction::Get { key } => match store.get(&key)? {
                    Some(value) => std::io::stdout().write_all(&value)?,
                    None => bail!("no value for key {key:?}"),
                },
                KvAction::Set {
                    key,
                    value,
                    file,
                    ttl_ms,
                } => {
                    let bytes = match (value, file) {
                        (Some(value), None) => value.into_bytes(),
                        (None, Some(file)) => std::fs::read(&file)
                            .with_context(|| format!("reading {}", file.display()))?,
                        _ => bail!("give either VALUE or --file"),
                    };
                    store.set(&key, &bytes, ttl_ms)?;
                }
                KvAction::Delete { key } => store.delete(&key)?,
                KvAction::List { prefix } => {
                    for key in store.list(&prefix)? {
                        println!("{key}");
                    }
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("portico: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
