//! `recovery`: the operator CLI of the lead recovery pipeline.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use recovery::backfill::{Backfill, Settings, Source, backfill};
use recovery::dlq::{self, QueuePair};
use recovery::ops::{
    Health, HubSpotSetup, QueueKind, Target, print_registration, register_webhook,
};
use recovery::report;
use recovery::secrets::{SplitTargets, split};
use recovery::simulate::{Sender, send};
use recovery::stack::{Options, Stack, first_secret};
use recovery::{demo, stack};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::config::Env;
use shared::handlers::apply_events::{ApplyOutcome, suppress};
use shared::handlers::reconcile::reconcile;
use shared::lead::{EmailAddress, LeadId};
use shared::pacing::Pace;
use shared::ports::{LeadListing, Pointer, SystemClock};
use shared::report::Report;

#[derive(Parser)]
#[command(
    name = "recovery",
    version,
    about = "Operate the lead recovery pipeline",
    after_help = "The operator commands (register-webhook, health, backfill, dlq, report) use the stack \
named by the environment: LEADS_TABLE, CHECK_QUEUE_URL, CRM_QUEUE_URL (the stack's outputs), \
SECRETS_ARN (or SKIPUP_API_KEY and the other variables), AWS credentials and region. With --local \
they use what `recovery local` runs with on an emulator (AWS_ENDPOINT_URL) and its defaults."
)]
struct Cli {
    /// Use the local stack's resources and defaults (`recovery local` with AWS_ENDPOINT_URL).
    #[arg(long, global = true)]
    local: bool,
    /// Print the result as one JSON document on stdout, for scripts (`local` prints its
    /// addresses so; errors stay text on stderr, with exit code 1).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Html,
    Svg,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Show the dead letters (without their bodies), leaving them in place.
    List {
        /// Only this queue's dead letters (default: both).
        #[arg(long)]
        queue: Option<QueueKind>,
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Send dead letters back to their queue, deleting each once it is sent.
    Replay {
        #[arg(long)]
        queue: Option<QueueKind>,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Copy what the internet-facing functions read from SECRETS_ARN into
    /// WEBHOOK_SECRETS_ARN (every *_WEBHOOK_SECRETS but the form's, the *_FIELD_MAP
    /// settings, HUBSPOT_WEBHOOK_URL) and FORM_SECRETS_ARN (FORM_WEBHOOK_SECRETS),
    /// before deploying with SecretsLayout=split. Adds, never overwrites; prints key
    /// names only. Exit 1 if a target holds another value for a key.
    Split {
        /// Show what would be copied; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Create the contact property HUBSPOT_STATUS_PROPERTY (an enumeration of the
    /// statuses) with HUBSPOT_ACCESS_TOKEN; nothing if it exists. Exit 1 if it exists
    /// without every status as an option.
    Hubspot,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on one port: POST /forms, POST /webhooks/{connector},
    /// GET /leads/{lead_id}, GET /leads?email=, GET /report (requests to a loopback host only).
    /// In memory unless AWS_ENDPOINT_URL or LEADS_TABLE is set;
    /// SkipUp is an embedded sandbox unless SKIPUP_BASE_URL is set; HubSpot and Salesforce are
    /// embedded doubles unless HUBSPOT_ACCESS_TOKEN (or HUBSPOT_BASE_URL) and SALESFORCE_INSTANCE_URL are set.
    Local {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Allow real AWS resources (LEADS_TABLE, or an endpoint that is not a loopback
        /// emulator); the built-in local secrets are then refused.
        #[arg(long)]
        allow_aws: bool,
    },
    /// Watch sample leads go from Submitted to Meeting Scheduled (and the other outcomes).
    Demo {
        /// 0 picks a free port.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Register URL (the stack's SkipUpWebhookUrl output) with SkipUp for the recovery events.
    RegisterWebhook {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "lead recovery pipeline")]
        description: String,
    },
    /// List SkipUp's webhook endpoints; exit 1 if one is disabled or an event reaches none.
    Health,
    /// The stack's secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Prepare a CRM for the pipeline, once per account.
    Setup {
        #[command(subcommand)]
        crm: SetupCommand,
    },
    /// Ask SkipUp to recover leads who submitted but never booked, paced under its rate limit.
    /// Safe to interrupt and run again: nothing is sent twice.
    Backfill {
        /// A CSV export with email, name, submitted_at (and optional company, role, phone,
        /// timezone, rep_email, booked, booked_at) columns.
        #[arg(
            long,
            conflicts_with = "from_table",
            required_unless_present = "from_table"
        )]
        csv: Option<std::path::PathBuf>,
        /// Leads in the table still waiting for their check.
        #[arg(long, requires = "since")]
        from_table: bool,
        /// First day (UTC, YYYY-MM-DD) of submissions to consider, with --from-table.
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Show what would be requested; write nothing and call SkipUp for nothing.
        #[arg(long)]
        dry_run: bool,
        /// SkipUp's rate limit: this many requests...
        #[arg(long, default_value_t = 120)]
        limit: u32,
        /// ...per this many seconds.
        #[arg(long, default_value_t = 60.0)]
        window_secs: f64,
        /// Share of the limit to use (the rest is room for the running pipeline).
        #[arg(long, default_value_t = 0.97)]
        share: f64,
        /// Leads in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Stop a lead's recovery for good (the prospect opted out, is a customer, ...): the
    /// lead becomes Suppressed unless it is Meeting Scheduled, and SkipUp's
    /// conversation, if one started, is cancelled without telling the prospect.
    Suppress {
        /// The lead's email (the lead it last started) or its id (`l_...`).
        lead: String,
        /// Why, for the lead's timeline.
        #[arg(long)]
        reason: String,
    },
    /// Ask SkipUp about every recovery it has been quiet about for RECONCILE_AFTER_SECONDS
    /// and apply what it says (what the hourly schedule runs).
    Reconcile {
        /// Show what SkipUp says; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The dead-letter queues of the checks and CRM queues.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The recovery funnel per day: booking rate and median time to book.
    Report {
        /// First day (UTC, YYYY-MM-DD); default: 29 days before --until.
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Last day (UTC); default: today.
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
        /// Default: table (json with --json).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Send a correctly signed sample delivery to URL and print the answer.
    Simulate {
        /// `form` (POST /forms), or a connector: skipup, skipcalls, skode, typeform,
        /// tally, webflow, hubspot, forms, calendly, calcom, savvycal, bookings.
        sender: Sender,
        url: String,
        /// The signing secret (default: the first of the sender's *_WEBHOOK_SECRETS,
        /// else the local stack's).
        #[arg(long)]
        secret: Option<String>,
        /// Send this file's bytes instead of the built-in sample.
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
    // The server logs what it serves; the other commands print their own results.
    let level = match cli.command {
        Command::Local { .. } => "info",
        Command::Demo { .. } | Command::Simulate { .. } => "error",
        _ => "warn",
    };
    // Stdout is for people: metric lines go to the debug log.
    shared::metrics::to_debug_log();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    match run(cli.command, cli.local, cli.json).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("recovery: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, local: bool, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        Command::RegisterWebhook { url, description } => {
            let target = Target::resolve(local).await?;
            let registration = register_webhook(&target.skipup()?, &url, &description).await?;
            emit(
                json,
                || registration.json(),
                |out| print_registration(out, &registration),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Setup {
            crm: SetupCommand::Hubspot,
        } => {
            let target = Target::resolve(local).await?;
            let setup = HubSpotSetup::run(&target.env).await?;
            emit(json, || setup.json(), |out| setup.print(out))?;
            Ok(exit(setup.ready()))
        }
        Command::Secrets {
            command: SecretsCommand::Split { dry_run },
        } => {
            let targets = SplitTargets::from_env(&Env::process())?;
            let client = aws_sdk_secretsmanager::Client::new(
                &shared::adapters::aws::load_sdk_config().await,
            );
            let plan = split(&client, &targets, dry_run).await?;
            emit(
                json,
                || {
                    let mut value = serde_json::to_value(&plan).unwrap_or_default();
                    value["dry_run"] = dry_run.into();
                    value
                },
                |out| plan.print(out, dry_run),
            )?;
            Ok(exit(plan.conflicts.is_empty()))
        }
        Command::Health => {
            let target = Target::resolve(local).await?;
            let health = Health::check(&target.skipup()?).await?;
            emit(json, || health.json(), |out| health.print(out))?;
            Ok(exit(health.healthy()))
        }
        Command::Backfill {
            csv,
            from_table: _,
            since,
            dry_run,
            limit,
            window_secs,
            share,
            concurrency,
        } => {
            if !(window_secs > 0.0 && window_secs.is_finite() && (0.0..=1.0).contains(&share)) {
                anyhow::bail!("--window-secs must be positive and --share between 0 and 1");
            }
            let target = Target::resolve(local).await?;
            let store = Arc::new(DynamoLeadStore::new(target.dynamo(), target.table()?));
            let source = match (csv, since) {
                (Some(path), _) => Source::Csv(path),
                (None, Some(since)) => Source::Table { since },
                (None, None) => anyhow::bail!("give --csv FILE or --from-table --since DATE"),
            };
            let limit = Pace {
                requests: limit.max(1),
                per: Duration::from_secs_f64(window_secs),
            };
            let settings = Settings {
                pace: limit.share(share),
                dry_run,
                concurrency,
                progress: std::io::stderr().is_terminal(),
            };
            let job = Backfill {
                store: store.clone(),
                skipup: Arc::new(target.skipup()?),
                env: target.env.clone(),
                clock: Arc::new(SystemClock),
            };
            let summary = backfill(&job, &*store, &source, &settings, limit).await?;
            emit(json, || summary.json(), |out| summary.print(out))?;
            Ok(exit(summary.complete()))
        }
        Command::Suppress { lead, reason } => {
            let target = Target::resolve(local).await?;
            let (deps, _) = target.apply_deps().await?;
            let id = match LeadId::parse(&lead) {
                Ok(id) => id,
                Err(_) => {
                    let email = EmailAddress::parse(&lead).map_err(|e| {
                        anyhow::anyhow!("{lead:?} is neither a lead id nor an email: {e}")
                    })?;
                    deps.store
                        .find_lead(&Pointer::Email(email))
                        .await?
                        .context("no lead for this email")?
                }
            };
            let outcome = suppress(&deps, &id, &reason)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.reason()))?;
            let lead = deps.store.get_lead(&id).await?.context("no such lead")?;
            // `unchanged`: it was Suppressed already, or Meeting Scheduled (which stands).
            let changed = match outcome {
                ApplyOutcome::Applied {
                    status: Some(_), ..
                } => "suppressed",
                _ => "unchanged",
            };
            emit(
                json,
                || serde_json::json!({ "lead_id": id, "status": lead.status, "outcome": changed }),
                |out| writeln!(out, "{id}: {} ({outcome:?})", lead.status),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile { dry_run } => {
            let target = Target::resolve(local).await?;
            let (deps, settings) = target.apply_deps().await?;
            let report = reconcile(&deps, &settings, dry_run, None)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.reason()))?;
            emit(
                json,
                || serde_json::to_value(&report).unwrap_or_default(),
                |out| {
                    for (id, status) in &report.leads {
                        writeln!(out, "{id}: SkipUp says {status}")?;
                    }
                    writeln!(
                        out,
                        "{}asked {}: {} booked, {} cancelled, {} still open, {} failed",
                        if dry_run { "dry run: " } else { "" },
                        report.asked,
                        report.booked,
                        report.cancelled,
                        report.open,
                        report.failed
                    )
                },
            )?;
            Ok(exit(report.failed == 0))
        }
        Command::Dlq { command } => {
            let target = Target::resolve(local).await?;
            let sqs = target.sqs();
            let (queue, max, replaying) = match command {
                DlqCommand::List { queue, max } => (queue, max, false),
                DlqCommand::Replay { queue, max } => (queue, max, true),
            };
            let kinds = queue.map_or(QueueKind::ALL.to_vec(), |q| vec![q]);
            let mut ok = true;
            let mut queues = Vec::new();
            let mut out = std::io::stdout().lock();
            for kind in kinds {
                let pair = QueuePair::of(&sqs, &target.queue_url(kind).await?).await?;
                if replaying {
                    let done = dlq::replay(&sqs, &pair, max).await?;
                    ok &= done.failed.is_empty();
                    if json {
                        let mut answer = done.json();
                        answer["queue"] = kind.name().into();
                        queues.push(answer);
                        continue;
                    }
                    writeln!(out, "{}: {} replayed", kind.name(), done.replayed.len())?;
                    for (letter, error) in &done.failed {
                        writeln!(out, "  not replayed {}: {error}", letter.message_id)?;
                    }
                } else {
                    let letters = dlq::list(&sqs, &pair, max).await?;
                    if json {
                        queues.push(
                            serde_json::json!({ "queue": kind.name(), "dead_letters": letters }),
                        );
                        continue;
                    }
                    dlq::print(&mut out, kind.name(), &letters)?;
                }
            }
            if json {
                writeln!(out, "{:#}", serde_json::json!({ "queues": queues }))?;
            }
            Ok(exit(ok))
        }
        Command::Report {
            since,
            until,
            format,
            out,
        } => {
            let until = until.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let since = since.unwrap_or(until - chrono::Days::new(29));
            if since > until {
                anyhow::bail!("--since {since} is after --until {until}");
            }
            let target = Target::resolve(local).await?;
            let store = DynamoLeadStore::new(target.dynamo(), target.table()?);
            let leads = store
                .leads_submitted_between(since, until)
                .await
                .context("reading leads")?;
            let report = Report::of(&leads, since, until);
            let format = match (format, json) {
                (None, false) => Format::Table,
                (None | Some(Format::Json), true) => Format::Json,
                (Some(format), false) => format,
                (Some(other), true) => {
                    anyhow::bail!("--json prints the JSON format, not --format {other:?}")
                }
            };
            let text = match format {
                Format::Table => report::table(&report),
                Format::Json => report::json(&report),
                Format::Html => report::html(&report),
                Format::Svg => report::svg(&report),
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { port, allow_aws } => {
            let stack = Stack::start(Options {
                allow_aws,
                ..Options::from_process(port)
            })
            .await?;
            if json {
                let value = serde_json::json!({
                    "url": stack.url(),
                    "backing": stack.description(),
                    "skipup_sandbox": stack.sandbox().map(|s| s.base_url()),
                    "hubspot_double": stack.hubspot().map(|h| h.base_url()),
                    "salesforce_double": stack.salesforce().map(|s| s.instance_url()),
                });
                println!("{value}");
            }
            eprintln!(
                "recovery local: serving {} ({})",
                stack.url(),
                stack.description()
            );
            if let Some(sandbox) = stack.sandbox() {
                eprintln!("recovery local: SkipUp sandbox at {}", sandbox.base_url());
            }
            if let Some(hubspot) = stack.hubspot() {
                eprintln!("recovery local: HubSpot double at {}", hubspot.base_url());
            }
            if let Some(salesforce) = stack.salesforce() {
                eprintln!(
                    "recovery local: Salesforce double at {}",
                    salesforce.instance_url()
                );
            }
            eprintln!(
                "recovery local: POST /forms, POST /webhooks/{{connector}}, GET /leads/{{lead_id}}, GET /leads?email=, GET /report; Ctrl-C stops"
            );
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { port } => {
            if json {
                anyhow::bail!("demo is for people to watch: it has no --json output");
            }
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
                Some(path) => {
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
                }
                None => sender.sample(),
            };
            if let Some(event_type) = event_type {
                let mut json: serde_json::Value =
                    serde_json::from_slice(&body).context("--type needs a JSON body")?;
                let field = if sender == Sender::SKIPUP {
                    "type"
                } else {
                    "event"
                };
                json[field] = serde_json::Value::String(event_type);
                body = serde_json::to_vec(&json)?;
            }
            let env = Env::process().with_defaults(stack::local_defaults());
            let secret = secret
                .or_else(|| first_secret(&env, sender.secret_variable()))
                .context("no signing secret")?;
            let (status, answer) =
                send(&reqwest::Client::new(), sender, &url, &secret, &body).await?;
            emit(
                json,
                || {
                    let body = serde_json::from_str(&answer)
                        .unwrap_or(serde_json::Value::String(answer.clone()));
                    serde_json::json!({ "status": status, "answer": body })
                },
                |out| writeln!(out, "{status} {answer}"),
            )?;
            Ok(if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Prints a command's result on stdout: one JSON document with `--json`, else the
/// text for people.
fn emit(
    json: bool,
    value: impl FnOnce() -> serde_json::Value,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{:#}", value())
    } else {
        text(&mut out)
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
