//! Skode's REST API: the status custom field and this connector's tags on the lead.

use async_trait::async_trait;
use reqwest::Url;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{http_client, send};
use crate::crm::{ConnectorError, CrmConnector, SkodeSettings, StatusUpdate, status_slug};
use crate::lead::LeadStatus;

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
