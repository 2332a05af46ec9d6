//! A signed outbound webhook any other CRM (or an automation tool) can receive.

use async_trait::async_trait;
use chrono::Utc;
use reqwest::Url;
use serde_json::json;

use super::{http_client, send};
use crate::crm::{ConnectorError, CrmConnector, StatusUpdate, WebhookSettings};
use crate::signature::{TimestampedSignature, WebhookSecret};

/// POSTs each status change as signed JSON:
/// `{"id", "type": "lead.recovery_status_changed", "created_at", "data": {...}}`.
#[derive(Debug)]
pub struct WebhookConnector {
    http: reqwest::Client,
    url: Url,
    secret: WebhookSecret,
}

/// Event type of the outbound webhook.
pub const STATUS_CHANGED: &str = "lead.recovery_status_changed";

impl WebhookConnector {
    pub fn new(settings: WebhookSettings) -> Result<Self, String> {
        let url = Url::parse(&settings.url).map_err(|e| format!("CRM_WEBHOOK_URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("CRM_WEBHOOK_URL: must be an http(s) URL".into());
        }
        Ok(Self {
            http: http_client(settings.timeout)?,
            url,
            secret: settings.secret,
        })
    }
}

#[async_trait]
impl CrmConnector for WebhookConnector {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn push(&self, update: &StatusUpdate) -> Result<(), ConnectorError> {
        let body = json!({
            "id": update.id,
            "type": STATUS_CHANGED,
            "created_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": update,
        })
        .to_string();
        let signature =
            TimestampedSignature::sign(&self.secret, Utc::now().timestamp(), body.as_bytes());
        let request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TimestampedSignature::HEADER, signature)
            .header("idempotency-key", &update.id)
            .body(body);
        send(self.name(), request).await.map(|_| ())
    }
}
