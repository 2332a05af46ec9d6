//! The form-intake handler fed with an API Gateway HTTP API event, signed at test
//! time by the Python reference signer; in-memory store and queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use shared::adapters::fakes::ManualClock;
use shared::adapters::memory::{MemoryLeadStore, MemoryQueue};
use shared::config::Env;
use shared::connectors::{Connectors, Event, Provider};
use shared::handlers::form_intake::{FormDeps, handle};
use shared::inbound::Payload;
use shared::intake::{IntakeDeps, IntakeOutcome, IntakeSettings, submit};
use shared::lead::{LeadId, LeadStatus};
use shared::ports::{Clock, LeadStore, Queue, QueueError, QueueMessage};
use shared::recovery::CheckMessage;
use shared::signature::{SecretSet, TimestampedSignature};
use testkit::sign::python_sign;

const SECRET: &str = "whsec_forms_test";
const FIXTURE: &str = include_str!("../../../events/form-intake.json");

/// A queue that can be switched off, to test what happens when SQS is down.
#[derive(Default)]
struct SwitchableQueue {
    down: AtomicBool,
    inner: MemoryQueue,
}

#[async_trait]
impl Queue for SwitchableQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("connection refused".into()));
        }
        self.inner.send(message).await
    }
}

struct World {
    deps: FormDeps,
    store: Arc<MemoryLeadStore>,
    checks: Arc<SwitchableQueue>,
    clock: Arc<ManualClock>,
}

fn world_with(secrets: &str) -> World {
    let store = Arc::new(MemoryLeadStore::new());
    let checks = Arc::new(SwitchableQueue::default());
    let clock = Arc::new(ManualClock::new(
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    ));
    let deps = FormDeps {
        signature: TimestampedSignature::new(SecretSet::parse(secrets), 300),
        max_body_bytes: 64 * 1024,
        intake: IntakeDeps {
            store: store.clone(),
            checks: checks.clone(),
            clock: clock.clone(),
            settings: IntakeSettings::default(),
        },
    };
    World {
        deps,
        store,
        checks,
        clock,
    }
}

fn world() -> World {
    world_with(SECRET)
}

fn fixture_body() -> Value {
    let event: Value = serde_json::from_str(FIXTURE).unwrap();
    serde_json::from_str(event["body"].as_str().unwrap()).unwrap()
}

/// The fixture event carrying `body`, signed with `secret` at the world's time.
fn event(w: &World, body: &Value, secret: &str) -> Value {
    let raw = body.to_string();
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    let signature = python_sign(
        "skipup",
        secret,
        Some(w.clock.now().timestamp()),
        raw.as_bytes(),
    );
    event["headers"]["x-webhook-signature"] = signature.into();
    event["headers"]["content-length"] = raw.len().to_string().into();
    event["body"] = raw.into();
    event
}

async fn send(w: &World, event: &Value) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = handle(&w.deps, &request).await;
    (
        response.status(),
        serde_json::from_str(response.body()).unwrap(),
    )
}

fn scheduled_checks(w: &World) -> Vec<(CheckMessage, Option<u32>)> {
    w.checks
        .inner
        .drain()
        .into_iter()
        .map(|m| (serde_json::from_str(&m.body).unwrap(), m.delay_seconds))
        .collect()
}

#[tokio::test]
async fn a_signed_submission_records_the_lead_and_schedules_its_check() {
    let w = world();
    let (status, body) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "scheduled");
    assert_eq!(body["due_at"], "2026-11-22T10:30:00Z");
    let id = LeadId::parse(body["lead_id"].as_str().unwrap()).unwrap();
    let lead = w.store.get_lead(&id).await.unwrap().unwrap();
    assert_eq!(lead.status, LeadStatus::Submitted);
    assert_eq!(lead.profile.company.as_deref(), Some("Northwind"));
    assert_eq!(lead.profile.answers.len(), 3);
    assert!(lead.check_scheduled_at.is_some());
    let checks = scheduled_checks(&w);
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].0.lead_id, id);
    assert_eq!(
        checks[0].1,
        Some(900),
        "SQS caps the first delay; the check chains the rest"
    );
    let timeline = w.store.timeline(&id).await.unwrap();
    assert_eq!(timeline[0].status, Some(LeadStatus::Submitted));
}

#[tokio::test]
async fn a_duplicate_post_and_a_second_form_the_same_day_schedule_nothing_more() {
    let w = world();
    let (_, first) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    w.clock.advance(TimeDelta::seconds(5));
    let (status, again) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::ACCEPTED, Some("duplicate"))
    );
    assert_eq!(again["lead_id"], first["lead_id"]);

    let mut other = fixture_body();
    other["submission_id"] = json!("sub_other_form");
    other["email"] = json!("DANA.RUIZ@northwind.example");
    w.clock.advance(TimeDelta::hours(3));
    let (_, second_form) = send(&w, &event(&w, &other, SECRET)).await;
    assert_eq!(second_form["status"], "duplicate");
    assert_eq!(second_form["lead_id"], first["lead_id"]);
    assert_eq!(scheduled_checks(&w).len(), 1);
    assert_eq!(w.store.all_leads().len(), 1);
}

#[tokio::test]
async fn after_the_window_the_same_person_is_a_new_lead() {
    let w = world();
    let (_, first) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    w.clock.advance(TimeDelta::days(3));
    let mut later = fixture_body();
    later["submission_id"] = json!("sub_next_week");
    let (_, second) = send(&w, &event(&w, &later, SECRET)).await;
    assert_eq!(second["status"], "scheduled");
    assert_ne!(second["lead_id"], first["lead_id"]);
}

#[tokio::test]
async fn only_an_invalid_email_is_refused_with_a_400() {
    let w = world();
    let body = json!({"email": "dana@", "timezone": "Nowhere/City", "answers": "none"});
    let (status, answer) = send(&w, &event(&w, &body, SECRET)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "validation_failed");
    let fields: Vec<&str> = answer["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email"]);
    assert!(w.store.all_leads().is_empty());
}

#[tokio::test]
async fn a_long_answer_an_odd_time_zone_and_phone_are_kept_with_warnings_on_the_timeline() {
    let w = world();
    let body = json!({"email": "dana@northwind.example", "name": "Dana", "timezone": "PST",
        "phone": "call me", "answers": {"What do you need?": "x".repeat(7_000)}});
    let (status, answer) = send(&w, &event(&w, &body, SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let warned: Vec<&str> = answer["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        warned,
        ["phone", "timezone", "answer \"What do you need?\""]
    );
    let lead = &w.store.all_leads()[0];
    assert_eq!(lead.profile.timezone, None);
    assert_eq!(lead.profile.answers[0].1.chars().count(), 2_000);
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    let detail = &timeline[0].detail;
    assert!(
        detail.contains("note: timezone \"PST\" dropped"),
        "{detail}"
    );
    assert!(
        detail.contains("note: phone \"call me\" dropped"),
        "{detail}"
    );
    assert!(
        detail.contains("cut to 2000 characters (it had 7000)"),
        "{detail}"
    );
}

#[tokio::test]
async fn unsigned_wrongly_signed_oversized_and_misrouted_posts_are_refused() {
    let w = world();
    let good = event(&w, &fixture_body(), SECRET);
    let mut unsigned = good.clone();
    unsigned["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-webhook-signature");
    let wrong = event(&w, &fixture_body(), "another-secret");
    let mut oversized = fixture_body();
    oversized["role"] = json!("x".repeat(70 * 1024));
    let oversized = event(&w, &oversized, SECRET);
    let mut get = good.clone();
    get["requestContext"]["http"]["method"] = json!("GET");
    let mut elsewhere = good.clone();
    elsewhere["rawPath"] = json!("/forms/extra");
    for (name, e, expected) in [
        ("unsigned", unsigned, StatusCode::UNAUTHORIZED),
        ("wrong secret", wrong, StatusCode::UNAUTHORIZED),
        ("oversized", oversized, StatusCode::PAYLOAD_TOO_LARGE),
        ("GET", get, StatusCode::METHOD_NOT_ALLOWED),
        ("other path", elsewhere, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(send(&w, &e).await.0, expected, "{name}");
    }
    assert!(w.store.all_leads().is_empty());
    w.clock.advance(TimeDelta::seconds(301));
    assert_eq!(send(&w, &good).await.0, StatusCode::UNAUTHORIZED, "stale");
}

#[tokio::test]
async fn without_a_secret_every_submission_gets_503() {
    let w = world_with("");
    let (status, body) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_configured"))
    );
}

#[tokio::test]
async fn a_lead_whose_check_could_not_be_queued_is_scheduled_by_the_retry() {
    let w = world();
    w.checks.down.store(true, Ordering::SeqCst);
    let (status, _) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the form tool must retry"
    );
    w.checks.down.store(false, Ordering::SeqCst);
    w.clock.advance(TimeDelta::seconds(30));
    let (status, body) = send(&w, &event(&w, &fixture_body(), SECRET)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("duplicate"))
    );
    assert_eq!(
        scheduled_checks(&w).len(),
        1,
        "the retry scheduled the check"
    );
    w.clock.advance(TimeDelta::seconds(30));
    send(&w, &event(&w, &fixture_body(), SECRET)).await;
    assert!(scheduled_checks(&w).is_empty(), "and only once");
}

#[tokio::test]
async fn a_skode_lead_created_starts_the_same_intake_once() {
    let w = world();
    let payload: Value = serde_json::from_str(include_str!(
        "../../../shared/fixtures/payloads/skode-lead-created.json"
    ))
    .unwrap();
    let connectors = Connectors::from_env(&Env::empty()).unwrap();
    let parsed = connectors.parse(Provider::SKODE, &Payload::Json(payload));
    let Ok(Event::Form(form)) = parsed.event else {
        panic!("a form submission");
    };
    let first = submit(&w.deps.intake, (*form).clone(), "skode:evt_5d1b0c", "skode")
        .await
        .unwrap();
    assert!(matches!(first, IntakeOutcome::Scheduled(_)));
    let again = submit(&w.deps.intake, *form, "skode:evt_5d1b0c", "skode")
        .await
        .unwrap();
    assert!(matches!(again, IntakeOutcome::Duplicate(_)));
    assert_eq!(first.lead().id, again.lead().id);
    assert_eq!(
        first.lead().profile.skode_lead_id.as_deref(),
        Some("lead_7c1e2a")
    );
    assert_eq!(scheduled_checks(&w).len(), 1);
}
