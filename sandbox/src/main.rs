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
//! `--help` describes each flag. Register a webhook endpoint (`POST /api/v1/webhook_endpoints`) and every meeting
//! request it accepts plays a conversation that sends signed webhooks there.
//! `--drop-webhooks 0.3` drops each webhook event (per meeting request and event type,
//! decided from the seed) with that probability: it is never sent, while the request's
//! state, as `GET /api/v1/meeting_requests/{id}` shows it, still changes. Requests can
//! be cancelled, paused and resumed with `POST /api/v1/meeting_requests/{id}/cancel`
//! (body `{"notify": true}` optional), `.../pause` and `.../resume`.

use std::time::Duration;

use clap::Parser;
use skipup_sandbox::{Sandbox, SandboxConfig};

/// Serve the SkipUp double on a loopback port until stopped. A flag left out keeps
/// the sandbox's default (shown in brackets).
#[derive(Parser, Debug)]
#[command(name = "skipup-sandbox", version)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 4010)]
    port: u16,
    /// The API key requests must bear [sk_test_sandbox].
    #[arg(long)]
    api_key: Option<String>,
    /// Active workspace members, comma-separated: the only valid organizers
    /// [owner@vendor.example].
    #[arg(long, value_delimiter = ',')]
    members: Option<Vec<String>>,
    /// Share of requests answered with a transient fault, 0.0 to 1.0 [0.0].
    #[arg(long, value_parser = odds)]
    fault_rate: Option<f64>,
    /// Requests allowed per rate window per API key [120].
    #[arg(long)]
    rate_limit: Option<usize>,
    /// The rate window in milliseconds [60000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate_window_ms: Option<u64>,
    /// Extra latency on every answer, in milliseconds [0].
    #[arg(long)]
    latency_ms: Option<u64>,
    /// The secret the conversations' webhooks are signed with [whsec_sandbox].
    #[arg(long)]
    webhook_secret: Option<String>,
    /// Odds that a conversation sends a follow-up at each step, 0.0 to 1.0 [0.4].
    #[arg(long, value_parser = odds)]
    follow_up_odds: Option<f64>,
    /// Odds that a conversation ends booked rather than cancelled, 0.0 to 1.0 [0.7].
    #[arg(long, value_parser = odds)]
    booked_odds: Option<f64>,
    /// Time between a conversation's steps, in milliseconds [2000].
    #[arg(long)]
    step_ms: Option<u64>,
    /// Send each webhook 1 to this many times [1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    copies: Option<u32>,
    /// Shuffle the order of each conversation's webhooks.
    #[arg(long)]
    shuffle: bool,
    /// The unit of the webhook retry backoff, in milliseconds [12000].
    #[arg(long)]
    retry_unit_ms: Option<u64>,
    /// Odds of never sending a webhook event (the request's state still changes),
    /// 0.0 to 1.0 [0.0].
    #[arg(long, value_parser = odds)]
    drop_webhooks: Option<f64>,
}

/// A probability, 0.0 to 1.0.
fn odds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(odds) if (0.0..=1.0).contains(&odds) => Ok(odds),
        _ => Err("must be a number between 0.0 and 1.0".into()),
    }
}

impl Args {
    /// The port, and the sandbox's defaults with the flags given over them.
    fn config(self) -> (u16, SandboxConfig) {
        let mut config = SandboxConfig::default();
        let ms = Duration::from_millis;
        let conversation = &mut config.conversation;
        if let Some(v) = self.webhook_secret {
            conversation.webhook_secret = v;
        }
        if let Some(v) = self.follow_up_odds {
            conversation.follow_up_odds = v;
        }
        if let Some(v) = self.booked_odds {
            conversation.booked_odds = v;
        }
        if let Some(v) = self.step_ms {
            conversation.step = ms(v);
        }
        if let Some(v) = self.copies {
            conversation.copies = (1, v);
        }
        conversation.shuffle |= self.shuffle;
        if let Some(v) = self.retry_unit_ms {
            conversation.retry_unit = ms(v);
        }
        if let Some(v) = self.drop_webhooks {
            conversation.drop_webhooks = v;
        }
        if let Some(v) = self.api_key {
            config.api_key = v;
        }
        if let Some(v) = self.members {
            config.members = v.into_iter().map(|m| m.trim().to_string()).collect();
        }
        if let Some(v) = self.fault_rate {
            config.fault_rate = v;
        }
        if let Some(v) = self.rate_limit {
            config.rate_limit = v;
        }
        if let Some(v) = self.rate_window_ms {
            config.rate_window = ms(v);
        }
        if let Some(v) = self.latency_ms {
            config.latency = ms(v);
        }
        (self.port, config)
    }
}

#[tokio::main]
async fn main() {
    let (port, config) = Args::parse().config();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(u16, SandboxConfig), clap::Error> {
        Args::try_parse_from(std::iter::once("skipup-sandbox").chain(args.iter().copied()))
            .map(Args::config)
    }

    #[test]
    fn the_flags_set_the_sandbox_and_the_rest_keep_its_defaults() {
        let (port, config) = parse(&[
            "--port",
            "4999",
            "--members",
            "a@vendor.example, b@vendor.example",
            "--rate-window-ms",
            "500",
            "--copies",
            "3",
            "--shuffle",
            "--drop-webhooks",
            "0.3",
        ])
        .unwrap();
        assert_eq!(port, 4999);
        assert_eq!(config.members, ["a@vendor.example", "b@vendor.example"]);
        assert_eq!(config.rate_window, Duration::from_millis(500));
        assert_eq!(config.conversation.copies, (1, 3));
        assert!(config.conversation.shuffle);
        assert_eq!(config.conversation.drop_webhooks, 0.3);
        let defaults = SandboxConfig::default();
        assert_eq!(config.api_key, defaults.api_key);
        assert_eq!(config.rate_limit, defaults.rate_limit);
        assert_eq!(config.conversation.step, defaults.conversation.step);

        let (port, config) = parse(&[]).unwrap();
        assert_eq!(port, 4010);
        assert_eq!(config.members, defaults.members);
        assert!(!config.conversation.shuffle);
    }

    #[test]
    fn a_bad_value_or_an_unknown_flag_is_refused_by_name_and_help_lists_the_flags() {
        for (args, says) in [
            (&["--drop-webhooks", "1.5"][..], "between 0.0 and 1.0"),
            (&["--fault-rate", "x"], "between 0.0 and 1.0"),
            (&["--copies", "0"], "--copies"),
            (&["--rate-window-ms", "0"], "--rate-window-ms"),
            (&["--port"], "--port"),
            (&["--colour"], "--colour"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.to_string().contains(says), "{args:?}: {error}");
        }
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let text = help.to_string();
        for flag in [
            "--drop-webhooks",
            "--step-ms",
            "--members",
            "[default: 4010]",
        ] {
            assert!(text.contains(flag), "{flag} in {text}");
        }
    }
}
