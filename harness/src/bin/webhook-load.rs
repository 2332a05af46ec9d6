//! A bounded load on the local stack's webhook route (see `harness::load`): requests
//! per second on one core, latency percentiles, and the check that every accepted
//! delivery reached the queue (exit 1 if one did not).
//!
//! `cargo run --release -p harness --bin webhook-load -- --requests 20000 --connections 32`

use std::time::Duration;

use clap::Parser;
use harness::load::{LoadSettings, run};

#[derive(Parser)]
#[command(about = "Loads the local stack's POST /webhooks/skipup and checks the queue afterwards")]
struct Args {
    /// Deliveries to send (each with its own event id).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Keep-alive connections kept busy at once.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Stop sending after this many seconds, whatever is left (at most 240: the
    /// deliveries are signed at the start and SkipUp's signatures stay fresh 300 s).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=240))]
    max_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = run(&LoadSettings {
        requests: args.requests,
        connections: args.connections,
        max_duration: Duration::from_secs(args.max_seconds),
    })
    .await?;
    println!(
        "{} deliveries in {:.2} s over {} connections: {} accepted ({:.0}/s on one core), refused {:?}",
        report.sent,
        report.seconds,
        args.connections,
        report.accepted,
        report.accepted_per_second,
        report.refused
    );
    println!(
        "latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        report.latency.p50_ms, report.latency.p99_ms, report.latency.max_ms
    );
    println!(
        "queued afterwards: {} of {} accepted; missing {}, queued twice {}",
        report.queued,
        report.accepted,
        report.missing.len(),
        report.duplicated.len()
    );
    if !report.nothing_lost() {
        anyhow::bail!("an accepted delivery is not in the queue exactly once");
    }
    Ok(())
}
