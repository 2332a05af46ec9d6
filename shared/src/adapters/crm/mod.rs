//! CRM connectors over HTTPS, one module each: Skode's REST API (`PATCH /leads/{id}`)
//! and a signed outbound webhook any other CRM (or an automation tool) can receive.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;

use crate::adapters::skipup::{mask_emails, retry_after, without_url};
use crate::config::ConfigError;
use crate::crm::{ConnectorError, CrmConnector, CrmConnectors, CrmSettings};

mod skode;
mod webhook;

pub use skode::SkodeConnector;
pub use webhook::{STATUS_CHANGED, WebhookConnector};

/// The configured CRM connectors, built once per cold start.
pub fn connectors(settings: CrmSettings) -> Result<CrmConnectors, ConfigError> {
    let mut connectors: Vec<std::sync::Arc<dyn CrmConnector>> = Vec::new();
    if let Some(skode) = settings.skode {
        let connector = SkodeConnector::new(skode).map_err(|reason| ConfigError::Invalid {
            var: "SKODE_BASE_URL",
            reason,
        })?;
        connectors.push(std::sync::Arc::new(connector));
    }
    if let Some(webhook) = settings.webhook {
        let connector = WebhookConnector::new(webhook).map_err(|reason| ConfigError::Invalid {
            var: "CRM_WEBHOOK_URL",
            reason,
        })?;
        connectors.push(std::sync::Arc::new(connector));
    }
    Ok(CrmConnectors::new(connectors))
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .user_agent(concat!("lead-recovery/", env!("CARGO_PKG_VERSION")))
        // A redirected POST may turn into a bodiless GET, or carry the signature and
        // the lead's data to another host: a 3xx is refused instead.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// Sends `request` and classifies the answer: 2xx is the body; 408, 429 and 5xx, and
/// network errors, are transient; so are 401 and 403 (a key being rotated or fixed:
/// the statuses must still reach the CRM afterwards); anything else is permanent.
async fn send(
    connector: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<String, ConnectorError> {
    let transient = |message: String, retry_after| ConnectorError::Transient {
        connector,
        message,
        retry_after,
    };
    let response = request
        .send()
        .await
        .map_err(|e| transient(without_url(&e), None))?;
    let status = response.status();
    let wait = retry_after(response.headers(), Utc::now());
    let body = response
        .text()
        .await
        .map_err(|e| transient(without_url(&e), None))?;
    if status.is_success() {
        return Ok(body);
    }
    // The answer may quote the lead's address back: mask it before it is logged.
    let excerpt: String = mask_emails(&body).chars().take(200).collect();
    let message = format!("HTTP {}: {excerpt}", status.as_u16());
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || status.is_server_error()
    {
        Err(transient(message, wait))
    } else {
        Err(ConnectorError::Permanent { connector, message })
    }
}
