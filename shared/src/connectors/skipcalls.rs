//! SkipCalls: AI phone call outcomes (`POST /webhooks/skipcalls`).
//!
//! Signed `X-Webhook-Signature`: hex HMAC-SHA256 of the raw body, in either case, with
//! or without a `sha256=` prefix (the encoding is undocumented). SkipCalls does not
//! publish its payload fields: the event name in `event`/`type`, the call in `call`,
//! `data` or the top level (DEFAULT is nested, ZAPIER flat). It sends no event id,
//! and a call completes or fails once, so the id is `{event}:{call id}`.

use serde_json::{Map, Value};

use super::fields::{child, normalize_email, normalize_phone, text};
use super::{CallOutcome, Connector, Delivery, Event, Parsed, Sample, Settings, Unrecognized};
use crate::config::{ConfigError, Env};
use crate::inbound::{Payload, Subject};
use crate::signature::{BodySignature, WebhookSecret};

pub struct SkipCalls;

/// The four SkipCalls events; a delivery with another name is kept, unrecognized.
pub const EVENTS: [&str; 4] = [
    "CALL_COMPLETED",
    "CALL_FAILED",
    "INCOMING_CALL_COMPLETED",
    "INCOMING_CALL_FAILED",
];

impl Connector for SkipCalls {
    fn name(&self) -> &'static str {
        "skipcalls"
    }

    fn secrets_var(&self) -> &'static str {
        "SKIPCALLS_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(BodySignature::skipcalls(super::secrets(
            env,
            self.secrets_var(),
        ))))
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(
            BodySignature::SKIPCALLS_HEADER,
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
            include_str!("../../fixtures/payloads/skipcalls-call-completed-default.json"),
            |v| v["call"]["id"] = Value::from(format!("call_{fresh}")),
        )
    }
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let event_type = text(top, &["event", "type", "event_type", "eventType"]).map(str::to_owned);
    let call = child(top, "call")
        .or_else(|| child(top, "data"))
        .unwrap_or(top);
    let call_id =
        text(call, &["id", "call_id", "callId"]).or_else(|| text(top, &["call_id", "callId"]));
    let incoming = event_type
        .as_deref()
        .is_some_and(|t| t.starts_with("INCOMING_"))
        || text(call, &["direction", "type"]).is_some_and(|d| d.eq_ignore_ascii_case("inbound"));
    // The lead is the caller of an incoming call and the callee of an outgoing one.
    let phone_keys: &[&str] = if incoming {
        &[
            "from",
            "from_number",
            "fromNumber",
            "from_phone_number",
            "caller_number",
            "customer_number",
        ]
    } else {
        &[
            "to",
            "to_number",
            "toNumber",
            "to_phone_number",
            "callee_number",
            "customer_number",
        ]
    };
    let phone = text(call, phone_keys).and_then(normalize_phone);
    let email = text(call, &["email", "contact_email", "customer_email"]).and_then(normalize_email);
    let subject = if let Some(phone) = &phone {
        Subject::Phone(phone.clone())
    } else if let Some(email) = &email {
        Subject::Email(email.clone())
    } else if let Some(id) = call_id {
        Subject::Call(id.to_owned())
    } else {
        Subject::Unknown
    };
    let event = match (&event_type, call_id) {
        (Some(t), Some(_)) if EVENTS.contains(&t.as_str()) => Ok(Event::Call(CallOutcome {
            detail: detail(t, call),
            phone,
            email,
        })),
        (Some(t), Some(_)) => Err(Unrecognized(format!("not a call event: {t}"))),
        _ => Err(Unrecognized("no event name or call id".into())),
    };
    Parsed {
        event_id: match (&event_type, call_id) {
            (Some(t), Some(id)) => Some(format!("{t}:{id}")),
            _ => None,
        },
        event_type,
        subject,
        event,
    }
}

/// The call's outcome for the timeline: summary, failure reason, data collected.
fn detail(event_type: &str, call: &Map<String, Value>) -> String {
    let mut parts = vec![event_type.to_string()];
    if let Some(summary) = text(call, &["short_summary", "summary", "shortSummary"]) {
        parts.push(summary.to_string());
    }
    if let Some(reason) = text(call, &["failure_reason", "failureReason", "error"]) {
        parts.push(format!("failed: {reason}"));
    }
    if let Some(Value::Object(data)) = call
        .get("data_collected")
        .or_else(|| call.get("dataCollected"))
    {
        let collected: Vec<String> = data
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        if !collected.is_empty() {
            parts.push(format!("data: {}", collected.join(", ")));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Provider;
    use crate::inbound::InboundEvent;

    const DEFAULT: &str = include_str!("../../fixtures/payloads/skipcalls-call-completed-default.json");
    const ZAPIER: &str =
        include_str!("../../fixtures/payloads/skipcalls-incoming-call-failed-zapier.json");

    fn normalize(body: &str) -> InboundEvent {
        InboundEvent::from_delivery(
            Provider::SKIPCALLS,
            body.as_bytes(),
            "2026-11-22T10:00:00Z".parse().unwrap(),
        )
    }

    #[test]
    fn a_default_delivery_is_grouped_by_the_callee_phone() {
        let e = normalize(DEFAULT);
        assert!(e.recognized);
        assert_eq!(e.event_type.as_deref(), Some("CALL_COMPLETED"));
        assert_eq!(e.event_id, "CALL_COMPLETED:call_8d2f61");
        assert_eq!(e.subject, Subject::Phone("+14155550142".into()));
    }

    #[test]
    fn a_zapier_delivery_is_grouped_by_the_caller_phone() {
        let e = normalize(ZAPIER);
        assert!(e.recognized);
        assert_eq!(e.event_type.as_deref(), Some("INCOMING_CALL_FAILED"));
        assert_eq!(e.event_id, "INCOMING_CALL_FAILED:call_19ab07");
        assert_eq!(e.subject, Subject::Phone("+442079460958".into()));
    }

    #[test]
    fn a_test_delivery_without_a_call_is_kept_unrecognized() {
        let e = normalize(r#"{"event":"TEST","message":"hi"}"#);
        assert!(!e.recognized);
        assert!(e.event_id.starts_with("sha256:"));
    }

    #[test]
    fn the_outcome_carries_the_summary_failure_and_data_collected() {
        let call = serde_json::json!({"short_summary": "Booked Tuesday", "failure_reason": "voicemail",
            "data_collected": {"team": 40, "tool": "Excel"}});
        assert_eq!(
            detail("CALL_COMPLETED", call.as_object().unwrap()),
            "CALL_COMPLETED; Booked Tuesday; failed: voicemail; data: team=40, tool=Excel"
        );
    }
}
