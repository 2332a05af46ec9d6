//! `skipup-sandbox`: serves the SkipUp double on a loopback port until stopped.
//!
//! ```text
//! skipup-sandbox [--port 4010] [--api-key sk_test_sandbox]
//!                [--members owner@vendor.example,alex@vendor.example]
//!                [--fault-rate 0.0] [--rate-limit 120] [--latency-ms 0]
//! ```

use std::time::Duration;

use skipup_sandbox::{Sandbox, SandboxConfig};

fn parse_args() -> Result<(u16, SandboxConfig), String> {
    let mut port = 4010;
    let mut config = SandboxConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let invalid = |flag: &str| format!("{flag}: invalid value");
        match flag.as_str() {
            "--port" => port = value()?.parse().map_err(|_| invalid("--port"))?,
            "--api-key" => config.api_key = value()?,
            "--members" => {
                config.members = value()?.split(',').map(|m| m.trim().to_string()).collect()
            }
            "--fault-rate" => {
                config.fault_rate = value()?.parse().map_err(|_| invalid("--fault-rate"))?
            }
            "--rate-limit" => {
                config.rate_limit = value()?.parse().map_err(|_| invalid("--rate-limit"))?
            }
            "--latency-ms" => {
                let ms: u64 = value()?.parse().map_err(|_| invalid("--latency-ms"))?;
                config.latency = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((port, config))
}

#[tokio::main]
async fn main() {
    let (port, config) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("skipup-sandbox: {message}");
            std::process::exit(2);
        }
    };
    let sandbox = match Sandbox::start(config, ([127, 0, 0, 1], port).into()).await {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("skipup-sandbox: cannot listen on port {port}: {error}");
            std::process::exit(1);
        }
    };
    eprintln!("skipup-sandbox: serving {}", sandbox.base_url());
    let _ = tokio::signal::ctrl_c().await;
}
