//! CRM connectors over HTTPS: Skode's REST API (`PATCH /leads/{id}`) and a signed
//! outbound webhook any other CRM (or an automation tool) can receive.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::adapters::skipup::{mask_emails, retry_after, without_url};
use crate::crm::{ConnectorError, CrmConnector, StatusUpdate, status_slug};
use crate::lead::LeadStatus;
use crate::signature::{TimestampedSignature, WebhookSecret};

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

/// Settings of the Skode connector (`SKODE_API_KEY` turns it on).
#[derive(Debug, Clone)]
pub struct SkodeSettings {
    /// Default `https://api.skodeai.com/v1`.
    pub base_url: String,
    pub api_key: SecretString,
    /// The custom field that holds the recovery status (default `recovery_status`).
    pub status_field: String,
    /// Tags this connector owns start with this (default `recovery-`).
    pub tag_prefix: String,
    /// Tag that pauses other nurture sequences from "Follow-up Sent" (as the source
    /// document maps it) and once a meeting is booked (default `nurture-paused`).
    pub pause_tag: String,
    pub timeout: Duration,
}

pub const SKODE_BASE_URL: &str = "https://api.skodeai.com/v1";

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

/// Settings of the outbound webhook (`CRM_WEBHOOK_URL` turns it on).
#[derive(Debug)]
pub struct WebhookSettings {
    pub url: String,
    /// Signs each delivery: `X-Webhook-Signature: t=..,v1=..`, as SkipUp signs.
    pub secret: WebhookSecret,
    pub timeout: Duration,
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
