//! The conversation simulator over real HTTP: a receiver registered through the API
//! gets each step as a signed webhook, failed deliveries are retried, an endpoint that
//! keeps failing is disabled, and copies can be repeated and shuffled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use skipup_sandbox::conversation::sign;
use skipup_sandbox::{ConversationConfig, Outcome, Sandbox, SandboxConfig};

/// What the receiver got: (event type, signature valid, meeting request), and how
/// many to refuse.
#[derive(Default)]
struct Received {
    events: Vec<(String, bool, String)>,
    refuse_first: usize,
    calls: usize,
}

async fn receive(
    State(state): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut state = state.lock().unwrap();
    state.calls += 1;
    if state.calls <= state.refuse_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = headers["x-webhook-signature"].to_str().unwrap().to_string();
    let t: i64 = header[2..header.find(',').unwrap()].parse().unwrap();
    let valid = sign("whsec_sandbox", t, &body) == header;
    let value: Value = serde_json::from_slice(&body).unwrap();
    let kind = value
        .get("type")
        .or_else(|| value.get("event"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    state.events.push((kind, valid, meeting_request(&value)));
    StatusCode::OK
}

/// The `mr_` id anywhere in the payload.
fn meeting_request(value: &Value) -> String {
    match value {
        Value::String(s) if s.starts_with("mr_") => s.clone(),
        Value::Object(map) => map
            .values()
            .map(meeting_request)
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

async fn receiver(refuse_first: usize) -> (String, Arc<Mutex<Received>>) {
    let state = Arc::new(Mutex::new(Received {
        refuse_first,
        ..Received::default()
    }));
    let app = Router::new()
        .route("/webhooks/skipup", post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/skipup", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn fast(conversation: ConversationConfig) -> SandboxConfig {
    SandboxConfig {
        conversation: ConversationConfig {
            step: Duration::from_millis(5),
            retry_unit: Duration::from_millis(5),
            ..conversation
        },
        ..SandboxConfig::default()
    }
}

async fn api_post(sandbox: &Sandbox, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.base_url()))
        .bearer_auth(sandbox.api_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

async fn request_meeting(sandbox: &Sandbox, participant: &str) -> String {
    let answer = api_post(
        sandbox,
        "/meeting_requests",
        json!({ "organizer_email": "owner@vendor.example",
                "participants": [{ "email": participant }], "include_introduction": true }),
    )
    .await;
    answer["data"]["id"].as_str().unwrap().to_string()
}

async fn settle(sandbox: &Sandbox) {
    while sandbox.conversations_playing() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_registered_receiver_gets_each_step_signed_and_in_order_after_retries() {
    let mut config = fast(ConversationConfig {
        follow_up_odds: 1.0,
        booked_odds: 1.0,
        ..ConversationConfig::default()
    });
    // Steps long enough for a retried delivery to land before the next step.
    config.conversation.step = Duration::from_millis(150);
    let sandbox = Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (url, received) = receiver(2).await;
    let endpoint = api_post(
        &sandbox,
        "/webhook_endpoints",
        json!({ "url": url, "events": ["meeting_request.created", "meeting_request.follow_up_sent",
                                        "meeting_request.booked", "meeting_request.cancelled"] }),
    )
    .await;
    assert_eq!(endpoint["data"]["secret"], "whsec_sandbox");
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    settle(&sandbox).await;
    let received = received.lock().unwrap();
    assert_eq!(
        received.events,
        [
            ("meeting_request.created".to_string(), true, mr.clone()),
            (
                "meeting_request.follow_up_sent".to_string(),
                true,
                mr.clone()
            ),
            ("meeting_request.booked".to_string(), true, mr.clone()),
        ]
    );
    let deliveries = sandbox.deliveries();
    assert!(
        deliveries
            .iter()
            .all(|d| d.delivered && d.meeting_request_id == mr)
    );
    assert_eq!(
        deliveries.iter().map(|d| d.attempts).sum::<u32>(),
        5,
        "two refusals were retried"
    );
    assert_eq!(sandbox.conversations()[0].outcome, Outcome::Booked);
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_after_ten_failures() {
    let sandbox = Sandbox::start(
        fast(ConversationConfig {
            max_retries: 3,
            ..ConversationConfig::default()
        }),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let (url, received) = receiver(usize::MAX).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    for i in 0..4 {
        request_meeting(&sandbox, &format!("p{i}@example.com")).await;
    }
    settle(&sandbox).await;
    // Deliveries run concurrently: a few may have been in flight at the 10th failure.
    let calls = received.lock().unwrap().calls;
    assert!((10..16).contains(&calls), "{calls}");
    let endpoint = &sandbox.endpoints()[0];
    assert_eq!(endpoint["enabled"], false);
    assert_eq!(endpoint["disabled_reason"], "too_many_failures");
    assert!(sandbox.deliveries().iter().all(|d| !d.delivered));
    request_meeting(&sandbox, "late@example.com").await;
    settle(&sandbox).await;
    assert_eq!(
        received.lock().unwrap().calls,
        calls,
        "nothing sent once disabled"
    );
}

#[tokio::test]
async fn copies_and_shuffling_repeat_and_reorder_deliveries() {
    let sandbox = Sandbox::start(
        fast(ConversationConfig {
            copies: (3, 3),
            shuffle: true,
            follow_up_odds: 0.0,
            ..ConversationConfig::default()
        }),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let (url, received) = receiver(0).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    for i in 0..6 {
        request_meeting(&sandbox, &format!("p{i}@example.com")).await;
    }
    settle(&sandbox).await;
    let events = &received.lock().unwrap().events;
    assert_eq!(events.len(), 6 * 2 * 3);
    assert!(events.iter().all(|(_, valid, _)| *valid));
    for conversation in sandbox.conversations() {
        let mine: Vec<&str> = events
            .iter()
            .filter(|(_, _, mr)| *mr == conversation.meeting_request_id)
            .map(|(kind, _, _)| kind.as_str())
            .collect();
        assert_eq!(mine.len(), 6, "{mine:?}");
        assert_eq!(
            mine.iter()
                .filter(|k| **k == "meeting_request.created")
                .count(),
            3
        );
    }
    let overtaken = sandbox.conversations().iter().any(|c| {
        events
            .iter()
            .find(|(_, _, mr)| *mr == c.meeting_request_id)
            .is_some_and(|(kind, _, _)| kind != "meeting_request.created")
    });
    assert!(
        overtaken,
        "some conversation's last step arrived before its first"
    );
}
