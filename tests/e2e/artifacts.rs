//! The composed artifacts import only what their runtime provides.

use portico::compose::imports;

use crate::harness::artifacts;

fn import_list(path: &std::path::Path) -> Vec<String> {
    imports(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn wasi_artifact_imports_nothing_but_standard_wasi() {
    let imports = import_list(&artifacts().app_wasi);
    assert!(!imports.is_empty());
    for name in &imports {
        assert!(
            name.starts_with("wasi:"),
            "portico-wasi.wasm imports {name}"
        );
    }
}

#[test]
fn spin_artifact_imports_only_what_spin_provides() {
    let imports = import_list(&artifacts().app_spin);
    let spin: Vec<&String> = imports
        .iter()
        .filter(|n| n.starts_with("fermyon:spin/"))
        .collect();
    assert!(
        !spin.is_empty(),
        "platform-spin should reach Spin's storage: {imports:?}"
    );
    for name in &imports {
        let allowed = name.starts_with("wasi:")
            || [
                "fermyon:spin/key-value@2.0.0",
                "fermyon:spin/sqlite@2.0.0",
                "fermyon:spin/variables@2.0.0",
            ]
            .contains(&name.as_str());
        assert!(allowed, "portico-spin.wasm imports {name}");
    }
}

#[test]
fn no_portico_interface_is_left_unsatisfied() {
    for path in [&artifacts().app_spin, &artifacts().app_wasi] {
        for name in import_list(path) {
            assert!(
                !name.starts_with("portico:"),
                "{} imports {name}",
                path.display()
            );
        }
    }
}

#[test]
fn each_business_component_ships_standalone_over_platform_spin() {
    let standalone = &artifacts().standalone;
    assert_eq!(standalone.len(), 4, "{standalone:?}");
    for path in standalone {
        for name in import_list(path) {
            assert!(
                name.starts_with("wasi:") || name.starts_with("fermyon:spin/"),
                "{} imports {name}",
                path.display()
            );
        }
    }
}
