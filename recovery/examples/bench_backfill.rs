//! Benchmark (not a test) of how much of SkipUp's rate limit `recovery backfill` uses:
//! the backfill of `LEADS` generated CSV rows through the same code as the command
//! (`Backfill::run`), against the SkipUp sandbox over HTTP enforcing 120 requests per
//! `WINDOW_SECS`, with the leads in memory so that the store is not what limits the
//! pace (moto's DynamoDB manages about 1.5 leads a second here; DynamoDB itself is
//! far from a limit at 2 a second). Then the same file again: nothing is sent.
//!
//! `cargo run -p recovery --example bench_backfill -- [LEADS=300] [WINDOW_SECS=60]`

use std::sync::Arc;
use std::time::Duration;

use recovery::backfill::{Backfill, Settings, Source, backfill};
use secrecy::SecretString;
use shared::adapters::memory::MemoryLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::config::Env;
use shared::pacing::Pace;
use shared::ports::SystemClock;
use shared::skipup::SkipUpSettings;
use skipup_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Metric lines would drown the summary; this is a person's terminal.
    shared::metrics::to_debug_log();
    let mut args = std::env::args().skip(1);
    let leads: usize = args.next().map_or(Ok(300), |a| a.parse())?;
    let window: f64 = args.next().map_or(Ok(60.0), |a| a.parse())?;
    let limit = Pace {
        requests: 120,
        per: Duration::from_secs_f64(window),
    };
    let sandbox = Sandbox::start(
        SandboxConfig {
            rate_limit: limit.requests as usize,
            rate_window: limit.per,
            ..SandboxConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await?;
    let mut csv = String::from("email,name,company,submitted_at\n");
    for i in 0..leads {
        csv += &format!(
            "lead{i}@prospect{i}.example,Lead {i},Prospect {i},2026-11-{:02}T09:00:00Z\n",
            1 + i % 20
        );
    }
    let path = std::env::temp_dir().join(format!("bench-backfill-{}.csv", std::process::id()));
    std::fs::write(&path, csv)?;
    let store = Arc::new(MemoryLeadStore::new());
    let job = Backfill {
        store: store.clone(),
        skipup: Arc::new(SkipUpClient::new(SkipUpSettings {
            base_url: sandbox.base_url(),
            api_key: SecretString::from(sandbox.api_key()),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        })?),
        env: Env::from_pairs([
            ("SKIPUP_API_KEY", sandbox.api_key()),
            ("DEFAULT_ORGANIZER_EMAIL", "owner@vendor.example"),
        ]),
        clock: Arc::new(SystemClock),
    };
    let settings = Settings {
        pace: limit.share(0.97),
        dry_run: false,
        concurrency: 4,
        progress: false,
    };
    let source = Source::Csv(path.clone());
    println!("== backfill of {leads} leads, SkipUp limit 120 per {window} s");
    let first = backfill(&job, &*store, &source, &settings, limit).await?;
    first.print(&mut std::io::stdout())?;
    let refused = sandbox.status_counts().get(&429).copied().unwrap_or(0);
    println!("  the sandbox answered 429 {refused} time(s)");
    println!("== the same file again");
    let again = backfill(&job, &*store, &source, &settings, limit).await?;
    again.print(&mut std::io::stdout())?;
    let created: usize = sandbox.created_per_participant().values().sum();
    println!("== meeting requests the sandbox created in all: {created}");
    std::fs::remove_file(&path)?;
    Ok(())
}
