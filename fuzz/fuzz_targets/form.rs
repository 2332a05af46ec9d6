//! Form posts (and Skode `lead.created` data) as anyone may send them. Properties:
//! nothing panics; a refusal names at least one field; an accepted profile keeps the
//! limits the README promises, and its email is already normalized.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::form::{parse_form, profile_from_skode_lead};
use shared::lead::{EmailAddress, LeadProfile};

fn check(profile: &LeadProfile) {
    let email = profile.email.as_str();
    assert_eq!(EmailAddress::parse(email).unwrap().as_str(), email);
    assert!(!profile.name.trim().is_empty() && profile.name.chars().count() <= 200);
    assert!(profile.answers.len() <= 50);
    assert!(
        profile
            .answers
            .iter()
            .all(|(_, a)| a.chars().count() <= 2_000)
    );
}

fuzz_target!(|body: &[u8]| {
    match parse_form(body) {
        Ok(profile) => check(&profile),
        Err(errors) => assert!(!errors.0.is_empty()),
    }
    if let Ok(Value::Object(data)) = serde_json::from_slice::<Value>(body) {
        match profile_from_skode_lead(&data) {
            Ok(profile) => check(&profile),
            Err(errors) => assert!(!errors.0.is_empty()),
        }
    }
});
