//! The AWS bill per million leads (see `harness::cost`), from the requests the
//! quiet-day end-to-end test counted and the durations the cold-start harness measured.
//!
//! `cargo test -p recovery --test pipeline aws_requests_per_lead` (writes
//! target/cost/aws-requests-per-lead.json), `scripts/bench-lambda` (writes
//! target/bench/lambda.json), then `cargo run -p harness --bin cost`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use harness::cold::Report;
use harness::cost::{bill, table};
use testkit::meter::{COSTED_REQUESTS, RequestsPerLead};

#[derive(Parser)]
#[command(about = "Prints the AWS cost per million leads from the measured requests and durations")]
struct Args {
    #[arg(long, default_value = COSTED_REQUESTS)]
    requests: PathBuf,
    #[arg(long, default_value = "target/bench/lambda.json")]
    lambda: PathBuf,
}

fn read<T: serde::de::DeserializeOwned>(path: &PathBuf, how: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (made by {how})", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let counted: RequestsPerLead = read(
        &args.requests,
        "cargo test -p recovery --test pipeline aws_requests_per_lead",
    )?;
    let lambda: Report = read(&args.lambda, "scripts/bench-lambda")?;
    println!(
        "From {} leads on a quiet day ({:.1} webhook deliveries each):\n",
        counted.leads, counted.webhook_deliveries_per_lead
    );
    print!("{}", table(&bill(&counted, &lambda)?));
    Ok(())
}
