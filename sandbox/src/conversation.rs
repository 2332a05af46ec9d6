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
//!
//! The conversation moves its meeting request as it goes, one step (`step`) per
//! delivery: the request is booked (or cancelled) when the first copy of that webhook
//! (or, shuffled, of a later one) is due, so `GET` shows each change as it happens,
//! whether or not the webhook arrives. It respects what the API did:
//!
//! - with `held`, it waits before each step until the test lets it take it
//!   (`Sandbox::advance`, `Sandbox::release`, `Sandbox::release_all`), so a test
//!   decides when it moves;
//! - while the request is paused it starts no delivery and changes nothing, checking
//!   again each step (counted: `Sandbox::paused_steps`), and goes on where it was
//!   once resumed (retries of deliveries started before the pause go on);
//! - once the API cancelled the request, it neither follows up nor books (nor cancels
//!   it a second time): it sends `meeting_request.cancelled` (same envelope shapes,
//!   copies and retries as the others) and stops. Only `created` copies still due may
//!   go out besides; a delivery of any other event due after the cancellation is given
//!   up before its next attempt.
//!
//! With `drop_webhooks` each event of a request (decided once per request and event
//! type, from the seed and the participant's address) may be dropped: never sent to
//! anyone, as if SkipUp gave up on it, though the request's state changes all the same.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{Halt, Inner};

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
    /// Each conversation waits before each step until the test lets it take it
    /// ([`crate::Sandbox::advance`] a step at a time, [`crate::Sandbox::release`],
    /// [`crate::Sandbox::release_all`]): held from the start, its request stays
    /// active, with no webhook sent, for as long as the test needs.
    pub held: bool,
    /// Each webhook is delivered this many times (at least 1; a random count in the
    /// range), to test duplicate handling.
    pub copies: (u32, u32),
    /// Deliver a conversation's webhooks in random order, their deliveries (and
    /// retries) overlapping. Otherwise in order: each delivery, retries included,
    /// ends before the conversation's next step, so they arrive in that order.
    pub shuffle: bool,
    /// Retry `n` of a failed delivery waits `n² × retry_unit`. SkipUp retries 8
    /// times over about 40 minutes: a unit of 12 s.
    pub retry_unit: Duration,
    pub max_retries: u32,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// Chance, 0.0 to 1.0, that an event is never sent (decided once per meeting
    /// request and event type, from the seed).
    pub drop_webhooks: f64,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self {
            webhook_secret: "whsec_sandbox".into(),
            follow_up_odds: 0.4,
            booked_odds: 0.7,
            step: Duration::from_secs(2),
            held: false,
            copies: (1, 1),
            shuffle: false,
            retry_unit: Duration::from_secs(12),
            max_retries: 8,
            timeout: Duration::from_secs(10),
            drop_webhooks: 0.0,
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
    /// How the conversation was planned to end.
    pub outcome: Outcome,
    /// The API cancelled the request before that end: the conversation sent
    /// `meeting_request.cancelled` instead and stopped.
    pub cancelled_by_api: bool,
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
            cancelled_by_api: false,
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

/// Whether a webhook of `event_type` may still be sent after the API cancelled its
/// request: the `created` it began with and the `cancelled` itself.
pub(crate) fn may_follow_a_cancel(event_type: &str) -> bool {
    matches!(
        event_type,
        "meeting_request.created" | "meeting_request.cancelled"
    )
}

/// Whether the `event_type` event of the request for `participant` is dropped.
fn drops(config: &ConversationConfig, seed: u64, participant: &str, event_type: &str) -> bool {
    config.drop_webhooks > 0.0
        && fastrand::Rng::with_seed(
            seed ^ fnv1a(participant.as_bytes()) ^ fnv1a(event_type.as_bytes()).rotate_left(17),
        )
        .f64()
            < config.drop_webhooks
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

/// How many copies of one event to deliver.
fn copies(rng: &mut fastrand::Rng, config: &ConversationConfig) -> u32 {
    let (low, high) = config.copies;
    rng.u32(low.max(1)..=high.max(low.max(1)))
}

/// Plays `conversation`, which began with `created` (the request as created), and
/// delivers its webhooks; returns when every delivery ended.
pub(crate) async fn play(inner: Arc<Inner>, conversation: Conversation, created: Value) {
    let config = inner.config.conversation.clone();
    let mr = conversation.meeting_request_id.as_str();
    let shape = fnv1a(conversation.participant.as_bytes());
    let mut rng = fastrand::Rng::with_seed(inner.config.seed ^ shape ^ 1);
    let mut events = conversation.event_types();
    let mut queue = Vec::new();
    for index in 0..events.len() {
        for _ in 0..copies(&mut rng, &config) {
            queue.push(index);
        }
    }
    if config.shuffle {
        rng.shuffle(&mut queue);
    }
    // Each due delivery is one copy of `events[index]`.
    let mut queue = VecDeque::from(queue);
    // The body of an event that just happened, or `None` if it is dropped.
    let emit = |event_type: &str, index: usize, request: &Value| {
        if drops(
            &config,
            inner.config.seed,
            &conversation.participant,
            event_type,
        ) {
            inner.record_dropped(mr, event_type);
            return None;
        }
        let event_id = format!("evt_SANDBOX{}{index}", mr.trim_start_matches("mr_SANDBOX"));
        Some(body(event_type, request, &event_id, shape))
    };
    // The bodies of the events that happened: the first `happened` of `events`.
    let mut bodies = vec![emit(events[0], 0, &created)];
    let mut happened = 1;
    let mut cancelled_by_api = false;
    let mut tasks = Vec::new();
    let mut steps = 0;
    while let Some(&due) = queue.front() {
        inner.until_released(&conversation.participant, steps).await;
        steps += 1;
        tokio::time::sleep(config.step).await;
        let mut halt = inner.halted(mr);
        while halt.is_none() && happened <= due {
            match inner.happen(mr, events[happened]) {
                Ok(request) => {
                    bodies.push(emit(events[happened], happened, &request));
                    happened += 1;
                }
                Err(reason) => halt = Some(reason),
            }
        }
        match halt {
            Some(Halt::Paused) => {
                *inner.lock().paused_steps.entry(mr.to_string()).or_default() += 1;
                continue;
            }
            Some(Halt::CancelledByApi(request)) if !cancelled_by_api => {
                // What was to come is off; the cancellation goes out instead.
                cancelled_by_api = true;
                let index = events.len();
                events.push("meeting_request.cancelled");
                // Events that will not happen now have no body.
                bodies.resize(index, None);
                bodies.push(emit(events[index], index, &request));
                happened = events.len();
                queue.retain(|i| *i == 0);
                for _ in 0..copies(&mut rng, &config) {
                    queue.push_back(index);
                }
                if config.shuffle {
                    rng.shuffle(queue.make_contiguous());
                }
            }
            _ => {}
        }
        let Some(index) = queue.pop_front() else {
            break;
        };
        let (event_type, Some(bytes)) = (events[index], &bodies[index]) else {
            continue;
        };
        let mut step = Vec::new();
        for url in inner.subscribed(event_type) {
            let inner = inner.clone();
            let mr = mr.to_string();
            let bytes = bytes.clone();
            step.push(tokio::spawn(async move {
                deliver(&inner, event_type, &mr, &url, &bytes).await;
            }));
        }
        if config.shuffle {
            tasks.extend(step);
        } else {
            for delivery in step {
                let _ = delivery.await;
            }
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
        if !inner.begin_attempt(mr, event_type, url) {
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
