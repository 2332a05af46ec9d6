//! The whole pipeline in one process on one port: the Lambda functions' handlers
//! behind `POST /forms` and `POST /webhooks/{connector}` (every connector of
//! `shared::connectors::ALL`), the two queue consumers running in-process, and the
//! local-only `GET /leads/{lead_id}`, `GET /leads?email=ADDRESS` and `GET /report`.
//! Leads and queues are in memory by default, or DynamoDB and SQS when
//! `AWS_ENDPOINT_URL` (an emulator such as `moto_server`) or `LEADS_TABLE` (real AWS)
//! is set. SkipUp is an embedded sandbox unless `SKIPUP_BASE_URL` points elsewhere;
//! HubSpot and Salesforce are embedded doubles unless their settings name real ones
//! (`HUBSPOT_BASE_URL` or `HUBSPOT_ACCESS_TOKEN`, `SALESFORCE_INSTANCE_URL`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::StatusCode;
use serde_json::json;
use shared::adapters::aws::load_sdk_config;
use shared::adapters::crm;
use shared::adapters::dynamo::{DynamoLeadStore, create_leads_table};
use shared::adapters::memory::MemoryLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sqs::{SqsQueue, SqsRedelivery};
use shared::config::{ApplyConfig, Env, FormConfig, IngestConfig, RecoveryConfig};
use shared::handlers::apply_events::{self, ApplyDeps, ApplyPorts};
use shared::handlers::form_intake::{self, FormDeps};
use shared::handlers::reconcile;
use shared::handlers::recovery_check::{self, RecoveryDeps, RecoveryPorts};
use shared::handlers::webhook_ingest::{self, IngestDeps};
use shared::intake::IntakeDeps;
use shared::lead::{Lead, LeadId, TimelineEntry};
use shared::ports::SkipUpApi;
use shared::ports::{Clock, EventLog, LeadListing, LeadStore, Queue, Redelivery, SystemClock};
use shared::report::Funnel;
use shared::skipup::{NewWebhookEndpoint, RECOVERY_EVENTS};
use skipup_sandbox::{
    HubSpotConfig, HubSpotDouble, SalesforceConfig, SalesforceDouble, Sandbox, SandboxConfig,
};

use crate::inbox::{Inbox, LocalQueue, ScaledDelays, ScaledRedelivery, SqsInbox, consume};

/// What the local stack uses where the environment is silent. The secrets are
/// well-known local values: never use them for a deployed stack.
const FIXED_DEFAULTS: [(&str, &str); 5] = [
    ("SKIPUP_API_KEY", "sk_test_sandbox"),
    ("SKIPUP_WEBHOOK_SECRETS", "whsec_sandbox"),
    ("FORM_WEBHOOK_SECRETS", "whsec_local_forms"),
    ("DEFAULT_ORGANIZER_EMAIL", "owner@vendor.example"),
    ("RECOVERY_DELAY_SECONDS", "10"),
];

/// [`FIXED_DEFAULTS`], and `whsec_local_{name}` for every other connector's secrets
/// (`whsec_local_typeform` in `TYPEFORM_WEBHOOK_SECRETS`, ...).
pub fn local_defaults() -> Vec<(&'static str, String)> {
    let mut defaults: Vec<(&'static str, String)> = FIXED_DEFAULTS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    for connector in shared::connectors::ALL {
        if !defaults.iter().any(|(k, _)| *k == connector.secrets_var()) {
            defaults.push((
                connector.secrets_var(),
                format!("whsec_local_{}", connector.name()),
            ));
        }
    }
    defaults
}

/// How to run the stack.
pub struct Options {
    /// 0 for any free port.
    pub port: u16,
    pub env: Env,
    /// The embedded SkipUp sandbox, when `SKIPUP_BASE_URL` is not set.
    pub sandbox: SandboxConfig,
    /// The embedded HubSpot double (`None`: no HubSpot), unless the environment
    /// sets `HUBSPOT_BASE_URL` or `HUBSPOT_ACCESS_TOKEN`.
    pub hubspot: Option<HubSpotConfig>,
    /// The embedded Salesforce double (`None`: no Salesforce), unless the environment
    /// sets `SALESFORCE_INSTANCE_URL`.
    pub salesforce: Option<SalesforceConfig>,
    /// Retry delays are divided by this (1 = as deployed).
    pub retry_scale: f64,
    /// Concurrent consumers of each queue (Lambda's concurrency); 0 for none, so that
    /// accepted deliveries stay queued (load measurements, [`Stack::drain_crm_queue`]).
    pub workers: usize,
    /// AWS SDK settings to use instead of the standard environment (tests).
    pub sdk: Option<aws_config::SdkConfig>,
    /// Run against real AWS (`recovery local --allow-aws`): without it the stack
    /// refuses a table and queues that are not in memory or on a loopback emulator.
    pub allow_aws: bool,
    /// What a test holds in its hands; nothing for `recovery local`.
    pub controls: Controls,
}

/// Explicit controls for tests, so that they order the pipeline's work by what
/// happened rather than by how long they waited.
#[derive(Clone, Default)]
pub struct Controls {
    /// Recovery checks stay in their queue, unread, until [`Stack::release_checks`]:
    /// a test applies every signal meant to come before the checks first.
    pub hold_checks: bool,
    /// The pipeline's clock, the wall clock when `None`. With a [`ShiftedClock`] a
    /// test moves the pipeline's time past a delay instead of waiting it out.
    pub clock: Option<Arc<ShiftedClock>>,
}

/// The wall clock moved forward by as much as the test asked: time still flows (for
/// leases and signatures), and a test jumps past a recovery delay at once.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    shift_ms: std::sync::atomic::AtomicI64,
}

impl ShiftedClock {
    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.shift_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let shift = self.shift_ms.load(std::sync::atomic::Ordering::SeqCst);
        chrono::Utc::now() + chrono::Duration::milliseconds(shift)
    }
}

impl Options {
    /// The process environment over [`local_defaults`].
    pub fn from_process(port: u16) -> Self {
        Self {
            port,
            env: Env::process().with_defaults(local_defaults()),
            sandbox: SandboxConfig::default(),
            hubspot: Some(HubSpotConfig::default()),
            salesforce: Some(SalesforceConfig::default()),
            retry_scale: 30.0,
            workers: 4,
            sdk: None,
            allow_aws: false,
            controls: Controls::default(),
        }
    }
}

/// Where the stack's leads and queues would live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    Memory,
    /// An AWS API emulator on this machine (`AWS_ENDPOINT_URL` on a loopback address).
    Emulator,
    /// Anything else: an AWS account, or an endpoint elsewhere.
    Aws,
}

/// The endpoint variables the AWS SDK reads for the services the stack uses.
const ENDPOINT_VARS: [&str; 3] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
];

impl Backing {
    /// Memory unless the environment or `sdk` name AWS resources; an emulator when
    /// every endpoint named is a loopback one.
    pub fn of(env: &Env, sdk: Option<&aws_config::SdkConfig>) -> Self {
        let mut endpoints: Vec<String> = ENDPOINT_VARS.iter().filter_map(|v| env.get(v)).collect();
        if let Some(url) = sdk.and_then(|sdk| sdk.endpoint_url()) {
            endpoints.push(url.to_string());
        }
        if endpoints.is_empty() {
            return if sdk.is_some() || env.get("LEADS_TABLE").is_some() {
                Backing::Aws
            } else {
                Backing::Memory
            };
        }
        if endpoints
            .iter()
            .all(|url| shared::config::is_loopback_url(url))
        {
            Backing::Emulator
        } else {
            Backing::Aws
        }
    }
}

/// The variables of `env` that hold one of the built-in local secrets.
pub fn built_in_secrets(env: &Env) -> Vec<&'static str> {
    local_defaults()
        .into_iter()
        .filter(|(var, _)| *var == "SKIPUP_API_KEY" || var.ends_with("_SECRETS"))
        .filter(|(var, builtin)| {
            env.get(var).is_some_and(|value| {
                value
                    .split(',')
                    .any(|secret| secret.trim() == builtin.as_str())
            })
        })
        .map(|(var, _)| var)
        .collect()
}

/// Refuses a stack that could attach to production: real AWS needs `allow_aws`, and
/// even then the built-in secrets, which anyone can sign with, are refused.
pub fn check_safe(backing: Backing, env: &Env, allow_aws: bool) -> anyhow::Result<()> {
    if backing != Backing::Aws {
        return Ok(());
    }
    let names = ["LEADS_TABLE"]
        .into_iter()
        .chain(ENDPOINT_VARS)
        .filter(|var| env.get(var).is_some())
        .collect::<Vec<_>>()
        .join(", ");
    if !allow_aws {
        anyhow::bail!(
            "recovery local would use real AWS resources ({names} set, no loopback emulator): \
             its consumers would take that stack's messages and its routes would write to \
             its table. Unset them for the in-memory stack, point AWS_ENDPOINT_URL at a \
             local emulator, or pass --allow-aws if that is what you mean"
        );
    }
    let builtin = built_in_secrets(env);
    if !builtin.is_empty() {
        anyhow::bail!(
            "recovery local --allow-aws refuses the built-in local secrets, which anyone \
             can sign with; set your own {}",
            builtin.join(", ")
        );
    }
    Ok(())
}

/// Answers only requests addressed to a loopback name, so that a web page whose
/// domain was rebound to 127.0.0.1 cannot reach the stack from a browser.
async fn loopback_host_only(request: Request, next: axum::middleware::Next) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    match host {
        Some(host) if shared::config::is_loopback_authority(host) => next.run(request).await,
        _ => problem(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            "the local stack answers requests to localhost, 127.0.0.1 or [::1] only".into(),
        ),
    }
}

/// The CRM doubles the stack started.
struct CrmDoubles {
    hubspot: Option<HubSpotDouble>,
    salesforce: Option<SalesforceDouble>,
}

impl CrmDoubles {
    /// Starts the doubles `options` asks for where `env` names no real CRM, and
    /// returns `env` pointed at them (Salesforce Leads are created for new prospects,
    /// as a double has none of the team's Leads).
    async fn start(
        hubspot: Option<HubSpotConfig>,
        salesforce: Option<SalesforceConfig>,
        mut env: Env,
    ) -> anyhow::Result<(Self, Env)> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let hubspot = match hubspot {
            Some(config)
                if env.get("HUBSPOT_BASE_URL").is_none()
                    && env.get("HUBSPOT_ACCESS_TOKEN").is_none() =>
            {
                let double = HubSpotDouble::start(config, loopback)
                    .await
                    .context("starting the HubSpot double")?;
                env = env.with_defaults([
                    ("HUBSPOT_BASE_URL", double.base_url()),
                    ("HUBSPOT_ACCESS_TOKEN", double.access_token().to_string()),
                ]);
                Some(double)
            }
            _ => None,
        };
        let salesforce = match salesforce {
            Some(config) if env.get("SALESFORCE_INSTANCE_URL").is_none() => {
                let double = SalesforceDouble::start(config, loopback)
                    .await
                    .context("starting the Salesforce double")?;
                env = env.with_defaults([
                    ("SALESFORCE_INSTANCE_URL", double.instance_url()),
                    ("SALESFORCE_CLIENT_ID", double.client_id().to_string()),
                    (
                        "SALESFORCE_CLIENT_SECRET",
                        double.client_secret().to_string(),
                    ),
                    ("SALESFORCE_CREATE_LEADS", "true".to_string()),
                ]);
                Some(double)
            }
            _ => None,
        };
        Ok((
            Self {
                hubspot,
                salesforce,
            },
            env,
        ))
    }

    /// `recovery setup hubspot` against the double, as a team does once.
    async fn set_up(&self, env: &Env) -> anyhow::Result<()> {
        if self.hubspot.is_none() {
            return Ok(());
        }
        let settings = shared::config::crm_settings(env)?
            .hubspot
            .context("the HubSpot double is configured")?;
        let connector = crm::HubSpotConnector::new(settings).map_err(anyhow::Error::msg)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match connector.setup_property().await {
                Ok(_) => return Ok(()),
                Err(error) if tries < 20 => {
                    tracing::debug!(%error, "setting up the HubSpot double; again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error).context("creating the HubSpot property"),
            }
        }
    }
}

/// Queues, store and where they live.
struct Backend {
    store: Arc<dyn LeadStore>,
    events: Arc<dyn EventLog>,
    listing: Arc<dyn LeadListing>,
    checks: Arc<dyn Queue>,
    checks_inbox: Arc<dyn Inbox>,
    check_redelivery: Arc<dyn Redelivery>,
    crm: Arc<dyn Queue>,
    crm_inbox: Arc<dyn Inbox>,
    memory: Option<Arc<MemoryLeadStore>>,
    /// The in-memory event queue, to see what was queued and what is left.
    memory_events: Option<Arc<LocalQueue>>,
    dynamo: Option<Arc<DynamoLeadStore>>,
    description: String,
}

/// How long a received message stays invisible in the local stack's queues: longer
/// than one check can take, as `template.yaml`'s is longer than a function's timeout.
const LOCAL_VISIBILITY: Duration = Duration::from_secs(30);
/// Receives before a message becomes a dead letter (as `template.yaml`).
const MAX_RECEIVES: u32 = 10;

fn memory_backend() -> Backend {
    let store = Arc::new(MemoryLeadStore::new());
    let checks = Arc::new(LocalQueue::standard(LOCAL_VISIBILITY, MAX_RECEIVES));
    let crm = Arc::new(LocalQueue::fifo(LOCAL_VISIBILITY, MAX_RECEIVES));
    Backend {
        store: store.clone(),
        events: store.clone(),
        listing: store.clone(),
        checks: checks.clone(),
        checks_inbox: checks.clone(),
        check_redelivery: checks,
        crm: crm.clone(),
        crm_inbox: crm.clone(),
        memory: Some(store),
        memory_events: Some(crm),
        dynamo: None,
        description: "in-memory leads and queues".into(),
    }
}

/// DynamoDB and SQS: the resources named by the environment, or ones created with
/// `LOCAL_RESOURCE_PREFIX` (default `recovery-local`) on an emulator.
async fn aws_backend(
    env: &Env,
    sdk: Option<aws_config::SdkConfig>,
) -> anyhow::Result<(Backend, Env)> {
    let sdk = match sdk {
        Some(sdk) => sdk,
        None => load_sdk_config().await,
    };
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let prefix = env
        .get("LOCAL_RESOURCE_PREFIX")
        .unwrap_or_else(|| "recovery-local".into());
    let table = match env.get("LEADS_TABLE") {
        Some(table) => table,
        None => {
            let table = format!("{prefix}-leads");
            let exists = dynamo
                .describe_table()
                .table_name(&table)
                .send()
                .await
                .is_ok();
            if !exists {
                create_leads_table(&dynamo, &table)
                    .await
                    .with_context(|| format!("creating table {table}"))?;
            }
            table
        }
    };
    let (checks_url, checks_dlq) = match env.get("CHECK_QUEUE_URL") {
        Some(url) => (url, None),
        None => create_queue_pair(&sqs, &format!("{prefix}-checks"), false).await?,
    };
    let (crm_url, crm_dlq) = match env.get("CRM_QUEUE_URL") {
        Some(url) => (url, None),
        None => create_queue_pair(&sqs, &format!("{prefix}-crm"), true).await?,
    };
    let store = Arc::new(DynamoLeadStore::new(dynamo, &table));
    let env = env.clone().with_defaults([
        ("LEADS_TABLE", table.clone()),
        ("CHECK_QUEUE_URL", checks_url.clone()),
        ("CRM_QUEUE_URL", crm_url.clone()),
    ]);
    let backend = Backend {
        store: store.clone(),
        events: store.clone(),
        listing: store.clone(),
        checks: Arc::new(SqsQueue::new(sqs.clone(), &checks_url)),
        checks_inbox: Arc::new(SqsInbox::new(sqs.clone(), checks_url.clone(), checks_dlq)),
        check_redelivery: Arc::new(SqsRedelivery::new(sqs.clone(), &checks_url)),
        crm: Arc::new(SqsQueue::new(sqs.clone(), &crm_url)),
        crm_inbox: Arc::new(SqsInbox::new(sqs, crm_url, crm_dlq)),
        memory: None,
        memory_events: None,
        dynamo: Some(store),
        description: format!("DynamoDB table {table} and SQS queues"),
    };
    Ok((backend, env))
}

/// A queue and its dead-letter queue (`maxReceiveCount` 10, local visibility).
async fn create_queue_pair(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    fifo: bool,
) -> anyhow::Result<(String, Option<String>)> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let suffix = if fifo { ".fifo" } else { "" };
    let create = |name: String| {
        let mut request = sqs.create_queue().queue_name(name);
        if fifo {
            request = request.attributes(A::FifoQueue, "true");
        }
        request
    };
    let dlq = create(format!("{name}-dlq{suffix}"))
        .send()
        .await
        .with_context(|| format!("creating queue {name}-dlq"))?
        .queue_url
        .context("no queue URL")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(A::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&A::QueueArn).cloned())
        .context("no queue ARN")?;
    let url = create(format!("{name}{suffix}"))
        .attributes(A::VisibilityTimeout, LOCAL_VISIBILITY.as_secs().to_string())
        .attributes(
            A::RedrivePolicy,
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES }).to_string(),
        )
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?
        .queue_url
        .context("no queue URL")?;
    Ok((url, Some(dlq)))
}

/// The running stack. Dropping it stops everything.
pub struct Stack {
    url: String,
    sandbox: Option<Sandbox>,
    crm_doubles: CrmDoubles,
    backend: Backend,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The event consumer's dependencies (for `suppress` and `reconcile` in tests).
    apply: Arc<ApplyDeps>,
    /// Whether the check consumers may read their queue ([`Controls::hold_checks`]).
    checks_released: tokio::sync::watch::Sender<bool>,
    /// The clock a test moves ([`Controls::clock`]).
    shifted: Option<Arc<ShiftedClock>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct App {
    form: FormDeps,
    ingest: IngestDeps,
    store: Arc<dyn LeadStore>,
    listing: Arc<dyn LeadListing>,
}

impl Stack {
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        // Stdout is for people here; the metric lines go to the debug log.
        shared::metrics::to_debug_log();
        let mut env = options.env;
        let backing = Backing::of(&env, options.sdk.as_ref());
        check_safe(backing, &env, options.allow_aws)?;
        let sandbox = match env.get("SKIPUP_BASE_URL") {
            Some(_) => None,
            None => {
                let mut config = options.sandbox;
                if let Some(key) = env.get("SKIPUP_API_KEY") {
                    config.api_key = key;
                }
                if let Some(secret) = first_secret(&env, "SKIPUP_WEBHOOK_SECRETS") {
                    config.conversation.webhook_secret = secret;
                }
                let sandbox = Sandbox::start(config, ([127, 0, 0, 1], 0).into())
                    .await
                    .context("starting the SkipUp sandbox")?;
                env = env.with_defaults([("SKIPUP_BASE_URL", sandbox.base_url())]);
                Some(sandbox)
            }
        };
        let (crm_doubles, with_crms) =
            CrmDoubles::start(options.hubspot, options.salesforce, env).await?;
        env = with_crms;
        crm_doubles.set_up(&env).await?;
        let backend = if backing != Backing::Memory {
            let (backend, with_resources) = aws_backend(&env, options.sdk).await?;
            env = with_resources;
            backend
        } else {
            env = env.with_defaults([
                ("LEADS_TABLE", "memory"),
                ("CHECK_QUEUE_URL", "memory://checks"),
                ("CRM_QUEUE_URL", "memory://crm"),
            ]);
            memory_backend()
        };
        let controls = options.controls;
        let shifted = controls.clock.clone();
        let clock: Arc<dyn Clock> = match controls.clock {
            Some(clock) => clock,
            None => Arc::new(SystemClock),
        };
        let intake = |settings| IntakeDeps {
            store: backend.store.clone(),
            checks: backend.checks.clone(),
            clock: clock.clone(),
            settings,
        };

        let form_config = FormConfig::from_env(&env)?;
        let form = FormDeps {
            signature: form_config.signature,
            max_body_bytes: form_config.max_body_bytes,
            intake: intake(form_config.intake),
        };
        let ingest = IngestDeps {
            config: IngestConfig::from_env(&env)?,
            queue: backend.crm.clone(),
            clock: clock.clone(),
        };
        ingest.log_configuration();
        let recovery_config = RecoveryConfig::from_env(&env)?;
        let skipup = Arc::new(SkipUpClient::new(recovery_config.skipup)?);
        let ports = RecoveryPorts {
            store: backend.store.clone(),
            skipup: skipup.clone(),
            checks: backend.checks.clone(),
            redelivery: Arc::new(ScaledRedelivery {
                inner: backend.check_redelivery.clone(),
                scale: options.retry_scale,
            }),
            clock: clock.clone(),
        };
        let recovery = Arc::new(RecoveryDeps::new(
            ports,
            recovery_config.recovery,
            crm::connectors(recovery_config.crm)?,
        ));
        let apply_config = ApplyConfig::from_env(&env)?;
        let reconcile_settings = apply_config.reconcile;
        let ports = ApplyPorts {
            store: backend.store.clone(),
            events: backend.events.clone(),
            // Its delayed sends are retries (a CRM that failed) and fresh checks
            // (which wait for their due time on arrival): compressed like the rest.
            checks: Arc::new(ScaledDelays {
                inner: backend.checks.clone(),
                scale: options.retry_scale,
            }),
            clock: clock.clone(),
            skipup: skipup.clone(),
            crm: crm::connectors(apply_config.crm)?,
        };
        let crm = Arc::new(ApplyDeps::new(ports, apply_config.settings));
        let reconcile_every =
            Duration::from_secs(env.u64_in("RECONCILE_INTERVAL_SECONDS", 60, 1..=86_400)?);

        let app = Arc::new(App {
            form,
            ingest,
            store: backend.store.clone(),
            listing: backend.listing.clone(),
        });
        let router = Router::new()
            .route(form_intake::ROUTE, any(forms))
            .route("/webhooks/{provider}", any(webhooks))
            .route("/leads", get(leads_by_email))
            .route("/leads/{lead_id}", get(lead))
            .route("/report", get(report))
            .layer(axum::middleware::from_fn(loopback_host_only))
            .with_state(app);
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
                .await
                .with_context(|| format!("cannot listen on port {}", options.port))?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "local stack server stopped");
            }
        })];
        let checks_released = tokio::sync::watch::Sender::new(!controls.hold_checks);
        for _ in 0..options.workers {
            let deps = recovery.clone();
            let inbox = backend.checks_inbox.clone();
            let mut released = checks_released.subscribe();
            tasks.push(tokio::spawn(async move {
                // The sender lives in the stack, which aborts this task when dropped.
                let _ = released.wait_for(|released| *released).await;
                consume(inbox, move |event| {
                    let deps = deps.clone();
                    async move { recovery_check::handle(&deps, event).await }
                })
                .await
            }));
        }
        // FIFO: the queue hands each message group to one consumer at a time.
        for _ in 0..options.workers {
            let deps = crm.clone();
            tasks.push(tokio::spawn(consume(
                backend.crm_inbox.clone(),
                move |event| {
                    let deps = deps.clone();
                    async move { apply_events::handle(&deps, event).await }
                },
            )));
        }

        // Reconciliation, as the schedule runs it in AWS.
        let deps = crm.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(reconcile_every);
            every.tick().await;
            loop {
                every.tick().await;
                match reconcile::reconcile(&deps, &reconcile_settings, false, None).await {
                    Ok(report) if report.asked > 0 => tracing::info!(
                        asked = report.asked,
                        booked = report.booked,
                        cancelled = report.cancelled,
                        "reconciled quiet recoveries with SkipUp"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(reason = %error.reason(), "reconciliation failed"),
                }
            }
        }));
        let apply = crm;

        if sandbox.is_some() {
            skipup
                .create_webhook_endpoint(&NewWebhookEndpoint {
                    url: format!("{url}/webhooks/skipup"),
                    description: "recovery local stack".into(),
                    events: RECOVERY_EVENTS.iter().map(|e| e.to_string()).collect(),
                })
                .await
                .context("registering the local webhook endpoint with the sandbox")?;
        }
        tracing::info!(%url, backend = %backend.description, "local stack serving");
        Ok(Self {
            url,
            sandbox,
            crm_doubles,
            backend,
            tasks,
            apply,
            checks_released,
            shifted,
        })
    }

    /// Moves the pipeline's clock `by` forward; only with a [`Controls::clock`].
    pub fn advance_clock(&self, by: Duration) -> anyhow::Result<()> {
        let clock = self
            .shifted
            .as_ref()
            .context("the stack runs on the wall clock (no Controls::clock)")?;
        clock.advance(by);
        Ok(())
    }

    /// Lets the recovery checks be read ([`Controls::hold_checks`]).
    pub fn release_checks(&self) {
        self.checks_released.send_replace(true);
    }

    /// What the event consumer uses: the store, SkipUp, the CRM connectors.
    pub fn apply_deps(&self) -> &ApplyDeps {
        &self.apply
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// The embedded HubSpot double, if the stack started one.
    pub fn hubspot(&self) -> Option<&HubSpotDouble> {
        self.crm_doubles.hubspot.as_ref()
    }

    /// The embedded Salesforce double, if the stack started one.
    pub fn salesforce(&self) -> Option<&SalesforceDouble> {
        self.crm_doubles.salesforce.as_ref()
    }

    pub fn description(&self) -> &str {
        &self.backend.description
    }

    pub async fn leads(&self) -> anyhow::Result<Vec<Lead>> {
        Ok(self.backend.listing.list_leads().await?)
    }

    pub async fn timeline(&self, id: &LeadId) -> anyhow::Result<Vec<TimelineEntry>> {
        Ok(self.backend.store.timeline(id).await?)
    }

    /// Dead letters in both queues.
    pub async fn dead_letters(&self) -> usize {
        self.backend.checks_inbox.dead_letters().await + self.backend.crm_inbox.dead_letters().await
    }

    /// Takes every message waiting in the CRM queue, as a consumer would (useful only
    /// when the stack runs no consumers of its own).
    pub async fn drain_crm_queue(&self) -> Vec<aws_lambda_events::event::sqs::SqsMessage> {
        let inbox = &self.backend.crm_inbox;
        let mut drained = Vec::new();
        loop {
            let batch = inbox.receive(10).await;
            if batch.is_empty() {
                return drained;
            }
            inbox.settle(&batch, &Default::default()).await;
            drained.extend(batch);
        }
    }

    /// The event queue, when it is in memory: how many deliveries were queued, and
    /// whether every one was applied (`is_empty`).
    pub fn memory_event_queue(&self) -> Option<&LocalQueue> {
        self.backend.memory_events.as_deref()
    }

    /// Events kept because no lead matched them: (key, reason, event JSON).
    pub async fn unmatched(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        match (&self.backend.memory, &self.backend.dynamo) {
            (Some(memory), _) => Ok(memory.unmatched()),
            (None, Some(dynamo)) => Ok(dynamo.unmatched_events().await?),
            (None, None) => anyhow::bail!("the stack has no store"),
        }
    }
}

/// The request with its body read; a body over `limit` is answered 413 here.
async fn buffered(
    request: Request,
    limit: usize,
) -> Result<http::Request<axum::body::Bytes>, Response> {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(bytes) => Ok(http::Request::from_parts(parts, bytes)),
        Err(_) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(json!({ "error": "payload_too_large", "message": format!("body is larger than {limit} bytes") })),
        )
            .into_response()),
    }
}

async fn forms(State(app): State<Arc<App>>, request: Request) -> Response {
    match buffered(request, app.form.max_body_bytes).await {
        Ok(request) => form_intake::handle(&app.form, &request)
            .await
            .into_response(),
        Err(refusal) => refusal,
    }
}

async fn webhooks(State(app): State<Arc<App>>, request: Request) -> Response {
    match buffered(request, app.ingest.config.max_body_bytes).await {
        Ok(request) => webhook_ingest::handle(&app.ingest, &request)
            .await
            .into_response(),
        Err(refusal) => refusal,
    }
}

fn problem(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

async fn lead(State(app): State<Arc<App>>, Path(lead_id): Path<String>) -> Response {
    let Ok(id) = LeadId::parse(&lead_id) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_lead_id",
            "lead ids look like l_ and 24 hex digits".into(),
        );
    };
    let lead = match app.store.get_lead(&id).await {
        Ok(Some(lead)) => lead,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "not_found", format!("no lead {id}")),
        Err(error) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            );
        }
    };
    match app.store.timeline(&id).await {
        Ok(timeline) => axum::Json(json!({ "lead": lead, "timeline": timeline })).into_response(),
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
    }
}

/// `GET /leads?email=ADDRESS`: that address's leads, newest first, however they came in.
async fn leads_by_email(
    State(app): State<Arc<App>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(email) = query
        .get("email")
        .and_then(|e| shared::lead::EmailAddress::parse(e).ok())
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_email",
            "give the address as ?email=ADDRESS".into(),
        );
    };
    match app.listing.list_leads().await {
        Ok(leads) => {
            let mut found: Vec<Lead> = leads
                .into_iter()
                .filter(|lead| lead.profile.email == email)
                .collect();
            found.sort_by_key(|lead| std::cmp::Reverse(lead.submitted_at));
            axum::Json(json!({ "leads": found })).into_response()
        }
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
    }
}

async fn report(State(app): State<Arc<App>>) -> Response {
    match app.listing.list_leads().await {
        Ok(leads) => axum::Json(json!({ "funnel": Funnel::of(&leads) })).into_response(),
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
    }
}

/// The first secret of a comma-separated list (the one a sender signs with).
pub fn first_secret(env: &Env, key: &str) -> Option<String> {
    env.get(key)?
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied()).with_defaults(local_defaults())
    }

    #[test]
    fn the_stack_knows_memory_a_loopback_emulator_and_real_aws_apart() {
        let cases: [(&[(&str, &str)], Backing); 7] = [
            (&[], Backing::Memory),
            (
                &[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")],
                Backing::Emulator,
            ),
            (
                &[
                    ("AWS_ENDPOINT_URL", "http://localhost:4566"),
                    ("LEADS_TABLE", "t"),
                ],
                Backing::Emulator,
            ),
            (&[("LEADS_TABLE", "prod-leads")], Backing::Aws),
            (
                &[("AWS_ENDPOINT_URL", "http://10.0.0.7:4566")],
                Backing::Aws,
            ),
            (
                &[("AWS_ENDPOINT_URL", "http://127.0.0.1.attacker.example:80")],
                Backing::Aws,
            ),
            (
                &[
                    ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                    (
                        "AWS_ENDPOINT_URL_SQS",
                        "https://sqs.eu-west-1.amazonaws.com",
                    ),
                ],
                Backing::Aws,
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(Backing::of(&env(pairs), None), want, "{pairs:?}");
        }
        let sdk = aws_config::SdkConfig::builder().build();
        assert_eq!(Backing::of(&env(&[]), Some(&sdk)), Backing::Aws);
        let emulator = aws_config::SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:5000")
            .build();
        assert_eq!(Backing::of(&env(&[]), Some(&emulator)), Backing::Emulator);
    }

    #[test]
    fn real_aws_needs_the_flag_and_then_refuses_the_built_in_secrets() {
        let prod = env(&[("LEADS_TABLE", "prod-leads")]);
        let err = check_safe(Backing::Aws, &prod, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LEADS_TABLE set") && err.contains("--allow-aws"),
            "{err}"
        );
        let err = check_safe(Backing::Aws, &prod, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("refuses the built-in local secrets"), "{err}");
        for var in [
            "SKIPUP_API_KEY",
            "FORM_WEBHOOK_SECRETS",
            "TYPEFORM_WEBHOOK_SECRETS",
        ] {
            assert!(err.contains(var), "{var} in {err}");
        }
        // One built-in secret among the team's own is still refused.
        let mixed = env(&[
            ("LEADS_TABLE", "prod-leads"),
            ("FORM_WEBHOOK_SECRETS", "whsec_team_new, whsec_local_forms"),
        ]);
        assert_eq!(built_in_secrets(&mixed).len(), local_defaults().len() - 2);
        assert!(built_in_secrets(&mixed).contains(&"FORM_WEBHOOK_SECRETS"));
        let own = local_defaults()
            .into_iter()
            .filter(|(var, _)| *var == "SKIPUP_API_KEY" || var.ends_with("_SECRETS"))
            .map(|(var, _)| (var.to_string(), format!("team_secret_for_{var}")))
            .chain([("LEADS_TABLE".to_string(), "prod-leads".to_string())]);
        let own = Env::from_pairs(own).with_defaults(local_defaults());
        assert_eq!(built_in_secrets(&own), Vec::<&str>::new());
        check_safe(Backing::Aws, &own, true).unwrap();
        // In memory or on a loopback emulator the built-in secrets are what they are for.
        check_safe(Backing::Memory, &env(&[]), false).unwrap();
        check_safe(Backing::Emulator, &env(&[]), false).unwrap();
    }
}
