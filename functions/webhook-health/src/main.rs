//! `webhook-health` Lambda (on a schedule): wires the SkipUp client and the optional
//! SNS topic once, then runs [`shared::handlers::webhook_health::handle`] per event.
//! A failed check is a failed invocation, which the function-errors alarm watches.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, run, service_fn, tracing};
use serde_json::{Value, json};
use shared::adapters::aws::{load_env, load_sdk_config};
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sns::SnsAlerts;
use shared::config::HealthConfig;
use shared::handlers::webhook_health::{HealthDeps, handle};
use shared::ports::{Alerts, SystemClock};

async fn cold_start() -> Result<HealthDeps, lambda_runtime::Error> {
    let sdk = load_sdk_config().await;
    let config = HealthConfig::from_env(&load_env(&sdk).await?)?;
    let alerts = config.alert_topic_arn.map(|topic| {
        Arc::new(SnsAlerts::new(aws_sdk_sns::Client::new(&sdk), topic)) as Arc<dyn Alerts>
    });
    Ok(HealthDeps {
        skipup: Arc::new(SkipUpClient::new(config.skipup)?),
        alerts,
        alert_window: config.alert_window,
        clock: Arc::new(SystemClock),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing::init_default_subscriber();
    let deps = cold_start()
        .await
        .inspect_err(|error| tracing::error!(%error, "cold start failed"))?;
    let deps = &deps;
    run(service_fn(move |_: LambdaEvent<Value>| async move {
        let report = handle(deps).await?;
        let disabled: Vec<&str> = report.disabled().iter().map(|e| e.id.as_str()).collect();
        Ok::<Value, lambda_runtime::Error>(json!({
            "endpoints": report.endpoints.len(),
            "disabled": disabled,
        }))
    }))
    .await
}
