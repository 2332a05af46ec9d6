//! Signs deliveries with `scripts/sign_webhook.py`, a reference implementation in
//! Python's standard library, so tests do not check our signer against itself.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the reference signer: `scheme` is `skipup`, `skipcalls` or `skode`.
pub fn python_sign(scheme: &str, secret: &str, timestamp: Option<i64>, body: &[u8]) -> String {
    run(scheme, secret, timestamp, None, body)
}

/// The headers a form tool sends (`typeform`, `tally`, `webflow`, `hubspot`,
/// `hubspot-v2`, `forms`) or a booking tool (`calendly`, `calcom`, `savvycal`,
/// `bookings`), signed by the reference signer at `timestamp` (unix
/// seconds, default now) for a delivery to `url`.
pub fn python_sign_headers(
    scheme: &str,
    secret: &str,
    timestamp: Option<i64>,
    url: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    run(scheme, secret, timestamp, Some(url), body)
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn run(
    scheme: &str,
    secret: &str,
    timestamp: Option<i64>,
    url: Option<&str>,
    body: &[u8],
) -> String {
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
    if let Some(url) = url {
        command.arg("--url").arg(url);
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
