//! The generic booking route (`POST /webhooks/bookings`) for Chili Piper, HubSpot
//! workflows, Zapier, Make or any tool that can send a header: they do not sign as
//! Calendly, Cal.com or SavvyCal do, so the route takes `Authorization: Bearer
//! <secret>` (one of `BOOKINGS_WEBHOOK_SECRETS`, compared in constant time, as the
//! generic form route does).
//!
//! The body is one JSON object: `email`, `event` (`booked`, `cancelled` or `canceled`,
//! `rescheduled`), `booking_id`, and optionally `start_at` (RFC 3339; anything else is
//! dropped), `replaces` (the booking id a reschedule replaces) and `id` (the event id;
//! else `{event}:{booking_id}`, so a resent booking is the same event). Ids may be
//! strings or numbers (a HubSpot record id).

use serde_json::{Map, Value};

use super::fields::answer_text;
use super::forms::BearerSecret;
use super::{
    BookingChange, BookingFields, Connector, Delivery, Parsed, Sample, Settings, Unrecognized,
};
use crate::config::{ConfigError, Env};
use crate::inbound::Payload;
use crate::signature::WebhookSecret;

pub struct Bookings;

const AUTHORIZATION: &str = "authorization";

impl Connector for Bookings {
    fn name(&self) -> &'static str {
        "bookings"
    }

    fn secrets_var(&self) -> &'static str {
        "BOOKINGS_WEBHOOK_SECRETS"
    }

    fn configure(&self, env: &Env) -> Result<Settings, ConfigError> {
        Ok(Settings::new(BearerSecret(super::secrets(
            env,
            self.secrets_var(),
        ))))
    }

    fn sign(&self, secret: &WebhookSecret, _: &Delivery<'_>) -> Vec<(&'static str, String)> {
        vec![(AUTHORIZATION, format!("Bearer {}", secret.expose_for_header()))]
    }

    fn parse(&self, payload: &Payload, _: &Settings) -> Parsed {
        match payload.object() {
            Some(top) => parse(top),
            None => Parsed::unrecognized("not a JSON object"),
        }
    }

    fn sample(&self, fresh: &str) -> Sample {
        Sample::json(include_str!("../../fixtures/bookings/booked.json"), |v| {
            v["id"] = Value::from(format!("evt_{fresh}"));
            v["booking_id"] = Value::from(format!("bk_{fresh}"));
        })
    }
}

/// A field as text: a string, or a number such as a HubSpot record id.
fn field(top: &Map<String, Value>, key: &str) -> Option<String> {
    top.get(key)
        .filter(|v| v.is_string() || v.is_number())
        .and_then(answer_text)
}

fn parse(top: &Map<String, Value>) -> Parsed {
    let Some(sent) = field(top, "event") else {
        return Parsed::unrecognized("no event (bookings: event)");
    };
    let (event, change) = match sent.to_ascii_lowercase().as_str() {
        "booked" => ("booked", BookingChange::Booked),
        "cancelled" | "canceled" => ("cancelled", BookingChange::Cancelled),
        "rescheduled" => ("rescheduled", BookingChange::Rescheduled),
        _ => {
            return Parsed::booking(
                field(top, "id"),
                Some(sent.clone()),
                Err(Unrecognized(format!(
                    "unknown event {sent:?} (bookings: event is booked, cancelled or rescheduled)"
                ))),
            );
        }
    };
    let booking_id = field(top, "booking_id");
    let event_id = field(top, "id").or_else(|| {
        booking_id
            .as_ref()
            .map(|booking_id| format!("{event}:{booking_id}"))
    });
    let email = field(top, "email");
    let start_at = field(top, "start_at");
    let replaces = field(top, "replaces");
    let fields = BookingFields {
        change,
        booking_id: booking_id.as_deref(),
        email: email.as_deref(),
        start_at: start_at.as_deref(),
        replaces: replaces.as_deref(),
    };
    Parsed::booking(
        event_id,
        Some(event.to_owned()),
        fields.event("bookings", "booking_id", "email"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::{Booking, Event};
    use crate::inbound::Subject;
    use crate::signature::SignatureError;

    const BOOKED: &str = include_str!("../../fixtures/bookings/booked.json");
    const RESCHEDULED: &str = include_str!("../../fixtures/bookings/rescheduled.json");
    const CANCELLED: &str = include_str!("../../fixtures/bookings/cancelled.json");

    const EMAIL: &str = "noah.fischer@umbrella.example";

    fn settings() -> Settings {
        Bookings
            .configure(&Env::from_pairs([(
                "BOOKINGS_WEBHOOK_SECRETS",
                "bk_secret_new,bk_secret",
            )]))
            .unwrap()
    }

    fn read(body: &str) -> Parsed {
        Bookings.parse(&Payload::from_body(body.as_bytes()), &settings())
    }

    fn booking(body: &str) -> Booking {
        match read(body).event {
            Ok(Event::Booking(booking)) => booking,
            other => panic!("a booking, not {other:?}"),
        }
    }

    fn reason(body: &str) -> String {
        match read(body).event {
            Err(unrecognized) => unrecognized.0,
            other => panic!("unrecognized, not {other:?}"),
        }
    }

    #[test]
    fn every_fixture_is_the_expected_booking() {
        let b = booking(BOOKED);
        assert_eq!(b.booking_id, "cp_mtg_4b8e2d91");
        assert_eq!(b.email.as_str(), EMAIL);
        assert_eq!(b.change, BookingChange::Booked);
        assert_eq!(b.start_at, Some("2026-11-24T16:00:00Z".parse().unwrap()));
        assert_eq!(b.replaces, None);
        let parsed = read(BOOKED);
        assert_eq!(parsed.event_id.as_deref(), Some("zap_booked_7f41c2"));
        assert_eq!(parsed.event_type.as_deref(), Some("booked"));
        assert_eq!(parsed.subject, Subject::Email(EMAIL.into()));

        let b = booking(RESCHEDULED);
        assert_eq!(b.booking_id, "cp_mtg_c2a7f310");
        assert_eq!(b.change, BookingChange::Rescheduled);
        assert_eq!(b.start_at, Some("2026-11-25T09:30:00Z".parse().unwrap()));
        assert_eq!(b.replaces.as_deref(), Some("cp_mtg_4b8e2d91"));

        let b = booking(CANCELLED);
        assert_eq!(b.booking_id, "cp_mtg_c2a7f310");
        assert_eq!(b.change, BookingChange::Cancelled);
        assert_eq!(b.start_at, None);
        // No id sent: the event and the booking, so a resend is the same event.
        assert_eq!(
            read(CANCELLED).event_id.as_deref(),
            Some("cancelled:cp_mtg_c2a7f310")
        );
    }

    #[test]
    fn canceled_is_cancelled_and_ids_may_be_numbers() {
        let body = r#"{"event":"Canceled","email":"a@b.example","booking_id":48213907}"#;
        let b = booking(body);
        assert_eq!(b.change, BookingChange::Cancelled);
        assert_eq!(b.booking_id, "48213907");
        assert_eq!(read(body).event_id.as_deref(), Some("cancelled:48213907"));
    }

    #[test]
    fn a_bad_start_time_is_dropped_not_refused() {
        let body = r#"{"event":"booked","email":"a@b.example","booking_id":"b1","start_at":"next Tuesday 3pm"}"#;
        assert_eq!(booking(body).start_at, None);
    }

    #[test]
    fn a_missing_field_or_unknown_event_is_kept_naming_it() {
        assert_eq!(
            reason(r#"{"event":"booked","booking_id":"b1"}"#),
            "no email (bookings: email)"
        );
        assert_eq!(
            reason(r#"{"event":"booked","email":"a@b.example"}"#),
            "no booking id (bookings: booking_id)"
        );
        assert_eq!(
            reason(r#"{"email":"a@b.example","booking_id":"b1"}"#),
            "no event (bookings: event)"
        );
        assert_eq!(
            reason(r#"{"event":"no_show","email":"a@b.example","booking_id":"b1"}"#),
            "unknown event \"no_show\" (bookings: event is booked, cancelled or rescheduled)"
        );
        assert!(
            reason(r#"{"event":"booked","email":"someone","booking_id":"b1"}"#)
                .starts_with("no usable email (bookings: email")
        );
        assert_eq!(reason("not json"), "not a JSON object");
        assert_eq!(read(r#"{"event":"booked"}"#).subject, Subject::Unknown);
    }

    fn verify(header: Option<&str>) -> Result<(), SignatureError> {
        let headers: http::HeaderMap = header
            .map(|h| (AUTHORIZATION.parse().unwrap(), h.parse().unwrap()))
            .into_iter()
            .collect();
        settings().verifier.verify(&Delivery {
            method: "POST",
            url: "https://x.example/webhooks/bookings",
            headers: &headers,
            body: BOOKED.as_bytes(),
            now: chrono::Utc::now(),
        })
    }

    #[test]
    fn any_configured_secret_as_a_bearer_token_is_accepted_and_nothing_else() {
        assert_eq!(verify(Some("Bearer bk_secret")), Ok(()));
        assert_eq!(verify(Some("Bearer bk_secret_new")), Ok(()));
        assert_eq!(verify(Some("Bearer bk_secre")), Err(SignatureError::NoMatch));
        assert_eq!(verify(Some("Bearer whsec_other")), Err(SignatureError::NoMatch));
        assert!(matches!(
            verify(Some("bk_secret")),
            Err(SignatureError::MalformedHeader(_))
        ));
        assert!(matches!(
            verify(Some("Basic Ymtfc2VjcmV0")),
            Err(SignatureError::MalformedHeader(_))
        ));
        assert_eq!(verify(None), Err(SignatureError::MissingHeader));
    }

    #[test]
    fn the_sample_has_fresh_ids_and_the_fixture_email() {
        let body = String::from_utf8(Bookings.sample("fresh42").body).unwrap();
        assert_eq!(read(&body).event_id.as_deref(), Some("evt_fresh42"));
        let b = booking(&body);
        assert_eq!(b.booking_id, "bk_fresh42");
        assert_eq!(b.email.as_str(), EMAIL);
    }
}
