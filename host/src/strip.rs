//! Removes debug names from a built component, the component-model
//! counterpart of the `strip = true` the wasm profile applies to each core
//! module.
//!
//! `wit-component` and `wac-graph` write a `component-name` section into
//! every component they make (names of types, instances and functions for
//! debuggers and error messages); the composed app carries about 46 KB of
//! them, some 7 KB gzip. Nothing at run time reads them: imports and exports
//! are matched by the names in their own sections, and wasmtime's traps name
//! core functions, whose `name` sections the profile strips already.
//! Everything else, `producers` included, is copied byte for byte.

use anyhow::{Context, Result, bail};
use wasmparser::BinaryReader;

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
            CORE_MODULE_SECTION | COMPONENT_SECTION if component => debug_names(body)?,
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

    #[test]
    fn a_truncated_binary_is_an_error() {
        let mut bytes = binary(COMPONENT_VERSION, &[custom("producers", b"abc")]);
        bytes.truncate(bytes.len() - 1);
        assert!(debug_names(&bytes).is_err());
        assert!(debug_names(b"not wasm").is_err());
    }
}
