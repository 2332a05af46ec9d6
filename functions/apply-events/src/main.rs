//! `apply-events` Lambda: wires configuration and clients once, then hands every SQS FIFO
//! batch to [`shared::handlers::apply_events::handle`] (partial batch responses).

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, run, service_fn, tracing};
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::crm;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::sqs::SqsQueue;
use shared::config::{ApplyConfig, ConfigError};
use shared::handlers::apply_events::{ApplyDeps, handle};
use shared::intake::IntakeDeps;
use shared::ports::SystemClock;

async fn cold_start() -> Result<ApplyDeps, ConfigError> {
    let sdk = load_sdk_config().await;
    let config = ApplyConfig::from_env(&load_env(&sdk).await?)?;
    let store = Arc::new(DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.resources.leads_table,
    ));
    Ok(ApplyDeps {
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
        crm: crm::connectors(config.crm)?,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let deps = cold_start()
        .await
        .inspect_err(|error| tracing::error!(%error, "cold start failed"))?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Infallible>(handle(deps, event.payload).await)
    }))
    .await
}
