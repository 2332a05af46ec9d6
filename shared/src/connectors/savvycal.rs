//! SavvyCal (`POST /webhooks/savvycal`): a meeting was booked, requested, approved,
//! moved, cancelled or declined.
//!
//! Signed `x-savvycal-signature: sha256={hex}`, HMAC-SHA256 of the raw body with the
//! webhook's secret, no timestamp (developers.savvycal.com/webhooks; the docs' example
//! digest is uppercase, so hex in either case is accepted, and the prefix is required).
//!
//! Envelope `{type, id, version, occurred_at, payload}`; the payload is the event:
//! `id` (the booking id, the same across a reschedule), `state`, `start_at`,
//! `attendees[{email, display_name, is_organizer}]` (the first attendee who is not the
//! organizer booked), `canceled_at`. The envelope `id` is the event id.

use serde_json::{Map, Value};

use super::fields::{child, text};
use super::{BookingChange, BookingFields, Connector, Delivery, Event, Parsed, Sample, Settings};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{BodySignature, DigestPrefix, WebhookSecret};

pub struct SavvyCal;

const HEADER: &str = "x-savvycal-signature";

impl Connector for SavvyCal {
    fn name(&self) -> &'static str {
        "savvycal"
    }

    fn secrets_var(&self) -> &'static str {
        "SAVVYCAL_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(BodySignature::new(
            super::secrets(env, self.secrets_var()),
            HEADER,
            DigestPrefix::Required,
        )))
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(
            HEADER,
            format!("sha256={}", BodySignature::sign(secret, delivery.body).to_uppercase()),
        )]
    }

    fn parse(&self, payload: &Payload, _: &Settings) -> Parsed {
        match payload.object() {
            Some(top) => parse(top),
            None => Parsed::unrecognized("not a JSON object"),
        }
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/savvycal/event-created.json"), |v| {
            v["id"] = Value::from(format!("payload_{fresh}"));
            v["payload"]["id"] = Value::from(format!("event_{fresh}"));
        })
    }
}

/// The first attendee who is not the organizer.
fn booker(event: &Map<String, Value>) -> Option<&str> {
    event
        .get("attendees")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|a| a.get("is_organizer").and_then(Value::as_bool) != Some(true))
        .and_then(|a| text(a, &["email"]))
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let event_id = text(top, &["id"]).map(str::to_owned);
    let Some(kind) = text(top, &["type"]) else {
        return Parsed::unrecognized("no event type (savvycal: type)");
    };
    let change = match kind {
        "event.created" | "event.requested" | "event.approved" => BookingChange::Booked,
        "event.rescheduled" => BookingChange::Rescheduled,
        "event.canceled" | "event.declined" => BookingChange::Cancelled,
        _ => return Parsed::booking(event_id, Some(kind.to_owned()), Ok(Event::Ignored)),
    };
    let event = child(top, "payload");
    let fields = BookingFields {
        change,
        booking_id: event.and_then(|e| text(e, &["id"])),
        email: event.and_then(booker),
        // `start_time` in one third-party schema of the same object.
        start_at: event.and_then(|e| text(e, &["start_at", "start_time"])),
        replaces: None,
    };
    Parsed::booking(
        event_id,
        Some(kind.to_owned()),
        fields.event(
            "savvycal",
            "payload.id",
            "payload.attendees[].email of a non-organizer",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Booking;
    use crate::inbound::Subject;
    use crate::signature::SignatureError;

    const CREATED: &str = include_str!("../../fixtures/savvycal/event-created.json");
    const RESCHEDULED: &str = include_str!("../../fixtures/savvycal/event-rescheduled.json");
    const CANCELED: &str = include_str!("../../fixtures/savvycal/event-canceled.json");
    const REQUESTED: &str = include_str!("../../fixtures/savvycal/event-requested.json");
    const APPROVED: &str = include_str!("../../fixtures/savvycal/event-approved.json");
    const DECLINED: &str = include_str!("../../fixtures/savvycal/event-declined.json");

    const EMAIL: &str = "sofia.lindqvist@initrode.example";

    fn settings() -> Settings {
        SavvyCal
            .configure(&Env::from_pairs([(
                "SAVVYCAL_WEBHOOK_SECRETS",
                "whsec_savvycal,whsec_savvycal_old",
            )]))
            .unwrap()
    }

    fn read(body: &str) -> Parsed {
        SavvyCal.parse(&Payload::from_body(body.as_bytes()), &settings())
    }

    fn booking(body: &str) -> Booking {
        match read(body).event {
            Ok(Event::Booking(booking)) => booking,
            other => panic!("a booking, not {other:?}"),
        }
    }

    #[test]
    fn every_fixture_is_the_expected_booking() {
        let demo = "event_01JD4KX9M2Q7T3V8B6N1R5W0ZC";
        let asked = "event_01JD5P2C7H4K9N3S6V1Y8B0E5G";
        let refused = "event_01JD5R4H8L2P6T0X4B8F2J6N0S";
        for (body, id, change, start, event_id) in [
            (CREATED, demo, BookingChange::Booked, "2026-11-24T14:00:00Z", "payload_01JD4KXB2N6R9V3Y7C1F5J8M0Q"),
            (RESCHEDULED, demo, BookingChange::Rescheduled, "2026-11-26T09:30:00Z", "payload_01JD6A1D4G7K0N3Q6T9W2Z5C8F"),
            (CANCELED, demo, BookingChange::Cancelled, "2026-11-26T09:30:00Z", "payload_01JD7B3F6J9M2P5S8V1Y4B7E0H"),
            (REQUESTED, asked, BookingChange::Booked, "2026-11-27T13:00:00Z", "payload_01JD5P2D0K3N6Q9T2W5Z8C1F4J"),
            (APPROVED, asked, BookingChange::Booked, "2026-11-27T13:00:00Z", "payload_01JD5Q8E3M6P9S2V5Y8B1E4H7K"),
            (DECLINED, refused, BookingChange::Cancelled, "2026-11-27T13:00:00Z", "payload_01JD5Q9F6P9S2V5Y8B1E4H7K0N"),
        ] {
            let b = booking(body);
            assert_eq!(b.booking_id, id, "{event_id}");
            assert_eq!(b.email.as_str(), EMAIL, "{event_id}");
            assert_eq!(b.change, change, "{event_id}");
            assert_eq!(b.start_at, Some(start.parse().unwrap()), "{event_id}");
            assert_eq!(b.replaces, None, "{event_id}");
            let parsed = read(body);
            assert_eq!(parsed.event_id.as_deref(), Some(event_id));
            assert_eq!(parsed.subject, Subject::Email(EMAIL.into()));
        }
        assert_eq!(read(CREATED).event_type.as_deref(), Some("event.created"));
    }

    #[test]
    fn the_organizer_is_never_taken_for_the_booker() {
        let only_host = r#"{"type":"event.created","id":"p1","payload":{"id":"e1","attendees":[{"email":"ida@vendor.example","is_organizer":true}]}}"#;
        let Err(reason) = read(only_host).event else {
            panic!("unrecognized");
        };
        assert_eq!(
            reason.0,
            "no email (savvycal: payload.attendees[].email of a non-organizer)"
        );
        let no_flag = r#"{"type":"event.created","id":"p1","payload":{"id":"e1","attendees":[{"email":"ida@vendor.example","is_organizer":true},{"email":"Guest@X.example"}]}}"#;
        assert_eq!(booking(no_flag).email.as_str(), "guest@x.example");
    }

    #[test]
    fn other_events_are_ignored_and_unknown_shapes_kept() {
        for kind in ["event.changed", "event.attendee.added", "poll.response.created", "workflow.action.triggered"] {
            let body = format!(r#"{{"type":"{kind}","id":"p1","payload":{{"id":"e1"}}}}"#);
            assert_eq!(read(&body).event, Ok(Event::Ignored), "{kind}");
        }
        let no_id = r#"{"type":"event.canceled","id":"p1","payload":{"attendees":[{"email":"a@b.example"}]}}"#;
        let Err(reason) = read(no_id).event else {
            panic!("unrecognized");
        };
        assert_eq!(reason.0, "no booking id (savvycal: payload.id)");
        assert!(read(r#"{"id":"p1"}"#).event.is_err());
    }

    // The known answer, computed independently:
    //   hmac.new(b"whsec_savvycal", b'{"type":"event.created"}', sha256).hexdigest()
    const BODY: &[u8] = br#"{"type":"event.created"}"#;
    const DIGEST: &str = "b530f3246fbfc6243fc6e38d72eade9f4ff76389e2052c9ba123843803f3cd4a";

    fn verify(header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = header
            .map(|h| (HEADER.parse().unwrap(), h.parse().unwrap()))
            .into_iter()
            .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/savvycal",
            headers: &headers,
            body,
            now: chrono::Utc::now(),
        })
    }

    #[test]
    fn the_known_answer_verifies_in_upper_or_lower_case_and_tampering_does_not() {
        assert_eq!(verify(Some(&format!("sha256={DIGEST}")), BODY), Ok(()));
        assert_eq!(
            verify(Some(&format!("sha256={}", DIGEST.to_uppercase())), BODY),
            Ok(())
        );
        assert_eq!(
            verify(Some(&format!("SHA256={}", DIGEST.to_uppercase())), BODY),
            Ok(())
        );
        assert_eq!(
            verify(Some(&format!("sha256={DIGEST}")), br#"{"type":"event.canceled"}"#),
            Err(SignatureError::NoMatch)
        );
        let old = BodySignature::sign(&WebhookSecret::new("whsec_savvycal_old").unwrap(), BODY);
        assert_eq!(verify(Some(&format!("sha256={old}")), BODY), Ok(()));
        let other = BodySignature::sign(&WebhookSecret::new("whsec_other").unwrap(), BODY);
        assert_eq!(
            verify(Some(&format!("sha256={other}")), BODY),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_missing_or_malformed_signature_is_refused() {
        assert_eq!(verify(None, BODY), Err(SignatureError::MissingHeader));
        assert_eq!(
            verify(Some(DIGEST), BODY),
            Err(SignatureError::MalformedHeader("missing the sha256= prefix"))
        );
        for malformed in ["sha256=", "sha256=abc", &format!("sha256={}", &DIGEST[2..])] {
            assert_eq!(
                verify(Some(malformed), BODY),
                Err(SignatureError::MalformedDigest),
                "{malformed}"
            );
        }
    }

    #[test]
    fn the_sample_has_fresh_ids_and_the_fixture_email() {
        let body = String::from_utf8(SavvyCal.sample("fresh42").body).unwrap();
        assert_eq!(read(&body).event_id.as_deref(), Some("payload_fresh42"));
        let b = booking(&body);
        assert_eq!(b.booking_id, "event_fresh42");
        assert_eq!(b.email.as_str(), EMAIL);
    }
}
