//! The `POST /forms` body, parsed into a lead profile. Only the email is required;
//! every other field is optional and never a reason to refuse the lead.
//!
//! ```json
//! {
//!   "email": "dana.ruiz@northwind.example",      // required
//!   "name": "Dana Ruiz",                         // or "first_name" + "last_name"
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

use crate::connectors::FormSubmission;
use crate::connectors::fields::{NoEmail, ProfileDraft, Warning, answer_text};

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

/// A field of `POST /forms`: its text, `None` when absent, null or blank; a value of
/// another type is dropped with a warning (numbers are read as text).
fn field(object: &Map<String, Value>, key: &str, warnings: &mut Vec<Warning>) -> Option<String> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            warnings.push(Warning::new(key, "dropped: must be a string"));
            None
        }
    }
}

/// Parses a form body. Only a missing or invalid email refuses it (one error on field
/// `email`, or on `body` when it is not a JSON object); every optional field that
/// cannot be kept as sent is cut or dropped, with a warning.
pub fn parse_form(body: &[u8]) -> Result<FormSubmission, ValidationErrors> {
    let refuse = |field: &str, message: &str| {
        ValidationErrors(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|_| refuse("body", "is not valid JSON"))?;
    let object = value
        .as_object()
        .ok_or_else(|| refuse("body", "must be a JSON object"))?;
    let mut warnings = Vec::new();
    let mut text = |key: &str| field(object, key, &mut warnings);
    let mut draft = ProfileDraft {
        email: text("email"),
        name: text("name"),
        first_name: text("first_name"),
        last_name: text("last_name"),
        company: text("company"),
        role: text("role").or_else(|| text("job_title")),
        phone: text("phone"),
        timezone: text("timezone"),
        rep_email: text("assigned_rep_email").or_else(|| text("rep_email")),
        form_id: text("form_id"),
        submission_id: text("submission_id"),
        source: text("source"),
        ..ProfileDraft::default()
    };
    match object.get("answers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(answers)) => {
            draft.answers = answers
                .iter()
                .filter_map(|(q, a)| Some((q.clone(), answer_text(a)?)))
                .collect();
        }
        Some(_) => warnings.push(Warning::new(
            "answers",
            "dropped: must be an object of question to answer",
        )),
    }
    draft.warnings = warnings;
    draft
        .finish()
        .map_err(|NoEmail(message)| refuse("email", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(form: &FormSubmission) -> Vec<String> {
        form.warnings.iter().map(ToString::to_string).collect()
    }

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
        let form = parse_form(
            br#"{"email":" Dana.Ruiz@Northwind.example ","name":" Dana Ruiz ","company":"Northwind",
                "role":"VP Analytics","phone":"+1 (415) 555-0142","timezone":"America/Chicago",
                "assigned_rep_email":"Alex@Vendor.example","form_id":"demo","submission_id":"sub_1",
                "answers":{"Team size":40,"Tools":["Excel","Looker"],"Urgent":true,"Empty":""},
                "source":"website","utm_campaign":"ignored"}"#,
        )
        .unwrap();
        assert!(form.warnings.is_empty(), "{:?}", form.warnings);
        let profile = form.profile;
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
    fn only_the_email_is_required() {
        assert_eq!(errors("{}"), vec![("email".into(), "is required".into())]);
        assert_eq!(
            errors(r#"{"email":"  ","name":"Dana"}"#),
            vec![("email".into(), "is required".into())]
        );
        assert_eq!(
            errors(r#"{"email":"not-an-email","name":"Dana"}"#),
            vec![("email".into(), "is not an email address".into())]
        );
        let form = parse_form(br#"{"email":"sam@acme.example"}"#).unwrap();
        assert_eq!(form.profile.name, "sam");
        assert_eq!(form.warnings.len(), 1, "{:?}", form.warnings);
    }

    #[test]
    fn unreadable_optional_fields_are_dropped_with_a_warning_each() {
        let form = parse_form(
            br#"{"email":"dana@northwind.example","name":42,"timezone":"PST","phone":"call me",
                "assigned_rep_email":"rep@","answers":[1,2],"company":{"x":1}}"#,
        )
        .unwrap();
        let fields: Vec<&str> = form.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(
            fields,
            ["company", "answers", "phone", "timezone", "rep_email"],
            "{:?}",
            form.warnings
        );
        let p = form.profile;
        assert_eq!(p.name, "42");
        assert_eq!(
            (p.phone, p.timezone, p.assigned_rep_email),
            (None, None, None)
        );
        // What could not be read as a field is still there for SkipUp's AI to read.
        assert_eq!(
            p.answers,
            vec![
                ("Phone".to_string(), "call me".to_string()),
                ("Time zone".to_string(), "PST".to_string()),
                ("Rep email".to_string(), "rep@".to_string())
            ]
        );
    }

    #[test]
    fn overlong_values_and_too_many_answers_are_cut_not_refused() {
        let long = "x".repeat(201);
        let form =
            parse_form(format!(r#"{{"email":"a@b.io","name":"{long}"}}"#).as_bytes()).unwrap();
        assert_eq!(form.profile.name.chars().count(), 200);
        assert_eq!(notes(&form), ["name cut to 200 characters (it had 201)"]);
        let mut many: Map<String, Value> = (0..51)
            .map(|i| (format!("q{i}"), Value::from("a")))
            .collect();
        many.insert("essay".into(), Value::from("y".repeat(7_000)));
        let body = serde_json::json!({"email":"a@b.io","name":"A","answers":many}).to_string();
        let form = parse_form(body.as_bytes()).unwrap();
        assert_eq!(form.profile.answers.len(), 50);
        assert_eq!(
            notes(&form),
            ["answers only the first 50 kept (2 more dropped)"]
        );
        let body =
            serde_json::json!({"email":"a@b.io","answers":{"Tell us more": "z".repeat(7_000)}});
        let form = parse_form(body.to_string().as_bytes()).unwrap();
        assert_eq!(form.profile.answers[0].1.chars().count(), 2_000);
        assert_eq!(
            notes(&form),
            [
                "name is missing: the address stands in for it",
                "answer \"Tell us more\" cut to 2000 characters (it had 7000)"
            ]
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
    fn first_and_last_names_make_the_name() {
        let form =
            parse_form(br#"{"email":"a@b.io","first_name":"Ada","last_name":"Lovelace"}"#).unwrap();
        assert_eq!(form.profile.name, "Ada Lovelace");
        assert!(form.warnings.is_empty());
    }
}
