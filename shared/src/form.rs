//! The `POST /forms` body, parsed into a [`LeadProfile`] with one error per bad field,
//! and the same profile from a Skode `lead.created` event.
//!
//! ```json
//! {
//!   "email": "dana.ruiz@northwind.example",      // required
//!   "name": "Dana Ruiz",                         // required
//!   "company": "Northwind", "role": "VP Analytics", "phone": "+1 415 555 0142",
//!   "timezone": "America/Chicago",               // IANA name
//!   "assigned_rep_email": "alex@vendor.example",
//!   "form_id": "demo-request", "submission_id": "sub_8f2c",
//!   "answers": {"Team size": "40", "Current tool": "spreadsheets"},
//!   "source": "website"
//! }
//! ```
//! Unknown fields are ignored.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::lead::{EmailAddress, LeadProfile, TimeZoneName};

/// One rejected field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a body, so the caller can fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} field(s) invalid", .0.len())]
pub struct ValidationErrors(pub Vec<FieldError>);

const MAX_TEXT: usize = 200;
const MAX_ANSWERS: usize = 50;
const MAX_ANSWER: usize = 2_000;

struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// A trimmed string, `None` when absent, null or blank.
    fn text(&mut self, field: &str, max: usize) -> Option<String> {
        match self.object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    None
                } else if s.chars().count() > max {
                    self.fail(field, format!("is longer than {max} characters"));
                    None
                } else if s.chars().any(char::is_control) {
                    self.fail(field, "contains control characters");
                    None
                } else {
                    Some(s.to_string())
                }
            }
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    fn required(&mut self, field: &str, max: usize) -> Option<String> {
        let value = self.text(field, max);
        if value.is_none() && !self.errors.iter().any(|e| e.field == field) {
            self.fail(field, "is required");
        }
        value
    }

    fn parsed<T>(
        &mut self,
        field: &str,
        value: Option<String>,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        match parse(value.as_deref()?) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.fail(field, message);
                None
            }
        }
    }
}

fn parse_phone(raw: &str) -> Result<String, &'static str> {
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    let allowed = raw
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if allowed && (6..=20).contains(&digits) {
        Ok(raw.to_string())
    } else {
        Err("is not a phone number")
    }
}

fn answer_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(answer_text).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        Value::Object(_) => Some(value.to_string()),
    }
}

fn answers(fields: &mut Fields<'_>) -> Vec<(String, String)> {
    let object = match fields.object.get("answers") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(object)) => object,
        Some(_) => {
            fields.fail("answers", "must be an object of question to answer");
            return Vec::new();
        }
    };
    if object.len() > MAX_ANSWERS {
        fields.fail("answers", format!("has more than {MAX_ANSWERS} entries"));
        return Vec::new();
    }
    let mut out = Vec::new();
    for (question, value) in object {
        let Some(answer) = answer_text(value) else {
            continue;
        };
        if question.trim().is_empty() || question.chars().count() > MAX_TEXT {
            fields.fail(
                "answers",
                format!("questions must be 1 to {MAX_TEXT} characters"),
            );
        } else if answer.chars().count() > MAX_ANSWER {
            fields.fail(
                &format!("answers.{question}"),
                format!("is longer than {MAX_ANSWER} characters"),
            );
        } else {
            out.push((question.trim().to_string(), answer));
        }
    }
    out
}

/// Parses a form body. A body that is not a JSON object is one error on field `body`.
pub fn parse_form(body: &[u8]) -> Result<LeadProfile, ValidationErrors> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ValidationErrors(vec![FieldError {
            field: "body".into(),
            message: "is not valid JSON".into(),
        }])
    })?;
    let Some(object) = value.as_object() else {
        return Err(ValidationErrors(vec![FieldError {
            field: "body".into(),
            message: "must be a JSON object".into(),
        }]));
    };
    let mut f = Fields {
        object,
        errors: Vec::new(),
    };
    let email = f.required("email", 254);
    let email = f.parsed("email", email, EmailAddress::parse);
    let name = f.required("name", MAX_TEXT);
    let company = f.text("company", MAX_TEXT);
    let role = f.text("role", MAX_TEXT);
    let phone = f.text("phone", 40);
    let phone = f.parsed("phone", phone, parse_phone);
    let timezone = f.text("timezone", 64);
    let timezone = f.parsed("timezone", timezone, TimeZoneName::parse);
    let rep = f.text("assigned_rep_email", 254);
    let assigned_rep_email = f.parsed("assigned_rep_email", rep, EmailAddress::parse);
    let form_id = f.text("form_id", MAX_TEXT);
    let submission_id = f.text("submission_id", MAX_TEXT);
    let source = f.text("source", 100);
    let answers = answers(&mut f);
    match (email, name) {
        (Some(email), Some(name)) if f.errors.is_empty() => Ok(LeadProfile {
            email,
            name,
            company,
            role,
            phone,
            timezone,
            assigned_rep_email,
            form_id,
            submission_id,
            answers,
            source,
            skode_lead_id: None,
        }),
        _ => Err(ValidationErrors(f.errors)),
    }
}

/// The profile from a Skode `lead.created` event's `data` (`id`, `name`, `email`,
/// `company`, `source`). The Skode lead id stands in for the submission id, so a
/// redelivered event maps to the same lead.
pub fn profile_from_skode_lead(data: &Map<String, Value>) -> Result<LeadProfile, ValidationErrors> {
    let mut f = Fields {
        object: data,
        errors: Vec::new(),
    };
    let skode_id = f.required("id", MAX_TEXT);
    let email = f.required("email", 254);
    let email = f.parsed("email", email, EmailAddress::parse);
    let name = f.required("name", MAX_TEXT);
    let company = f.text("company", MAX_TEXT);
    let source = f.text("source", 100);
    let phone = f.text("phone", 40);
    let phone = f.parsed("phone", phone, parse_phone);
    match (skode_id, email, name) {
        (Some(skode_id), Some(email), Some(name)) if f.errors.is_empty() => Ok(LeadProfile {
            email,
            name,
            company,
            role: None,
            phone,
            timezone: None,
            assigned_rep_email: None,
            form_id: Some("skode".into()),
            submission_id: Some(skode_id.clone()),
            answers: Vec::new(),
            source: Some(source.unwrap_or_else(|| "skode".into())),
            skode_lead_id: Some(skode_id),
        }),
        _ => Err(ValidationErrors(f.errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> Vec<(String, String)> {
        parse_form(body.as_bytes())
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn a_complete_form_is_parsed_and_normalized() {
        let profile = parse_form(
            br#"{"email":" Dana.Ruiz@Northwind.example ","name":" Dana Ruiz ","company":"Northwind",
                "role":"VP Analytics","phone":"+1 (415) 555-0142","timezone":"America/Chicago",
                "assigned_rep_email":"Alex@Vendor.example","form_id":"demo","submission_id":"sub_1",
                "answers":{"Team size":40,"Tools":["Excel","Looker"],"Urgent":true,"Empty":""},
                "source":"website","utm_campaign":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(profile.email.as_str(), "dana.ruiz@northwind.example");
        assert_eq!(profile.name, "Dana Ruiz");
        assert_eq!(profile.timezone.unwrap().as_str(), "America/Chicago");
        assert_eq!(
            profile.assigned_rep_email.unwrap().as_str(),
            "alex@vendor.example"
        );
        assert_eq!(
            profile.answers,
            vec![
                ("Team size".to_string(), "40".to_string()),
                ("Tools".to_string(), "Excel, Looker".to_string()),
                ("Urgent".to_string(), "yes".to_string()),
            ]
        );
    }

    #[test]
    fn email_and_name_are_required() {
        assert_eq!(
            errors("{}"),
            vec![
                ("email".into(), "is required".into()),
                ("name".into(), "is required".into())
            ]
        );
        assert_eq!(
            errors(r#"{"email":"  ","name":"Dana"}"#),
            vec![("email".into(), "is required".into())]
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let found = errors(
            r#"{"email":"not-an-email","name":42,"timezone":"Mars/Base","phone":"call me",
                "assigned_rep_email":"rep@","answers":[1,2]}"#,
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "email",
                "name",
                "phone",
                "timezone",
                "assigned_rep_email",
                "answers"
            ]
        );
        assert!(found.contains(&("name".into(), "must be a string".into())));
    }

    #[test]
    fn overlong_values_and_too_many_answers_are_refused() {
        let long = "x".repeat(201);
        assert_eq!(
            errors(&format!(r#"{{"email":"a@b.io","name":"{long}"}}"#)),
            vec![("name".into(), "is longer than 200 characters".into())]
        );
        let many: Map<String, Value> = (0..51)
            .map(|i| (format!("q{i}"), Value::from("a")))
            .collect();
        let body = serde_json::json!({"email":"a@b.io","name":"A","answers":many}).to_string();
        assert_eq!(
            errors(&body),
            vec![("answers".into(), "has more than 50 entries".into())]
        );
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_one_error() {
        assert_eq!(
            errors("nope"),
            vec![("body".into(), "is not valid JSON".into())]
        );
        assert_eq!(
            errors("[1]"),
            vec![("body".into(), "must be a JSON object".into())]
        );
    }

    #[test]
    fn a_skode_lead_becomes_a_profile_keyed_by_its_skode_id() {
        let payload: Value =
            serde_json::from_str(include_str!("../fixtures/payloads/skode-lead-created.json"))
                .unwrap();
        let profile = profile_from_skode_lead(payload["data"].as_object().unwrap()).unwrap();
        assert_eq!(profile.email.as_str(), "priya.natarajan@globex.example");
        assert_eq!(profile.skode_lead_id.as_deref(), Some("lead_7c1e2a"));
        assert_eq!(profile.submission_id.as_deref(), Some("lead_7c1e2a"));
        assert_eq!(profile.source.as_deref(), Some("website_demo_form"));
        let missing = profile_from_skode_lead(&Map::new()).unwrap_err();
        assert_eq!(missing.0.len(), 3);
    }
}
