//! Composition of components into one, with `wac-graph` (no external tool).
//!
//! Components are given in dependency order, providers first and the root
//! (the component whose exports the result exports) last. Each component is
//! instantiated once; every import that an earlier component exports (by
//! exact name, or a semver-compatible one) is wired to that export, and what
//! remains (standard WASI, Spin's host interfaces) becomes an import of the
//! composed component. One instance of each provider is shared by all its
//! users, so, for example, a single platform adapter serves every business
//! component in the app.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use wac_graph::types::{Package, are_semver_compatible};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId};

/// One component to compose: a name for messages and its bytes.
pub struct Part<'a> {
    pub name: &'a str,
    pub bytes: Vec<u8>,
}

/// Composes `parts` (providers first, root last) into one component that
/// exports the root's exports.
pub fn compose(parts: Vec<Part<'_>>) -> Result<Vec<u8>> {
    let Some(root_name) = parts.last().map(|p| p.name.to_string()) else {
        bail!("nothing to compose");
    };
    let mut graph = CompositionGraph::new();
    // Export name -> the aliased export node of the instance providing it.
    let mut provided: BTreeMap<String, NodeId> = BTreeMap::new();
    let mut root_exports = Vec::new();
    let count = parts.len();
    for (index, part) in parts.into_iter().enumerate() {
        let package_name = format!("portico:{}", part.name.replace('_', "-"));
        let package = Package::from_bytes(&package_name, None, part.bytes, graph.types_mut())
            .with_context(|| format!("reading component {}", part.name))?;
        let world = graph.types()[package.ty()].clone();
        let package = graph.register_package(package)?;
        let instance = graph.instantiate(package);
        for import in world.imports.keys() {
            let provider = provided.get(import).copied().or_else(|| {
                provided
                    .iter()
                    .find(|(name, _)| are_semver_compatible(name, import))
                    .map(|(_, node)| *node)
            });
            if let Some(node) = provider {
                graph
                    .set_instantiation_argument(instance, import, node)
                    .with_context(|| format!("plugging {import} into {}", part.name))?;
            }
        }
        for export in world.exports.keys() {
            let node = graph.alias_instance_export(instance, export)?;
            if index + 1 == count {
                root_exports.push((export.clone(), node));
            } else {
                provided.insert(export.clone(), node);
            }
        }
    }
    for (name, node) in root_exports {
        graph
            .export(node, &name)
            .with_context(|| format!("exporting {name} from {root_name}"))?;
    }
    graph
        .encode(EncodeOptions::default())
        .context("encoding the composed component")
}

/// The import names of a component, for checking what a runtime must provide.
pub fn imports(bytes: &[u8]) -> Result<Vec<String>> {
    let mut types = wac_graph::types::Types::default();
    let package = Package::from_bytes("portico:inspect", None, bytes.to_vec(), &mut types)?;
    Ok(types[package.ty()].imports.keys().cloned().collect())
}
