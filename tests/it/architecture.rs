//! The structure ARCHITECTURE.md describes, checked against the code: every top-level module
//! of `src/` has a layer, imports point only to lower layers (so no module imports upward and
//! no import circle can form), no source file is over 600 lines, and every module file starts
//! with a module doc. Reads the source as text; builds and runs nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::harness::root;

/// Most lines of one source file (generated code and tests aside).
const MAX_LINES: usize = 600;

/// The layer table of ARCHITECTURE.md: module name -> layer number, read from the fenced block
/// that follows the `## Layers` heading (`N: module module ...` per line).
fn layers() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable");
    let section = text.split("## Layers").nth(1).expect("ARCHITECTURE.md has a '## Layers' section");
    let block = section.split("```").nth(1).expect("the Layers section has a fenced block");
    let mut out = BTreeMap::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (n, names) = line.split_once(':').unwrap_or_else(|| panic!("layer line '{line}' is not 'N: modules'"));
        let n: usize = n.trim().parse().unwrap_or_else(|_| panic!("layer number in '{line}'"));
        for name in names.split_whitespace() {
            assert!(out.insert(name.to_string(), n).is_none(), "module {name} has two layers");
        }
    }
    assert!(!out.is_empty(), "the layer table is empty");
    out
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable source folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file of `src/` belongs to (`None` for the crate roots).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The top-level modules a file names through `crate::` paths, outside comments:
/// `crate::x::...` and `use crate::{x, y::z}`.
fn crate_imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            } else {
                let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
            rest = after;
        }
    }
    out
}

#[test]
fn imports_point_only_to_lower_layers() {
    let layers = layers();
    let src = root().join("src");
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for file in rust_files(&src) {
        let Some(module) = top_module(&src, &file) else { continue };
        seen.insert(module.clone());
        let Some(&own) = layers.get(&module) else {
            problems.push(format!("src/{module} has no layer in ARCHITECTURE.md"));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for used in crate_imports(&text) {
            // Crate-root re-exports (`crate::Error`, `crate::Result`) live in the bottom layer.
            let used =
                if matches!(used.as_str(), "Error" | "Result" | "FieldError") { "error".to_string() } else { used };
            if used == module {
                continue;
            }
            match layers.get(&used) {
                Some(&theirs) if theirs < own => {}
                Some(&theirs) => problems.push(format!(
                    "{} (layer {own}, {module}) imports crate::{used} (layer {theirs}): imports must point down",
                    file.strip_prefix(root()).unwrap().display()
                )),
                None => problems.push(format!(
                    "{} imports crate::{used}, which has no layer in ARCHITECTURE.md",
                    file.strip_prefix(root()).unwrap().display()
                )),
            }
        }
    }
    for name in layers.keys() {
        if !seen.contains(name) {
            problems.push(format!("ARCHITECTURE.md names module {name}, which is not in src/"));
        }
    }
    assert!(problems.is_empty(), "the module structure departs from ARCHITECTURE.md:\n{}", problems.join("\n"));
}

#[test]
fn source_files_are_small_and_say_what_they_are() {
    let src = root().join("src");
    let mut problems = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{rel} has {lines} lines (at most {MAX_LINES})"));
        }
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{rel} does not start with a module doc (//!)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Routes are registered only through `api::openapi::Api::route`, which documents them and gives
/// them their auth rule: no handler reaches the router another way.
#[test]
fn every_route_goes_through_the_documented_list() {
    let mut problems = Vec::new();
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        for needle in ["axum::routing", ".route(\"", ".route_service(", ".nest(\"", ".nest_service("] {
            if text.contains(needle) {
                problems.push(format!("{rel} uses {needle}"));
            }
        }
    }
    assert!(problems.is_empty(), "routes outside the documented list:\n{}", problems.join("\n"));
}

#[test]
fn the_import_reader_sees_every_form() {
    let text = "use crate::store::Store;\nuse crate::{catalog, events::Kind};\n// crate::api in a comment\nlet x = crate::measure::percentile(&v, 50.0);";
    assert_eq!(crate_imports(text), vec!["store", "catalog", "events", "measure"]);
}
