//! The generic form route (`POST /webhooks/forms`) for Zapier, Make, Gravity Forms
//! (Webhooks add-on) or any backend: they sign nothing natively but can send a header,
//! so the route takes `Authorization: Bearer <secret>` (one of `FORMS_WEBHOOK_SECRETS`,
//! compared in constant time). The body is a flat JSON object or
//! `application/x-www-form-urlencoded` pairs: the fields of `POST /forms` (`email`,
//! `name` or `first_name` + `last_name`, `company`, `phone`, ...) or any names the field
//! mapping reads; every other field is kept as an answer under its name.

use serde_json::{Map, Value};
use sha2::Digest;

use super::fields::{Answer, Kind, ProfileDraft, answer_text, form_urlencoded};
use super::{Connector, Delivery, Parsed, Sample, Settings, Verify, form_event};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{SecretSet, SignatureError, WebhookSecret, header_text};

pub struct Forms;

const AUTHORIZATION: &str = "authorization";
/// Fields that say which submission this is, not what the prospect said.
const SUBMISSION_ID: [&str; 5] = ["submission_id", "entry_id", "response_id", "id", "lead_id"];
const FORM_ID: [&str; 2] = ["form_id", "form"];

impl Connector for Forms {
    fn name(&self) -> &'static str {
        "forms"
    }

    fn secrets_var(&self) -> &'static str {
        "FORMS_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Settings::new(BearerSecret(super::secrets(env, self.secrets_var())))
            .with_fields(env, "FORMS_FIELD_MAP")
    }

    fn sign(&self, secret: &WebhookSecret, _: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(AUTHORIZATION, format!("Bearer {}", secret.expose_for_header()))]
    }

    fn parse(&self, payload: &Payload, settings: &Settings) -> Parsed {
        let (pairs, free_answers) = match payload {
            Payload::Json(Value::Object(object)) => split_answers(object),
            Payload::Json(_) => return Parsed::unrecognized("not a JSON object"),
            Payload::Base64(_) => match payload.raw().as_deref().and_then(form_urlencoded) {
                Some(pairs) => (
                    pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
                    Vec::new(),
                ),
                None => return Parsed::unrecognized("neither JSON nor form-urlencoded"),
            },
        };
        let find = |keys: &[&str]| {
            pairs
                .iter()
                .find(|(k, _)| keys.contains(&k.as_str()))
                .and_then(|(_, v)| answer_text(v))
        };
        let submission_id = find(&SUBMISSION_ID);
        let form_id = find(&FORM_ID);
        let source = find(&["source"]);
        let answers = pairs
            .iter()
            .filter(|(k, _)| {
                !SUBMISSION_ID.contains(&k.as_str())
                    && !FORM_ID.contains(&k.as_str())
                    && k != "source"
            })
            .filter_map(|(k, v)| Some(Answer::new(k.clone(), Kind::Other, answer_text(v)?)))
            .collect();
        let mut draft = ProfileDraft::from_answers(answers, &settings.fields);
        draft.answers.extend(free_answers);
        draft.form_id = form_id;
        draft.submission_id = submission_id.clone();
        draft.source = source.or_else(|| Some("forms".into()));
        let event = form_event(draft, "forms");
        Parsed::form(submission_id, Some("form.submitted".into()), event)
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/forms/zapier.json"), |v| {
            v["submission_id"] = Value::from(format!("zap_{fresh}"));
        })
    }
}

/// Named fields as sent.
type Fields = Vec<(String, Value)>;

/// The top-level fields, and the `answers` object of a `POST /forms`-shaped body
/// apart: those are free-form questions, kept as answers and never read as a field.
fn split_answers(object: &Map<String, Value>) -> (Fields, Vec<(String, String)>) {
    let mut fields = Vec::new();
    let mut answers = Vec::new();
    for (key, value) in object {
        match (key.as_str(), value) {
            ("answers", Value::Object(object)) => answers.extend(
                object
                    .iter()
                    .filter_map(|(q, a)| Some((q.clone(), answer_text(a)?))),
            ),
            _ => fields.push((key.clone(), value.clone())),
        }
    }
    (fields, answers)
}

/// `Authorization: Bearer <secret>`, compared in constant time (as SHA-256 digests,
/// so not even the length of a secret shows in the timing).
#[derive(Debug)]
pub(crate) struct BearerSecret(pub(crate) SecretSet);

impl Verify for BearerSecret {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        if self.0.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        let header = header_text(delivery.header(AUTHORIZATION))?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(SignatureError::MalformedHeader("expected Bearer <secret>")),
        };
        if token.is_empty() {
            return Err(SignatureError::MalformedHeader("expected Bearer <secret>"));
        }
        let presented: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if self
            .0
            .any_keyed_digest_matches(&presented, |secret| sha2::Sha256::digest(secret).into())
        {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }

    fn secrets(&self) -> &SecretSet {
        &self.0
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Event;

    const ZAPIER: &str = include_str!("../../fixtures/forms/zapier.json");
    const GRAVITY: &[u8] = include_bytes!("../../fixtures/forms/gravity-forms.txt");

    fn settings() -> Settings {
        Forms
            .configure(&Env::from_pairs([("FORMS_WEBHOOK_SECRETS", "old_secret,forms_secret")]))
            .unwrap()
    }

    fn verify(header: Option<&str>) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = header
            .map(|h| (AUTHORIZATION.parse().unwrap(), h.parse().unwrap()))
            .into_iter()
            .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/forms",
            headers: &headers,
            body: b"{}",
            now: chrono::Utc::now(),
        })
    }

    #[test]
    fn any_configured_secret_as_a_bearer_token_is_accepted() {
        assert_eq!(verify(Some("Bearer forms_secret")), Ok(()));
        assert_eq!(verify(Some("bearer old_secret")), Ok(()));
        assert_eq!(verify(Some("Bearer forms_secre")), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some("Bearer forms_secretx")), Err(SignatureError::NoMatch));
        assert!(matches!(verify(Some("forms_secret")), Err(SignatureError::MalformedHeader(_))));
        assert!(matches!(verify(Some("Bearer ")), Err(SignatureError::MissingHeader | SignatureError::MalformedHeader(_))));
        assert_eq!(verify(None), Err(SignatureError::MissingHeader));
    }

    fn form(payload: Payload) -> crate::connectors::FormSubmission {
        match Forms.parse(&payload, &settings()).event {
            Ok(Event::Form(form)) => *form,
            other => panic!("a form submission, not {other:?}"),
        }
    }

    #[test]
    fn a_zapier_json_post_becomes_a_lead() {
        let form = form(Payload::from_body(ZAPIER.as_bytes()));
        let p = &form.profile;
        assert_eq!(p.email.as_str(), "elena.fischer@contoso.example");
        assert_eq!(p.name, "Elena Fischer");
        assert_eq!(p.role.as_deref(), Some("Director of Revenue Operations"));
        assert_eq!(p.timezone.as_ref().map(|t| t.as_str()), Some("Europe/Berlin"));
        assert_eq!(p.submission_id.as_deref(), Some("zap_8f2c"));
        assert_eq!(p.form_id.as_deref(), Some("gravity-demo"));
        assert_eq!(
            p.answers,
            vec![("How did you hear about us?".to_string(), "Podcast".to_string())]
        );
    }

    #[test]
    fn a_form_urlencoded_post_becomes_a_lead() {
        let form = form(Payload::from_body(GRAVITY));
        let p = &form.profile;
        assert_eq!(p.email.as_str(), "morgan.blake@umbrella.example");
        assert_eq!(p.name, "Morgan Blake");
        assert_eq!(p.phone.as_deref(), Some("+1 (312) 555-0178"));
        assert_eq!(p.submission_id.as_deref(), Some("1042"));
        assert_eq!(p.answers, vec![("Team size".to_string(), "51-200 people".to_string())]);
    }
}
