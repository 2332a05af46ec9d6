//! Tally (`POST /webhooks/tally`): a form response starts a lead.
//!
//! Signed `Tally-Signature: <base64>` when a signing secret is set: HMAC-SHA256 of the
//! raw body (tally.so/help/webhooks says "SHA256 hash of the payload"; the base64
//! encoding is third-party knowledge, so a hex digest is accepted too). No timestamp.
//! Payload `{eventId, eventType: "FORM_RESPONSE", data: {responseId, formId, fields[]}}`
//! with fields `{key, label, type, value, options?}` (third-party knowledge, parsed
//! tolerantly).

use serde_json::{Map, Value};

use super::fields::{Answer, Kind, ProfileDraft, answer_text, child, text};
use super::{Connector, Delivery, Event, Parsed, Sample, Settings, Unrecognized, form_event};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{Base64BodySignature, WebhookSecret};

pub struct Tally;

const HEADER: &str = "tally-signature";

impl Connector for Tally {
    fn name(&self) -> &'static str {
        "tally"
    }

    fn secrets_var(&self) -> &'static str {
        "TALLY_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Settings::new(
            Base64BodySignature::new(super::secrets(env, self.secrets_var()), HEADER, None)
                .accepting_hex(),
        )
        .with_fields(env, "TALLY_FIELD_MAP")
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(HEADER, Base64BodySignature::sign(secret, delivery.body))]
    }

    fn parse(&self, payload: &Payload, settings: &Settings) -> Parsed {
        let Some(top) = payload.object() else {
            return Parsed::unrecognized("not a JSON object");
        };
        let event_type = text(top, &["eventType", "event_type"]).map(str::to_owned);
        let event_id = text(top, &["eventId", "event_id"]).map(str::to_owned);
        let data = child(top, "data");
        let event = match (event_type.as_deref(), data) {
            (Some("FORM_RESPONSE"), Some(data)) => form_event(draft(data, settings), "tally"),
            (Some(other), _) if other != "FORM_RESPONSE" => Ok(Event::Ignored),
            _ => Err(Unrecognized("no form response data".into())),
        };
        Parsed::form(event_id, event_type, event)
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/tally/form-response.json"), |v| {
            v["eventId"] = Value::from(format!("evt_{fresh}"));
            v["data"]["responseId"] = Value::from(format!("resp_{fresh}"));
            v["data"]["submissionId"] = Value::from(format!("resp_{fresh}"));
        })
    }
}

fn draft(data: &Map<String, Value>, settings: &Settings) -> ProfileDraft {
    let mut answers = Vec::new();
    for field in data
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        let kind = text(field, &["type"]).unwrap_or_default();
        let key = text(field, &["key"]).unwrap_or_default();
        let label = text(field, &["label"]).unwrap_or(key);
        let raw = field.get("value").unwrap_or(&Value::Null);
        // Each checkbox option also comes as a field of its own (true/false), beside
        // the question's field with the chosen option ids.
        if kind == "CHECKBOXES" && raw.is_boolean() {
            continue;
        }
        let Some(value) = option_labels(field, raw).or_else(|| answer_text(raw)) else {
            continue;
        };
        let kind = match kind {
            "INPUT_EMAIL" => Kind::Email,
            "INPUT_PHONE_NUMBER" => Kind::Phone,
            "HIDDEN_FIELDS" => Kind::Hidden,
            _ => Kind::Other,
        };
        answers.push(Answer::new(label, kind, value).alias(key));
    }
    let mut draft = ProfileDraft::from_answers(answers, &settings.fields);
    draft.form_id = text(data, &["formId"]).map(str::to_owned);
    draft.submission_id = text(data, &["responseId", "submissionId"]).map(str::to_owned);
    draft.source = Some("tally".into());
    draft
}

/// Choice answers are option ids: the options' texts instead.
fn option_labels(field: &Map<String, Value>, value: &Value) -> Option<String> {
    let options = field.get("options")?.as_array()?;
    let label = |id: &Value| {
        options
            .iter()
            .find(|o| o.get("id") == Some(id))
            .and_then(|o| o.get("text"))
            .and_then(answer_text)
    };
    let labels: Vec<String> = match value {
        Value::Array(ids) => ids.iter().filter_map(label).collect(),
        id @ Value::String(_) => label(id).into_iter().collect(),
        _ => return None,
    };
    (!labels.is_empty()).then(|| labels.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = include_str!("../../fixtures/tally/form-response.json");

    fn settings() -> Settings {
        Tally
            .configure(&Env::from_pairs([("TALLY_WEBHOOK_SECRETS", "whsec_tally")]))
            .unwrap()
    }

    fn verify(header: &str, body: &[u8]) -> Result<(), crate::signature::SignatureError> {
        let headers: http::HeaderMap = [(HEADER.parse().unwrap(), header.parse().unwrap())]
            .into_iter()
            .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/tally",
            headers: &headers,
            body,
            now: chrono::Utc::now(),
        })
    }

    #[test]
    fn the_known_answer_verifies_in_base64_and_in_hex() {
        // Computed independently: hmac.new(b"whsec_tally", b'{"eventId":"x"}', sha256)
        let body = br#"{"eventId":"x"}"#;
        assert_eq!(verify("bNxM0Ksy/29qcf4bkUaUT522opFB9JO1anne0QUDC7U=", body), Ok(()));
        assert_eq!(
            verify(
                "6cdc4cd0ab32ff6f6a71fe1b9146944f9db6a29141f493b56a79ded105030bb5",
                body
            ),
            Ok(())
        );
        assert!(verify("bNxM0Ksy/29qcf4bkUaUT522opFB9JO1anne0QUDC7U=", b"{}").is_err());
    }

    #[test]
    fn a_response_becomes_a_lead_with_choices_read_as_their_text() {
        let Ok(Event::Form(form)) = Tally
            .parse(&Payload::from_body(RESPONSE.as_bytes()), &settings())
            .event
        else {
            panic!("a form submission");
        };
        let p = &form.profile;
        assert_eq!(p.email.as_str(), "jordan.ellis@tyrell.example");
        assert_eq!(p.name, "Jordan Ellis");
        assert_eq!(p.company.as_deref(), Some("Tyrell"));
        assert_eq!(p.phone.as_deref(), Some("+442079460958"));
        assert_eq!(
            p.assigned_rep_email.as_ref().map(|e| e.as_str()),
            Some("alex@vendor.example")
        );
        assert_eq!(p.submission_id.as_deref(), Some("2wgx4n"));
        assert_eq!(p.form_id.as_deref(), Some("VwbNEw"));
        assert!(p.answers.contains(&("Team size".into(), "11-50".into())), "{:?}", p.answers);
        let labels: Vec<&str> = p.answers.iter().map(|(q, _)| q.as_str()).collect();
        assert!(!labels.iter().any(|l| l.contains('(')), "{labels:?}");
    }
}
