//! `recovery-check` Lambda: wires configuration and clients once, then hands every SQS
//! batch to [`shared::handlers::recovery_check::handle`] (partial batch responses).

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, run, service_fn, tracing};
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::crm;
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sqs::{SqsQueue, SqsRedelivery};
use shared::config::RecoveryConfig;
use shared::handlers::recovery_check::{RecoveryDeps, RecoveryPorts, handle};
use shared::ports::SystemClock;

async fn cold_start() -> Result<RecoveryDeps, Box<dyn std::error::Error + Send + Sync>> {
    let sdk = load_sdk_config().await;
    let config = RecoveryConfig::from_env(&load_env(&sdk).await?)?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = config.resources.check_queue_url;
    let ports = RecoveryPorts {
        store: Arc::new(DynamoLeadStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.resources.leads_table,
        )),
        skipup: Arc::new(SkipUpClient::new(config.skipup)?),
        checks: Arc::new(SqsQueue::new(sqs.clone(), &queue_url)),
        redelivery: Arc::new(SqsRedelivery::new(sqs, &queue_url)),
        clock: Arc::new(SystemClock),
    };
    Ok(RecoveryDeps::new(
        ports,
        config.recovery,
        crm::connectors(config.crm)?,
    ))
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
