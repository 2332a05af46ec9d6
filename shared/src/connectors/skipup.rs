//! SkipUp: the AI scheduler's conversation webhooks (`POST /webhooks/skipup`).
//!
//! Signed `X-Webhook-Signature: t={unix seconds},v1={hex}` over `{t}.{body}` with a
//! freshness window. SkipUp does not publish its delivery envelope, so parsing is
//! tolerant: the event name in `type` or `event`; the meeting request (its `id`
//! starts `mr_`) in `data`, `data.object`, `data.meeting_request` or the top level;
//! the event id in `id` unless that is the meeting request's own id.

use serde_json::{Map, Value};

use super::fields::{child, normalize_email, text};
use super::{Connector, Conversation, Delivery, Event, Parsed, Sample, Settings, Unrecognized};
use crate::config::{ConfigError, Env};
use crate::inbound::{Payload, Subject};
use crate::signature::{TimestampedSignature, WebhookSecret};

pub struct SkipUp;

impl Connector for SkipUp {
    fn name(&self) -> &'static str {
        "skipup"
    }

    fn secrets_var(&self) -> &'static str {
        "SKIPUP_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(TimestampedSignature::new(
            super::secrets(env, self.secrets_var()),
            super::tolerance(env)?,
        )))
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(
            TimestampedSignature::HEADER,
            TimestampedSignature::sign(secret, delivery.now.timestamp(), delivery.body),
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
            include_str!("../../fixtures/payloads/skipup-booked-data.json"),
            |v| v["id"] = Value::from(format!("evt_{fresh}")),
        )
    }
}

fn is_meeting_request(object: &Map<String, Value>) -> bool {
    text(object, &["id"]).is_some_and(|id| id.starts_with("mr_"))
}

/// The meeting request: in `data`, `data.object`, `data.meeting_request`, or the top
/// level (the object whose `id` starts `mr_`).
fn meeting_request(top: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let data = child(top, "data");
    [
        data,
        data.and_then(|d| child(d, "object")),
        data.and_then(|d| child(d, "meeting_request")),
        Some(top),
    ]
    .into_iter()
    .flatten()
    .find(|candidate| is_meeting_request(candidate))
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let event_type = text(top, &["type", "event"]).map(str::to_owned);
    let meeting_request = meeting_request(top);
    let event_id = text(top, &["id"])
        .filter(|id| !id.starts_with("mr_"))
        .map(str::to_owned);
    let email = meeting_request.and_then(|mr| {
        let from_list = mr
            .get("participant_emails")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str);
        let from_objects = mr
            .get("participants")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_object)
            .and_then(|p| text(p, &["email"]));
        from_list.or(from_objects).and_then(normalize_email)
    });
    let mr_id = meeting_request.and_then(|mr| text(mr, &["id"]));
    let subject = match (&email, mr_id) {
        (Some(email), _) => Subject::Email(email.clone()),
        (None, Some(id)) => Subject::MeetingRequest(id.to_owned()),
        (None, None) => Subject::Unknown,
    };
    let event = match (&event_type, mr_id) {
        (Some(t), Some(id)) if t.starts_with("meeting_request.") => {
            Ok(Event::Conversation(Conversation {
                event_type: t.clone(),
                meeting_request_id: id.to_owned(),
                email,
                organizer_email: meeting_request
                    .and_then(|mr| text(mr, &["organizer_email"]))
                    .and_then(normalize_email),
            }))
        }
        (Some(t), Some(_)) => Err(Unrecognized(format!("not a meeting request event: {t}"))),
        (None, _) => Err(Unrecognized("no event type".into())),
        (Some(_), None) => Err(Unrecognized("no meeting request".into())),
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
    use crate::inbound::InboundEvent;

    fn read(body: &str) -> Parsed {
        SkipUp.parse(
            &Payload::from_body(body.as_bytes()),
            &SkipUp.configure(&Env::from_pairs([("X", "y")])).unwrap(),
        )
    }

    fn at() -> chrono::DateTime<chrono::Utc> {
        "2026-11-22T10:00:00Z".parse().unwrap()
    }

    fn normalize(body: &str) -> InboundEvent {
        InboundEvent::from_delivery(super::super::Provider::SKIPUP, body.as_bytes(), at())
    }

    const ENVELOPE_DATA: &str = include_str!("../../fixtures/payloads/skipup-booked-data.json");
    const ENVELOPE_OBJECT: &str =
        include_str!("../../fixtures/payloads/skipup-follow-up-sent-data-object.json");
    const ENVELOPE_NESTED: &str =
        include_str!("../../fixtures/payloads/skipup-cancelled-data-meeting-request.json");
    const BARE: &str = include_str!("../../fixtures/payloads/skipup-created-bare.json");

    #[test]
    fn an_event_with_the_request_in_data_is_understood() {
        let e = normalize(ENVELOPE_DATA);
        assert!(e.recognized);
        assert_eq!(e.event_id, "evt_01JBOOKED00000000000000001");
        assert_eq!(e.event_type.as_deref(), Some("meeting_request.booked"));
        assert_eq!(
            e.subject,
            Subject::Email("dana.ruiz@northwind.example".into())
        );
        let Ok(Event::Conversation(c)) = read(ENVELOPE_DATA).event else {
            panic!("a conversation event");
        };
        assert_eq!(c.event_type, "meeting_request.booked");
        assert!(c.meeting_request_id.starts_with("mr_"));
        assert_eq!(c.email.as_deref(), Some("dana.ruiz@northwind.example"));
    }

    #[test]
    fn an_event_with_the_request_in_data_object_is_understood() {
        let e = normalize(ENVELOPE_OBJECT);
        assert!(e.recognized);
        assert_eq!(
            e.event_type.as_deref(),
            Some("meeting_request.follow_up_sent")
        );
        assert_eq!(e.subject, Subject::Email("sam.lee@acme.example".into()));
    }

    #[test]
    fn an_event_with_the_request_in_data_meeting_request_is_understood() {
        let e = normalize(ENVELOPE_NESTED);
        assert!(e.recognized);
        assert_eq!(e.event_type.as_deref(), Some("meeting_request.cancelled"));
        assert_eq!(e.event_id, "whd_7f3a9c");
    }

    #[test]
    fn a_bare_request_is_understood_and_its_id_is_not_taken_for_an_event_id() {
        let e = normalize(BARE);
        assert!(e.recognized);
        assert!(e.event_id.starts_with("sha256:"), "{}", e.event_id);
        assert_eq!(e.event_type.as_deref(), Some("meeting_request.created"));
    }

    #[test]
    fn a_request_without_participants_is_grouped_by_its_id() {
        let e = normalize(r#"{"type":"meeting_request.booked","data":{"id":"mr_X1","status":"booked"}}"#);
        assert_eq!(e.subject, Subject::MeetingRequest("mr_X1".into()));
        let e = normalize(
            r#"{"type":"meeting_request.booked","data":{"participants":[{"email":" Dana@Example.COM "}],"id":"mr_X1"}}"#,
        );
        assert_eq!(e.subject, Subject::Email("dana@example.com".into()));
    }

    #[test]
    fn an_unknown_shape_is_kept_unrecognized_with_its_payload() {
        let body = r#"{"kind":"ping","hello":"world"}"#;
        let e = normalize(body);
        assert!(!e.recognized);
        assert_eq!(e.subject, Subject::Unknown);
        assert!(e.event_id.starts_with("sha256:"));
        assert_eq!(
            e.payload,
            Payload::Json(serde_json::from_str(body).unwrap())
        );
        assert!(read(r#"{"type":"workspace.updated","data":{"id":"mr_1"}}"#).event.is_err());
    }
}
