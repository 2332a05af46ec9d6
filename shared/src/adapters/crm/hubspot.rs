//! HubSpot's CRM API with a private app's token: the status in a contact property
//! (the contact addressed by email, created when missing), a note per status change
//! associated to the contact, and the property itself (`recovery setup hubspot`).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Answer, call_retrying, classify, http_client, make_missing};
use crate::crm::{
    ConnectorError, CrmConnector, HubSpotSettings, StatusChange, StatusUpdate, marker_in,
    status_slug,
};
use crate::lead::LeadStatus;

const NAME: &str = "hubspot";

/// The statuses the property holds: every one the CRM is told of.
fn property_statuses() -> impl Iterator<Item = LeadStatus> {
    LeadStatus::ALL
        .into_iter()
        .filter(|s| *s != LeadStatus::Submitted)
}

/// The association type of a note to a contact (HubSpot-defined).
const NOTE_TO_CONTACT: u32 = 202;
/// HubSpot's limit on a note's body.
const NOTE_BODY_MAX: usize = 65_536;
/// Notes of one contact read to find the ones already made (HubSpot's batch limit).
const BATCH_READ: usize = 100;
/// A contact with more notes than this has only its first ones looked through.
const NOTES_LOOKED_AT: usize = 2_000;
/// Wait after a 429 that names no window.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Wait after the daily limit is used up: the longest a retry can be put off.
const DAILY_WAIT: Duration = Duration::from_secs(900);

/// What `recovery setup hubspot` found or did.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertySetup {
    Created,
    /// It exists with every status as an option: nothing done.
    Exists,
    /// It exists but lacks these options (their values).
    MissingOptions(Vec<String>),
}

#[derive(Debug)]
pub struct HubSpotConnector {
    http: reqwest::Client,
    base: Url,
    settings: HubSpotSettings,
}

impl HubSpotConnector {
    pub fn new(settings: HubSpotSettings) -> Result<Self, String> {
        let base = Url::parse(settings.base_url.trim_end_matches('/'))
            .map_err(|e| format!("HUBSPOT_BASE_URL: {e}"))?;
        if base.cannot_be_a_base() {
            return Err("HUBSPOT_BASE_URL: not a base URL".into());
        }
        Ok(Self {
            http: http_client(settings.timeout)?,
            base,
            settings,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// One authenticated request, tried again within the push when that is safe
    /// (everything but creating a note); a 429 is transient with the wait HubSpot
    /// names.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        let safe = !(method == Method::POST && url.path().ends_with("/objects/notes"));
        let request = || {
            let request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.settings.access_token.expose_secret());
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        };
        call_retrying(NAME, safe, request, |answer| {
            (answer.status == StatusCode::TOO_MANY_REQUESTS).then(|| rate_limited(answer))
        })
        .await
    }

    /// Sets the status property on the contact with the update's email, creating the
    /// contact when there is none (unless turned off). Returns the contact's id.
    async fn set_status(&self, update: &StatusUpdate) -> Result<String, ConnectorError> {
        let property = &self.settings.status_property;
        let value = status_slug(update.status);
        let mut url = self.url(&["crm", "v3", "objects", "contacts", &update.email]);
        url.query_pairs_mut().append_pair("idProperty", "email");
        let patch = json!({ "properties": { property.as_str(): value } });
        for _ in 0..2 {
            let answer = self.send(Method::PATCH, url.clone(), Some(&patch)).await?;
            match answer.status {
                StatusCode::NOT_FOUND if self.settings.create_contacts => {
                    match self.create_contact(update).await? {
                        Some(id) => return Ok(id),
                        // Created meanwhile by someone else (409): set it again.
                        None => continue,
                    }
                }
                StatusCode::NOT_FOUND => {
                    return Err(ConnectorError::Permanent {
                        connector: NAME,
                        message: "no HubSpot contact has this email, and \
                                  HUBSPOT_CREATE_CONTACTS=false"
                            .into(),
                    });
                }
                StatusCode::BAD_REQUEST => return Err(self.refused_property(&answer, value)),
                _ => return object_id(classify(NAME, answer)?),
            }
        }
        Err(ConnectorError::Transient {
            connector: NAME,
            message: "the contact was created and then was not found".into(),
            retry_after: None,
        })
    }

    /// `None` when a contact with that email exists already (409).
    async fn create_contact(
        &self,
        update: &StatusUpdate,
    ) -> Result<Option<String>, ConnectorError> {
        let (first, last) = match update.name.trim().split_once(char::is_whitespace) {
            Some((first, last)) => (first.trim(), last.trim()),
            None => (update.name.trim(), ""),
        };
        let mut properties = json!({
            "email": update.email,
            self.settings.status_property.as_str(): status_slug(update.status),
        });
        for (name, value) in [
            ("firstname", first),
            ("lastname", last),
            ("company", update.company.as_deref().unwrap_or("")),
        ] {
            if !value.is_empty() {
                properties[name] = Value::String(value.to_string());
            }
        }
        let url = self.url(&["crm", "v3", "objects", "contacts"]);
        let answer = self
            .send(
                Method::POST,
                url,
                Some(&json!({ "properties": properties })),
            )
            .await?;
        match answer.status {
            StatusCode::CONFLICT => Ok(None),
            StatusCode::BAD_REQUEST => {
                Err(self.refused_property(&answer, status_slug(update.status)))
            }
            _ => object_id(classify(NAME, answer)?).map(Some),
        }
    }

    /// A 400 on the status property says what to fix; any other 400 is permanent.
    fn refused_property(&self, answer: &Answer, value: &str) -> ConnectorError {
        let property = &self.settings.status_property;
        let message = if answer.body.contains("PROPERTY_DOESNT_EXIST") {
            format!(
                "the contact property `{property}` does not exist in this HubSpot account: \
                 run `recovery setup hubspot` to create it (README, \"Connect your CRM\")"
            )
        } else if answer.body.contains("INVALID_OPTION") {
            format!(
                "the contact property `{property}` has no option `{value}`: add it in \
                 HubSpot (Settings > Properties), or run `recovery setup hubspot` to see \
                 which options are missing"
            )
        } else {
            return ConnectorError::Permanent {
                connector: NAME,
                message: answer.excerpt(),
            };
        };
        ConnectorError::Setup {
            connector: NAME,
            message,
        }
    }

    /// The markers of the notes this pipeline already made on the contact.
    async fn markers(&self, contact: &str) -> Result<HashSet<String>, ConnectorError> {
        let mut ids: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = self.url(&[
                "crm",
                "v4",
                "objects",
                "contacts",
                contact,
                "associations",
                "notes",
            ]);
            url.query_pairs_mut().append_pair("limit", "500");
            if let Some(after) = &after {
                url.query_pairs_mut().append_pair("after", after);
            }
            let page: Value = json_of(classify(NAME, self.send(Method::GET, url, None).await?)?)?;
            ids.extend(
                page["results"].as_array().into_iter().flatten().filter_map(
                    |r| match &r["toObjectId"] {
                        Value::Number(n) => Some(n.to_string()),
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    },
                ),
            );
            after = page["paging"]["next"]["after"].as_str().map(str::to_string);
            if after.is_none() || ids.len() >= NOTES_LOOKED_AT {
                break;
            }
        }
        let mut markers = HashSet::new();
        for chunk in ids.chunks(BATCH_READ) {
            let url = self.url(&["crm", "v3", "objects", "notes", "batch", "read"]);
            let body = json!({
                "properties": ["hs_note_body"],
                "inputs": chunk.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
            });
            let read: Value = json_of(classify(
                NAME,
                self.send(Method::POST, url, Some(&body)).await?,
            )?)?;
            for note in read["results"].as_array().into_iter().flatten() {
                if let Some(marker) = note["properties"]["hs_note_body"]
                    .as_str()
                    .and_then(marker_in)
                {
                    markers.insert(marker.to_string());
                }
            }
        }
        Ok(markers)
    }

    /// Creates the note; the answer is the caller's to judge (see [`super::make_missing`]).
    async fn add_note(
        &self,
        contact: &str,
        change: &StatusChange,
    ) -> Result<Answer, ConnectorError> {
        let body = json!({
            "properties": {
                "hs_timestamp": change.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "hs_note_body": note_body(change),
            },
            "associations": [{
                "to": { "id": contact },
                "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT }],
            }],
        });
        let url = self.url(&["crm", "v3", "objects", "notes"]);
        self.send(Method::POST, url, Some(&body)).await
    }

    /// Creates the status property (an enumeration of the statuses' slugs), or says
    /// that it exists, and whether it lacks options.
    pub async fn setup_property(&self) -> Result<PropertySetup, ConnectorError> {
        let name = &self.settings.status_property;
        let url = self.url(&["crm", "v3", "properties", "contacts", name]);
        let answer = self.send(Method::GET, url, None).await?;
        if answer.status != StatusCode::NOT_FOUND {
            let property: Value = json_of(classify(NAME, answer)?)?;
            let have: HashSet<&str> = property["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["value"].as_str())
                .collect();
            let missing: Vec<String> = property_statuses()
                .map(status_slug)
                .filter(|v| !have.contains(v))
                .map(str::to_string)
                .collect();
            return Ok(if missing.is_empty() {
                PropertySetup::Exists
            } else {
                PropertySetup::MissingOptions(missing)
            });
        }
        let options: Vec<Value> = property_statuses()
            .zip(0..)
            .map(|(status, order)| {
                json!({ "label": status.as_str(), "value": status_slug(status),
                        "displayOrder": order, "hidden": false })
            })
            .collect();
        let body = json!({
            "name": name,
            "label": "Lead recovery status",
            "description": "Where the lead recovery pipeline stands with this contact.",
            "groupName": "contactinformation",
            "type": "enumeration",
            "fieldType": "select",
            "options": options,
        });
        let url = self.url(&["crm", "v3", "properties", "contacts"]);
        let answer = self.send(Method::POST, url, Some(&body)).await?;
        if answer.status == StatusCode::CONFLICT {
            return Ok(PropertySetup::Exists);
        }
        classify(NAME, answer).map(|_| PropertySetup::Created)
    }
}

#[async_trait]
impl CrmConnector for HubSpotConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keeps_notes(&self) -> bool {
        true
    }

    async fn push(&self, update: &StatusUpdate) -> Result<(), ConnectorError> {
        let contact = self.set_status(update).await?;
        if update.changes.is_empty() {
            return Ok(());
        }
        make_missing(
            NAME,
            &update.changes,
            || self.markers(&contact),
            |change| self.add_note(&contact, change),
        )
        .await
    }
}

/// A 429: transient, after the wait HubSpot's answer names (`Retry-After` if sent;
/// its daily limit; else the rolling window of `X-HubSpot-RateLimit-Interval-Milliseconds`).
fn rate_limited(answer: &Answer) -> ConnectorError {
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let daily = answer.body.contains("\"DAILY\"");
    let wait = if let Some(seconds) = header("retry-after") {
        Duration::from_secs(seconds)
    } else if daily {
        DAILY_WAIT
    } else {
        header("x-hubspot-ratelimit-interval-milliseconds")
            .map(Duration::from_millis)
            .unwrap_or(RATE_WINDOW)
    };
    let message = if daily {
        "HubSpot's daily API limit is used up".to_string()
    } else {
        format!(
            "HubSpot rate limit ({} requests per window left)",
            header("x-hubspot-ratelimit-remaining").unwrap_or(0)
        )
    };
    ConnectorError::Transient {
        connector: NAME,
        message,
        retry_after: Some(wait),
    }
}

fn json_of(body: String) -> Result<Value, ConnectorError> {
    serde_json::from_str(&body).map_err(|_| ConnectorError::Transient {
        connector: NAME,
        message: "HubSpot answered with something that is not JSON".into(),
        retry_after: None,
    })
}

fn object_id(body: String) -> Result<String, ConnectorError> {
    let object = json_of(body)?;
    match &object["id"] {
        Value::String(id) if !id.is_empty() => Ok(id.clone()),
        Value::Number(id) => Ok(id.to_string()),
        _ => Err(ConnectorError::Permanent {
            connector: NAME,
            message: "HubSpot's answer has no object id".into(),
        }),
    }
}

/// The note: the change as a heading, its timeline lines, and its marker, in
/// HubSpot's rich text, within its size limit.
fn note_body(change: &StatusChange) -> String {
    let heading = format!("Lead recovery: {}", change.status.as_str());
    let marker = format!("<p>{}</p>", change.tag());
    let room = NOTE_BODY_MAX - heading.len() - marker.len() - 64;
    let mut lines = String::new();
    for line in change.text.lines() {
        let line = format!("{}<br>", escape(line));
        if lines.len() + line.len() > room {
            break;
        }
        lines.push_str(&line);
    }
    format!(
        "<p><strong>{}</strong></p><p>{lines}</p>{marker}",
        escape(&heading)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_note_carries_its_marker_escaped_text_and_stays_within_the_limit() {
        let change = StatusChange {
            marker: "l_1/meeting-scheduled/1764".into(),
            status: LeadStatus::MeetingScheduled,
            at: Utc.timestamp_opt(1_764_000_000, 0).unwrap(),
            text: format!("a <b> & c\n{}", "x".repeat(70_000)),
        };
        let body = note_body(&change);
        assert!(body.len() <= NOTE_BODY_MAX, "{}", body.len());
        assert!(body.contains("a &lt;b&gt; &amp; c<br>"));
        assert_eq!(marker_in(&body), Some("l_1/meeting-scheduled/1764"));
        assert_eq!(marker_in("a note a rep wrote"), None);
    }
}
