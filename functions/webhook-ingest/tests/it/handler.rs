//! The webhook-ingest handler fed with real API Gateway HTTP API and function URL
//! events (plain and base64 bodies), parsed by `lambda_http` exactly as in Lambda.

use std::sync::Arc;

use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::Value;
use shared::adapters::fakes::{FixedClock, UnreachableQueue};
use shared::adapters::memory::MemoryQueue;
use shared::config::{Env, IngestConfig};
use shared::handlers::webhook_ingest::{IngestDeps, handle};
use shared::inbound::{InboundEvent, Payload, Provider};
use shared::ports::Queue;

/// The instant the fixtures were signed at (see `fixtures/make_fixtures.py`).
const FIXTURE_TIME: i64 = 1_795_341_600;

const SKIPUP_PLAIN: &str = include_str!("../fixtures/apigw-v2-skipup-booked.json");
const SKIPUP_BASE64: &str = include_str!("../fixtures/apigw-v2-skipup-booked-base64.json");
const SKIPCALLS_DEFAULT: &str = include_str!("../fixtures/apigw-v2-skipcalls-call-completed.json");
const SKIPCALLS_ZAPIER_URL: &str = include_str!("../fixtures/function-url-skipcalls-zapier.json");
const SKODE_URL_BASE64: &str =
    include_str!("../fixtures/function-url-skode-lead-created-base64.json");

fn fixture_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![
        ("CRM_QUEUE_URL", "memory://crm"),
        ("SKIPUP_WEBHOOK_SECRETS", "whsec_fixture_skipup"),
        ("SKIPCALLS_WEBHOOK_SECRETS", "fixture_skipcalls"),
        ("SKODE_WEBHOOK_SECRETS", "whsec_fixture_skode"),
    ];
    pairs.extend_from_slice(extra);
    Env::from_pairs(pairs)
}

struct Harness {
    deps: IngestDeps,
    queue: Arc<MemoryQueue>,
}

fn harness_with(env: Env, now: i64, queue: Option<Arc<dyn Queue>>) -> Harness {
    let memory = Arc::new(MemoryQueue::new());
    let deps = IngestDeps {
        config: IngestConfig::from_env(&env).unwrap(),
        queue: queue.unwrap_or_else(|| memory.clone()),
        clock: Arc::new(FixedClock::at_unix(now)),
    };
    Harness {
        deps,
        queue: memory,
    }
}

fn harness() -> Harness {
    harness_with(fixture_env(&[]), FIXTURE_TIME + 5, None)
}

fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API event")
}

fn event(fixture: &str) -> Value {
    serde_json::from_str(fixture).unwrap()
}

struct Answer {
    status: StatusCode,
    body: Value,
    headers: lambda_http::http::HeaderMap,
}

async fn send(h: &Harness, event: &Value) -> Answer {
    let response = handle(&h.deps, &request(event)).await;
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: serde_json::from_str(response.body()).expect("a JSON answer"),
    }
}

fn queued(h: &Harness) -> Vec<(InboundEvent, String, String)> {
    h.queue
        .drain()
        .into_iter()
        .map(|m| {
            (
                serde_json::from_str(&m.body).unwrap(),
                m.group_id.unwrap(),
                m.dedup_id.unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_signed_skipup_delivery_is_queued_before_the_200() {
    let h = harness();
    let answer = send(&h, &event(SKIPUP_PLAIN)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "queued");
    assert_eq!(answer.body["event_id"], "evt_01JBOOKED00000000000000001");
    let messages = queued(&h);
    assert_eq!(messages.len(), 1);
    let (event, group, dedup) = &messages[0];
    assert_eq!(event.provider, Provider::SKIPUP);
    assert_eq!(event.event_type.as_deref(), Some("meeting_request.booked"));
    assert!(event.recognized);
    assert_eq!(dedup, "skipup:evt_01JBOOKED00000000000000001");
    assert_eq!(group, &event.group_id());
    assert_eq!(event.received_at.timestamp(), FIXTURE_TIME + 5);
}

#[tokio::test]
async fn a_base64_body_is_verified_on_its_decoded_bytes_and_queued_identically() {
    let plain = harness();
    let encoded = harness();
    assert_eq!(
        send(&plain, &event(SKIPUP_PLAIN)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&encoded, &event(SKIPUP_BASE64)).await.status,
        StatusCode::OK
    );
    assert_eq!(queued(&plain), queued(&encoded));
}

#[tokio::test]
async fn skipcalls_and_skode_deliveries_from_http_api_and_function_urls_are_queued() {
    for (fixture, provider, event_id) in [
        (
            SKIPCALLS_DEFAULT,
            Provider::SKIPCALLS,
            "CALL_COMPLETED:call_8d2f61",
        ),
        (
            SKIPCALLS_ZAPIER_URL,
            Provider::SKIPCALLS,
            "INCOMING_CALL_FAILED:call_19ab07",
        ),
        (SKODE_URL_BASE64, Provider::SKODE, "evt_5d1b0c"),
    ] {
        let h = harness();
        let answer = send(&h, &event(fixture)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{event_id}: {:?}",
            answer.body
        );
        let messages = queued(&h);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].0.provider, provider);
        assert_eq!(messages[0].0.event_id, event_id);
        assert!(matches!(messages[0].0.payload, Payload::Json(_)));
    }
}

async fn assert_refused(h: &Harness, event: &Value, status: StatusCode, code: &str) -> Answer {
    let answer = send(h, event).await;
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.body["error"], code);
    assert!(
        h.queue.is_empty(),
        "nothing may be queued for a refused delivery"
    );
    answer
}

#[tokio::test]
async fn a_tampered_body_is_refused_with_401() {
    let h = harness();
    let mut e = event(SKIPUP_PLAIN);
    let body = e["body"].as_str().unwrap().replace("booked", "cancelled");
    e["body"] = body.into();
    assert_refused(&h, &e, StatusCode::UNAUTHORIZED, "invalid_signature").await;
}

#[tokio::test]
async fn a_tampered_base64_body_is_refused_with_401() {
    let h = harness();
    let mut e = event(SKODE_URL_BASE64);
    // Swap one base64 character for another valid one: the decoded bytes change.
    let mut body = e["body"].as_str().unwrap().to_string();
    let replacement = if &body[20..21] == "A" { "B" } else { "A" };
    body.replace_range(20..21, replacement);
    e["body"] = body.into();
    assert_refused(&h, &e, StatusCode::UNAUTHORIZED, "invalid_signature").await;
}

#[tokio::test]
async fn an_unsigned_delivery_is_refused_for_every_provider() {
    for (fixture, header) in [
        (SKIPUP_PLAIN, "x-webhook-signature"),
        (SKIPCALLS_DEFAULT, "x-webhook-signature"),
        (SKODE_URL_BASE64, "x-skode-signature"),
    ] {
        let h = harness();
        let mut e = event(fixture);
        e["headers"].as_object_mut().unwrap().remove(header);
        let answer = assert_refused(&h, &e, StatusCode::UNAUTHORIZED, "invalid_signature").await;
        assert_eq!(answer.body["message"], "signature header is missing");
    }
}

#[tokio::test]
async fn an_empty_v1_signature_is_refused() {
    let h = harness();
    let mut e = event(SKIPUP_PLAIN);
    e["headers"]["x-webhook-signature"] = format!("t={FIXTURE_TIME},v1=").into();
    assert_refused(&h, &e, StatusCode::UNAUTHORIZED, "invalid_signature").await;
}

#[tokio::test]
async fn stale_and_future_deliveries_are_refused() {
    let stale = harness_with(fixture_env(&[]), FIXTURE_TIME + 301, None);
    let answer = assert_refused(
        &stale,
        &event(SKIPUP_PLAIN),
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
    )
    .await;
    assert_eq!(
        answer.body["message"],
        "signature timestamp is older than the tolerance window"
    );
    let future = harness_with(fixture_env(&[]), FIXTURE_TIME - 301, None);
    assert_refused(
        &future,
        &event(SKIPUP_PLAIN),
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn a_delivery_signed_with_another_secret_is_refused() {
    let env = fixture_env(&[("SKODE_WEBHOOK_SECRETS", "a-different-secret")]);
    let h = harness_with(env, FIXTURE_TIME, None);
    assert_refused(
        &h,
        &event(SKODE_URL_BASE64),
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn the_previous_secret_still_verifies_during_rotation() {
    let env = fixture_env(&[(
        "SKODE_WEBHOOK_SECRETS",
        "the-new-secret,whsec_fixture_skode",
    )]);
    let h = harness_with(env, FIXTURE_TIME, None);
    assert_eq!(
        send(&h, &event(SKODE_URL_BASE64)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_anything_else() {
    let h = harness();
    let mut e = event(SKIPUP_PLAIN);
    e["body"] = "x".repeat(256 * 1024 + 1).into();
    e["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-webhook-signature");
    assert_refused(&h, &e, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let small = harness_with(
        fixture_env(&[("MAX_BODY_BYTES", "100")]),
        FIXTURE_TIME,
        None,
    );
    assert_refused(
        &small,
        &event(SKIPUP_PLAIN),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_accepted() {
    let body_len = event(SKIPUP_PLAIN)["body"]
        .as_str()
        .unwrap()
        .len()
        .to_string();
    let limit: &'static str = Box::leak(body_len.into_boxed_str());
    let h = harness_with(
        fixture_env(&[("MAX_BODY_BYTES", limit)]),
        FIXTURE_TIME,
        None,
    );
    assert_eq!(send(&h, &event(SKIPUP_PLAIN)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_get_404_and_other_methods_405() {
    let h = harness();
    let mut e = event(SKIPUP_PLAIN);
    e["rawPath"] = "/webhooks/stripe".into();
    assert_refused(&h, &e, StatusCode::NOT_FOUND, "not_found").await;

    let mut e = event(SKIPUP_PLAIN);
    e["requestContext"]["http"]["method"] = "GET".into();
    let answer = assert_refused(&h, &e, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert_eq!(answer.headers["allow"], "POST");
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_same_route() {
    let h = harness();
    let mut e = event(SKIPUP_PLAIN);
    e["rawPath"] = "/webhooks/skipup/".into();
    assert_eq!(send(&h, &e).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_provider_without_secrets_refuses_everything_with_503() {
    let env = Env::from_pairs([
        ("CRM_QUEUE_URL", "memory://crm"),
        ("SKIPUP_WEBHOOK_SECRETS", "whsec_fixture_skipup"),
    ]);
    let h = harness_with(env, FIXTURE_TIME, None);
    assert_refused(
        &h,
        &event(SKODE_URL_BASE64),
        StatusCode::SERVICE_UNAVAILABLE,
        "provider_not_configured",
    )
    .await;
    assert_eq!(send(&h, &event(SKIPUP_PLAIN)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_queue_turns_a_valid_delivery_into_503() {
    let h = harness_with(
        fixture_env(&[]),
        FIXTURE_TIME,
        Some(Arc::new(UnreachableQueue)),
    );
    let answer = send(&h, &event(SKIPUP_PLAIN)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["error"], "queue_unavailable");
}

#[tokio::test]
async fn a_redelivery_is_acknowledged_but_queued_once_in_a_fifo_queue() {
    let h = harness();
    for _ in 0..3 {
        assert_eq!(send(&h, &event(SKIPUP_PLAIN)).await.status, StatusCode::OK);
    }
    assert_eq!(queued(&h).len(), 1);
}
