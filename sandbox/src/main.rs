//! `skipup-sandbox`: serves the SkipUp double on a loopback port until stopped.
//!
//! ```text
//! skipup-sandbox [--port 4010] [--api-key sk_test_sandbox]
//!                [--members owner@vendor.example,alex@vendor.example]
//!                [--fault-rate 0.0] [--rate-limit 120] [--rate-window-ms 60000]
//!                [--latency-ms 0]
//!                [--webhook-secret whsec_sandbox] [--follow-up-odds 0.4]
//!                [--booked-odds 0.7] [--step-ms 2000] [--copies 1] [--shuffle]
//!                [--retry-unit-ms 12000] [--drop-webhooks 0.0]
//! ```
//!
//! Register a webhook endpoint (`POST /api/v1/webhook_endpoints`) and every meeting
//! request it accepts plays a conversation that sends signed webhooks there.
//! `--drop-webhooks 0.3` drops each webhook event (per meeting request and event type,
//! decided from the seed) with that probability: it is never sent, while the request's
//! state, as `GET /api/v1/meeting_requests/{id}` shows it, still changes. Requests can
//! be cancelled, paused and resumed with `POST /api/v1/meeting_requests/{id}/cancel`
//! (body `{"notify": true}` optional), `.../pause` and `.../resume`.

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
            "--rate-window-ms" => {
                let ms: u64 = value()?.parse().map_err(|_| invalid("--rate-window-ms"))?;
                config.rate_window = Duration::from_millis(ms.max(1));
            }
            "--latency-ms" => {
                let ms: u64 = value()?.parse().map_err(|_| invalid("--latency-ms"))?;
                config.latency = Duration::from_millis(ms);
            }
            "--webhook-secret" => config.conversation.webhook_secret = value()?,
            "--follow-up-odds" => {
                config.conversation.follow_up_odds =
                    value()?.parse().map_err(|_| invalid("--follow-up-odds"))?
            }
            "--booked-odds" => {
                config.conversation.booked_odds =
                    value()?.parse().map_err(|_| invalid("--booked-odds"))?
            }
            "--step-ms" => {
                let ms: u64 = value()?.parse().map_err(|_| invalid("--step-ms"))?;
                config.conversation.step = Duration::from_millis(ms);
            }
            "--copies" => {
                let copies: u32 = value()?.parse().map_err(|_| invalid("--copies"))?;
                config.conversation.copies = (1, copies.max(1));
            }
            "--shuffle" => config.conversation.shuffle = true,
            "--retry-unit-ms" => {
                let ms: u64 = value()?.parse().map_err(|_| invalid("--retry-unit-ms"))?;
                config.conversation.retry_unit = Duration::from_millis(ms);
            }
            "--drop-webhooks" => {
                let odds: f64 = value()?.parse().map_err(|_| invalid("--drop-webhooks"))?;
                if !(0.0..=1.0).contains(&odds) {
                    return Err("--drop-webhooks: must be between 0.0 and 1.0".into());
                }
                config.conversation.drop_webhooks = odds;
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
