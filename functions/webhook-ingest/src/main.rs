//! `webhook-ingest` Lambda: wires configuration and clients once, then hands every
//! HTTP event to [`shared::handlers::webhook_ingest::handle`].
//!
//! Runs with `run_concurrent`: on classic Lambda (one event at a time) it behaves as
//! `run`; on Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` > 1) one process
//! serves that many deliveries at once, which suits a handler that mostly waits for
//! SQS and shares nothing mutable.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Request, run_concurrent, service_fn, tracing};
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::sqs::SqsQueue;
use shared::config::{ConfigError, IngestConfig};
use shared::handlers::webhook_ingest::{IngestDeps, handle};
use shared::ports::SystemClock;

async fn cold_start() -> Result<IngestDeps, ConfigError> {
    let sdk = load_sdk_config().await;
    let config = IngestConfig::from_env(&load_env(&sdk).await?)?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.crm_queue_url);
    // A sender waits on the first delivery: open the SQS connection now.
    queue.warm_up().await;
    Ok(IngestDeps {
        config,
        queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing::init_default_subscriber();
    let deps = cold_start()
        .await
        .inspect_err(|error| tracing::error!(%error, "cold start failed"))?;
    deps.log_configuration();
    // Built once and kept for the life of the process; concurrent invocations share it.
    let deps: &'static IngestDeps = Box::leak(Box::new(deps));
    run_concurrent(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(handle(deps, &request).await)
    }))
    .await
}
