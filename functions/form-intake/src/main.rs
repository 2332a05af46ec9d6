//! `form-intake` Lambda: wires configuration and clients once, then hands every HTTP
//! event to [`shared::handlers::form_intake::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Request, run, service_fn, tracing};
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::dynamo::DynamoLeadStore;
use shared::adapters::sqs::SqsQueue;
use shared::config::{ConfigError, FormConfig};
use shared::handlers::form_intake::{FormDeps, handle};
use shared::intake::IntakeDeps;
use shared::ports::SystemClock;

async fn cold_start() -> Result<FormDeps, ConfigError> {
    let sdk = load_sdk_config().await;
    let config = FormConfig::from_env(&load_env(&sdk).await?)?;
    let resources = config.resources;
    let store = DynamoLeadStore::new(aws_sdk_dynamodb::Client::new(&sdk), resources.leads_table);
    let checks = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), resources.check_queue_url);
    // The form backend waits on the first submission: open both connections now.
    tokio::join!(store.warm_up(), checks.warm_up());
    Ok(FormDeps {
        signature: config.signature,
        max_body_bytes: config.max_body_bytes,
        intake: IntakeDeps {
            store: Arc::new(store),
            checks: Arc::new(checks),
            clock: Arc::new(SystemClock),
            settings: config.intake,
        },
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
