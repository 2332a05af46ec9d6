//! `webhook-ingest` Lambda: wires configuration and clients once, then hands every
//! HTTP event to [`shared::handlers::webhook_ingest::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Request, run, service_fn, tracing};
use shared::adapters::aws::load_sdk_config;
use shared::adapters::sqs::SqsQueue;
use shared::config::{ConfigError, Env, IngestConfig};
use shared::handlers::webhook_ingest::{IngestDeps, handle};
use shared::ports::SystemClock;

async fn cold_start() -> Result<IngestDeps, ConfigError> {
    let sdk = load_sdk_config().await;
    let config = IngestConfig::from_env(&Env::load(&sdk).await?)?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.crm_queue_url);
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
    let deps = &deps;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(handle(deps, &request).await)
    }))
    .await
}
