//! Skode, the AI CRM (`POST /webhooks/skode`): `lead.created` starts a lead through
//! the same intake as `POST /forms`; `lead.updated` may say the prospect booked.
//!
//! Signed `X-Skode-Signature`: hex HMAC-SHA256 of the raw body. Envelope
//! `{id, event, created_at, data}`; lead events carry the lead in `data`.

use serde_json::{Map, Value};

use super::fields::{ProfileDraft, child, normalize_email, text};
use super::{
    Connector, CrmLeadChange, Delivery, Event, Parsed, Sample, Settings, Unrecognized, form_event,
};
use crate::config::{ConfigError, Env};
use crate::inbound::{Payload, Subject};
use crate::signature::{BodySignature, WebhookSecret};

pub struct Skode;

impl Connector for Skode {
    fn name(&self) -> &'static str {
        "skode"
    }

    fn secrets_var(&self) -> &'static str {
        "SKODE_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(BodySignature::skode(super::secrets(
            env,
            self.secrets_var(),
        ))))
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(
            BodySignature::SKODE_HEADER,
            BodySignature::sign(secret, delivery.body),
        )]
    }

    fn parse(&self, payload: &Payload, _: &Settings) -> Parsed {
        match payload.object() {
            Some(top) => parse(top),
            None => Parsed::unrecognized("not a JSON object"),
        }
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(
            include_str!("../../fixtures/payloads/skode-lead-created.json"),
            |v| v["id"] = Value::from(format!("evt_{fresh}")),
        )
    }
}

/// The profile from a `lead.created`'s `data` (`id`, `name`, `email`, `company`,
/// `phone`, `source`). The Skode lead id stands in for the submission id, so a
/// redelivered event maps to the same lead.
fn draft(data: &Map<String, Value>) -> ProfileDraft {
    let field = |key| text(data, &[key]).map(str::to_owned);
    let id = field("id");
    ProfileDraft {
        email: field("email"),
        name: field("name"),
        company: field("company"),
        phone: field("phone"),
        source: field("source").or_else(|| Some("skode".into())),
        form_id: Some("skode".into()),
        submission_id: id.clone(),
        skode_lead_id: id,
        ..ProfileDraft::default()
    }
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let event_type = text(top, &["event", "type"]).map(str::to_owned);
    let data = child(top, "data");
    let event_id = text(top, &["id"]).map(str::to_owned);
    let is_lead_event = event_type
        .as_deref()
        .is_some_and(|t| t.starts_with("lead."));
    let email = data
        .and_then(|d| text(d, &["email"]))
        .and_then(normalize_email);
    let lead_id = data
        .filter(|_| is_lead_event)
        .and_then(|d| text(d, &["id"]));
    let subject = match (&email, lead_id) {
        (Some(email), _) => Subject::Email(email.clone()),
        (None, Some(id)) => Subject::SkodeLead(id.to_owned()),
        (None, None) => Subject::Unknown,
    };
    let event = match (&event_id, event_type.as_deref(), data) {
        (Some(_), Some("lead.created"), Some(data)) => form_event(draft(data), "skode"),
        (Some(_), Some("lead.updated"), Some(data)) => Ok(Event::CrmLead(CrmLeadChange {
            crm_lead_id: lead_id.map(str::to_owned),
            email,
            status: text(data, &["status"]).map(str::to_owned),
        })),
        (Some(_), Some(_), Some(_)) => Ok(Event::Ignored),
        _ => Err(Unrecognized("no event id, event name or data".into())),
    };
    Parsed {
        event_id,
        event_type,
        subject,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Provider;
    use crate::inbound::InboundEvent;

    const LEAD_CREATED: &str = include_str!("../../fixtures/payloads/skode-lead-created.json");
    const DEAL: &str = include_str!("../../fixtures/payloads/skode-deal-stage-changed.json");

    fn normalize(body: &str) -> InboundEvent {
        InboundEvent::from_delivery(
            Provider::SKODE,
            body.as_bytes(),
            "2026-11-22T10:00:00Z".parse().unwrap(),
        )
    }

    #[test]
    fn a_lead_created_is_understood_as_a_form_submission() {
        let e = normalize(LEAD_CREATED);
        assert!(e.recognized);
        assert_eq!(e.event_id, "evt_5d1b0c");
        assert_eq!(e.event_type.as_deref(), Some("lead.created"));
        assert_eq!(
            e.subject,
            Subject::Email("priya.natarajan@globex.example".into())
        );
        let top: Value = serde_json::from_str(LEAD_CREATED).unwrap();
        let Ok(Event::Form(form)) = parse(top.as_object().unwrap()).event else {
            panic!("a form submission");
        };
        assert_eq!(form.profile.email.as_str(), "priya.natarajan@globex.example");
        assert_eq!(form.profile.skode_lead_id.as_deref(), Some("lead_7c1e2a"));
        assert_eq!(form.profile.submission_id.as_deref(), Some("lead_7c1e2a"));
        assert_eq!(form.profile.source.as_deref(), Some("website_demo_form"));
        let nameless = serde_json::json!({"id":"evt_2","event":"lead.created","data":{"id":"lead_2","email":"x@y.example"}});
        assert!(matches!(parse(nameless.as_object().unwrap()).event, Ok(Event::Form(_))));
        let no_email = serde_json::json!({"id":"evt_3","event":"lead.created","data":{"id":"lead_3","name":"X"}});
        assert!(parse(no_email.as_object().unwrap()).event.is_err());
    }

    #[test]
    fn a_deal_event_is_kept_without_a_lead_subject() {
        let e = normalize(DEAL);
        assert!(e.recognized);
        assert_eq!(e.subject, Subject::Unknown);
        let top: Value = serde_json::from_str(DEAL).unwrap();
        assert_eq!(parse(top.as_object().unwrap()).event, Ok(Event::Ignored));
    }

    #[test]
    fn a_lead_update_carries_the_crm_status() {
        let top = serde_json::json!({"id":"evt_1","event":"lead.updated","data":{"id":"lead_1","email":"A@B.example","status":"meeting_booked"}});
        assert_eq!(
            parse(top.as_object().unwrap()).event,
            Ok(Event::CrmLead(CrmLeadChange {
                crm_lead_id: Some("lead_1".into()),
                email: Some("a@b.example".into()),
                status: Some("meeting_booked".into()),
            }))
        );
    }
}
