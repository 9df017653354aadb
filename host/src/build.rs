//! `portico build`: compiles every component for `wasm32-wasip2` and composes
//! the deployable artifacts into `dist/`.
//!
//! - `dist/portico-spin.wasm`: gateway + business components + platform-spin
//!   (what `spin.toml` points at; Spin's component dependencies are one level
//!   deep and the Cloud deploy path does not compose, so it ships composed);
//! - `dist/portico-wasi.wasm`: the same over platform-wasi, for `wasmtime serve`;
//! - `dist/components/<name>.wasm`: each business component composed with
//!   platform-spin alone, for other Spin apps to reuse.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::compose::{Part, compose};
use crate::shrink::{self, WasmOpt};

pub const WASM_TARGET: &str = "wasm32-wasip2";
/// The cargo profile tuned for size (see the workspace `Cargo.toml`).
pub const WASM_PROFILE: &str = "wasm";
/// The business components, in the order the gateway's imports need them.
pub const BUSINESS: [&str; 4] = ["flags", "auth", "rate-limiter", "assets"];

/// Where components are compiled: a target directory of its own, so a build
/// started from inside `cargo test` does not wait on the outer cargo's lock.
pub fn wasm_target_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("wasm")
}

/// The compiled core file of crate `package`.
pub fn compiled(workspace: &Path, package: &str) -> PathBuf {
    wasm_target_dir(workspace)
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Installs the wasm target through rustup when it is missing, so a fresh
/// machine needs nothing but a Rust toolchain.
fn ensure_wasm_target() -> Result<()> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup (a distribution toolchain): cargo will say what is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed");
    }
    Ok(())
}

/// Compiles the given crates of the workspace for `wasm32-wasip2`.
pub fn compile(workspace: &Path, packages: &[&str]) -> Result<()> {
    ensure_wasm_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--target", WASM_TARGET, "--profile", WASM_PROFILE])
        .arg("--target-dir")
        .arg(wasm_target_dir(workspace));
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!("compiling the components failed ({status})");
    }
    Ok(())
}

/// Binaryen's `wasm-opt`, looked for once per process (see [`shrink`]).
fn optimiser(workspace: &Path) -> Result<Option<&'static WasmOpt>> {
    static FOUND: OnceLock<Result<Option<WasmOpt>, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            WasmOpt::find(&wasm_target_dir(workspace).join("wasm-opt"))
                .map_err(|err| format!("{err:#}"))
        })
        .as_ref()
        .map(Option::as_ref)
        .map_err(|err| anyhow::anyhow!("{err}"))
}

/// The compiled component of crate `package`, its core modules optimised
/// by `wasm-opt` when one is installed.
fn read(workspace: &Path, package: &str) -> Result<Vec<u8>> {
    let path = compiled(workspace, package);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let Some(wasm_opt) = optimiser(workspace)? else {
        return Ok(bytes);
    };
    // An optimiser that fails (an old binaryen that does not know a
    // feature, say) costs size, not the build.
    match wasm_opt.component(&bytes) {
        Ok(optimised) => Ok(optimised),
        Err(err) => {
            eprintln!(
                "warning: {package} is not size-optimised: {err:#} ({})",
                wasm_opt.version
            );
            Ok(bytes)
        }
    }
}

/// Composes `root` over `providers` (crate names, providers first).
pub fn compose_crates(workspace: &Path, providers: &[&str], root: &str) -> Result<Vec<u8>> {
    let mut parts = Vec::new();
    for name in providers.iter().chain([&root]) {
        parts.push(Part {
            name,
            bytes: read(workspace, name)?,
        });
    }
    compose(parts)
}

/// One artifact written to `dist/`.
pub struct Artifact {
    pub path: PathBuf,
    pub raw: usize,
    pub gzip: usize,
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<Artifact> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written aside and renamed into place, so a server starting meanwhile
    // (another `portico up`, a test) reads the old file or the new one,
    // never half of one.
    let partial = path.with_extension("wasm.partial");
    std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(Artifact {
        path,
        raw: bytes.len(),
        gzip: gzip_len(bytes)?,
    })
}

fn gzip_len(bytes: &[u8]) -> Result<usize> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

/// Builds and composes everything; returns the artifacts written.
pub fn build(workspace: &Path) -> Result<Vec<Artifact>> {
    let started = Instant::now();
    let mut packages = vec!["gateway", "platform-spin", "platform-wasi"];
    packages.extend(BUSINESS);
    compile(workspace, &packages)?;
    match optimiser(workspace)? {
        Some(wasm_opt) => eprintln!("optimising the core modules with {}", wasm_opt.version),
        None => eprintln!("{}", shrink::NOT_FOUND_HINT),
    }
    let dist = workspace.join("dist");
    let mut artifacts = Vec::new();
    for (target, platform) in [("spin", "platform-spin"), ("wasi", "platform-wasi")] {
        let mut providers = vec![platform];
        providers.extend(BUSINESS);
        let bytes = shrink::debug_names(&compose_crates(workspace, &providers, "gateway")?)?;
        artifacts.push(write(dist.join(format!("portico-{target}.wasm")), &bytes)?);
    }
    for component in BUSINESS {
        let bytes =
            shrink::debug_names(&compose_crates(workspace, &["platform-spin"], component)?)?;
        artifacts.push(write(
            dist.join("components").join(format!("{component}.wasm")),
            &bytes,
        )?);
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "build finished"
    );
    Ok(artifacts)
}

/// Size budget (gzip bytes) of a composed app in `dist/` (issue #16): what
/// an edge platform downloads and compiles on a cold start.
pub const APP_GZIP_BUDGET: usize = 512 * 1024;
/// Size budget (gzip bytes) of a standalone component in `dist/components/`.
pub const COMPONENT_GZIP_BUDGET: usize = 128 * 1024;

/// The budget an artifact is held to: standalone components (under a
/// `components` directory) have the smaller one.
fn gzip_budget(path: &Path) -> usize {
    let standalone = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir == "components");
    if standalone {
        COMPONENT_GZIP_BUDGET
    } else {
        APP_GZIP_BUDGET
    }
}

/// One warning line for every artifact over its gzip budget.
pub fn budget_warnings(workspace: &Path, artifacts: &[Artifact]) -> Vec<String> {
    artifacts
        .iter()
        .filter_map(|a| {
            let budget = gzip_budget(&a.path);
            (a.gzip > budget).then(|| {
                let shown = a.path.strip_prefix(workspace).unwrap_or(&a.path);
                format!(
                    "warning: {} is {} bytes gzip, over its budget of {} ({} KiB) by {} bytes",
                    shown.display(),
                    a.gzip,
                    budget,
                    budget / 1024,
                    a.gzip - budget
                )
            })
        })
        .collect()
}

/// Prints the artifact table `portico build` shows, then a warning for each
/// artifact over its size budget (a warning, not a failure: the build is
/// still usable, the budget is a goal to hold).
pub fn print_sizes(workspace: &Path, artifacts: &[Artifact]) {
    println!("{:<36} {:>10} {:>10}", "artifact", "bytes", "gzip");
    for a in artifacts {
        let shown = a.path.strip_prefix(workspace).unwrap_or(&a.path);
        println!("{:<36} {:>10} {:>10}", shown.display(), a.raw, a.gzip);
    }
    for warning in budget_warnings(workspace, artifacts) {
        eprintln!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(path: &str, gzip: usize) -> Artifact {
        Artifact {
            path: Path::new("/ws").join(path),
            raw: gzip * 3,
            gzip,
        }
    }

    #[test]
    fn artifacts_within_budget_give_no_warning() {
        let artifacts = [
            artifact("dist/portico-spin.wasm", APP_GZIP_BUDGET),
            artifact("dist/components/flags.wasm", COMPONENT_GZIP_BUDGET),
        ];
        assert!(budget_warnings(Path::new("/ws"), &artifacts).is_empty());
    }

    #[test]
    fn each_artifact_is_held_to_its_own_budget() {
        let artifacts = [
            // Over the component budget but within the app's: no warning.
            artifact("dist/portico-wasi.wasm", COMPONENT_GZIP_BUDGET + 1),
            artifact("dist/components/flags.wasm", COMPONENT_GZIP_BUDGET + 1),
            artifact("dist/portico-spin.wasm", APP_GZIP_BUDGET + 10),
        ];
        let warnings = budget_warnings(Path::new("/ws"), &artifacts);
        assert_eq!(
            warnings,
            [
                "warning: dist/components/flags.wasm is 131073 bytes gzip, over its budget of 131072 (128 KiB) by 1 bytes",
                "warning: dist/portico-spin.wasm is 524298 bytes gzip, over its budget of 524288 (512 KiB) by 10 bytes",
            ]
        );
    }
}
