//! Verified webhook deliveries as they travel on the events queue: the provider, the
//! keys its connector read at ingest (event id, subject), and the payload as received.
//! The event consumer reads the payload again through the same connector
//! ([`crate::connectors`]); a delivery nobody understands is still kept
//! (`recognized: false`) with its full payload, never dropped.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::connectors::Parsed;
use crate::ports::QueueMessage;

pub use crate::connectors::Provider;

/// What an event is about, used to keep one lead's events in order (the FIFO message
/// group). The best key available wins: an email joins SkipUp and Skode events of the
/// same person; otherwise the provider's own object id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Subject {
    Email(String),
    MeetingRequest(String),
    SkodeLead(String),
    Phone(String),
    Call(String),
    /// Nothing identifies a lead: the event is grouped alone.
    #[default]
    Unknown,
}

impl Subject {
    fn key(&self) -> Option<String> {
        match self {
            Subject::Email(v) => Some(format!("email:{v}")),
            Subject::MeetingRequest(v) => Some(format!("mr:{v}")),
            Subject::SkodeLead(v) => Some(format!("skode_lead:{v}")),
            Subject::Phone(v) => Some(format!("phone:{v}")),
            Subject::Call(v) => Some(format!("call:{v}")),
            Subject::Unknown => None,
        }
    }
}

/// The body as received. JSON stays JSON; anything else is kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", content = "content", rename_all = "snake_case")]
pub enum Payload {
    Json(Value),
    /// Not JSON (or not UTF-8): the raw bytes, base64-encoded.
    Base64(String),
}

impl Payload {
    /// The body as received: JSON when it parses, else its bytes in base64.
    pub fn from_body(body: &[u8]) -> Self {
        match serde_json::from_slice(body) {
            Ok(value) => Payload::Json(value),
            Err(_) => Payload::Base64(BASE64.encode(body)),
        }
    }

    /// The top-level JSON object, if the body is one.
    pub fn object(&self) -> Option<&Map<String, Value>> {
        match self {
            Payload::Json(value) => value.as_object(),
            Payload::Base64(_) => None,
        }
    }

    /// The raw bytes of a body that is not JSON.
    pub fn raw(&self) -> Option<Vec<u8>> {
        match self {
            Payload::Json(_) => None,
            Payload::Base64(text) => BASE64.decode(text).ok(),
        }
    }
}

/// One verified delivery, as it travels on the CRM queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Message schema version, bumped on incompatible change.
    pub v: u32,
    pub provider: Provider,
    /// The provider's event id, or `sha256:{hex}` of the raw body when it sends none.
    pub event_id: String,
    pub event_type: Option<String>,
    /// False when the payload's shape was not understood; the event is kept anyway.
    pub recognized: bool,
    pub subject: Subject,
    pub received_at: DateTime<Utc>,
    pub payload: Payload,
    /// Set when the event was too large for the queue or the table and was cut
    /// ([`InboundEvent::fitted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
}

pub const SCHEMA_VERSION: u32 = 1;
/// The largest message body the CRM queue takes: SQS's 1 MiB, less room for the
/// message attributes and the JSON envelope.
pub const MAX_QUEUE_EVENT_BYTES: usize = 1_000_000;
/// The largest event kept as an unmatched item: DynamoDB's 400 KB item, less room
/// for the key and the other attributes.
pub const MAX_KEPT_EVENT_BYTES: usize = 350_000;

/// What was cut from a delivery too large for where it went: its size and digest, so
/// that an operator can match it with the sender's own record and ask for it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// The serialized event's size before the cut, in bytes.
    pub bytes: usize,
    /// SHA-256 (hex) of the serialized event before the cut.
    pub sha256: String,
    /// `strings`: long JSON strings were shortened (the rest of the payload is
    /// whole); `payload`: the payload was dropped, the keys read at ingest kept.
    pub what: String,
}

impl InboundEvent {
    /// The event as it can travel where at most `max` bytes of JSON fit: itself when
    /// it fits; else with every JSON string cut to the longest length that fits (ids
    /// and addresses are short, so the connector still reads it); else, for a payload
    /// no cut of strings brings under `max`, without its payload (`recognized` false,
    /// so the consumer keeps it for an operator). `cut` says what was done.
    pub fn fitted(&self, max: usize) -> Self {
        let full = serde_json::to_string(self).expect("an inbound event serializes");
        if full.len() <= max {
            return self.clone();
        }
        let mut cut = Cut {
            bytes: full.len(),
            sha256: hex::encode(Sha256::digest(full.as_bytes())),
            what: "strings".into(),
        };
        if let Payload::Json(value) = &self.payload {
            let mut keep = 16_384;
            while keep >= 64 {
                let mut event = self.clone();
                event.payload = Payload::Json(cut_strings(value, keep));
                event.cut = Some(cut.clone());
                if serde_json::to_string(&event).is_ok_and(|s| s.len() <= max) {
                    return event;
                }
                keep /= 2;
            }
        }
        cut.what = "payload".into();
        let mut event = self.clone();
        event.payload = Payload::Json(Value::Null);
        event.recognized = false;
        event.cut = Some(cut);
        event
    }
}

/// `value` with every string longer than `keep` characters cut to `keep` and marked.
fn cut_strings(value: &Value, keep: usize) -> Value {
    match value {
        Value::String(text) if text.chars().count() > keep => {
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            Value::String(format!("{}…[cut]", &text[..end]))
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| cut_strings(v, keep)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), cut_strings(v, keep)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl InboundEvent {
    /// A verified delivery, read by its connector with default settings.
    pub fn from_delivery(provider: Provider, body: &[u8], received_at: DateTime<Utc>) -> Self {
        let settings = provider
            .connector()
            .configure(&crate::config::Env::empty())
            .expect("a connector configures from an empty environment");
        let payload = Payload::from_body(body);
        let parsed = provider.connector().parse(&payload, &settings);
        Self::new(provider, body, payload, &parsed, received_at)
    }

    /// The message for a verified delivery that its connector read as `parsed`.
    pub fn new(
        provider: Provider,
        body: &[u8],
        payload: Payload,
        parsed: &Parsed,
        received_at: DateTime<Utc>,
    ) -> Self {
        Self {
            v: SCHEMA_VERSION,
            provider,
            event_id: parsed
                .event_id
                .clone()
                .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body)))),
            event_type: parsed.event_type.clone(),
            recognized: parsed.event.is_ok(),
            subject: parsed.subject.clone(),
            received_at,
            payload,
            cut: None,
        }
    }

    /// FIFO message group: one per subject, hashed so no email or phone number
    /// appears in queue metadata.
    pub fn group_id(&self) -> String {
        let key = self
            .subject
            .key()
            .unwrap_or_else(|| format!("event:{}:{}", self.provider, self.event_id));
        format!("g-{}", &hex::encode(Sha256::digest(key.as_bytes()))[..32])
    }

    /// The event's key: the provider and its event id, readable when SQS allows it
    /// (printable ASCII, at most 128 characters), else hashed. The FIFO deduplication
    /// id, and in `apply-events` the processed marker and the timeline's event id.
    pub fn dedup_id(&self) -> String {
        let readable = format!("{}:{}", self.provider, self.event_id);
        if readable.len() <= 128 && readable.bytes().all(|b| b.is_ascii_graphic()) {
            readable
        } else {
            format!(
                "{}:sha256:{}",
                self.provider,
                hex::encode(Sha256::digest(self.event_id.as_bytes()))
            )
        }
    }

    /// The message for the CRM FIFO queue.
    pub fn to_queue_message(&self) -> QueueMessage {
        QueueMessage {
            body: serde_json::to_string(self).expect("an inbound event always serializes"),
            group_id: Some(self.group_id()),
            dedup_id: Some(self.dedup_id()),
            delay_seconds: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn normalize(provider: Provider, body: &str) -> InboundEvent {
        InboundEvent::from_delivery(provider, body.as_bytes(), at())
    }

    const SKIPUP_ENVELOPE_DATA: &str = include_str!("../fixtures/payloads/skipup-booked-data.json");
    const SKIPCALLS_DEFAULT: &str =
        include_str!("../fixtures/payloads/skipcalls-call-completed-default.json");
    const SKODE_LEAD_CREATED: &str = include_str!("../fixtures/payloads/skode-lead-created.json");

    #[test]
    fn a_body_that_is_not_json_is_kept_verbatim_in_base64() {
        let e = InboundEvent::from_delivery(Provider::SKODE, b"\xffnot json", at());
        assert!(!e.recognized);
        assert_eq!(e.payload, Payload::Base64("/25vdCBqc29u".into()));
        assert_eq!(
            e.event_id,
            format!("sha256:{}", hex::encode(Sha256::digest(b"\xffnot json")))
        );
    }

    #[test]
    fn events_about_the_same_person_share_a_group_and_hide_the_address() {
        let booked = normalize(Provider::SKIPUP, SKIPUP_ENVELOPE_DATA);
        let skode = normalize(
            Provider::SKODE,
            r#"{"id":"evt_1","event":"lead.updated","data":{"id":"lead_1","email":"Dana.Ruiz@northwind.example"}}"#,
        );
        assert_eq!(booked.group_id(), skode.group_id());
        assert!(!booked.group_id().contains("dana"));
        assert_eq!(booked.group_id().len(), 34);
        let other = normalize(Provider::SKIPCALLS, SKIPCALLS_DEFAULT);
        assert_ne!(booked.group_id(), other.group_id());
    }

    #[test]
    fn unrelated_unknown_events_get_their_own_groups() {
        let a = normalize(Provider::SKIPUP, r#"{"a":1}"#);
        let b = normalize(Provider::SKIPUP, r#"{"a":2}"#);
        assert_ne!(a.group_id(), b.group_id());
    }

    #[test]
    fn dedup_ids_are_readable_when_sqs_allows_and_hashed_otherwise() {
        let e = normalize(Provider::SKODE, SKODE_LEAD_CREATED);
        assert_eq!(e.dedup_id(), "skode:evt_5d1b0c");
        let odd = normalize(Provider::SKODE, r#"{"id":"evt with spaces","event":"x"}"#);
        assert!(odd.dedup_id().starts_with("skode:sha256:"));
        let long = normalize(
            Provider::SKODE,
            &format!(r#"{{"id":"{}","event":"x"}}"#, "e".repeat(200)),
        );
        assert!(long.dedup_id().len() <= 128);
    }

    #[test]
    fn the_queue_message_round_trips() {
        let e = normalize(Provider::SKIPUP, SKIPUP_ENVELOPE_DATA);
        let message = e.to_queue_message();
        assert_eq!(message.group_id.as_deref(), Some(e.group_id().as_str()));
        assert_eq!(
            message.dedup_id.as_deref(),
            Some("skipup:evt_01JBOOKED00000000000000001")
        );
        let back: InboundEvent = serde_json::from_str(&message.body).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn numbers_in_a_payload_read_back_as_webhook_ingest_parsed_them() {
        // Found by fuzzing (provider_payloads): a number parsed to the nearest float
        // only on a best-effort basis could come back from the queue one ulp away.
        for body in [
            "525555555555555555555577577",
            r#"{"id":"evt_1","type":"x","data":{"score":0.30000000000000004,"big":1e300}}"#,
        ] {
            let event = normalize(Provider::SKIPUP, body);
            let back: InboundEvent = serde_json::from_str(&event.to_queue_message().body).unwrap();
            assert_eq!(back, event, "{body}");
        }
    }

    #[test]
    fn an_event_too_large_for_the_queue_is_cut_to_fit_and_says_so() {
        let small = normalize(Provider::SKIPCALLS, SKIPCALLS_DEFAULT);
        assert_eq!(
            small.fitted(MAX_QUEUE_EVENT_BYTES),
            small,
            "what fits is untouched"
        );
        assert_eq!(small.cut, None);

        // A call summary of 1.5 MB: the strings are cut, the ids kept, it still parses.
        let mut body: Value = serde_json::from_str(SKIPCALLS_DEFAULT).unwrap();
        body["call"]["summary"] = Value::String("talked at length. ".repeat(90_000));
        let big = normalize(Provider::SKIPCALLS, &body.to_string());
        assert!(big.recognized);
        let fitted = big.fitted(MAX_QUEUE_EVENT_BYTES);
        let message = fitted.to_queue_message();
        assert!(
            message.body.len() <= MAX_QUEUE_EVENT_BYTES,
            "{}",
            message.body.len()
        );
        assert_eq!(
            (fitted.event_id.as_str(), fitted.recognized),
            (big.event_id.as_str(), true)
        );
        assert_eq!(message.dedup_id, big.to_queue_message().dedup_id);
        let cut = fitted.cut.clone().unwrap();
        assert_eq!(cut.what, "strings");
        assert_eq!(cut.bytes, serde_json::to_string(&big).unwrap().len());
        let summary = fitted.payload.object().unwrap()["call"]["summary"]
            .as_str()
            .unwrap();
        assert!(summary.ends_with("…[cut]") && summary.len() < 20_000);
        let back: InboundEvent = serde_json::from_str(&message.body).unwrap();
        assert_eq!(back, fitted);

        // Within DynamoDB's item limit too.
        let kept = big.fitted(MAX_KEPT_EVENT_BYTES);
        assert!(serde_json::to_string(&kept).unwrap().len() <= MAX_KEPT_EVENT_BYTES);

        // Nothing but numbers: no cut of strings helps, the payload goes, the keys stay.
        let numbers = format!(
            r#"{{"id":"evt_n","event":"x","n":[{}]}}"#,
            vec!["1"; 600_000].join(",")
        );
        let numbers = normalize(Provider::SKODE, &numbers);
        let fitted = numbers.fitted(MAX_QUEUE_EVENT_BYTES);
        assert_eq!(fitted.payload, Payload::Json(Value::Null));
        assert_eq!(
            (fitted.recognized, fitted.cut.unwrap().what.as_str()),
            (false, "payload")
        );
        assert_eq!(fitted.event_id, "evt_n");

        // A body that is not JSON cannot be cut in the middle: it goes whole.
        let raw = InboundEvent::from_delivery(Provider::SKODE, &vec![0xff; 900_000], at());
        let fitted = raw.fitted(MAX_QUEUE_EVENT_BYTES);
        assert_eq!(fitted.cut.unwrap().what, "payload");
    }
}
