//! `recovery`: the operator CLI of the lead recovery pipeline.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use recovery::simulate::{Sender, send};
use recovery::stack::{Options, Stack, first_secret};
use recovery::{demo, stack};
use shared::config::Env;

#[derive(Parser)]
#[command(
    name = "recovery",
    version,
    about = "Operate the lead recovery pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on one port: POST /forms, POST /webhooks/{skipup,skipcalls,skode},
    /// GET /leads/{lead_id}, GET /report. In memory unless AWS_ENDPOINT_URL or LEADS_TABLE is set;
    /// SkipUp is an embedded sandbox unless SKIPUP_BASE_URL is set.
    Local {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Watch sample leads go from Submitted to Meeting Scheduled (and the other outcomes).
    Demo {
        /// 0 picks a free port.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Send a correctly signed sample delivery to URL and print the answer.
    Simulate {
        sender: Sender,
        url: String,
        /// The signing secret (default: the first of the sender's *_WEBHOOK_SECRETS,
        /// else the local stack's).
        #[arg(long)]
        secret: Option<String>,
        /// Send this JSON file instead of the built-in sample.
        #[arg(long)]
        event: Option<std::path::PathBuf>,
        /// Set the event type of the sample (SkipUp: e.g. meeting_request.cancelled).
        #[arg(long = "type")]
        event_type: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Demo { .. } | Command::Simulate { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if quiet { "error" } else { "info" }.into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    match run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("recovery: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Local { port } => {
            let stack = Stack::start(Options::from_process(port)).await?;
            eprintln!(
                "recovery local: serving {} ({})",
                stack.url(),
                stack.description()
            );
            if let Some(sandbox) = stack.sandbox() {
                eprintln!("recovery local: SkipUp sandbox at {}", sandbox.base_url());
            }
            eprintln!(
                "recovery local: POST /forms, POST /webhooks/{{skipup,skipcalls,skode}}, GET /leads/{{lead_id}}, GET /report; Ctrl-C stops"
            );
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { port } => {
            demo::run(port).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            sender,
            url,
            secret,
            event,
            event_type,
        } => {
            let mut body = match event {
                Some(path) => serde_json::from_slice(
                    &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("{} is not JSON", path.display()))?,
                None => sender.sample(),
            };
            if let Some(event_type) = event_type {
                let field = if sender == Sender::Skipup {
                    "type"
                } else {
                    "event"
                };
                body[field] = serde_json::Value::String(event_type);
            }
            let env = Env::process().with_defaults(stack::LOCAL_DEFAULTS);
            let secret = secret
                .or_else(|| first_secret(&env, sender.secret_variable()))
                .context("no signing secret")?;
            let bytes = serde_json::to_vec(&body)?;
            let (status, answer) =
                send(&reqwest::Client::new(), sender, &url, &secret, &bytes).await?;
            println!("{status} {answer}");
            Ok(if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
