//! `apply-events` Lambda: wires configuration and clients once, then hands every SQS FIFO
//! batch to [`shared::handlers::apply_events::handle`] (partial batch responses). The
//! same function runs reconciliation when its schedule invokes it with
//! `{"task": "reconcile"}` ([`shared::handlers::reconcile::reconcile`]): it already
//! holds everything reconciliation needs, so no other binary is built and deployed.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, run, service_fn, tracing};
use serde_json::Value;
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::crm;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sqs::SqsQueue;
use shared::config::{ApplyConfig, ConfigError};
use shared::handlers::apply_events::{ApplyDeps, handle};
use shared::handlers::reconcile::{ReconcileSettings, reconcile};
use shared::intake::IntakeDeps;
use shared::pacing::PacedSkipUp;
use shared::ports::SystemClock;

async fn cold_start() -> Result<(ApplyDeps, ReconcileSettings), ConfigError> {
    let sdk = load_sdk_config().await;
    let config = ApplyConfig::from_env(&load_env(&sdk).await?)?;
    let store = Arc::new(DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.resources.leads_table,
    ));
    let skipup = SkipUpClient::new(config.skipup).map_err(|e| ConfigError::Invalid {
        var: "SKIPUP_BASE_URL",
        reason: e.to_string(),
    })?;
    let deps = ApplyDeps {
        connectors: config.connectors,
        store: store.clone(),
        events: store.clone(),
        intake: IntakeDeps {
            store,
            checks: Arc::new(SqsQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                config.resources.check_queue_url,
            )),
            clock: Arc::new(SystemClock),
            settings: config.intake,
        },
        seen_for: config.seen_for,
        skode_booked_statuses: config.skode_booked_statuses,
        skode_suppress_statuses: config.skode_suppress_statuses,
        crm: crm::connectors(config.crm)?,
        skipup: Arc::new(PacedSkipUp::new(Arc::new(skipup), config.skipup_pace)),
    };
    Ok((deps, config.reconcile))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let (deps, settings) = cold_start()
        .await
        .inspect_err(|error| tracing::error!(%error, "cold start failed"))?;
    let (deps, settings) = (&deps, &settings);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        if event.payload.get("task").and_then(Value::as_str) == Some("reconcile") {
            let report = reconcile(deps, settings, false)
                .await
                .map_err(|e| lambda_runtime::Error::from(e.reason()))?;
            tracing::info!(
                asked = report.asked,
                booked = report.booked,
                cancelled = report.cancelled,
                open = report.open,
                failed = report.failed,
                "reconciliation done"
            );
            return Ok::<Value, lambda_runtime::Error>(serde_json::to_value(&report)?);
        }
        let batch: SqsEvent = serde_json::from_value(event.payload)?;
        Ok(serde_json::to_value(handle(deps, batch).await)?)
    }))
    .await
}
