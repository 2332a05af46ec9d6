//! The layering `ARCHITECTURE.md` states, checked on the source of `shared/src`: who
//! may import whom (test modules aside), and every module named in that file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, by its module path (`adapters::crm::hubspot`).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let name = if prefix.is_empty() {
            stem.clone()
        } else {
            format!("{prefix}::{stem}")
        };
        if path.is_dir() {
            modules(&path, &name, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = name.trim_end_matches("::mod").to_string();
            out.insert(name, path);
        }
    }
}

/// The top-level `shared` modules a file's code (not its doc comments, not its
/// `#[cfg(test)]` module) names as `crate::…`.
fn imports(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found: Vec<String> = code
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .flat_map(|l| l.match_indices("crate::").map(move |(i, _)| &l[i + 7..]))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect();
    found.sort();
    found.dedup();
    found
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

const DOMAIN: [&str; 7] = [
    "lead",
    "lifecycle",
    "signature",
    "suppression",
    "metrics",
    "sampling",
    "report",
];

#[test]
fn the_layers_import_only_what_architecture_md_allows() {
    let mut all = BTreeMap::new();
    modules(&src(), "", &mut all);
    let mut broken = Vec::new();
    for (module, path) in &all {
        let layer = top(module);
        for used in imports(path) {
            let allowed = if DOMAIN.contains(&layer) {
                DOMAIN.contains(&used.as_str())
            } else if layer == "adapters" {
                used != "handlers"
            } else if layer == "config" || layer == "handlers" || layer == "lib" {
                used != "adapters" || layer == "config"
            } else {
                used != "adapters" && used != "handlers"
            };
            if !allowed {
                broken.push(format!("{module} imports crate::{used}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn every_module_of_shared_is_named_in_architecture_md() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .unwrap();
    let mut all = BTreeMap::new();
    modules(&src(), "", &mut all);
    let missing: Vec<&String> = all
        .keys()
        .filter(|m| *m != "lib")
        .filter(|m| {
            let leaf = m.rsplit("::").next().unwrap();
            !(doc.contains(&format!("`{m}`"))
                || doc.contains(&format!("{leaf},"))
                || doc.contains(&format!("{leaf}}}"))
                || doc.contains(&format!("`{leaf}`")))
        })
        .collect();
    assert!(missing.is_empty(), "not in ARCHITECTURE.md: {missing:?}");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let top: String = readme.lines().take(40).collect::<Vec<_>>().join("\n");
    assert!(
        top.contains("ARCHITECTURE.md"),
        "the README links ARCHITECTURE.md near its top"
    );
}
