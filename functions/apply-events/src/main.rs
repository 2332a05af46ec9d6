//! `apply-events` Lambda: wires configuration and clients once, then hands every SQS FIFO
//! batch to [`shared::handlers::apply_events::handle`] (partial batch responses). The
//! same function runs reconciliation when its schedule invokes it with
//! `{"task": "reconcile"}` ([`shared::handlers::reconcile::reconcile`]): it already
//! holds everything reconciliation needs, so no other binary is built and deployed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, run, service_fn, tracing};
use serde_json::Value;
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::crm;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sqs::SqsQueue;
use shared::config::{ApplyConfig, ConfigError};
use shared::handlers::apply_events::{ApplyDeps, ApplyPorts, handle};
use shared::handlers::reconcile::{ReconcileSettings, reconcile};
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
    let ports = ApplyPorts {
        store: store.clone(),
        events: store,
        checks: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            config.resources.check_queue_url,
        )),
        clock: Arc::new(SystemClock),
        skipup: Arc::new(skipup),
        crm: crm::connectors(config.crm)?,
    };
    Ok((ApplyDeps::new(ports, config.settings), config.reconcile))
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
            // Stop asking 30 s before the invocation's deadline; the rest waits.
            let left = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let until = Instant::now() + left.saturating_sub(Duration::from_secs(30));
            let report = reconcile(deps, settings, false, Some(until))
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
