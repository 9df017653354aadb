//! Makes built components smaller, after `cargo` and before `dist/`.
//!
//! - **Debug names.** `wit-component` and `wac-graph` write a
//!   `component-name` section into every component they make (names of
//!   types, instances and functions for debuggers); the composed app carries
//!   about 46 KB of them, some 7 KB gzip. Nothing at run time reads them:
//!   imports and exports are matched by the names in their own sections, and
//!   wasmtime's traps name core functions, whose `name` sections the wasm
//!   profile strips already. They are dropped at every depth; everything
//!   else, `producers` included, is copied byte for byte.
//! - **Binaryen.** When binaryen's `wasm-opt` is installed, each core module
//!   is optimised with `-Oz` (about 7% of every artifact, gzip, on top of
//!   LLVM's `opt-level = "z"`). It is not a build dependency: compiling
//!   binaryen from crates.io (`wasm-opt-sys`) takes longer on two cores than
//!   the whole host, so `portico build` uses an installed one and says how to
//!   get one when there is none. `PORTICO_WASM_OPT` names the command to use
//!   (`off` skips it). Results are cached by content under
//!   `target/wasm/wasm-opt/`, and each is validated before it is used.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasmparser::{BinaryReader, Validator, WasmFeatures};

/// Custom sections dropped, in components and in core modules.
const DEBUG_NAMES: [&str; 2] = ["component-name", "name"];

/// The component-model binary's version field (layer 1, version 0x0d).
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Section ids of a component that hold a whole core module or component.
const CORE_MODULE_SECTION: u8 = 1;
const COMPONENT_SECTION: u8 = 4;
const CUSTOM_SECTION: u8 = 0;

/// `bytes` (a component or a core module) without debug-name sections,
/// nested modules and components included.
pub fn debug_names(bytes: &[u8]) -> Result<Vec<u8>> {
    rewrite(bytes, &mut |module| Ok(module.to_vec()))
}

/// `bytes` without debug names, with every core module passed through
/// `on_module` (after its own names are dropped).
fn rewrite(bytes: &[u8], on_module: &mut dyn FnMut(&[u8]) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("not a WebAssembly binary");
    }
    let component = bytes[4..8] == COMPONENT_VERSION;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..8]);
    let mut reader = BinaryReader::new(&bytes[8..], 8);
    while !reader.eof() {
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        let body = reader
            .read_bytes(size)
            .context("a section runs past the end of the binary")?;
        let body = match id {
            CUSTOM_SECTION => {
                let name = BinaryReader::new(body, 0).read_string()?;
                if DEBUG_NAMES.contains(&name) {
                    continue;
                }
                body.to_vec()
            }
            CORE_MODULE_SECTION if component => {
                let module = rewrite(body, on_module)?;
                on_module(&module)?
            }
            COMPONENT_SECTION if component => rewrite(body, on_module)?,
            _ => body.to_vec(),
        };
        out.push(id);
        write_var_u32(&mut out, body.len())?;
        out.extend_from_slice(&body);
    }
    Ok(out)
}

fn write_var_u32(out: &mut Vec<u8>, value: usize) -> Result<()> {
    let mut value = u32::try_from(value).context("a section larger than 4 GiB")?;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return Ok(());
        }
        out.push(byte | 0x80);
    }
}

/// Binaryen's `wasm-opt`, found on this machine.
pub struct WasmOpt {
    command: OsString,
    /// What `wasm-opt --version` printed: part of the cache key, and shown.
    pub version: String,
    cache: PathBuf,
}

/// The features rustc's `wasm32-wasip2` target emits (LLVM's defaults for
/// it): binaryen must accept them, and must not add any other.
const FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// Modules smaller than this (the component adapters' shims) are left as
/// they are: there is nothing to win in them.
const SMALLEST_OPTIMISED: usize = 4096;

/// What `portico build` says when no `wasm-opt` is installed.
pub const NOT_FOUND_HINT: &str = "wasm-opt (binaryen) not found: the components are not size-optimised further (about 7% larger gzip). Install it with `apt-get install binaryen` or `npm install -g binaryen`, or set PORTICO_WASM_OPT to its path";

impl WasmOpt {
    /// The `wasm-opt` to use: `PORTICO_WASM_OPT` (a command; `off` for
    /// none), else `wasm-opt` on the `PATH`; `None` when there is none.
    /// `cache` is where its results are kept.
    pub fn find(cache: &Path) -> Result<Option<WasmOpt>> {
        let (command, named) = match std::env::var_os("PORTICO_WASM_OPT") {
            Some(off) if off == "off" => return Ok(None),
            Some(command) => (command, true),
            None => (OsString::from("wasm-opt"), false),
        };
        let output = match Command::new(&command).arg("--version").output() {
            Ok(output) if output.status.success() => output,
            // Named explicitly but unusable: a configuration mistake.
            Ok(output) if named => bail!(
                "PORTICO_WASM_OPT={}: `--version` failed ({})",
                command.to_string_lossy(),
                output.status
            ),
            Err(err) if named => {
                bail!("PORTICO_WASM_OPT={}: {err}", command.to_string_lossy())
            }
            _ => return Ok(None),
        };
        Ok(Some(WasmOpt {
            command,
            version: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            cache: cache.to_owned(),
        }))
    }

    /// `component` with each core module optimised for size.
    pub fn component(&self, component: &[u8]) -> Result<Vec<u8>> {
        rewrite(component, &mut |module| self.module(module))
    }

    /// One core module optimised for size, from the cache when it was
    /// optimised before by the same `wasm-opt`.
    fn module(&self, module: &[u8]) -> Result<Vec<u8>> {
        if module.len() < SMALLEST_OPTIMISED {
            return Ok(module.to_vec());
        }
        let mut key = Sha256::new();
        key.update(self.version.as_bytes());
        key.update(FEATURES.concat().as_bytes());
        key.update(module);
        let key: String = key.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let cached = self.cache.join(format!("{key}.wasm"));
        if let Ok(bytes) = std::fs::read(&cached) {
            return Ok(bytes);
        }
        std::fs::create_dir_all(&self.cache)
            .with_context(|| format!("creating {}", self.cache.display()))?;
        // Names of this process's own: two builds (test processes, say) may
        // optimise the same module at once.
        let pid = std::process::id();
        let input = self.cache.join(format!("{key}.{pid}.in.wasm"));
        let output = self.cache.join(format!("{key}.{pid}.out.wasm"));
        std::fs::write(&input, module)?;
        let status = Command::new(&self.command)
            .arg("-Oz")
            .args(FEATURES)
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .status()
            .with_context(|| format!("running {}", self.command.to_string_lossy()))?;
        let optimised = std::fs::read(&output);
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
        if !status.success() {
            bail!("{} -Oz failed ({status})", self.command.to_string_lossy());
        }
        let optimised = optimised.context("wasm-opt wrote no output")?;
        // Only what validates with the target's features is used.
        Validator::new_with_features(target_features())
            .validate_all(&optimised)
            .context("wasm-opt's output does not validate")?;
        // Renamed into place, so a concurrent build reads all of it or none.
        let partial = self.cache.join(format!("{key}.{pid}.partial"));
        std::fs::write(&partial, &optimised)?;
        std::fs::rename(&partial, &cached)?;
        Ok(optimised)
    }
}

/// The core-wasm features of `FEATURES`, as the validator names them.
fn target_features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::FLOATS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        write_var_u32(&mut out, body.len()).unwrap();
        out.extend_from_slice(body);
        out
    }

    fn custom(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(payload);
        section(CUSTOM_SECTION, &body)
    }

    fn binary(version: [u8; 4], sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm".to_vec();
        out.extend_from_slice(&version);
        for s in sections {
            out.extend_from_slice(s);
        }
        out
    }

    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];

    #[test]
    fn names_go_at_every_depth_and_everything_else_stays() {
        // A core module with a type section (id 1 in a module: not nested).
        let module = |with_names: bool| {
            let mut sections = vec![section(1, &[1, 0x60, 0, 0]), custom("producers", b"p")];
            if with_names {
                sections.push(custom("name", &[0; 300]));
            }
            binary(CORE_VERSION, &sections)
        };
        let inner = |with_names: bool| {
            let mut sections = vec![section(CORE_MODULE_SECTION, &module(with_names))];
            if with_names {
                sections.push(custom("component-name", b"inner names"));
            }
            binary(COMPONENT_VERSION, &sections)
        };
        let outer = |with_names: bool| {
            let mut sections = vec![
                section(COMPONENT_SECTION, &inner(with_names)),
                custom("producers", b"outer"),
            ];
            if with_names {
                sections.insert(0, custom("component-name", b"outer names"));
            }
            binary(COMPONENT_VERSION, &sections)
        };
        assert_eq!(debug_names(&outer(true)).unwrap(), outer(false));
        // Stripping twice changes nothing more.
        assert_eq!(debug_names(&outer(false)).unwrap(), outer(false));
    }

    /// A stand-in for `wasm-opt` (a shell script): writes `output` to the
    /// path after `-o`, and counts its runs in `runs`.
    #[cfg(unix)]
    fn fake_wasm_opt(dir: &Path, output: &[u8]) -> WasmOpt {
        use std::os::unix::fs::PermissionsExt;
        let made = dir.join("made.wasm");
        std::fs::write(&made, output).unwrap();
        let script = dir.join("wasm-opt");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho run >> '{runs}'\nwhile [ \"$1\" != -o ]; do shift; done\ncp '{made}' \"$2\"\n",
                runs = dir.join("runs").display(),
                made = made.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        WasmOpt {
            command: script.into(),
            version: "fake 1".into(),
            cache: dir.join("cache"),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("portico-shrink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A core module of `SMALLEST_OPTIMISED` bytes or more: one type and a
    /// large custom section.
    fn big_module(tag: u8) -> Vec<u8> {
        binary(
            CORE_VERSION,
            &[
                section(1, &[1, 0x60, 0, 0]),
                custom("payload", &[tag; SMALLEST_OPTIMISED]),
            ],
        )
    }

    #[cfg(unix)]
    #[test]
    fn optimised_modules_are_used_once_valid_and_then_come_from_the_cache() {
        let dir = temp_dir("cache");
        let smaller = binary(CORE_VERSION, &[section(1, &[1, 0x60, 0, 0])]);
        let wasm_opt = fake_wasm_opt(&dir, &smaller);
        let component = binary(
            COMPONENT_VERSION,
            &[section(CORE_MODULE_SECTION, &big_module(1))],
        );
        let expected = binary(COMPONENT_VERSION, &[section(CORE_MODULE_SECTION, &smaller)]);
        assert_eq!(wasm_opt.component(&component).unwrap(), expected);
        assert_eq!(wasm_opt.component(&component).unwrap(), expected);
        let runs = std::fs::read_to_string(dir.join("runs")).unwrap();
        assert_eq!(runs.lines().count(), 1, "the second build reads the cache");
        // Small modules (adapter shims) are not worth a run.
        let shim = binary(CORE_VERSION, &[section(1, &[1, 0x60, 0, 0])]);
        let small = binary(COMPONENT_VERSION, &[section(CORE_MODULE_SECTION, &shim)]);
        assert_eq!(wasm_opt.component(&small).unwrap(), small);
        assert_eq!(
            std::fs::read_to_string(dir.join("runs"))
                .unwrap()
                .lines()
                .count(),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `wasm_opt` refuses a component with one large module, with an error
    /// that says `why`, and leaves no file in its cache folder.
    fn assert_refused(wasm_opt: &WasmOpt, why: &str) {
        let component = binary(
            COMPONENT_VERSION,
            &[section(CORE_MODULE_SECTION, &big_module(2))],
        );
        let err = wasm_opt.component(&component).unwrap_err();
        assert!(format!("{err:#}").contains(why), "{err:#}");
        let left = std::fs::read_dir(&wasm_opt.cache).unwrap().count();
        assert_eq!(left, 0, "no input, output or cache file is left");
    }

    #[cfg(unix)]
    #[test]
    fn output_that_does_not_validate_is_refused() {
        let dir = temp_dir("invalid");
        let wasm_opt = fake_wasm_opt(&dir, b"\0asm\x01\0\0\0\x01\x05garbage");
        assert_refused(&wasm_opt, "does not validate");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_wasm_opt_is_an_error_and_leaves_nothing_behind() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("failing");
        let script = dir.join("wasm-opt");
        std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let wasm_opt = WasmOpt {
            command: script.into(),
            version: "failing 1".into(),
            cache: dir.join("cache"),
        };
        assert_refused(&wasm_opt, "-Oz failed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_truncated_binary_is_an_error() {
        let mut bytes = binary(COMPONENT_VERSION, &[custom("producers", b"abc")]);
        bytes.truncate(bytes.len() - 1);
        assert!(debug_names(&bytes).is_err());
        assert!(debug_names(b"not wasm").is_err());
    }
}
