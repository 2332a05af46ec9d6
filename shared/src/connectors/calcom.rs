//! Cal.com (`POST /webhooks/calcom`): a booking was made, requested, moved, cancelled
//! or rejected.
//!
//! Signed `X-Cal-Signature-256`: hex HMAC-SHA256 of the raw body with the webhook's
//! secret, no prefix, no timestamp. A webhook saved without a secret sends the literal
//! `no-secret-provided`, refused with a message saying so. Cal.com tries a delivery
//! once (no retry loop), so a refusal loses it.
//!
//! Envelope `{triggerEvent, createdAt, payload}`; the payload is the booking: `uid`
//! (the booking id), `startTime`, `attendees[{email}]` (else `responses.email.value`),
//! and for a reschedule, which is a new booking, `rescheduleUid` (or `fromReschedule`):
//! the booking it replaces. The event id is `{triggerEvent}:{uid}:{createdAt}`: the
//! same body sent again is the same event, while two bookings of one seated slot (one
//! `uid`, sent at different times) stay two.

use serde_json::{Map, Value};

use super::fields::{child, text};
use super::{
    BookingChange, BookingFields, Connector, Delivery, Event, Parsed, Sample, Settings, Verify,
};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::{
    BodySignature, DigestPrefix, SecretSet, SignatureError, WebhookSecret, header_text,
};

pub struct CalCom;

const HEADER: &str = "x-cal-signature-256";
/// What Cal.com sends in the header when the webhook has no secret.
const NO_SECRET: &str = "no-secret-provided";

impl Connector for CalCom {
    fn name(&self) -> &'static str {
        "calcom"
    }

    fn secrets_var(&self) -> &'static str {
        "CALCOM_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(CalComSignature(BodySignature::new(
            super::secrets(env, self.secrets_var()),
            HEADER,
            DigestPrefix::None,
        ))))
    }

    fn sign(&self, secret: &WebhookSecret, delivery: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(HEADER, BodySignature::sign(secret, delivery.body))]
    }

    fn parse(&self, payload: &Payload, _: &Settings) -> Parsed {
        match payload.object() {
            Some(top) => parse(top),
            None => Parsed::unrecognized("not a JSON object"),
        }
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/calcom/booking-created.json"), |v| {
            v["payload"]["uid"] = Value::from(format!("{fresh}Cal"));
        })
    }
}

/// Cal.com's hex body digest, and a clear refusal of a webhook with no secret.
#[derive(Debug)]
struct CalComSignature(BodySignature);

impl Verify for CalComSignature {
    fn verify(&self, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
        if self.0.secrets().is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        if header_text(delivery.header(HEADER)).is_ok_and(|h| h.eq_ignore_ascii_case(NO_SECRET)) {
            return Err(SignatureError::MalformedHeader(
                "no-secret-provided: the Cal.com webhook has no secret; set one there",
            ));
        }
        Verify::verify(&self.0, delivery)
    }

    fn secrets(&self) -> &SecretSet {
        self.0.secrets()
    }
}

/// The first attendee's email, else the booking form's email answer.
fn email(booking: &Map<String, Value>) -> Option<&str> {
    let attendee = booking
        .get("attendees")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_object)
        .and_then(|a| text(a, &["email"]));
    let answer = || {
        let responses = child(booking, "responses")?;
        text(responses, &["email"]).or_else(|| text(child(responses, "email")?, &["value"]))
    };
    attendee.or_else(answer)
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let Some(trigger) = text(top, &["triggerEvent"]) else {
        return Parsed::unrecognized("no trigger event (calcom: triggerEvent)");
    };
    let booking = child(top, "payload");
    let uid = booking.and_then(|b| text(b, &["uid"]));
    let event_id = uid.map(|uid| match text(top, &["createdAt"]) {
        Some(at) => format!("{trigger}:{uid}:{at}"),
        None => format!("{trigger}:{uid}"),
    });
    let change = match trigger {
        "BOOKING_CREATED" | "BOOKING_REQUESTED" => BookingChange::Booked,
        "BOOKING_RESCHEDULED" => BookingChange::Rescheduled,
        "BOOKING_CANCELLED" | "BOOKING_REJECTED" => BookingChange::Cancelled,
        _ => return Parsed::booking(event_id, Some(trigger.to_owned()), Ok(Event::Ignored)),
    };
    let fields = BookingFields {
        change,
        booking_id: uid,
        email: booking.and_then(email),
        start_at: booking.and_then(|b| text(b, &["startTime"])),
        replaces: booking
            .filter(|_| change == BookingChange::Rescheduled)
            .and_then(|b| text(b, &["rescheduleUid", "fromReschedule"])),
    };
    Parsed::booking(
        event_id,
        Some(trigger.to_owned()),
        fields.event(
            "calcom",
            "payload.uid",
            "payload.attendees[0].email or payload.responses.email.value",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Booking;
    use crate::inbound::Subject;

    const CREATED: &str = include_str!("../../fixtures/calcom/booking-created.json");
    const REQUESTED: &str = include_str!("../../fixtures/calcom/booking-requested.json");
    const REJECTED: &str = include_str!("../../fixtures/calcom/booking-rejected.json");
    const RESCHEDULED: &str = include_str!("../../fixtures/calcom/booking-rescheduled.json");
    const CANCELLED: &str = include_str!("../../fixtures/calcom/booking-cancelled.json");

    const EMAIL: &str = "marcus.oyelaran@hooli.example";

    fn settings() -> Settings {
        CalCom
            .configure(&Env::from_pairs([(
                "CALCOM_WEBHOOK_SECRETS",
                "whsec_calcom_next,whsec_calcom",
            )]))
            .unwrap()
    }

    fn read(body: &str) -> Parsed {
        CalCom.parse(&Payload::from_body(body.as_bytes()), &settings())
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

    fn expect(body: &str, uid: &str, change: BookingChange, start: &str, replaces: Option<&str>) {
        let b = booking(body);
        assert_eq!(b.booking_id, uid, "{body}");
        assert_eq!(b.email.as_str(), EMAIL);
        assert_eq!(b.change, change);
        assert_eq!(b.start_at, at(start));
        assert_eq!(b.replaces.as_deref(), replaces);
        assert_eq!(read(body).subject, Subject::Email(EMAIL.into()));
    }

    #[test]
    fn every_fixture_is_the_expected_booking() {
        let first = "qW7nR2xKp4Ld9sTbV3mC8e";
        let moved = "hZ5yB1uGf6Nc0aJkE9wQ2r";
        let asked = "pX3vM8kD1tYq6bHs0nLw5g";
        expect(CREATED, first, BookingChange::Booked, "2026-11-24T15:00:00Z", None);
        expect(REQUESTED, asked, BookingChange::Booked, "2026-11-24T18:00:00Z", None);
        expect(REJECTED, asked, BookingChange::Cancelled, "2026-11-24T18:00:00Z", None);
        expect(
            RESCHEDULED,
            moved,
            BookingChange::Rescheduled,
            "2026-11-26T17:00:00Z",
            Some(first),
        );
        expect(CANCELLED, moved, BookingChange::Cancelled, "2026-11-26T17:00:00Z", None);
    }

    #[test]
    fn the_event_id_is_the_trigger_the_uid_and_when_it_was_sent() {
        let parsed = read(CREATED);
        assert_eq!(parsed.event_type.as_deref(), Some("BOOKING_CREATED"));
        assert_eq!(
            parsed.event_id.as_deref(),
            Some("BOOKING_CREATED:qW7nR2xKp4Ld9sTbV3mC8e:2026-11-22T10:04:12.481Z")
        );
        assert_ne!(read(REQUESTED).event_id, read(REJECTED).event_id);
        let bare = r#"{"triggerEvent":"BOOKING_CREATED","payload":{"uid":"u1","attendees":[{"email":"a@b.example"}]}}"#;
        assert_eq!(read(bare).event_id.as_deref(), Some("BOOKING_CREATED:u1"));
    }

    #[test]
    fn the_booking_form_answer_stands_in_for_missing_attendees() {
        let mut value: Value = serde_json::from_str(CREATED).unwrap();
        value["payload"]["attendees"] = Value::Array(vec![]);
        assert_eq!(booking(&value.to_string()).email.as_str(), EMAIL);
        value["payload"]["responses"]["email"] = Value::from("Other@Hooli.example");
        assert_eq!(booking(&value.to_string()).email.as_str(), "other@hooli.example");
        let from = r#"{"triggerEvent":"BOOKING_RESCHEDULED","payload":{"uid":"n","fromReschedule":"o","attendees":[{"email":"a@b.example"}]}}"#;
        assert_eq!(booking(from).replaces.as_deref(), Some("o"));
    }

    #[test]
    fn other_triggers_are_ignored() {
        for trigger in ["PING", "MEETING_ENDED", "BOOKING_PAYMENT_INITIATED", "FORM_SUBMITTED"] {
            let body = format!(r#"{{"triggerEvent":"{trigger}","payload":{{"uid":"u1"}}}}"#);
            assert_eq!(read(&body).event, Ok(Event::Ignored), "{trigger}");
        }
    }

    #[test]
    fn a_booking_without_an_email_or_uid_is_kept_with_its_reason() {
        let reason = |body: &str| match read(body).event {
            Err(unrecognized) => unrecognized.0,
            other => panic!("unrecognized, not {other:?}"),
        };
        assert_eq!(
            reason(r#"{"triggerEvent":"BOOKING_CREATED","payload":{"uid":"u1","attendees":[]}}"#),
            "no email (calcom: payload.attendees[0].email or payload.responses.email.value)"
        );
        assert_eq!(
            reason(r#"{"triggerEvent":"BOOKING_CANCELLED","payload":{"attendees":[{"email":"a@b.example"}]}}"#),
            "no booking id (calcom: payload.uid)"
        );
        assert_eq!(reason(r#"{"payload":{}}"#), "no trigger event (calcom: triggerEvent)");
    }

    // Known answer, computed independently:
    //   hmac.new(b"whsec_calcom", b'{"triggerEvent":"BOOKING_CREATED"}', sha256)
    const BODY: &[u8] = br#"{"triggerEvent":"BOOKING_CREATED"}"#;
    const DIGEST: &str = "38e848b005dc1ba30ce4197aa4eacf8b186128e2e5827a97c993f7c342a95966";

    fn verify(header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = header
            .map(|h| (HEADER.parse().unwrap(), h.parse().unwrap()))
            .into_iter()
            .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/calcom",
            headers: &headers,
            body,
            now: chrono::Utc::now(),
        })
    }

    #[test]
    fn the_known_answer_verifies_with_a_rotated_secret_and_nothing_else_does() {
        assert_eq!(verify(Some(DIGEST), BODY), Ok(()));
        assert_eq!(verify(Some(&DIGEST.to_uppercase()), BODY), Ok(()));
        assert_eq!(verify(Some(DIGEST), b"{}"), Err(SignatureError::NoMatch));
        let other = BodySignature::sign(&WebhookSecret::new("whsec_other").unwrap(), BODY);
        assert_eq!(verify(Some(&other), BODY), Err(SignatureError::NoMatch));
        assert_eq!(verify(None, BODY), Err(SignatureError::MissingHeader));
        for malformed in [&DIGEST[1..], "sha256=", &format!("sha256={DIGEST}")] {
            assert_eq!(
                verify(Some(malformed), BODY),
                Err(SignatureError::MalformedDigest),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_webhook_without_a_secret_is_refused_and_told_so() {
        let err = verify(Some("no-secret-provided"), BODY).unwrap_err();
        assert!(matches!(err, SignatureError::MalformedHeader(_)));
        assert!(err.to_string().contains("has no secret"), "{err}");
        // Even with no secret configured here, the answer is "not configured".
        let unconfigured = CalCom.configure(&Env::from_pairs([("X", "y")])).unwrap();
        let headers: http::HeaderMap = [(HEADER.parse().unwrap(), NO_SECRET.parse().unwrap())]
            .into_iter()
            .collect();
        let delivery = Delivery {
            method: "POST",
            url: "https://x.example/webhooks/calcom",
            headers: &headers,
            body: BODY,
            now: chrono::Utc::now(),
        };
        assert_eq!(
            unconfigured.verifier.verify(&delivery),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn the_sample_has_fresh_ids_and_the_fixture_email() {
        let body = String::from_utf8(CalCom.sample("fresh42").body).unwrap();
        assert!(read(&body).event_id.unwrap().contains("fresh42"));
        let b = booking(&body);
        assert!(b.booking_id.contains("fresh42"));
        assert_eq!(b.email.as_str(), EMAIL);
    }
}
