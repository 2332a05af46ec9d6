//! Calendly (`POST /webhooks/calendly`): an invitee booked or cancelled a meeting.
//!
//! Signed `Calendly-Webhook-Signature: t={unix seconds},v1={hex}`, HMAC-SHA256 of
//! `"{t}.{raw body}"` keyed with the subscription's signing key: SkipUp's scheme in
//! another header. Calendly's own pages (developer.calendly.com, "Webhook Signatures"
//! and the webhooks overview) give the header and the signed message but, in the text
//! we could read, no number for the freshness window; third-party guides disagree
//! (about 3 minutes in one, 5 in others). So the window is the shared
//! `WEBHOOK_TOLERANCE_SECONDS` (300 s by default), both ways, as for SkipUp.
//!
//! Envelope `{event, created_at, created_by, payload}`; for `invitee.*` the payload is
//! the invitee: `uri` (the booking id), `email`, `scheduled_event.start_time`,
//! `rescheduled`, `old_invitee` / `new_invitee` (URIs). A reschedule is two deliveries:
//! `invitee.canceled` of the old invitee with `rescheduled: true` (read as
//! [`BookingChange::Rescheduled`], never a cancellation), then `invitee.created` of the
//! new one naming the old in `old_invitee`. Calendly sends no event id, so the id is
//! `{event}:{payload.uri}`: a redelivery is the same event.

use serde_json::{Map, Value};

use super::fields::{child, text};
use super::{BookingChange, BookingFields, Connector, Delivery, Event, Parsed, Sample, Settings};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{TimestampedSignature, WebhookSecret};

pub struct Calendly;

const HEADER: &str = "calendly-webhook-signature";

impl Connector for Calendly {
    fn name(&self) -> &'static str {
        "calendly"
    }

    fn secrets_var(&self) -> &'static str {
        "CALENDLY_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(
            TimestampedSignature::new(
                super::secrets(env, self.secrets_var()),
                super::tolerance(env)?,
            )
            .in_header(HEADER),
        ))
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(
            HEADER,
            TimestampedSignature::sign(secret, delivery.now.timestamp(), delivery.body),
        )]
    }

    fn parse(&self, payload: &Payload, _: &Settings) -> Parsed {
        match payload.object() {
            Some(top) => parse(top),
            None => Parsed::unrecognized("not a JSON object"),
        }
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/calendly/invitee-created.json"), |v| {
            let uri = v["payload"]["uri"].as_str().unwrap_or_default();
            let event = uri.split("/invitees/").next().unwrap_or_default();
            v["payload"]["uri"] = Value::from(format!("{event}/invitees/{fresh}"));
        })
    }
}

/// A URI field, as a string or an object with its `uri`.
fn uri<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    text(object, &[key]).or_else(|| child(object, key).and_then(|o| text(o, &["uri"])))
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let Some(event) = text(top, &["event"]) else {
        return Parsed::unrecognized("no event name (calendly: event)");
    };
    let invitee = child(top, "payload");
    let booking_id = invitee.and_then(|i| text(i, &["uri"]));
    let event_id = booking_id.map(|id| format!("{event}:{id}"));
    let change = match event {
        "invitee.created" => BookingChange::Booked,
        "invitee.canceled" => {
            let rescheduled = invitee
                .and_then(|i| i.get("rescheduled"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if rescheduled {
                BookingChange::Rescheduled
            } else {
                BookingChange::Cancelled
            }
        }
        _ => return Parsed::booking(event_id, Some(event.to_owned()), Ok(Event::Ignored)),
    };
    let fields = BookingFields {
        change,
        booking_id,
        email: invitee.and_then(|i| text(i, &["email"])),
        start_at: invitee
            .and_then(|i| child(i, "scheduled_event"))
            .and_then(|e| text(e, &["start_time"])),
        replaces: invitee.and_then(|i| uri(i, "old_invitee")),
    };
    Parsed::booking(
        event_id,
        Some(event.to_owned()),
        fields.event("calendly", "payload.uri", "payload.email"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Booking;
    use crate::inbound::Subject;
    use crate::signature::SignatureError;

    const CREATED: &str = include_str!("../../fixtures/calendly/invitee-created.json");
    const CANCELED: &str = include_str!("../../fixtures/calendly/invitee-canceled.json");
    const RESCHEDULED_OLD: &str =
        include_str!("../../fixtures/calendly/invitee-canceled-rescheduled.json");
    const RESCHEDULED_NEW: &str =
        include_str!("../../fixtures/calendly/invitee-created-rescheduled.json");
    const NO_SHOW: &str = include_str!("../../fixtures/calendly/invitee-no-show-created.json");

    const EVENT_1: &str = "https://api.calendly.com/scheduled_events/8f3c2a1e-5b7d-4c9a-a2e4-6d1f0b3c5e71";
    const EVENT_2: &str = "https://api.calendly.com/scheduled_events/1a7e4c9d-3b2f-4d68-8e5a-9c0b7f2d4a16";
    const INVITEE_1: &str = "/invitees/c41d9e2b-7a3f-4e58-9b6c-2f0a8d1e3b94";
    const INVITEE_2: &str = "/invitees/5e9b2d7c-1f4a-4c3e-a8d6-7b0e3f9c2a58";

    fn settings() -> Settings {
        Calendly
            .configure(&Env::from_pairs([(
                "CALENDLY_WEBHOOK_SECRETS",
                "whsec_calendly_new, whsec_calendly",
            )]))
            .unwrap()
    }

    fn read(body: &str) -> Parsed {
        Calendly.parse(&Payload::from_body(body.as_bytes()), &settings())
    }

    fn booking(body: &str) -> Booking {
        match read(body).event {
            Ok(Event::Booking(booking)) => booking,
            other => panic!("a booking, not {other:?}"),
        }
    }

    fn at(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_invitee_created_is_a_booking_by_the_invitee_uri() {
        let parsed = read(CREATED);
        assert_eq!(parsed.event_type.as_deref(), Some("invitee.created"));
        let uri = format!("{EVENT_1}{INVITEE_1}");
        assert_eq!(parsed.event_id, Some(format!("invitee.created:{uri}")));
        assert_eq!(
            parsed.subject,
            Subject::Email("priya.shah@globex.example".into())
        );
        let b = booking(CREATED);
        assert_eq!(b.booking_id, uri);
        assert_eq!(b.email.as_str(), "priya.shah@globex.example");
        assert_eq!(b.change, BookingChange::Booked);
        assert_eq!(b.start_at, at("2026-11-24T15:00:00Z"));
        assert_eq!(b.replaces, None);
    }

    #[test]
    fn an_invitee_canceled_is_a_cancellation() {
        let b = booking(CANCELED);
        assert_eq!(b.booking_id, format!("{EVENT_1}{INVITEE_1}"));
        assert_eq!(b.change, BookingChange::Cancelled);
        assert_eq!(b.start_at, at("2026-11-24T15:00:00Z"));
        assert_eq!(b.replaces, None);
        // Not the same event as the booking it cancels.
        assert_ne!(read(CANCELED).event_id, read(CREATED).event_id);
    }

    #[test]
    fn a_reschedule_is_never_a_cancellation_and_the_new_invitee_names_the_old() {
        let old = booking(RESCHEDULED_OLD);
        assert_eq!(old.booking_id, format!("{EVENT_1}{INVITEE_1}"));
        assert_eq!(old.change, BookingChange::Rescheduled);
        assert_eq!(old.replaces, None);
        let new = booking(RESCHEDULED_NEW);
        assert_eq!(new.booking_id, format!("{EVENT_2}{INVITEE_2}"));
        assert_eq!(new.change, BookingChange::Booked);
        assert_eq!(new.start_at, at("2026-11-25T16:30:00Z"));
        assert_eq!(new.replaces, Some(format!("{EVENT_1}{INVITEE_1}")));
        assert_eq!(new.email, old.email);
        // An old_invitee given as an object with its uri reads the same.
        let mut value: Value = serde_json::from_str(RESCHEDULED_NEW).unwrap();
        value["payload"]["old_invitee"] = serde_json::json!({"uri": "https://x.example/i/1"});
        assert_eq!(
            booking(&value.to_string()).replaces.as_deref(),
            Some("https://x.example/i/1")
        );
    }

    #[test]
    fn a_redelivery_has_the_same_event_id() {
        let mut value: Value = serde_json::from_str(CREATED).unwrap();
        value["created_at"] = Value::from("2026-11-22T11:00:00.000000Z");
        assert_eq!(read(&value.to_string()).event_id, read(CREATED).event_id);
    }

    #[test]
    fn other_events_are_ignored() {
        let parsed = read(NO_SHOW);
        assert_eq!(parsed.event, Ok(Event::Ignored));
        assert_eq!(
            parsed.event_type.as_deref(),
            Some("invitee_no_show.created")
        );
        assert!(parsed.event_id.is_some());
        let form = r#"{"event":"routing_form_submission.created","payload":{"questions_and_answers":[]}}"#;
        assert_eq!(read(form).event, Ok(Event::Ignored));
    }

    #[test]
    fn a_booking_without_an_email_or_uri_is_kept_with_its_reason() {
        let reason = |body: &str| match read(body).event {
            Err(unrecognized) => unrecognized.0,
            other => panic!("unrecognized, not {other:?}"),
        };
        let no_email = r#"{"event":"invitee.created","payload":{"uri":"https://api.calendly.com/i/1"}}"#;
        assert_eq!(reason(no_email), "no email (calendly: payload.email)");
        let bad_email =
            r#"{"event":"invitee.created","payload":{"uri":"u","email":"priya@"}}"#;
        assert!(reason(bad_email).starts_with("no usable email (calendly: payload.email"));
        let no_uri = r#"{"event":"invitee.canceled","payload":{"email":"a@b.example"}}"#;
        assert_eq!(reason(no_uri), "no booking id (calendly: payload.uri)");
        assert_eq!(read(no_uri).subject, Subject::Unknown);
        assert_eq!(reason(r#"{"payload":{}}"#), "no event name (calendly: event)");
        assert_eq!(reason("[1]"), "not a JSON object");
    }

    #[test]
    fn a_bad_start_time_is_dropped() {
        let body = r#"{"event":"invitee.created","payload":{"uri":"u","email":"a@b.example","scheduled_event":{"start_time":"tomorrow"}}}"#;
        assert_eq!(booking(body).start_at, None);
    }

    // Known answer, computed independently:
    //   hmac.new(b"whsec_calendly", b'1763800000.{"event":"invitee.created"}', sha256)
    const BODY: &[u8] = br#"{"event":"invitee.created"}"#;
    const TS: i64 = 1_763_800_000;
    const DIGEST: &str = "7309751928fdd9f473afb3b56763e8b466db380ba31bb3cea80222b6b3264be0";

    fn verify(header: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = header
            .map(|h| (HEADER.parse().unwrap(), h.parse().unwrap()))
            .into_iter()
            .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/calendly",
            headers: &headers,
            body,
            now: chrono::DateTime::from_timestamp(now, 0).unwrap(),
        })
    }

    #[test]
    fn a_delivery_signed_with_either_configured_key_verifies_and_tampering_does_not() {
        let header = format!("t={TS},v1={DIGEST}");
        // Signed with the second (older) key of the rotation.
        assert_eq!(verify(Some(&header), BODY, TS + 5), Ok(()));
        assert_eq!(
            verify(Some(&header), br#"{"event":"invitee.canceled"}"#, TS + 5),
            Err(SignatureError::NoMatch)
        );
        let other = WebhookSecret::new("whsec_someone_else").unwrap();
        let forged = TimestampedSignature::sign(&other, TS, BODY);
        assert_eq!(verify(Some(&forged), BODY, TS + 5), Err(SignatureError::NoMatch));
        let first = WebhookSecret::new("whsec_calendly_new").unwrap();
        let rotated = TimestampedSignature::sign(&first, TS, BODY);
        assert_eq!(verify(Some(&rotated), BODY, TS + 5), Ok(()));
    }

    #[test]
    fn a_missing_malformed_or_misplaced_signature_is_refused() {
        assert_eq!(verify(None, BODY, TS), Err(SignatureError::MissingHeader));
        for header in [DIGEST.to_string(), format!("t={TS}"), format!("t=soon,v1={DIGEST}")] {
            assert!(
                matches!(
                    verify(Some(&header), BODY, TS),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{header}"
            );
        }
        assert_eq!(
            verify(Some(&format!("t={TS},v1=abc")), BODY, TS),
            Err(SignatureError::MalformedDigest)
        );
        // SkipUp's header is not Calendly's.
        let headers: http::HeaderMap = [(
            TimestampedSignature::HEADER.parse().unwrap(),
            format!("t={TS},v1={DIGEST}").parse().unwrap(),
        )]
        .into_iter()
        .collect();
        let delivery = Delivery {
            method: "POST",
            url: "https://x.example/webhooks/calendly",
            headers: &headers,
            body: BODY,
            now: chrono::DateTime::from_timestamp(TS, 0).unwrap(),
        };
        assert_eq!(
            settings().verifier.verify(&delivery),
            Err(SignatureError::MissingHeader)
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let header = format!("t={TS},v1={DIGEST}");
        assert_eq!(verify(Some(&header), BODY, TS + 300), Ok(()));
        assert_eq!(verify(Some(&header), BODY, TS + 301), Err(SignatureError::TooOld));
        assert_eq!(verify(Some(&header), BODY, TS - 301), Err(SignatureError::TooNew));
        let tight = Calendly
            .configure(&Env::from_pairs([
                ("CALENDLY_WEBHOOK_SECRETS", "whsec_calendly"),
                ("WEBHOOK_TOLERANCE_SECONDS", "180"),
            ]))
            .unwrap();
        let headers: http::HeaderMap = [(HEADER.parse().unwrap(), header.parse().unwrap())]
            .into_iter()
            .collect();
        let delivery = Delivery {
            method: "POST",
            url: "https://x.example/webhooks/calendly",
            headers: &headers,
            body: BODY,
            now: chrono::DateTime::from_timestamp(TS + 181, 0).unwrap(),
        };
        assert_eq!(tight.verifier.verify(&delivery), Err(SignatureError::TooOld));
    }

    #[test]
    fn the_sample_has_fresh_ids_and_the_fixture_email() {
        let sample = Calendly.sample("fresh42");
        let body = String::from_utf8(sample.body).unwrap();
        let parsed = read(&body);
        assert!(parsed.event_id.unwrap().contains("fresh42"));
        let b = booking(&body);
        assert!(b.booking_id.starts_with(EVENT_1) && b.booking_id.ends_with("/invitees/fresh42"));
        assert_eq!(b.email.as_str(), "priya.shah@globex.example");
    }
}
