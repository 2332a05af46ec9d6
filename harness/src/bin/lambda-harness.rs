//! Cold start and invocation figures of each Lambda binary (see `harness::cold`).
//!
//! `cargo build --release -p webhook-ingest -p form-intake -p recovery-check -p apply-events
//! -p webhook-health && cargo run --release -p harness --bin lambda-harness`
//! (or `scripts/bench-lambda`, which also builds the arm64 binaries for their size).

use std::path::PathBuf;

use clap::Parser;
use harness::cold::{FUNCTIONS, Settings, run, table};

#[derive(Parser)]
#[command(about = "Times each Lambda binary's init and invocations through a Runtime API emulator")]
struct Args {
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where `cargo lambda build --release --arm64` put the deployable binaries.
    #[arg(long, default_value = "target/lambda")]
    lambda_dir: PathBuf,
    /// Functions to measure (default: all).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<String>,
    /// Processes started per function.
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Warm invocations in the last process (moto's transactions slow down as the
    /// table grows, so a few hundred is about as many as it takes).
    #[arg(long, default_value_t = 100)]
    invocations: usize,
    /// Deliveries in flight at once in webhook-ingest's concurrent mode (1: skip).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let functions = if args.functions.is_empty() {
        FUNCTIONS.iter().map(|f| f.to_string()).collect()
    } else {
        args.functions
    };
    let report = run(&Settings {
        bin_dir: args.bin_dir,
        lambda_dir: args.lambda_dir,
        functions,
        starts: args.starts,
        invocations: args.invocations,
        concurrency: args.concurrency,
    })
    .await?;
    print!("{}", table(&report));
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
