//! CRM connectors over HTTPS: Skode's REST API (`PATCH /leads/{id}`) and a signed
//! outbound webhook any other CRM (or an automation tool) can receive.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::adapters::skipup::{mask_emails, retry_after, without_url};
use crate::config::ConfigError;
use crate::crm::{
    ConnectorError, CrmConnector, CrmConnectors, CrmSettings, SkodeSettings, StatusUpdate,
    WebhookSettings, status_slug,
};
use crate::lead::LeadStatus;
use crate::signature::{TimestampedSignature, WebhookSecret};

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

/// Updates leads that came from Skode: the status custom field and the tags. Skode's
/// `PATCH` replaces the whole tag list, so the lead is read first and only this
/// connector's own tags are changed.
#[derive(Debug, Clone)]
pub struct SkodeConnector {
    http: reqwest::Client,
    base: Url,
    settings: SkodeSettings,
}

impl SkodeConnector {
    pub fn new(settings: SkodeSettings) -> Result<Self, String> {
        let base = Url::parse(settings.base_url.trim_end_matches('/'))
            .map_err(|e| format!("SKODE_BASE_URL: {e}"))?;
        if base.cannot_be_a_base() {
            return Err("SKODE_BASE_URL: not a base URL".into());
        }
        Ok(Self {
            http: http_client(settings.timeout)?,
            base,
            settings,
        })
    }

    fn lead_url(&self, id: &str) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .push("leads")
            .push(id);
        url
    }

    /// The lead's tags after this status: others' tags kept, ours replaced.
    fn tags(&self, current: &[Value], status: LeadStatus) -> Vec<String> {
        let ours =
            |t: &str| t.starts_with(&self.settings.tag_prefix) || t == self.settings.pause_tag;
        let mut tags: Vec<String> = current
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| !ours(t))
            .map(str::to_string)
            .collect();
        tags.push(format!(
            "{}{}",
            self.settings.tag_prefix,
            status_slug(status)
        ));
        if matches!(
            status,
            LeadStatus::FollowUpSent | LeadStatus::MeetingScheduled
        ) {
            tags.push(self.settings.pause_tag.clone());
        }
        tags
    }
}

#[async_trait]
impl CrmConnector for SkodeConnector {
    fn name(&self) -> &'static str {
        "skode"
    }

    async fn push(&self, update: &StatusUpdate) -> Result<(), ConnectorError> {
        let Some(skode_id) = &update.skode_lead_id else {
            // Only leads that came from Skode exist there.
            return Ok(());
        };
        let url = self.lead_url(skode_id);
        let key = self.settings.api_key.expose_secret();
        let body = send(self.name(), self.http.get(url.clone()).bearer_auth(key)).await?;
        // Accept the lead bare or wrapped in `data`; anything else would make the
        // PATCH below wipe the lead's tags, so it stops here.
        let current: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let lead = current.get("data").unwrap_or(&current);
        if !lead.is_object() {
            return Err(ConnectorError::Permanent {
                connector: self.name(),
                message: "GET /leads/{id} did not answer with a lead object".into(),
            });
        }
        let tags = lead
            .get("tags")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut fields = lead
            .get("custom_fields")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(Map::new);
        fields.insert(
            self.settings.status_field.clone(),
            Value::String(update.status.as_str().to_string()),
        );
        let patch = json!({ "custom_fields": fields, "tags": self.tags(&tags, update.status) });
        send(
            self.name(),
            self.http.patch(url).bearer_auth(key).json(&patch),
        )
        .await?;
        Ok(())
    }
}

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
