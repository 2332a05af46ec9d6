//! `webhook-health`: lists SkipUp's webhook endpoints (every page) and reports each
//! disabled one: an error log line with its URL and `disabled_reason`, the
//! `WebhookEndpointsDisabled` metric the alarm watches, and optionally an alert for
//! the endpoints disabled since about the previous run.
//! SkipUp disables an endpoint after 10 failed deliveries in 24 hours; until someone
//! re-enables it, no conversation reaches the pipeline.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::metrics;
use crate::ports::{AlertError, Alerts, Clock, SkipUpApi};
use crate::skipup::{ErrorClass, SkipUpError, WebhookEndpoint};

/// Function name in metrics.
const FUNCTION: &str = "webhook-health";

pub struct HealthDeps {
    pub skipup: Arc<dyn SkipUpApi>,
    /// Where to send an alert about disabled endpoints, if anywhere.
    pub alerts: Option<Arc<dyn Alerts>>,
    /// Alerts name endpoints disabled within this window (or at an unknown time);
    /// one that stays disabled is the alarm's to repeat, not every run's.
    pub alert_window: chrono::Duration,
    pub clock: Arc<dyn Clock>,
}

/// Every endpoint SkipUp lists, and which of them are disabled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub endpoints: Vec<WebhookEndpoint>,
}

impl HealthReport {
    pub fn disabled(&self) -> Vec<&WebhookEndpoint> {
        self.endpoints.iter().filter(|e| !e.enabled).collect()
    }

    /// The disabled endpoints SkipUp disabled after `since`, or at a time it did not
    /// say.
    pub fn disabled_since(&self, since: DateTime<Utc>) -> Vec<&WebhookEndpoint> {
        self.disabled()
            .into_iter()
            .filter(|e| {
                e.disabled_at
                    .as_deref()
                    .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                    .is_none_or(|at| at.to_utc() >= since)
            })
            .collect()
    }

    /// The alert text: one line per endpoint.
    pub fn alert_text(endpoints: &[&WebhookEndpoint]) -> String {
        let mut text = String::from(
            "SkipUp disabled these webhook endpoints; no conversation events reach the lead \
             recovery pipeline through them until they are re-enabled in SkipUp:\n",
        );
        for endpoint in endpoints {
            text.push_str(&format!(
                "- {} ({}): {} since {}\n",
                endpoint.url,
                endpoint.id,
                endpoint
                    .disabled_reason
                    .as_deref()
                    .unwrap_or("no reason given"),
                endpoint.disabled_at.as_deref().unwrap_or("an unknown time"),
            ));
        }
        text
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("could not list SkipUp webhook endpoints: {0}")]
    SkipUp(#[from] SkipUpError),
    #[error("could not send the alert: {0}")]
    Alert(#[from] AlertError),
}

/// Lists the endpoints; a refused API key is counted as `SkipUpAuthFailures`.
pub async fn check(skipup: &dyn SkipUpApi) -> Result<HealthReport, SkipUpError> {
    match skipup.list_webhook_endpoints().await {
        Ok(endpoints) => Ok(HealthReport { endpoints }),
        Err(error) => {
            if error.class() == ErrorClass::Configuration {
                metrics::count(FUNCTION, &[("SkipUpAuthFailures", 1.0)]);
            }
            Err(error)
        }
    }
}

/// One scheduled run: logs and counts disabled endpoints (0 too, so the alarm has
/// data), then alerts when there are any.
pub async fn handle(deps: &HealthDeps) -> Result<HealthReport, HealthError> {
    let report = check(&*deps.skipup)
        .await
        .inspect_err(|error| tracing::error!(%error, "webhook health check failed"))?;
    let disabled = report.disabled();
    for endpoint in &disabled {
        tracing::error!(
            url = %endpoint.url,
            endpoint_id = %endpoint.id,
            disabled_reason = endpoint.disabled_reason.as_deref().unwrap_or("none given"),
            disabled_at = endpoint.disabled_at.as_deref().unwrap_or("unknown"),
            "SkipUp webhook endpoint is disabled"
        );
    }
    metrics::count(
        FUNCTION,
        &[
            ("WebhookEndpointsDisabled", disabled.len() as f64),
            ("WebhookEndpoints", report.endpoints.len() as f64),
        ],
    );
    tracing::info!(
        endpoints = report.endpoints.len(),
        disabled = disabled.len(),
        "webhook health checked"
    );
    let fresh = report.disabled_since(deps.clock.now() - deps.alert_window);
    if let (false, Some(alerts)) = (fresh.is_empty(), &deps.alerts) {
        alerts
            .notify(
                "SkipUp webhook endpoint disabled",
                &HealthReport::alert_text(&fresh),
            )
            .await
            .inspect_err(|error| tracing::error!(%error, "alert not sent"))?;
    }
    Ok(report)
}
