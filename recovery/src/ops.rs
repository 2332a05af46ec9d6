//! What the operator commands work on: the deployed stack named by the environment
//! (`LEADS_TABLE`, `CHECK_QUEUE_URL`, `CRM_QUEUE_URL`, `SECRETS_ARN`, `SKIPUP_*`), or
//! with `--local` the resources `recovery local` creates on an emulator
//! (`AWS_ENDPOINT_URL`), with the local stack's defaults. And the two SkipUp webhook
//! commands: `register-webhook` and `health`.

use std::io::Write;

use anyhow::{Context, bail};
use aws_config::SdkConfig;
use secrecy::{ExposeSecret, SecretString};
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::crm::{HubSpotConnector, PropertySetup};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sqs::SqsQueue;
use shared::config::{ApplyConfig, Env, skipup_settings};
use shared::handlers::apply_events::{ApplyDeps, ApplyPorts};
use shared::handlers::reconcile::ReconcileSettings;
use shared::handlers::webhook_health::{HealthReport, check};
use shared::ports::SkipUpApi;
use shared::ports::SystemClock;
use shared::skipup::{NewWebhookEndpoint, RECOVERY_EVENTS, WebhookEndpoint};

use crate::stack::local_defaults;

/// The two queues whose dead letters an operator handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueKind {
    /// Delayed no-booking checks (standard queue).
    Checks,
    /// Verified webhook events for apply-events (FIFO queue).
    Crm,
}

impl QueueKind {
    pub const ALL: [QueueKind; 2] = [QueueKind::Checks, QueueKind::Crm];

    fn variable(self) -> &'static str {
        match self {
            QueueKind::Checks => "CHECK_QUEUE_URL",
            QueueKind::Crm => "CRM_QUEUE_URL",
        }
    }

    /// The queue's name in the local stack (see `stack.rs`).
    fn local_name(self, prefix: &str) -> String {
        match self {
            QueueKind::Checks => format!("{prefix}-checks"),
            QueueKind::Crm => format!("{prefix}-crm.fifo"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            QueueKind::Checks => "checks",
            QueueKind::Crm => "crm",
        }
    }
}

/// The configured stack.
pub struct Target {
    pub env: Env,
    pub sdk: SdkConfig,
    local: bool,
}

impl Target {
    /// The process environment, the secret in `SECRETS_ARN` over it, and with `local`
    /// the local stack's defaults under both.
    pub async fn resolve(local: bool) -> anyhow::Result<Self> {
        let sdk = load_sdk_config().await;
        Self::with(local, sdk, None).await
    }

    /// As [`Target::resolve`], with explicit SDK settings and variables (tests).
    pub async fn with(local: bool, sdk: SdkConfig, env: Option<Env>) -> anyhow::Result<Self> {
        let mut env = match env {
            Some(env) => env,
            None => load_env(&sdk).await.context("reading SECRETS_ARN")?,
        };
        if local {
            env = env.with_defaults(local_defaults());
        }
        Ok(Self { env, sdk, local })
    }

    fn prefix(&self) -> String {
        self.env
            .get("LOCAL_RESOURCE_PREFIX")
            .unwrap_or_else(|| "recovery-local".into())
    }

    pub fn skipup(&self) -> anyhow::Result<SkipUpClient> {
        Ok(SkipUpClient::new(skipup_settings(&self.env)?)?)
    }

    /// What `apply-events` runs with, on this stack's table and checks queue: for
    /// `suppress` and `reconcile`, which act as it does.
    pub async fn apply_deps(&self) -> anyhow::Result<(ApplyDeps, ReconcileSettings)> {
        use std::sync::Arc;
        let table = self.table()?;
        let checks = self.queue_url(QueueKind::Checks).await?;
        let env = self.env.clone().with_defaults([
            ("LEADS_TABLE", table.clone()),
            ("CHECK_QUEUE_URL", checks.clone()),
        ]);
        let config = ApplyConfig::from_env(&env)?;
        let store = Arc::new(DynamoLeadStore::new(self.dynamo(), table));
        let ports = ApplyPorts {
            store: store.clone(),
            events: store,
            checks: Arc::new(SqsQueue::new(self.sqs(), checks)),
            clock: Arc::new(SystemClock),
            skipup: Arc::new(SkipUpClient::new(config.skipup)?),
            crm: shared::adapters::crm::connectors(config.crm)?,
        };
        let deps = ApplyDeps::new(ports, config.settings);
        Ok((deps, config.reconcile))
    }

    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// `LEADS_TABLE`, or the local stack's table.
    pub fn table(&self) -> anyhow::Result<String> {
        match (self.env.get("LEADS_TABLE"), self.local) {
            (Some(table), _) => Ok(table),
            (None, true) => Ok(format!("{}-leads", self.prefix())),
            (None, false) => bail!(
                "LEADS_TABLE is not set: use the stack's LeadsTableName output, or --local for `recovery local` on an emulator"
            ),
        }
    }

    /// The queue's URL from the environment, or the local stack's queue by name.
    pub async fn queue_url(&self, kind: QueueKind) -> anyhow::Result<String> {
        if let Some(url) = self.env.get(kind.variable()) {
            return Ok(url);
        }
        if !self.local {
            bail!(
                "{} is not set: use the stack's outputs, or --local for `recovery local` on an emulator",
                kind.variable()
            );
        }
        let name = kind.local_name(&self.prefix());
        self.sqs()
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .with_context(|| format!("finding queue {name} (has `recovery local` run?)"))?
            .queue_url
            .context("no queue URL")
    }
}

/// What `register-webhook` did.
#[derive(Debug)]
pub enum Registration {
    Created {
        endpoint: WebhookEndpoint,
        /// The signing secret, when SkipUp returns it (shown once, to the operator).
        secret: Option<SecretString>,
    },
    /// An endpoint with this URL exists already; nothing was created.
    Existing(WebhookEndpoint),
}

/// What `setup hubspot` found or did to the status property.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotSetup {
    pub property: String,
    pub setup: PropertySetup,
}

impl HubSpotSetup {
    /// Creates the status property unless it exists.
    pub async fn run(env: &Env) -> anyhow::Result<Self> {
        let settings = shared::config::crm_settings(env)?
            .hubspot
            .context("HUBSPOT_ACCESS_TOKEN is not set (a private app's access token)")?;
        let property = settings.status_property.clone();
        let hubspot = HubSpotConnector::new(settings).map_err(anyhow::Error::msg)?;
        let setup = hubspot.setup_property().await?;
        Ok(Self { property, setup })
    }

    /// `false` when the property exists without every status as an option.
    pub fn ready(&self) -> bool {
        !matches!(self.setup, PropertySetup::MissingOptions(_))
    }

    /// `--json`: `result` is `created`, `exists` or `missing_options`.
    pub fn json(&self) -> serde_json::Value {
        let (result, missing): (&str, &[String]) = match &self.setup {
            PropertySetup::Created => ("created", &[]),
            PropertySetup::Exists => ("exists", &[]),
            PropertySetup::MissingOptions(missing) => ("missing_options", missing),
        };
        serde_json::json!({
            "property": self.property,
            "result": result,
            "missing_options": missing,
            "ready": self.ready(),
        })
    }

    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let property = &self.property;
        match &self.setup {
            PropertySetup::Created => writeln!(
                out,
                "created the contact property {property} (an enumeration of the statuses)"
            ),
            PropertySetup::Exists => writeln!(
                out,
                "the contact property {property} exists with every status: nothing to do"
            ),
            PropertySetup::MissingOptions(missing) => writeln!(
                out,
                "the contact property {property} exists but lacks the options {}: add them in \
                 HubSpot (Settings > Properties), or delete it and run this again",
                missing.join(", ")
            ),
        }
    }
}

/// Registers `url` for the recovery events, unless an endpoint with that URL exists.
pub async fn register_webhook(
    skipup: &dyn SkipUpApi,
    url: &str,
    description: &str,
) -> anyhow::Result<Registration> {
    if let Err(reason) = shared::config::check_outbound_url(url) {
        bail!("--url {reason}, such as the stack's SkipUpWebhookUrl output");
    }
    let existing = skipup
        .list_webhook_endpoints()
        .await
        .context("listing SkipUp webhook endpoints")?;
    if let Some(endpoint) = existing.into_iter().find(|e| e.url == url) {
        return Ok(Registration::Existing(endpoint));
    }
    let created = skipup
        .create_webhook_endpoint(&NewWebhookEndpoint {
            url: url.to_string(),
            description: description.to_string(),
            events: RECOVERY_EVENTS.iter().map(|e| e.to_string()).collect(),
        })
        .await
        .context("registering the webhook endpoint with SkipUp")?;
    Ok(Registration::Created {
        endpoint: created.endpoint,
        secret: created.secret,
    })
}

impl Registration {
    /// `--json`: the endpoint, whether it was created now, and the signing secret when
    /// SkipUp returned one (it is shown once: this output is the operator's copy).
    pub fn json(&self) -> serde_json::Value {
        let (created, endpoint, secret) = match self {
            Registration::Created { endpoint, secret } => (
                true,
                endpoint,
                secret.as_ref().map(|s| s.expose_secret().to_string()),
            ),
            Registration::Existing(endpoint) => (false, endpoint, None),
        };
        serde_json::json!({
            "created": created,
            "endpoint": endpoint,
            "signing_secret": secret,
            "secret_goes_to": "SKIPUP_WEBHOOK_SECRETS in the stack's PipelineSecretsArn secret",
        })
    }
}

/// Tells the operator what happened and where the signing secret goes.
pub fn print_registration(out: &mut dyn Write, registration: &Registration) -> std::io::Result<()> {
    let where_it_goes = "Put it in the pipeline's secret (the stack's PipelineSecretsArn output) as \
         SKIPUP_WEBHOOK_SECRETS; while rotating, list the new and the old one, comma-separated:\n  \
         aws secretsmanager put-secret-value --secret-id <PipelineSecretsArn> --secret-string \
         '{\"SKIPUP_WEBHOOK_SECRETS\": \"<secret>\", ...the other keys...}'\n\
         The functions read it at cold start: any configuration change recycles them \
         (aws lambda update-function-configuration).";
    match registration {
        Registration::Created { endpoint, secret } => {
            writeln!(
                out,
                "Registered SkipUp webhook endpoint {} for {}",
                endpoint.id, endpoint.url
            )?;
            writeln!(out, "Events: {}", endpoint.events.join(", "))?;
            match secret {
                Some(secret) => writeln!(out, "Signing secret: {}", secret.expose_secret())?,
                None => writeln!(
                    out,
                    "SkipUp did not return the signing secret: copy it from SkipUp's dashboard (Settings > Webhooks)."
                )?,
            }
            writeln!(out, "{where_it_goes}")
        }
        Registration::Existing(endpoint) => {
            writeln!(
                out,
                "SkipUp already has endpoint {} for {} ({}); nothing registered.",
                endpoint.id,
                endpoint.url,
                if endpoint.enabled {
                    "enabled"
                } else {
                    "DISABLED: re-enable it in SkipUp's dashboard"
                }
            )?;
            writeln!(
                out,
                "Its signing secret is in SkipUp's dashboard. {where_it_goes}"
            )
        }
    }
}

/// The recovery events no enabled endpoint receives.
pub fn unsubscribed_events(report: &HealthReport) -> Vec<&'static str> {
    RECOVERY_EVENTS
        .into_iter()
        .filter(|event| {
            !report
                .endpoints
                .iter()
                .any(|e| e.enabled && (e.events.is_empty() || e.events.iter().any(|s| s == event)))
        })
        .collect()
}

/// What `health` found: every endpoint, and the recovery events none receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub report: HealthReport,
    pub unsubscribed: Vec<&'static str>,
}

impl Health {
    pub async fn check(skipup: &dyn SkipUpApi) -> anyhow::Result<Self> {
        let report = check(skipup)
            .await
            .context("listing SkipUp webhook endpoints")?;
        let unsubscribed = unsubscribed_events(&report);
        Ok(Self {
            report,
            unsubscribed,
        })
    }

    /// No endpoint disabled, and every recovery event reaches an enabled one.
    pub fn healthy(&self) -> bool {
        self.report.disabled().is_empty() && self.unsubscribed.is_empty()
    }

    /// `--json`: every endpoint as SkipUp lists it, and what stops recovery.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "healthy": self.healthy(),
            "endpoints": self.report.endpoints,
            "disabled": self.report.disabled().len(),
            "unsubscribed_events": self.unsubscribed,
        })
    }

    /// Every endpoint, one line each, and what to do about what stops recovery.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let report = &self.report;
        writeln!(
            out,
            "{:<28} {:<9} {:<20} URL",
            "ENDPOINT", "STATE", "REASON"
        )?;
        for e in &report.endpoints {
            writeln!(
                out,
                "{:<28} {:<9} {:<20} {}",
                e.id,
                if e.enabled { "enabled" } else { "DISABLED" },
                e.disabled_reason.as_deref().unwrap_or("-"),
                e.url
            )?;
        }
        let disabled = report.disabled().len();
        writeln!(
            out,
            "{} endpoint(s), {disabled} disabled",
            report.endpoints.len()
        )?;
        if disabled > 0 {
            writeln!(
                out,
                "Re-enable disabled endpoints in SkipUp's dashboard once the pipeline answers again (see README, runbook \"WebhookEndpointDisabled\")."
            )?;
        }
        if !self.unsubscribed.is_empty() {
            writeln!(
                out,
                "No enabled endpoint receives: {}. Run `recovery register-webhook --url <SkipUpWebhookUrl>`.",
                self.unsubscribed.join(", ")
            )?;
        }
        Ok(())
    }
}
