//! Cold start and invocations of each Lambda binary, run the way Lambda runs it: the
//! process is started against a Runtime API emulator ([`testkit::lambda`]) with the
//! environment the template gives it, its secrets in Secrets Manager, DynamoDB and
//! SQS on `moto_server` and SkipUp as the sandbox. Measured per function:
//! - init: from starting the process to its first `next` poll (configuration read,
//!   secrets fetched, AWS and HTTP clients built, connections warmed);
//! - the first invocation after init, then warm invocations (from the function taking
//!   the event to its answer), with their AWS calls, and without any AWS call (a
//!   refused signature, an empty batch) for the runtime's own overhead;
//! - the peak resident memory (`VmHWM`) and the binary's size.
//!
//! Every answer is checked, so a figure is never taken from a failing function.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::adapters::dynamo::create_leads_table;
use shared::inbound::{InboundEvent, Provider};
use shared::signature::{TimestampedSignature, WebhookSecret};
use skipup_sandbox::{Sandbox, SandboxConfig};
use testkit::lambda::{FunctionProcess, Outcome, RuntimeApi};
use testkit::moto::moto;

use crate::double::AwsDouble;

/// The functions, in the order they run (form-intake's leads feed the consumers).
pub const FUNCTIONS: [&str; 5] = [
    "webhook-ingest",
    "form-intake",
    "recovery-check",
    "apply-events",
    "webhook-health",
];

const FORM_SECRET: &str = "whsec_harness_forms";
const SKIPUP_SECRET: &str = "whsec_harness_skipup";
const ORGANIZER: &str = "owner@vendor.example";
const FORM_EVENT: &str = include_str!("../../events/form-intake.json");
const SKIPUP_EVENT: &str = include_str!("../../events/webhook-ingest-skipup.json");
const HEALTH_EVENT: &str = include_str!("../../events/webhook-health.json");

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the function binaries are (`target/release`).
    pub bin_dir: PathBuf,
    /// Where `cargo lambda build --arm64` put the deployable ones (for their size).
    pub lambda_dir: PathBuf,
    pub functions: Vec<String>,
    /// Processes started per function (each measured for init and first call).
    pub starts: usize,
    /// Warm invocations in the last process.
    pub invocations: usize,
    /// Invocations in flight at once for webhook-ingest's concurrent mode.
    pub concurrency: usize,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let at =
            |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Some(Self {
            n: sorted.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: sorted[sorted.len() - 1],
        })
    }
}

/// The figures of one function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub function: String,
    /// From exec to the first `next` poll, with Secrets Manager and the warm-up calls
    /// answered by moto.
    pub init: Stats,
    /// The same with every AWS call answered at once by a double: the function's own
    /// init (runtime, configuration, clients, TLS roots), loopback round trips included.
    pub init_instant_aws: Stats,
    pub first_invocation: Stats,
    pub warm: Stats,
    /// Warm invocations that make no AWS call: the runtime's and handler's own cost.
    pub no_aws_call: Option<Stats>,
    pub peak_rss_kib: u64,
    /// What a warm invocation writes to its log (JSON lines at INFO, EMF metrics).
    pub log_bytes_per_invocation: usize,
    pub binary_bytes: u64,
    pub arm64_binary_bytes: Option<u64>,
}

/// webhook-ingest serving several deliveries per process (Lambda Managed Instances).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConcurrentFigures {
    pub concurrency: usize,
    pub invocations: usize,
    /// One delivery at a time against an SQS double that answers at once: the whole
    /// invocation, the SDK's call and its loopback round trip included.
    pub invocation_with_instant_sqs: Stats,
    /// The SQS double's latency per `SendMessage` for the rates.
    pub sqs_latency_ms: f64,
    pub sequential_per_second: f64,
    pub concurrent_per_second: f64,
}

/// The latency of the AWS calls themselves against the emulator, for comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub sqs_send_message: Stats,
    pub dynamodb_get_item: Stats,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub functions: Vec<Figures>,
    pub concurrent: Option<ConcurrentFigures>,
    pub baseline: Baseline,
}

/// The resources every function is pointed at.
struct World {
    endpoint: String,
    table: String,
    checks_url: String,
    /// The secret's JSON, as Secrets Manager holds it.
    secret: String,
    secret_arn: String,
    sandbox: Sandbox,
    /// TLS roots from the CA bundle alone, as on Lambda's Amazon Linux 2023 (whose
    /// certificate directory holds only the bundles), not from a directory of one file
    /// per certificate like Debian's, which alone adds several milliseconds to init.
    tls_roots: Vec<(&'static str, String)>,
    /// Emails of the forms posted, until form-intake answers with the lead id.
    submitted: Mutex<VecDeque<String>>,
    /// Leads form-intake created (id, email), for recovery-check.
    leads: Mutex<VecDeque<(String, String)>>,
    /// Leads recovery-check asked SkipUp about, for apply-events.
    requested: Mutex<VecDeque<(String, String)>>,
}

impl World {
    async fn new() -> anyhow::Result<Self> {
        let moto = moto();
        let sdk = moto.sdk_config().await;
        let table = testkit::unique_name("harness-leads");
        create_leads_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await?;
        let checks_url = moto.create_queue("harness-checks").await;
        let sandbox = Sandbox::start(
            SandboxConfig {
                rate_limit: 100_000,
                ..SandboxConfig::default()
            },
            ([127, 0, 0, 1], 0).into(),
        )
        .await?;
        // The secret as the template's PipelineSecrets holds it, read at cold start.
        let secret = json!({
            "SKIPUP_API_KEY": sandbox.api_key(),
            "FORM_WEBHOOK_SECRETS": FORM_SECRET,
            "SKIPUP_WEBHOOK_SECRETS": SKIPUP_SECRET,
            "SKIPCALLS_WEBHOOK_SECRETS": "whsec_harness_skipcalls",
            "SKODE_WEBHOOK_SECRETS": "whsec_harness_skode",
        })
        .to_string();
        let secret_arn = aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(testkit::unique_name("harness-secrets"))
            .secret_string(&secret)
            .send()
            .await?
            .arn
            .context("no secret ARN")?;
        // One endpoint for webhook-health to list; it subscribes to an event the
        // sandbox's conversations never send.
        reqwest::Client::new()
            .post(format!("{}/webhook_endpoints", sandbox.base_url()))
            .bearer_auth(sandbox.api_key())
            .json(&json!({
                "url": "https://pipeline.example/webhooks/skipup",
                "events": ["meeting_request.organizer_changed"],
            }))
            .send()
            .await?
            .error_for_status()?;
        Ok(Self {
            endpoint: moto.endpoint().to_string(),
            table,
            checks_url,
            secret,
            secret_arn,
            sandbox,
            tls_roots: tls_roots()?,
            submitted: Mutex::default(),
            leads: Mutex::default(),
            requested: Mutex::default(),
        })
    }

    /// The function's environment, as `template.yaml` sets it, on moto.
    /// webhook-ingest gets a CRM queue of its own each time: moto's FIFO sends slow
    /// down as a queue fills.
    async fn env(&self, function: &str) -> Vec<(&'static str, String)> {
        let mut env = self.base_env(function, &self.endpoint, &self.secret_arn);
        if function == "webhook-ingest" {
            let queue = moto().create_fifo_queue("harness-crm").await;
            env.push(("CRM_QUEUE_URL", queue));
        }
        env
    }

    /// [`Self::env`] with every AWS service at `double` instead of moto.
    fn env_at(&self, function: &str, double: &AwsDouble) -> Vec<(&'static str, String)> {
        let mut env = self.base_env(function, &double.url, AwsDouble::SECRET_ARN);
        if function == "webhook-ingest" {
            env.push(("CRM_QUEUE_URL", double.crm_queue_url()));
        }
        env
    }

    /// The environment but webhook-ingest's `CRM_QUEUE_URL`, with AWS at `endpoint`.
    fn base_env(
        &self,
        function: &str,
        endpoint: &str,
        secret_arn: &str,
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("SECRETS_ARN", secret_arn.to_string()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
        ];
        env.extend(self.tls_roots.iter().cloned());
        let table = ("LEADS_TABLE", self.table.clone());
        let checks = ("CHECK_QUEUE_URL", self.checks_url.clone());
        match function {
            "form-intake" => env.extend([table, checks, ("RECOVERY_DELAY_SECONDS", "0".into())]),
            "recovery-check" => env.extend([
                table,
                checks,
                ("SKIPUP_BASE_URL", self.sandbox.base_url()),
                ("DEFAULT_ORGANIZER_EMAIL", ORGANIZER.into()),
            ]),
            "apply-events" => env.extend([table, checks]),
            "webhook-health" => env.push(("SKIPUP_BASE_URL", self.sandbox.base_url())),
            _ => {}
        }
        env
    }

    /// The `i`th event with real work for `function`.
    fn event(&self, function: &str, i: usize) -> anyhow::Result<Value> {
        let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Ok(match function {
            "webhook-ingest" => {
                let body = json!({
                    "id": format!("evt_harness_{run}_{i}"),
                    "type": "meeting_request.booked",
                    "created_at": Utc::now().to_rfc3339(),
                    "data": {
                        "id": format!("mr_harness{run}{i}"),
                        "participant_emails": [format!("p{i}@prospect.example")],
                        "status": "booked",
                    },
                });
                http_event(SKIPUP_EVENT, &body.to_string(), SKIPUP_SECRET)?
            }
            "form-intake" => {
                let email = format!("lead{i}.{run}@prospect.example");
                self.submitted.lock().unwrap().push_back(email.clone());
                let body = json!({
                    "email": email,
                    "name": format!("Lead {i}"),
                    "company": "Prospect",
                    "phone": "+1 415 555 0142",
                    "submission_id": format!("sub_{run}_{i}"),
                    "answers": { "Team size": "40" },
                });
                http_event(FORM_EVENT, &body.to_string(), FORM_SECRET)?
            }
            "recovery-check" => {
                let (lead_id, email) = next(&self.leads)?;
                self.requested
                    .lock()
                    .unwrap()
                    .push_back((lead_id.clone(), email));
                let check =
                    json!({ "v": 1, "lead_id": lead_id, "due_at": Utc::now().to_rfc3339() });
                sqs_event(&check.to_string())
            }
            "apply-events" => {
                // SkipUp says the lead booked: the lead moves to Meeting Scheduled.
                let (_, email) = next(&self.requested)?;
                let body = json!({
                    "id": format!("evt_harness_{run}_{i}"),
                    "type": "meeting_request.booked",
                    "data": { "id": format!("mr_harness{run}{i}"), "participant_emails": [email] },
                });
                let event = InboundEvent::from_delivery(
                    Provider::SKIPUP,
                    body.to_string().as_bytes(),
                    Utc::now(),
                );
                sqs_event(&event.to_queue_message().body)
            }
            "webhook-health" => serde_json::from_str(HEALTH_EVENT)?,
            other => bail!("no scenario for {other}"),
        })
    }

    /// An event that the function answers without any AWS call.
    fn bare_event(&self, function: &str) -> anyhow::Result<Option<Value>> {
        Ok(match function {
            "webhook-ingest" => Some(http_event(SKIPUP_EVENT, "{}", "whsec_wrong")?),
            "form-intake" => Some(http_event(FORM_EVENT, "{}", "whsec_wrong")?),
            "recovery-check" | "apply-events" => Some(json!({ "Records": [] })),
            _ => None,
        })
    }

    /// Checks one answer; form-intake's new leads are remembered for the consumers.
    fn check(&self, function: &str, outcome: &Outcome, bare: bool) -> anyhow::Result<()> {
        let Outcome::Response(answer) = outcome else {
            bail!("{function} reported an error: {outcome:?}");
        };
        match function {
            "webhook-ingest" | "form-intake" => {
                let expected = match (bare, function) {
                    (true, _) => 401,
                    (false, "webhook-ingest") => 200,
                    _ => 202,
                };
                ensure!(
                    answer["statusCode"] == expected,
                    "{function} answered {answer}, expected {expected}"
                );
                if function == "form-intake" && !bare {
                    let body: Value =
                        serde_json::from_str(answer["body"].as_str().unwrap_or_default())?;
                    ensure!(body["status"] == "scheduled", "{function}: {body}");
                    let lead_id = body["lead_id"].as_str().context("no lead id")?.to_string();
                    let email = next(&self.submitted)?;
                    self.leads.lock().unwrap().push_back((lead_id, email));
                }
            }
            "recovery-check" | "apply-events" => ensure!(
                answer["batchItemFailures"]
                    .as_array()
                    .is_some_and(Vec::is_empty),
                "{function} failed messages: {answer}"
            ),
            _ => ensure!(
                answer["endpoints"] == 1 && answer["disabled"] == json!([]),
                "{function} answered {answer}"
            ),
        }
        Ok(())
    }
}

/// `SSL_CERT_FILE` at this machine's CA bundle and `SSL_CERT_DIR` at an empty folder,
/// when a bundle is found where Linux distributions keep it.
fn tls_roots() -> anyhow::Result<Vec<(&'static str, String)>> {
    let bundles = [
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/certs/ca-certificates.crt",
    ];
    let Some(bundle) = bundles.iter().find(|b| Path::new(b).exists()) else {
        return Ok(vec![]);
    };
    let empty = std::env::temp_dir().join("harness-no-cert-dir");
    std::fs::create_dir_all(&empty)?;
    Ok(vec![
        ("SSL_CERT_FILE", bundle.to_string()),
        ("SSL_CERT_DIR", empty.display().to_string()),
    ])
}

fn next<T>(from: &Mutex<VecDeque<T>>) -> anyhow::Result<T> {
    from.lock().unwrap().pop_front().context(
        "nothing left: form-intake runs before recovery-check, and that before apply-events",
    )
}

/// An API Gateway HTTP API event from the sample `template`, carrying `body` signed
/// now with `secret` (`t=,v1=`, as SkipUp and the forms sign).
fn http_event(template: &str, body: &str, secret: &str) -> anyhow::Result<Value> {
    let mut event: Value = serde_json::from_str(template)?;
    let signature = TimestampedSignature::sign(
        &WebhookSecret::new(secret)?,
        Utc::now().timestamp(),
        body.as_bytes(),
    );
    event["headers"]["x-webhook-signature"] = Value::String(signature);
    event["headers"]["content-length"] = Value::String(body.len().to_string());
    event["body"] = Value::String(body.into());
    event["isBase64Encoded"] = Value::Bool(false);
    Ok(event)
}

/// An SQS event of one message.
fn sqs_event(body: &str) -> Value {
    json!({ "Records": [{
        "messageId": uuid::Uuid::new_v4().to_string(),
        "receiptHandle": uuid::Uuid::new_v4().simple().to_string(),
        "body": body,
        "attributes": { "ApproximateReceiveCount": "1" },
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:harness",
        "awsRegion": "us-east-1",
    }]})
}

/// A function binary, started as Lambda starts it.
struct Started {
    process: FunctionProcess,
    api: RuntimeApi,
    init: Duration,
}

async fn start(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Started> {
    let api = RuntimeApi::start().await;
    let process = FunctionProcess::spawn(binary, &api, env);
    let Some(polled) = api.first_poll(Duration::from_secs(20)).await else {
        bail!(
            "{} did not ask for an event within 20 s (init error: {:?}); its log:\n{}",
            binary.display(),
            api.init_error(),
            process.logs()
        );
    };
    let init = polled - process.started();
    Ok(Started { process, api, init })
}

async fn invoke(
    world: &World,
    function: &str,
    started: &Started,
    event: Value,
    bare: bool,
) -> anyhow::Result<Duration> {
    let (outcome, took) = started.api.invoke_timed(event).await;
    if let Err(error) = world.check(function, &outcome, bare) {
        let logs = started.process.logs();
        let tail: Vec<&str> = logs.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{error:#}\n{function}'s last log lines:\n{}",
            tail.join("\n")
        );
    }
    Ok(took)
}

async fn measure(world: &World, settings: &Settings, function: &str) -> anyhow::Result<Figures> {
    let binary = settings.bin_dir.join(function);
    ensure!(
        binary.exists(),
        "{} is missing: cargo build --release -p {function}",
        binary.display()
    );
    let (mut inits, mut firsts, mut warm, mut bare) = (vec![], vec![], vec![], vec![]);
    let (mut peak_rss_kib, mut log_bytes) = (0, 0);
    let mut event_no = 0;
    for start_no in 0..settings.starts {
        let started = start(&binary, &world.env(function).await).await?;
        inits.push(started.init);
        firsts.push(
            invoke(
                world,
                function,
                &started,
                world.event(function, event_no)?,
                false,
            )
            .await?,
        );
        event_no += 1;
        if start_no + 1 == settings.starts {
            let logged = started.process.logs().len();
            for _ in 0..settings.invocations {
                let event = world.event(function, event_no)?;
                warm.push(invoke(world, function, &started, event, false).await?);
                event_no += 1;
            }
            log_bytes = (started.process.logs().len() - logged) / settings.invocations.max(1);
            if let Some(event) = world.bare_event(function)? {
                for _ in 0..settings.invocations {
                    bare.push(invoke(world, function, &started, event.clone(), true).await?);
                }
            }
        }
        peak_rss_kib = peak_rss_kib.max(started.process.peak_rss_kib().unwrap_or(0));
    }
    // Init again with AWS answering at once: the function's own share of it.
    let double = AwsDouble::start(Duration::ZERO, &world.secret).await?;
    let mut instant_inits = Vec::new();
    for _ in 0..settings.starts {
        instant_inits.push(start(&binary, &world.env_at(function, &double)).await?.init);
    }
    let arm64 = settings.lambda_dir.join(function).join("bootstrap");
    Ok(Figures {
        function: function.to_string(),
        init: Stats::of(&inits).context("no start")?,
        init_instant_aws: Stats::of(&instant_inits).context("no start")?,
        first_invocation: Stats::of(&firsts).context("no invocation")?,
        warm: Stats::of(&warm).context("no warm invocation")?,
        no_aws_call: Stats::of(&bare),
        peak_rss_kib,
        log_bytes_per_invocation: log_bytes,
        binary_bytes: std::fs::metadata(&binary)?.len(),
        arm64_binary_bytes: std::fs::metadata(arm64).ok().map(|m| m.len()),
    })
}

/// webhook-ingest against an SQS double instead of moto (which answers one request
/// at a time, slower than SQS): first one delivery at a time against a double that
/// answers at once, for the function's own time around its one SQS call; then, with
/// SQS's usual latency, the same deliveries one at a time and `concurrency` at a time
/// (`AWS_LAMBDA_MAX_CONCURRENCY`, Lambda Managed Instances), one process each. Every
/// accepted delivery must have reached the double.
async fn concurrent(world: &World, settings: &Settings) -> anyhow::Result<ConcurrentFigures> {
    let function = "webhook-ingest";
    let binary = settings.bin_dir.join(function);
    let total = settings.invocations.max(settings.concurrency);
    // SQS at the double, the secret still from moto.
    let env = |double: &AwsDouble, concurrency: usize| {
        let mut env = world.base_env(function, &world.endpoint, &world.secret_arn);
        env.push(("AWS_ENDPOINT_URL_SQS", double.url.clone()));
        env.push(("CRM_QUEUE_URL", double.crm_queue_url()));
        env.push(("AWS_LAMBDA_MAX_CONCURRENCY", concurrency.to_string()));
        env
    };
    let instant = AwsDouble::start(Duration::ZERO, "{}").await?;
    let (_, invocation) = deliver(world, &binary, &env(&instant, 1), total, 1).await?;
    let usual = AwsDouble::start(SQS_LATENCY, "{}").await?;
    let (sequential_per_second, _) = deliver(world, &binary, &env(&usual, 1), total, 1).await?;
    let concurrency = settings.concurrency;
    let (concurrent_per_second, _) = deliver(
        world,
        &binary,
        &env(&usual, concurrency),
        total,
        concurrency,
    )
    .await?;
    let queued = instant.sent() + usual.sent();
    ensure!(
        queued == 3 * total,
        "the SQS doubles received {queued} messages for {} accepted deliveries",
        3 * total
    );
    Ok(ConcurrentFigures {
        concurrency: settings.concurrency,
        invocations: total,
        invocation_with_instant_sqs: invocation,
        sqs_latency_ms: SQS_LATENCY.as_secs_f64() * 1e3,
        sequential_per_second,
        concurrent_per_second,
    })
}

/// `total` deliveries to a new webhook-ingest process, `concurrency` at a time: how
/// many per second, and how long each invocation took.
async fn deliver(
    world: &World,
    binary: &Path,
    env: &[(&str, String)],
    total: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, Stats)> {
    let function = "webhook-ingest";
    let process = start(binary, env).await?;
    let began = Instant::now();
    let mut took = Vec::with_capacity(total);
    for wave in (0..total).collect::<Vec<_>>().chunks(concurrency) {
        let events: Vec<_> = wave
            .iter()
            .map(|i| world.event(function, *i))
            .collect::<Result<_, _>>()?;
        let answers = futures::future::join_all(
            events
                .into_iter()
                .map(|event| invoke(world, function, &process, event, false)),
        )
        .await;
        for answer in answers {
            took.push(answer?);
        }
    }
    let per_second = total as f64 / began.elapsed().as_secs_f64();
    Ok((per_second, Stats::of(&took).context("no invocation")?))
}

/// SQS's usual `SendMessage` latency within a region.
const SQS_LATENCY: Duration = Duration::from_millis(10);

/// The AWS calls alone, from a warmed client in this process.
async fn baseline(world: &World) -> anyhow::Result<Baseline> {
    let sdk = moto().sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let queue = moto().create_fifo_queue("harness-baseline").await;
    let (mut sends, mut gets) = (vec![], vec![]);
    for i in 0..51 {
        let began = Instant::now();
        sqs.send_message()
            .queue_url(&queue)
            .message_body("{}")
            .message_group_id("harness")
            .message_deduplication_id(uuid::Uuid::new_v4().simple().to_string())
            .send()
            .await?;
        let sent = began.elapsed();
        let began = Instant::now();
        dynamo
            .get_item()
            .table_name(&world.table)
            .key("pk", AttributeValue::S("LEAD#none".into()))
            .key("sk", AttributeValue::S("LEAD".into()))
            .send()
            .await?;
        // The first of each opens the connection.
        if i > 0 {
            sends.push(sent);
            gets.push(began.elapsed());
        }
    }
    Ok(Baseline {
        sqs_send_message: Stats::of(&sends).context("no send")?,
        dynamodb_get_item: Stats::of(&gets).context("no get")?,
    })
}

/// Measures every function in `settings`, in [`FUNCTIONS`] order.
pub async fn run(settings: &Settings) -> anyhow::Result<Report> {
    for name in &settings.functions {
        ensure!(
            FUNCTIONS.contains(&name.as_str()),
            "unknown function {name}"
        );
    }
    let world = World::new().await?;
    let mut functions = Vec::new();
    for function in FUNCTIONS
        .iter()
        .filter(|f| settings.functions.iter().any(|n| n == *f))
    {
        functions.push(measure(&world, settings, function).await?);
    }
    let concurrent =
        if settings.functions.iter().any(|f| f == "webhook-ingest") && settings.concurrency > 1 {
            Some(concurrent(&world, settings).await?)
        } else {
            None
        };
    Ok(Report {
        functions,
        concurrent,
        baseline: baseline(&world).await?,
    })
}

/// The report as a table for a terminal or the README.
pub fn table(report: &Report) -> String {
    let mut out = String::from(
        "| function | init p50 (max) | init, instant AWS | 1st call p50 | warm call p50 / p99 | no AWS call p50 | peak RSS | binary x86_64 | binary arm64 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / 1_048_576.0);
    for f in &report.functions {
        out.push_str(&format!(
            "| {} | {:.1} ms ({:.1}) | {:.1} ms | {:.2} ms | {:.2} / {:.2} ms | {} | {:.1} MiB | {} | {} |\n",
            f.function,
            f.init.p50_ms,
            f.init.max_ms,
            f.init_instant_aws.p50_ms,
            f.first_invocation.p50_ms,
            f.warm.p50_ms,
            f.warm.p99_ms,
            f.no_aws_call
                .map_or("-".into(), |s| format!("{:.3} ms", s.p50_ms)),
            f.peak_rss_kib as f64 / 1024.0,
            mib(f.binary_bytes),
            f.arm64_binary_bytes.map_or("not built".into(), mib),
        ));
    }
    let b = &report.baseline;
    out.push_str(&format!(
        "\nAWS calls alone against moto_server, p50: SQS SendMessage {:.2} ms, DynamoDB GetItem {:.2} ms\n",
        b.sqs_send_message.p50_ms, b.dynamodb_get_item.p50_ms
    ));
    if let Some(c) = &report.concurrent {
        out.push_str(&format!(
            "webhook-ingest, an SQS double in place of moto: {:.2} ms per invocation p50 (p99 {:.2}) when SQS answers at once; \
             with SQS answering in {:.0} ms, {} deliveries at {:.0}/s one at a time, {:.0}/s with AWS_LAMBDA_MAX_CONCURRENCY={}\n",
            c.invocation_with_instant_sqs.p50_ms,
            c.invocation_with_instant_sqs.p99_ms,
            c.sqs_latency_ms,
            c.invocations,
            c.sequential_per_second,
            c.concurrent_per_second,
            c.concurrency
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_off_the_sorted_samples() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let stats = Stats::of(&samples).unwrap();
        assert_eq!(
            (stats.n, stats.p50_ms, stats.p99_ms, stats.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        let one = Stats::of(&[Duration::from_micros(1500)]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (1.5, 1.5));
        assert!(Stats::of(&[]).is_none());
    }
}
