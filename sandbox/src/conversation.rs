//! The conversation simulator: after the double accepts a meeting request it plays
//! SkipUp's AI talking to the participant, and sends each step as a signed webhook
//! (`created`, sometimes `follow_up_sent`, then `booked` or `cancelled`) to every
//! enabled endpoint subscribed to it. Failed deliveries are retried with polynomial
//! backoff like SkipUp's (up to 8 retries), and an endpoint with 10 failures within
//! 24 hours is disabled (`too_many_failures`).
//!
//! The outcome of each conversation follows from the seed and the participant's
//! address, so a run is repeatable. Deliveries can be repeated and shuffled to test
//! a receiver against late, duplicate and out-of-order webhooks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::Inner;

/// Knobs of the simulator.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// Signs every delivery (`X-Webhook-Signature: t=..,v1=..`); also returned as
    /// `secret` when an endpoint is created.
    pub webhook_secret: String,
    /// Chance that the AI follows up before the conversation ends.
    pub follow_up_odds: f64,
    /// Chance that the conversation ends `booked` (else `cancelled`).
    pub booked_odds: f64,
    /// Pause before each step of a conversation.
    pub step: Duration,
    /// Each webhook is delivered this many times (at least 1; a random count in the
    /// range), to test duplicate handling.
    pub copies: (u32, u32),
    /// Deliver a conversation's webhooks in random order instead of in order.
    pub shuffle: bool,
    /// Retry `n` of a failed delivery waits `n² × retry_unit`. SkipUp retries 8
    /// times over about 40 minutes: a unit of 12 s.
    pub retry_unit: Duration,
    pub max_retries: u32,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self {
            webhook_secret: "whsec_sandbox".into(),
            follow_up_odds: 0.4,
            booked_odds: 0.7,
            step: Duration::from_secs(2),
            copies: (1, 1),
            shuffle: false,
            retry_unit: Duration::from_secs(12),
            max_retries: 8,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How a simulated conversation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Booked,
    Cancelled,
}

/// One conversation the simulator plays (or played).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub meeting_request_id: String,
    pub participant: String,
    pub follow_up: bool,
    pub outcome: Outcome,
}

impl Conversation {
    /// Decides the conversation of a new request from the seed and the participant.
    pub(crate) fn plan(
        config: &ConversationConfig,
        seed: u64,
        mr_id: &str,
        participant: &str,
    ) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ fnv1a(participant.as_bytes()));
        Self {
            meeting_request_id: mr_id.to_string(),
            participant: participant.to_string(),
            follow_up: rng.f64() < config.follow_up_odds,
            outcome: if rng.f64() < config.booked_odds {
                Outcome::Booked
            } else {
                Outcome::Cancelled
            },
        }
    }

    /// The webhook event types, in the order SkipUp would send them.
    pub fn event_types(&self) -> Vec<&'static str> {
        let mut types = vec!["meeting_request.created"];
        if self.follow_up {
            types.push("meeting_request.follow_up_sent");
        }
        types.push(match self.outcome {
            Outcome::Booked => "meeting_request.booked",
            Outcome::Cancelled => "meeting_request.cancelled",
        });
        types
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One webhook delivery: its event, where it went, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_type: String,
    pub meeting_request_id: String,
    pub url: String,
    pub attempts: u32,
    /// The receiver's last status code, if it answered.
    pub response_code: Option<u16>,
    pub delivered: bool,
}

/// The header value SkipUp puts on `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A webhook body for `event_type` about `request`, in one of the envelope shapes
/// SkipUp may use (chosen by `shape`): `data`, `data.object`, `data.meeting_request`,
/// or the meeting request itself at the top level with no event id.
fn body(event_type: &str, request: &Value, event_id: &str, shape: u64) -> Vec<u8> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let value = match shape % 4 {
        0 => json!({ "id": event_id, "type": event_type, "created_at": now, "data": request }),
        1 => json!({ "id": event_id, "event": event_type, "created_at": now,
                      "data": { "object": request } }),
        2 => json!({ "id": event_id, "type": event_type, "created_at": now,
                      "data": { "meeting_request": request } }),
        _ => {
            let mut bare = request.clone();
            bare["type"] = json!(event_type);
            bare
        }
    };
    serde_json::to_vec(&value).expect("JSON serializes")
}

/// Plays `conversation` and delivers its webhooks; returns when every delivery ended.
pub(crate) async fn play(inner: Arc<Inner>, conversation: Conversation) {
    let config = inner.config.conversation.clone();
    let shape = fnv1a(conversation.participant.as_bytes());
    let mut rng = fastrand::Rng::with_seed(inner.config.seed ^ shape ^ 1);
    let mut pending = Vec::new();
    for (step, event_type) in conversation.event_types().into_iter().enumerate() {
        let request = inner.advance(&conversation.meeting_request_id, event_type);
        let event_id = format!(
            "evt_SANDBOX{}{step}",
            conversation
                .meeting_request_id
                .trim_start_matches("mr_SANDBOX")
        );
        let bytes = body(event_type, &request, &event_id, shape);
        let (low, high) = config.copies;
        for _ in 0..rng.u32(low.max(1)..=high.max(low.max(1))) {
            pending.push((event_type, bytes.clone()));
        }
    }
    if config.shuffle {
        rng.shuffle(&mut pending);
    }
    let mut tasks = Vec::new();
    for (event_type, bytes) in pending {
        tokio::time::sleep(config.step).await;
        for url in inner.subscribed(event_type) {
            let inner = inner.clone();
            let mr = conversation.meeting_request_id.clone();
            let bytes = bytes.clone();
            tasks.push(tokio::spawn(async move {
                deliver(&inner, event_type, &mr, &url, &bytes).await;
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Sends one delivery, retrying failures; records how it ended.
async fn deliver(inner: &Inner, event_type: &str, mr: &str, url: &str, bytes: &[u8]) {
    let config = &inner.config.conversation;
    let client = &inner.http;
    let mut record = Delivery {
        event_type: event_type.to_string(),
        meeting_request_id: mr.to_string(),
        url: url.to_string(),
        attempts: 0,
        response_code: None,
        delivered: false,
    };
    for attempt in 0..=config.max_retries {
        if attempt > 0 {
            tokio::time::sleep(config.retry_unit * attempt * attempt).await;
        }
        if !inner.endpoint_enabled(url) {
            break;
        }
        record.attempts += 1;
        let answer = client
            .post(url)
            .timeout(config.timeout)
            .header("content-type", "application/json")
            .header(
                "x-webhook-signature",
                sign(&config.webhook_secret, Utc::now().timestamp(), bytes),
            )
            .body(bytes.to_vec())
            .send()
            .await;
        record.response_code = answer.as_ref().ok().map(|r| r.status().as_u16());
        if answer.is_ok_and(|r| r.status().is_success()) {
            record.delivered = true;
            break;
        }
        inner.endpoint_failed(url, Instant::now());
    }
    inner.lock().deliveries.push(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_skipups_scheme_over_the_raw_body() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, b"{}"),
            format!(
                "t=1700000000,v1={}",
                hex::encode(
                    Hmac::<Sha256>::new_from_slice(b"whsec_test")
                        .unwrap()
                        .chain_update(b"1700000000.{}")
                        .finalize()
                        .into_bytes()
                )
            )
        );
    }

    #[test]
    fn a_conversation_follows_from_the_seed_and_the_participant() {
        let config = ConversationConfig::default();
        let a = Conversation::plan(&config, 7, "mr_1", "dana@northwind.example");
        assert_eq!(
            a,
            Conversation::plan(&config, 7, "mr_1", "dana@northwind.example")
        );
        let outcomes: std::collections::HashSet<_> = (0..50)
            .map(|i| Conversation::plan(&config, 7, "mr", &format!("p{i}@x.example")).outcome)
            .collect();
        assert_eq!(outcomes.len(), 2, "both outcomes occur");
        let always = ConversationConfig {
            follow_up_odds: 1.0,
            booked_odds: 0.0,
            ..config
        };
        let plan = Conversation::plan(&always, 7, "mr_1", "x@y.example");
        assert_eq!(
            plan.event_types(),
            [
                "meeting_request.created",
                "meeting_request.follow_up_sent",
                "meeting_request.cancelled"
            ]
        );
    }

    #[test]
    fn every_envelope_shape_carries_the_event_and_the_request() {
        let request = json!({ "id": "mr_SANDBOX1", "participant_emails": ["a@b.example"] });
        for shape in 0..4 {
            let value: Value =
                serde_json::from_slice(&body("meeting_request.booked", &request, "evt_1", shape))
                    .unwrap();
            let text = value.to_string();
            assert!(
                text.contains("meeting_request.booked") && text.contains("mr_SANDBOX1"),
                "{text}"
            );
        }
    }
}
