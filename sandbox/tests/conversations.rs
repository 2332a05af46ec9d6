//! The conversation simulator over real HTTP: a receiver registered through the API
//! gets each step as a signed webhook, failed deliveries are retried, an endpoint that
//! keeps failing is disabled, and copies can be repeated and shuffled. Requests can be
//! cancelled, paused and resumed through the API, which the conversation respects, and
//! webhooks can be dropped while `GET` still shows the true state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    // One step at a time: each delivery, retried, lands before the next step.
    config.conversation.held = true;
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
    for step in 1..=3 {
        sandbox.advance("dana@northwind.example", 1);
        wait_until(|| received.lock().unwrap().events.len() == step).await;
    }
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
    // Deliveries run concurrently: at the 10th failure each other delivery may have had
    // one attempt in flight, and no delivery tries again after that.
    let calls = received.lock().unwrap().calls;
    let deliveries = sandbox.deliveries().len();
    assert!(
        (10..10 + deliveries).contains(&calls),
        "{calls} of {deliveries}"
    );
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

const ALL_EVENTS: [&str; 4] = [
    "meeting_request.created",
    "meeting_request.follow_up_sent",
    "meeting_request.booked",
    "meeting_request.cancelled",
];

/// A `POST` to the API: (status, JSON answer). No body sends none at all.
async fn call(
    sandbox: &Sandbox,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
    auth: bool,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}{path}", sandbox.base_url()));
    if auth {
        request = request.bearer_auth(sandbox.api_key());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn act(sandbox: &Sandbox, mr: &str, action: &str, body: Option<Value>) -> (u16, Value) {
    call(
        sandbox,
        &format!("/meeting_requests/{mr}/{action}"),
        body,
        None,
        true,
    )
    .await
}

/// The meeting request as `GET /meeting_requests/{id}` shows it.
async fn fetch(sandbox: &Sandbox, mr: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}/meeting_requests/{mr}", sandbox.base_url()))
        .bearer_auth(sandbox.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["data"].clone()
}

/// Waits for `condition`, failing the test if it never comes.
async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "the condition never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The event types the receiver got about `mr`, in arrival order.
fn kinds(received: &Mutex<Received>, mr: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|(_, _, m)| m == mr)
        .map(|(kind, _, _)| kind.clone())
        .collect()
}

/// The same, sorted: for steps too short to keep deliveries in order.
fn sorted_kinds(received: &Mutex<Received>, mr: &str) -> Vec<String> {
    let mut kinds = kinds(received, mr);
    kinds.sort();
    kinds
}

fn invalid_request(message: &str) -> Value {
    json!({ "error": { "type": "invalid_request", "message": message } })
}

/// Conversations held: none moves during a test.
fn frozen() -> SandboxConfig {
    SandboxConfig {
        conversation: ConversationConfig {
            held: true,
            ..ConversationConfig::default()
        },
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn cancelling_an_active_request_cancels_it_once() {
    let sandbox = Sandbox::start(frozen(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    let before = fetch(&sandbox, &mr).await;
    assert_eq!(before["status"], "active");

    let (status, answer) = act(&sandbox, &mr, "cancel", Some(json!({ "notify": true }))).await;
    assert_eq!(status, 200, "{answer}");
    let cancelled = &answer["data"];
    assert_eq!(cancelled["id"], mr.as_str());
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    assert_eq!(cancelled["booked_at"], Value::Null);
    assert_eq!(cancelled["paused_at"], Value::Null);
    assert!(cancelled["updated_at"].is_string());
    assert!(cancelled["updated_at"].as_str() >= before["updated_at"].as_str());
    assert_eq!(
        cancelled["participant_emails"],
        before["participant_emails"]
    );
    assert_eq!(
        &fetch(&sandbox, &mr).await,
        cancelled,
        "GET shows the cancellation"
    );

    let (status, answer) = act(&sandbox, &mr, "cancel", None).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        invalid_request("Cannot cancel a request that is already cancelled")
    );
    assert_eq!(
        sandbox.cancels(),
        [(mr.clone(), 1)].into(),
        "the refused second cancel is not counted"
    );
    let cancellation = sandbox.cancellations()[&mr];
    assert!(cancellation.notify);
    assert!(sandbox.conversations()[0].cancelled_by_api);
    assert_eq!(
        sandbox
            .actions()
            .iter()
            .map(|a| (a.action.as_str(), a.status))
            .collect::<Vec<_>>(),
        [("cancel", 200), ("cancel", 422)]
    );
    assert!(sandbox.violations().is_empty());
}

#[tokio::test]
async fn a_cancel_without_a_body_or_with_an_empty_one_does_not_notify() {
    let sandbox = Sandbox::start(frozen(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let bare = request_meeting(&sandbox, "a@northwind.example").await;
    let empty = request_meeting(&sandbox, "b@northwind.example").await;
    let explicit = request_meeting(&sandbox, "c@northwind.example").await;
    assert_eq!(act(&sandbox, &bare, "cancel", None).await.0, 200);
    assert_eq!(
        act(&sandbox, &empty, "cancel", Some(json!({}))).await.0,
        200
    );
    let body = Some(json!({ "notify": false }));
    assert_eq!(act(&sandbox, &explicit, "cancel", body).await.0, 200);
    let cancellations = sandbox.cancellations();
    for mr in [&bare, &empty, &explicit] {
        assert_eq!(cancellations[mr].count, 1);
        assert!(!cancellations[mr].notify, "{mr}");
    }
}

#[tokio::test]
async fn a_cancel_refused_at_the_door_changes_nothing() {
    let sandbox = Sandbox::start(frozen(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;

    let (status, answer) = call(
        &sandbox,
        "/meeting_requests/mr_SANDBOX999999999999999999/cancel",
        None,
        None,
        true,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["type"], "not_found");
    assert!(answer["error"]["message"].is_string());

    let path = format!("/meeting_requests/{mr}/cancel");
    let (status, answer) = call(&sandbox, &path, None, None, false).await;
    assert_eq!(status, 401, "{answer}");

    for body in [
        json!({ "notify": "yes" }),
        json!({ "notify": null }),
        json!({ "notify": true, "reason": "duplicate" }),
        json!([true]),
        json!("notify"),
    ] {
        let (status, answer) = act(&sandbox, &mr, "cancel", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(answer["error"]["type"], "validation_error", "{body}");
        assert!(answer["error"]["message"].is_string());
    }
    assert_eq!(sandbox.violations().len(), 5);

    assert_eq!(fetch(&sandbox, &mr).await["status"], "active");
    assert!(sandbox.cancels().is_empty());
    assert!(!sandbox.conversations()[0].cancelled_by_api);
}

#[tokio::test]
async fn a_repeated_cancel_with_the_same_key_replays_the_first_answer() {
    let sandbox = Sandbox::start(frozen(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    let path = format!("/meeting_requests/{mr}/cancel");
    let first = call(&sandbox, &path, None, Some("cancel-1"), true).await;
    assert_eq!(first.0, 200);
    let again = call(&sandbox, &path, None, Some("cancel-1"), true).await;
    assert_eq!(again, first, "replayed, not refused as already cancelled");
    let other_key = call(&sandbox, &path, None, Some("cancel-2"), true).await;
    assert_eq!(other_key.0, 422);
    assert_eq!(sandbox.cancels()[&mr], 1);
}

#[tokio::test]
async fn a_booked_request_can_be_neither_cancelled_nor_paused() {
    let sandbox = Sandbox::start(
        fast(ConversationConfig {
            booked_odds: 1.0,
            ..ConversationConfig::default()
        }),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    settle(&sandbox).await;
    let booked = fetch(&sandbox, &mr).await;
    assert_eq!(booked["status"], "booked");
    assert!(booked["booked_at"].is_string());

    let (status, answer) = act(&sandbox, &mr, "cancel", None).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        invalid_request("Cannot cancel a request that is already booked")
    );
    let (status, answer) = act(&sandbox, &mr, "pause", None).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        invalid_request("Cannot pause a request that is booked")
    );
    let (status, answer) = act(&sandbox, &mr, "resume", None).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        invalid_request("Cannot resume a request that is not paused")
    );
    assert_eq!(fetch(&sandbox, &mr).await, booked);
    assert!(sandbox.cancels().is_empty());
}

#[tokio::test]
async fn a_conversation_cancelled_midway_sends_cancelled_and_nothing_after_it() {
    let mut config = fast(ConversationConfig {
        follow_up_odds: 1.0,
        booked_odds: 1.0,
        ..ConversationConfig::default()
    });
    // Held: the cancellation comes after the first step, before the second.
    config.conversation.held = true;
    let sandbox = Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (url, received) = receiver(0).await;
    api_post(
        &sandbox,
        "/webhook_endpoints",
        json!({ "url": url, "events": ALL_EVENTS }),
    )
    .await;
    let cancelled = request_meeting(&sandbox, "dana@northwind.example").await;
    let untouched = request_meeting(&sandbox, "lee@contoso.example").await;
    sandbox.release("lee@contoso.example");
    sandbox.advance("dana@northwind.example", 1);
    wait_until(|| !kinds(&received, &cancelled).is_empty()).await;

    let (status, answer) = act(&sandbox, &cancelled, "cancel", None).await;
    assert_eq!(status, 200, "{answer}");
    sandbox.release("dana@northwind.example");
    settle(&sandbox).await;

    let got = kinds(&received, &cancelled);
    assert_eq!(
        got.first().map(String::as_str),
        Some("meeting_request.created")
    );
    assert_eq!(
        got.last().map(String::as_str),
        Some("meeting_request.cancelled")
    );
    assert_eq!(
        got.iter()
            .filter(|k| *k == "meeting_request.cancelled")
            .count(),
        1
    );
    assert!(
        !got.contains(&"meeting_request.booked".to_string()),
        "{got:?}"
    );
    assert!(
        received
            .lock()
            .unwrap()
            .events
            .iter()
            .all(|(_, valid, _)| *valid)
    );
    assert!(sandbox.sent_after_cancel().is_empty());

    let state = fetch(&sandbox, &cancelled).await;
    assert_eq!(state["status"], "cancelled");
    assert_eq!(state["booked_at"], Value::Null);
    let conversation = sandbox
        .conversations()
        .into_iter()
        .find(|c| c.meeting_request_id == cancelled)
        .unwrap();
    assert!(conversation.cancelled_by_api);
    assert_eq!(
        conversation.outcome,
        Outcome::Booked,
        "what it would have been"
    );
    assert_eq!(sandbox.cancels(), [(cancelled.clone(), 1)].into());

    // The other conversation went its way.
    assert_eq!(
        kinds(&received, &untouched),
        [
            "meeting_request.created",
            "meeting_request.follow_up_sent",
            "meeting_request.booked"
        ]
    );
    assert_eq!(fetch(&sandbox, &untouched).await["status"], "booked");
}

#[tokio::test]
async fn a_paused_conversation_waits_until_it_is_resumed() {
    let mut config = fast(ConversationConfig {
        follow_up_odds: 1.0,
        booked_odds: 1.0,
        ..ConversationConfig::default()
    });
    config.conversation.held = true;
    let sandbox = Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (url, received) = receiver(0).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    sandbox.advance("dana@northwind.example", 1);
    wait_until(|| !kinds(&received, &mr).is_empty()).await;

    let (status, answer) = act(&sandbox, &mr, "pause", None).await;
    assert_eq!(status, 200, "{answer}");
    // Let go: every step from now on finds the request paused.
    sandbox.release("dana@northwind.example");
    assert_eq!(answer["data"]["status"], "paused");
    assert!(answer["data"]["paused_at"].is_string());
    assert_eq!(fetch(&sandbox, &mr).await, answer["data"]);
    let at_pause = kinds(&received, &mr);

    let (status, answer) = act(&sandbox, &mr, "pause", None).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        invalid_request("Cannot pause a request that is already paused")
    );

    // Five steps pass, each one checked by the conversation; it stays where it was.
    wait_until(|| sandbox.paused_steps(&mr) >= 5).await;
    assert_eq!(kinds(&received, &mr), at_pause);
    assert_eq!(fetch(&sandbox, &mr).await["status"], "paused");
    assert_eq!(sandbox.conversations_playing(), 1);

    let (status, answer) = act(&sandbox, &mr, "resume", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["status"], "active");
    assert_eq!(answer["data"]["paused_at"], Value::Null);
    let (status, answer) = act(&sandbox, &mr, "resume", None).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer,
        invalid_request("Cannot resume a request that is not paused")
    );

    settle(&sandbox).await;
    assert_eq!(
        kinds(&received, &mr),
        [
            "meeting_request.created",
            "meeting_request.follow_up_sent",
            "meeting_request.booked"
        ]
    );
    let state = fetch(&sandbox, &mr).await;
    assert_eq!(state["status"], "booked");
    assert_eq!(state["paused_at"], Value::Null);
}

#[tokio::test]
async fn a_paused_request_can_be_cancelled_and_never_books() {
    let mut config = fast(ConversationConfig {
        follow_up_odds: 1.0,
        booked_odds: 1.0,
        ..ConversationConfig::default()
    });
    config.conversation.held = true;
    let sandbox = Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (url, received) = receiver(0).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    assert_eq!(act(&sandbox, &mr, "pause", None).await.0, 200);
    let (status, answer) = act(&sandbox, &mr, "cancel", Some(json!({ "notify": true }))).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"]["status"], "cancelled");
    assert_eq!(answer["data"]["paused_at"], Value::Null);
    sandbox.release_all();
    settle(&sandbox).await;
    assert_eq!(
        kinds(&received, &mr),
        ["meeting_request.created", "meeting_request.cancelled"]
    );
    assert!(sandbox.sent_after_cancel().is_empty());
    assert_eq!(fetch(&sandbox, &mr).await["status"], "cancelled");
    assert_eq!(act(&sandbox, &mr, "resume", None).await.0, 422);
}

#[tokio::test]
async fn pause_and_resume_go_through_the_gate_and_know_their_requests() {
    let sandbox = Sandbox::start(frozen(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mr = request_meeting(&sandbox, "dana@northwind.example").await;
    for action in ["pause", "resume"] {
        let path = format!("/meeting_requests/{mr}/{action}");
        assert_eq!(call(&sandbox, &path, None, None, false).await.0, 401);
        let unknown = format!("/meeting_requests/mr_SANDBOX0/{action}");
        let (status, answer) = call(&sandbox, &unknown, None, None, true).await;
        assert_eq!(status, 404);
        assert_eq!(answer["error"]["type"], "not_found");
    }
    assert_eq!(fetch(&sandbox, &mr).await["status"], "active");
}

#[tokio::test]
async fn every_webhook_dropped_sends_none_while_get_shows_the_end() {
    let sandbox = Sandbox::start(
        fast(ConversationConfig {
            follow_up_odds: 1.0,
            booked_odds: 1.0,
            drop_webhooks: 1.0,
            ..ConversationConfig::default()
        }),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let (url, received) = receiver(0).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(request_meeting(&sandbox, &format!("p{i}@example.com")).await);
    }
    settle(&sandbox).await;
    assert_eq!(received.lock().unwrap().calls, 0);
    assert!(sandbox.deliveries().is_empty());
    assert!(sandbox.sends().is_empty());
    let dropped = sandbox.dropped();
    for mr in &ids {
        let mine: Vec<&str> = dropped
            .iter()
            .filter(|(m, _)| m == mr)
            .map(|(_, kind)| kind.as_str())
            .collect();
        assert_eq!(
            mine,
            [
                "meeting_request.created",
                "meeting_request.follow_up_sent",
                "meeting_request.booked"
            ]
        );
        let state = fetch(&sandbox, mr).await;
        assert_eq!(state["status"], "booked", "{state}");
        assert!(state["booked_at"].is_string());
    }
}

#[tokio::test]
async fn no_webhook_is_dropped_at_zero() {
    let sandbox = Sandbox::start(
        fast(ConversationConfig {
            drop_webhooks: 0.0,
            ..ConversationConfig::default()
        }),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let (url, received) = receiver(0).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    for i in 0..8 {
        request_meeting(&sandbox, &format!("p{i}@example.com")).await;
    }
    settle(&sandbox).await;
    assert!(sandbox.dropped().is_empty());
    for conversation in sandbox.conversations() {
        let mut expected = conversation.event_types();
        expected.sort();
        assert_eq!(
            sorted_kinds(&received, &conversation.meeting_request_id),
            expected,
            "{conversation:?}"
        );
    }
}

#[tokio::test]
async fn the_same_seed_drops_the_same_webhooks_and_only_those() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sandbox = Sandbox::start(
            fast(ConversationConfig {
                drop_webhooks: 0.5,
                ..ConversationConfig::default()
            }),
            ([127, 0, 0, 1], 0).into(),
        )
        .await
        .unwrap();
        let (url, received) = receiver(0).await;
        api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
        for i in 0..8 {
            request_meeting(&sandbox, &format!("p{i}@example.com")).await;
        }
        settle(&sandbox).await;
        let dropped = sandbox.dropped();
        for conversation in sandbox.conversations() {
            let mr = &conversation.meeting_request_id;
            let mut expected: Vec<&str> = conversation
                .event_types()
                .into_iter()
                .filter(|kind| !dropped.contains(&(mr.clone(), kind.to_string())))
                .collect();
            expected.sort();
            assert_eq!(sorted_kinds(&received, mr), expected);
        }
        let mut dropped = dropped;
        dropped.sort();
        runs.push(dropped);
    }
    assert!(!runs[0].is_empty(), "some webhooks were dropped");
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn a_held_conversation_sends_nothing_until_it_is_released() {
    let mut config = fast(ConversationConfig {
        follow_up_odds: 1.0,
        booked_odds: 1.0,
        ..ConversationConfig::default()
    });
    config.conversation.held = true;
    let sandbox = Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (url, received) = receiver(0).await;
    api_post(&sandbox, "/webhook_endpoints", json!({ "url": url })).await;
    let held = request_meeting(&sandbox, "dana@northwind.example").await;
    let released = request_meeting(&sandbox, "sam@contoso.example").await;
    sandbox.release("sam@contoso.example");
    // The released one, started after the held one, played its whole conversation:
    // the held one had as long, and did nothing.
    wait_until(|| sandbox.finished("sam@contoso.example")).await;
    assert_eq!(kinds(&received, &released).len(), 3);
    assert!(kinds(&received, &held).is_empty());
    assert_eq!(fetch(&sandbox, &held).await["status"], "active");
    assert!(!sandbox.finished("dana@northwind.example"));
    assert_eq!(sandbox.conversations_playing(), 1);

    sandbox.release_all();
    settle(&sandbox).await;
    assert_eq!(
        kinds(&received, &held),
        [
            "meeting_request.created",
            "meeting_request.follow_up_sent",
            "meeting_request.booked"
        ]
    );
    assert!(sandbox.finished("dana@northwind.example"));
    assert_eq!(fetch(&sandbox, &held).await["status"], "booked");
}
