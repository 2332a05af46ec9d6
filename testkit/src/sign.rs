//! Signs deliveries with `scripts/sign_webhook.py`, a reference implementation in
//! Python's standard library, so tests do not check our signer against itself.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the reference signer: `scheme` is `skipup`, `skipcalls` or `skode`.
pub fn python_sign(scheme: &str, secret: &str, timestamp: Option<i64>, body: &[u8]) -> String {
    let script = crate::workspace_root().join("scripts/sign_webhook.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(scheme)
        .env("WEBHOOK_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(ts) = timestamp {
        command.arg("--timestamp").arg(ts.to_string());
    }
    let mut child = command.spawn().expect("python3 runs the reference signer");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("body written to the signer");
    let output = child.wait_with_output().expect("the signer finishes");
    assert!(output.status.success(), "the reference signer failed");
    String::from_utf8(output.stdout)
        .expect("ASCII header")
        .trim()
        .to_string()
}
