//! Webflow (`POST /webhooks/webflow`): a `form_submission` webhook starts a lead.
//!
//! Signed `x-webflow-signature`: lowercase hex HMAC-SHA256 of `"{timestamp}:{raw
//! body}"`, keyed with the app's client secret (or the webhook's secret), where
//! `x-webflow-timestamp` is epoch milliseconds; older than the freshness window (5
//! minutes by default) is refused (developers.webflow.com/data/docs/working-with-webhooks).
//! Payload `{triggerType, payload: {name, siteId, data: {"<field>": value}, id, formId}}`.

use serde_json::{Map, Value};

use super::fields::{Answer, Kind, ProfileDraft, answer_text, child, text};
use super::{
    Connector, Delivery, Event, Parsed, Sample, Settings, Unrecognized, Verify, form_event,
};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{SecretSet, SignatureError, WebhookSecret, fresh_millis, header_text, parse_hex_digest};

pub struct Webflow;

const SIGNATURE: &str = "x-webflow-signature";
const TIMESTAMP: &str = "x-webflow-timestamp";

impl Connector for Webflow {
    fn name(&self) -> &'static str {
        "webflow"
    }

    fn secrets_var(&self) -> &'static str {
        "WEBFLOW_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Settings::new(WebflowSignature {
            secrets: super::secrets(env, self.secrets_var()),
            tolerance_secs: super::tolerance(env)?,
        })
        .with_fields(env, "WEBFLOW_FIELD_MAP")
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        let timestamp = delivery.now.timestamp_millis().to_string();
        let digest = secret.mac(&[timestamp.as_bytes(), b":", delivery.body]);
        vec![(TIMESTAMP, timestamp), (SIGNATURE, hex::encode(digest))]
    }

    fn parse(&self, payload: &Payload, settings: &Settings) -> Parsed {
        let Some(top) = payload.object() else {
            return Parsed::unrecognized("not a JSON object");
        };
        let event_type = text(top, &["triggerType"]).map(str::to_owned);
        let submission = child(top, "payload");
        let event_id = submission.and_then(|s| text(s, &["id"])).map(str::to_owned);
        let event = match (event_type.as_deref(), submission) {
            (Some("form_submission"), Some(submission)) => {
                form_event(draft(submission, settings), "webflow")
            }
            (Some(other), _) if other != "form_submission" => Ok(Event::Ignored),
            _ => Err(Unrecognized("no form submission payload".into())),
        };
        Parsed::form(event_id, event_type, event)
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/webflow/form-submission.json"), |v| {
            v["payload"]["id"] = Value::from(format!("sub_{fresh}"));
        })
    }
}

/// Webflow's scheme: one hex digest over the millisecond timestamp and the body.
#[derive(Debug)]
struct WebflowSignature {
    secrets: SecretSet,
    tolerance_secs: u64,
}

impl Verify for WebflowSignature {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        if self.secrets.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        let digest = parse_hex_digest(header_text(delivery.header(SIGNATURE))?)?;
        let timestamp = fresh_millis(
            delivery.header(TIMESTAMP),
            delivery.now.timestamp_millis(),
            self.tolerance_secs,
        )?;
        if self
            .secrets
            .any_mac_matches(&[timestamp.as_bytes(), b":", delivery.body], &[digest])
        {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }

    fn secrets(&self) -> &SecretSet {
        &self.secrets
    }
}

fn draft(submission: &Map<String, Value>, settings: &Settings) -> ProfileDraft {
    let answers = child(submission, "data")
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some(Answer::new(name.clone(), Kind::Other, answer_text(value)?)))
        .collect();
    let mut draft = ProfileDraft::from_answers(answers, &settings.fields);
    draft.form_id = text(submission, &["formId", "formElementId", "name"]).map(str::to_owned);
    draft.submission_id = text(submission, &["id"]).map(str::to_owned);
    draft.source = Some(match text(submission, &["name"]) {
        Some(form) => format!("webflow: {form}"),
        None => "webflow".into(),
    });
    draft
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBMISSION: &str = include_str!("../../fixtures/webflow/form-submission.json");

    fn settings() -> Settings {
        Webflow
            .configure(&Env::from_pairs([("WEBFLOW_WEBHOOK_SECRETS", "old, whsec_webflow")]))
            .unwrap()
    }

    fn verify(timestamp: &str, signature: &str, body: &[u8], now_ms: i64) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = [
            (TIMESTAMP.parse().unwrap(), timestamp.parse().unwrap()),
            (SIGNATURE.parse().unwrap(), signature.parse().unwrap()),
        ]
        .into_iter()
        .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/webflow",
            headers: &headers,
            body,
            now: chrono::DateTime::from_timestamp_millis(now_ms).unwrap(),
        })
    }

    // Computed independently:
    //   hmac.new(b"whsec_webflow", b'1763800000000:{"triggerType":"form_submission"}', sha256)
    const BODY: &[u8] = br#"{"triggerType":"form_submission"}"#;
    const TS: &str = "1763800000000";
    const DIGEST: &str = "d2fcacac39971f7d6aba6a2175757ba82725bbee363764377cc68284f7555d86";

    #[test]
    fn the_known_answer_verifies_with_a_rotated_secret_and_tampering_does_not() {
        let now = 1_763_800_000_000 + 10_000;
        assert_eq!(verify(TS, DIGEST, BODY, now), Ok(()));
        assert_eq!(verify(TS, DIGEST, b"{}", now), Err(SignatureError::NoMatch));
        assert_eq!(verify("1763800000001", DIGEST, BODY, now), Err(SignatureError::NoMatch));
        assert_eq!(verify(TS, &"0".repeat(64), BODY, now), Err(SignatureError::NoMatch));
        assert_eq!(verify(TS, "", BODY, now), Err(SignatureError::MissingHeader));
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let five_minutes = 300_000;
        let sent = 1_763_800_000_000;
        assert_eq!(verify(TS, DIGEST, BODY, sent + five_minutes + 1), Err(SignatureError::TooOld));
        assert_eq!(verify(TS, DIGEST, BODY, sent - five_minutes - 1), Err(SignatureError::TooNew));
        // Seconds where milliseconds belong are fifty years stale.
        assert_eq!(verify("1763800000", DIGEST, BODY, sent), Err(SignatureError::TooOld));
    }

    #[test]
    fn a_submission_becomes_a_lead() {
        let Ok(Event::Form(form)) = Webflow
            .parse(&Payload::from_body(SUBMISSION.as_bytes()), &settings())
            .event
        else {
            panic!("a form submission");
        };
        let p = &form.profile;
        assert_eq!(p.email.as_str(), "jordan.kim@initech.example");
        assert_eq!(p.name, "Jordan Kim");
        assert_eq!(p.company.as_deref(), Some("Initech"));
        assert_eq!(p.phone.as_deref(), Some("(212) 555-0199"));
        assert_eq!(p.role.as_deref(), Some("Head of Ops"));
        assert_eq!(p.submission_id.as_deref(), Some("6321ca84df3949bfc6752327"));
        assert_eq!(p.answers[0].0, "Message");
    }
}
