//! The workspace's declared `rust-version` is true of every locked dependency, and
//! the lock holds one HTTP stack: `cargo metadata` on the workspace itself.

use std::process::Command;

use serde_json::Value;

/// The target this test runs on (`host:` of `rustc -vV`).
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host")
        .to_string()
}

/// The workspace's packages as built here (the host's dependencies, all of them
/// already fetched by the build that runs this test).
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
        ])
        .arg(host())
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `1.94.1` as (1, 94, 1); `1.88` as (1, 88, 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn the_declared_msrv_covers_every_locked_dependency_and_one_http_stack_is_locked() {
    let metadata = metadata();
    let packages = metadata["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|p| p["name"] == "shared")
        .and_then(|p| p["rust_version"].as_str())
        .expect("the workspace declares a rust-version");
    let needed: Vec<String> = packages
        .iter()
        .filter(|p| p["source"].is_string())
        .filter_map(|p| {
            let theirs = p["rust_version"].as_str()?;
            (version(theirs) > version(ours))
                .then(|| format!("{} {} needs {theirs}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        needed.is_empty(),
        "rust-version {ours} is not true: {needed:?}"
    );
    // One `http` and one of each smithy crate: a second copy means an SDK client
    // held back on an old version, dragging a second stack into every function.
    for name in [
        "http",
        "aws-smithy-http",
        "aws-smithy-runtime",
        "aws-smithy-json",
    ] {
        let versions: Vec<&str> = packages
            .iter()
            .filter(|p| p["name"] == name)
            .filter_map(|p| p["version"].as_str())
            .collect();
        assert_eq!(versions.len(), 1, "{name}: {versions:?}");
    }
}
