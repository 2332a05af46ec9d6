//! Form posts (and every connector's payload) as anyone may send them. Properties:
//! nothing panics; a refusal names at least one field; an accepted profile keeps the
//! limits the README promises, and its email is already normalized.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shared::config::Env;
use shared::connectors::{Connectors, Event, Provider};
use shared::form::parse_form;
use shared::inbound::Payload;
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
        Ok(form) => check(&form.profile),
        Err(errors) => assert!(!errors.0.is_empty()),
    }
    static CONNECTORS: OnceLock<Connectors> = OnceLock::new();
    let connectors = CONNECTORS.get_or_init(|| Connectors::from_env(&Env::empty()).unwrap());
    let payload = Payload::from_body(body);
    for provider in Provider::all() {
        if let Ok(Event::Form(form)) = connectors.parse(provider, &payload).event {
            check(&form.profile);
        }
    }
});
