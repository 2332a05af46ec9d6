//! Typeform (`POST /webhooks/typeform`): a form response starts a lead.
//!
//! Signed `Typeform-Signature: sha256=<base64>`, the standard base64 of the
//! HMAC-SHA256 of the raw body keyed with the webhook's secret, no timestamp
//! (typeform.com/developers/webhooks/secure-your-webhooks). The response id
//! (`form_response.token`) is the submission id, so a retried delivery is one lead.

use serde_json::{Map, Value};

use super::fields::{Answer, Kind, ProfileDraft, answer_text, child, normalize_email, text};
use super::{
    Connector, Delivery, Event, Parsed, Sample, Settings, Unrecognized, form_event,
};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{Base64BodySignature, WebhookSecret};

pub struct Typeform;

const HEADER: &str = "typeform-signature";

impl Connector for Typeform {
    fn name(&self) -> &'static str {
        "typeform"
    }

    fn secrets_var(&self) -> &'static str {
        "TYPEFORM_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Settings::new(Base64BodySignature::new(
            super::secrets(env, self.secrets_var()),
            HEADER,
            Some("sha256="),
        ))
        .with_fields(env, "TYPEFORM_FIELD_MAP")
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(
            HEADER,
            format!("sha256={}", Base64BodySignature::sign(secret, delivery.body)),
        )]
    }

    fn parse(&self, payload: &Payload, settings: &Settings) -> Parsed {
        let Some(top) = payload.object() else {
            return Parsed::unrecognized("not a JSON object");
        };
        let event_type = text(top, &["event_type"]).map(str::to_owned);
        let event_id = text(top, &["event_id"]).map(str::to_owned);
        let response = child(top, "form_response");
        let event = match (event_type.as_deref(), response) {
            (Some("form_response"), Some(response)) => {
                form_event(draft(response, settings), "typeform")
            }
            (Some(other), _) if other != "form_response" => Ok(Event::Ignored),
            _ => Err(Unrecognized("no form_response".into())),
        };
        Parsed::form(event_id, event_type, event)
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/typeform/form-response.json"), |v| {
            v["event_id"] = Value::from(format!("evt_{fresh}"));
            v["form_response"]["token"] = Value::from(format!("tok_{fresh}"));
        })
    }
}

/// The answers under their questions' titles (from `definition.fields`), hidden
/// fields by name.
fn draft(response: &Map<String, Value>, settings: &Settings) -> ProfileDraft {
    let titles: Vec<(&str, &str)> = response
        .get("definition")
        .and_then(|d| d.get("fields"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f.get("id")?.as_str()?, f.get("title")?.as_str()?)))
        .collect();
    let mut answers = Vec::new();
    for answer in response
        .get("answers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        let field = child(answer, "field");
        let id = field.and_then(|f| text(f, &["id"])).unwrap_or_default();
        let reference = field.and_then(|f| text(f, &["ref"])).unwrap_or_default();
        let kind = text(answer, &["type"]).unwrap_or_default();
        let Some(value) = value(answer, kind) else {
            continue;
        };
        let title = titles
            .iter()
            .find(|(fid, _)| *fid == id)
            .map(|(_, title)| *title)
            .unwrap_or(if reference.is_empty() { id } else { reference });
        let kind = match kind {
            "email" => Kind::Email,
            "phone_number" => Kind::Phone,
            _ => Kind::Other,
        };
        answers.push(Answer::new(title, kind, value).alias(reference).alias(id));
    }
    for (name, value) in child(response, "hidden").into_iter().flatten() {
        if let Some(value) = answer_text(value) {
            answers.push(Answer::new(name.clone(), Kind::Hidden, value));
        }
    }
    let mut draft = ProfileDraft::from_answers(answers, &settings.fields);
    draft.form_id = text(response, &["form_id"]).map(str::to_owned);
    draft.submission_id = text(response, &["token", "response_id"]).map(str::to_owned);
    draft.source = Some("typeform".into());
    draft
}

/// The answer's value, keyed by its type (`"type": "email", "email": "..."`).
fn value(answer: &Map<String, Value>, kind: &str) -> Option<String> {
    match kind {
        "choice" => {
            let choice = child(answer, "choice")?;
            text(choice, &["label", "other"]).map(str::to_owned)
        }
        "choices" => {
            let choices = child(answer, "choices")?;
            let mut labels: Vec<String> = choices
                .get("labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(answer_text)
                .collect();
            labels.extend(text(choices, &["other"]).map(str::to_owned));
            (!labels.is_empty()).then(|| labels.join(", "))
        }
        "email" => answer
            .get("email")
            .and_then(Value::as_str)
            .map(|e| normalize_email(e).unwrap_or_else(|| e.to_string())),
        other => answer.get(other).and_then(answer_text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Provider;
    use crate::signature::SignatureError;

    const RESPONSE: &str = include_str!("../../fixtures/typeform/form-response.json");
    const FIRST_LAST: &str = include_str!("../../fixtures/typeform/form-response-first-last.json");

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut all = vec![("TYPEFORM_WEBHOOK_SECRETS", "whsec_typeform")];
        all.extend_from_slice(pairs);
        Typeform.configure(&Env::from_pairs(all.iter().copied())).unwrap()
    }

    fn form(body: &str, settings: &Settings) -> crate::connectors::FormSubmission {
        match Typeform.parse(&Payload::from_body(body.as_bytes()), settings).event {
            Ok(Event::Form(form)) => *form,
            other => panic!("a form submission, not {other:?}"),
        }
    }

    #[test]
    fn the_known_answer_from_the_docs_verifies() {
        // typeform.com/developers/webhooks/secure-your-webhooks: the digest of the
        // body with the secret, base64, prefixed `sha256=`. Computed independently:
        //   base64(hmac.new(b"whsec_typeform", b'{"event_id":"x"}', sha256).digest())
        let body = br#"{"event_id":"x"}"#;
        let header = "sha256=Jkn2w91L/00RpN5ZZoRaMMN9a9aXlapqj7lv1c8GLOQ=";
        let expected = Base64BodySignature::sign(&WebhookSecret::new("whsec_typeform").unwrap(), body);
        assert_eq!(format!("sha256={expected}"), header);
        let headers: http::HeaderMap = [(HEADER.parse().unwrap(), header.parse().unwrap())]
            .into_iter()
            .collect();
        let delivery = Delivery {
            method: "POST",
            url: "https://x.example/webhooks/typeform",
            headers: &headers,
            body,
            now: chrono::Utc::now(),
        };
        let settings = settings(&[]);
        assert_eq!(settings.verifier.verify(&delivery), Ok(()));
        let mut wrong = headers.clone();
        wrong.insert(HEADER, header.replace("sha256=", "").parse().unwrap());
        let unprefixed = Delivery { headers: &wrong, ..delivery };
        assert!(settings.verifier.verify(&unprefixed).is_err());
        wrong.insert(HEADER, "sha256=".parse().unwrap());
        let empty = Delivery { headers: &wrong, ..delivery };
        assert!(matches!(
            settings.verifier.verify(&empty),
            Err(SignatureError::MalformedBase64Digest)
        ));
    }

    #[test]
    fn a_response_becomes_a_lead_with_every_field_mapped() {
        let form = form(RESPONSE, &settings(&[]));
        let p = &form.profile;
        assert_eq!(p.email.as_str(), "taylor.nguyen@soylent.example");
        assert_eq!(p.name, "Taylor Nguyen");
        assert_eq!(p.company.as_deref(), Some("Soylent"));
        assert_eq!(p.phone.as_deref(), Some("+14155550199"));
        assert_eq!(p.role.as_deref(), Some("VP Analytics"));
        assert_eq!(
            p.assigned_rep_email.as_ref().map(|e| e.as_str()),
            Some("alex@vendor.example")
        );
        assert_eq!(p.form_id.as_deref(), Some("lW6ZMv"));
        assert_eq!(
            p.submission_id.as_deref(),
            Some("a3a12ec67a1365927098a606107fac15")
        );
        let questions: Vec<&str> = p.answers.iter().map(|(q, _)| q.as_str()).collect();
        assert!(questions.contains(&"How big is your team?"), "{questions:?}");
        assert!(questions.contains(&"Which CRM do you use?"));
        assert!(p.answers.contains(&("How big is your team?".into(), "11-50".into())));
        assert!(p.answers.contains(&("Can we call you?".into(), "yes".into())));
        assert!(form.warnings.is_empty(), "{:?}", form.warnings);
    }

    #[test]
    fn first_and_last_name_fields_and_a_typed_email_with_an_odd_ref_are_found() {
        let form = form(FIRST_LAST, &settings(&[]));
        assert_eq!(form.profile.email.as_str(), "sam.lee@acme.example");
        assert_eq!(form.profile.name, "Sam Lee");
        assert_eq!(form.profile.company, None);
    }

    #[test]
    fn an_explicit_mapping_overrides_the_guess() {
        let form = form(
            RESPONSE,
            &settings(&[("TYPEFORM_FIELD_MAP", "company=What would you like to see in the demo?")]),
        );
        assert!(form.profile.company.unwrap().len() > 20);
        assert!(form.profile.answers.iter().any(|(q, _)| q == "Company"));
    }

    #[test]
    fn a_response_without_an_email_is_kept_with_its_reason() {
        let mut value: Value = serde_json::from_str(RESPONSE).unwrap();
        value["form_response"]["answers"].as_array_mut().unwrap().remove(0);
        let parsed = Typeform.parse(&Payload::Json(value), &settings(&[]));
        assert_eq!(
            parsed.event,
            Err(Unrecognized(
                "no usable email (typeform): email is required".into()
            ))
        );
        assert_eq!(parsed.event_id.as_deref(), Some("01JD8ZK4QW3N7XRB5T2M9CFHEA"));
    }

    #[test]
    fn a_queued_response_is_grouped_by_its_email() {
        let e = crate::inbound::InboundEvent::from_delivery(
            Provider::named("typeform").unwrap(),
            RESPONSE.as_bytes(),
            chrono::Utc::now(),
        );
        assert!(e.recognized);
        assert_eq!(
            e.subject,
            crate::inbound::Subject::Email("taylor.nguyen@soylent.example".into())
        );
    }
}
