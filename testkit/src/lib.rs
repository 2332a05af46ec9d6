//! Helpers for integration tests: the `moto_server` AWS emulator, a Lambda Runtime
//! API emulator that drives a real function binary, a meter of AWS requests, and the
//! Python reference signer.

pub mod lambda;
pub mod meter;
pub mod moto;
pub mod sign;

use std::path::PathBuf;

/// The workspace root, for scripts and the Python virtual environment.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits one level below the workspace root")
        .to_path_buf()
}

/// A name nobody else in this test run uses (queues, tables).
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
