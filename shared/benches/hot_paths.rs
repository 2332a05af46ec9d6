//! Micro-benchmarks of the per-delivery hot paths (`cargo bench -p shared`):
//! - signature verification of every connector (`shared::connectors::ALL`) on a 2 KiB
//!   body, beside a bare HMAC-SHA256 of the same bytes (the floor no verifier can beat);
//! - parsing each connector's sample payload into its typed event, and a form post;
//! - one whole `webhook-ingest` and `apply-events` handler call with in-memory ports.
//!
//! Targets (README, "Benchmarks"): verification within 1.3x of the bare HMAC; a whole
//! ingest handler call under 20 µs. These are measurements, not tests.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use shared::adapters::fakes::FixedClock;
use shared::adapters::memory::{MemoryLeadStore, MemoryQueue};
use shared::config::{Env, IngestConfig};
use shared::connectors::{ALL, Connectors, Delivery};
use shared::form::parse_form;
use shared::handlers::apply_events::{self, ApplyDeps};
use shared::handlers::webhook_ingest::{self, IngestDeps};
use shared::inbound::{InboundEvent, Payload, Provider};
use shared::intake::{IntakeDeps, IntakeSettings};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus, TimelineEntry};
use shared::ports::{LeadStore, Pointer, Queue, QueueError, QueueMessage};
use shared::signature::{TimestampedSignature, WebhookSecret};

const SECRET: &str = "whsec_bench_secret_0123456789";
const NOW: i64 = 1_795_341_600;
const MR: &str = "mr_01JAXQ7K3M8D2V5R9T4W6Y1B0C";
const EMAIL: &str = "dana.ruiz@northwind.example";

const SKIPUP: &str = include_str!("../fixtures/payloads/skipup-booked-data.json");
const SKIPCALLS_ZAPIER: &str =
    include_str!("../fixtures/payloads/skipcalls-incoming-call-failed-zapier.json");
const FORM: &str = include_str!("../fixtures/payloads/form-submission.json");

/// The SkipUp `booked` fixture padded with a note to exactly 2 KiB of JSON.
fn body_2k() -> Vec<u8> {
    let mut event: Value = serde_json::from_str(SKIPUP).unwrap();
    event["data"]["notes"] = Value::String(String::new());
    let bare = event.to_string().len();
    event["data"]["notes"] = Value::String("n".repeat(2048 - bare));
    let body = event.to_string().into_bytes();
    assert_eq!(body.len(), 2048);
    body
}

fn secret() -> WebhookSecret {
    WebhookSecret::new(SECRET).unwrap()
}

fn verification(c: &mut Criterion) {
    let body = body_2k();
    let mut group = c.benchmark_group("verify_2KiB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("hmac_sha256_floor", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes())
        })
    });
    // Every connector's verifier, through the same call webhook-ingest makes, on a
    // delivery its own `sign` produced.
    let pairs: Vec<(&str, &str)> = ALL.iter().map(|c| (c.secrets_var(), SECRET)).collect();
    let connectors = Connectors::from_env(&Env::from_pairs(pairs)).unwrap();
    let now = DateTime::from_timestamp(NOW, 0).unwrap();
    for (provider, settings) in connectors.iter() {
        let url = format!("https://leads.example.com{}", provider.route());
        let none = http::HeaderMap::new();
        let unsigned = Delivery {
            method: "POST",
            url: &url,
            headers: &none,
            body: &body,
            now,
        };
        let headers: http::HeaderMap = provider
            .connector()
            .sign(&secret(), &unsigned)
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect();
        let delivery = Delivery {
            headers: &headers,
            ..unsigned
        };
        settings.verifier.verify(&delivery).unwrap();
        group.bench_function(provider.as_str(), |b| {
            b.iter(|| settings.verifier.verify(black_box(&delivery)).unwrap())
        });
    }
    group.finish();
}

fn parsing(c: &mut Criterion) {
    let received = DateTime::from_timestamp(NOW, 0).unwrap();
    let mut group = c.benchmark_group("parse");
    let connectors = Connectors::from_env(&Env::empty()).unwrap();
    let mut samples: Vec<(String, Provider, Vec<u8>)> = Provider::all()
        .map(|p| {
            (
                p.as_str().to_string(),
                p,
                p.connector().sample("bench").body,
            )
        })
        .collect();
    samples.push((
        "skipcalls_zapier".into(),
        Provider::SKIPCALLS,
        SKIPCALLS_ZAPIER.as_bytes().to_vec(),
    ));
    for (name, provider, payload) in &samples {
        let event = InboundEvent::from_delivery(*provider, payload, received);
        assert!(event.recognized, "{name}");
        // What webhook-ingest does with a verified body: JSON once, then the connector.
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                let payload = Payload::from_body(black_box(payload));
                connectors.parse(*provider, &payload)
            })
        });
    }
    parse_form(FORM.as_bytes()).unwrap();
    group.bench_function("form", |b| {
        b.iter(|| parse_form(black_box(FORM.as_bytes())).unwrap())
    });
    group.finish();
}

/// An in-memory queue that keeps nothing, so a long benchmark does not grow it.
struct CountingQueue(std::sync::atomic::AtomicU64);

#[async_trait]
impl Queue for CountingQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        black_box(message);
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn ingest_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let queue = Arc::new(CountingQueue(0.into()));
    let deps = IngestDeps {
        config: IngestConfig::from_env(&Env::from_pairs([
            ("CRM_QUEUE_URL", "memory://crm"),
            ("SKIPUP_WEBHOOK_SECRETS", SECRET),
        ]))
        .unwrap(),
        queue: queue.clone(),
        clock: Arc::new(FixedClock::at_unix(NOW)),
    };
    let body = SKIPUP.as_bytes().to_vec();
    let request = http::Request::post("/webhooks/skipup")
        .header("content-type", "application/json")
        .header(
            TimestampedSignature::HEADER,
            TimestampedSignature::sign(&secret(), NOW, &body),
        )
        .body(body)
        .unwrap();
    let answer = runtime.block_on(webhook_ingest::handle(&deps, &request));
    assert_eq!(answer.status(), 200, "{}", answer.body());
    c.bench_function("handler/webhook_ingest_skipup", |b| {
        b.to_async(&runtime)
            .iter(|| webhook_ingest::handle(&deps, black_box(&request)))
    });
}

/// A store holding one lead whose meeting request `MR` SkipUp accepted. Synchronous,
/// for criterion's setup closure (the memory store never waits).
fn store_with_requested_lead() -> Arc<MemoryLeadStore> {
    let store = Arc::new(MemoryLeadStore::new());
    let profile = LeadProfile {
        company: Some("Northwind".into()),
        submission_id: Some("s1".into()),
        ..LeadProfile::new(EmailAddress::parse(EMAIL).unwrap(), "Dana Ruiz")
    };
    let submitted = DateTime::from_timestamp(NOW - 3600, 0).unwrap();
    let mut lead = Lead::new(profile, submitted, TimeDelta::minutes(30));
    let entry = TimelineEntry {
        at: submitted,
        event_id: "intake".into(),
        source: "form-intake".into(),
        status: Some(LeadStatus::Submitted),
        detail: String::new(),
    };
    futures::executor::block_on(async {
        store
            .create_lead(&lead, &entry, TimeDelta::hours(24))
            .await
            .unwrap();
        lead.status = LeadStatus::MeetingRequested;
        lead.meeting_request_id = Some(MR.into());
        store
            .save_lead(&lead, None, Some(&Pointer::MeetingRequest(MR.into())))
            .await
            .unwrap();
    });
    store
}

fn apply_events_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let received: DateTime<Utc> = DateTime::from_timestamp(NOW, 0).unwrap();
    let booked = InboundEvent::from_delivery(Provider::SKIPUP, SKIPUP.as_bytes(), received);
    let mut message = SqsMessage::default();
    message.message_id = Some("m-1".into());
    message.body = Some(booked.to_queue_message().body);
    let mut batch = SqsEvent::default();
    batch.records = vec![message];
    let deps = |store: Arc<MemoryLeadStore>| ApplyDeps {
        connectors: Connectors::from_env(&Env::empty()).unwrap(),
        store: store.clone(),
        events: store.clone(),
        intake: IntakeDeps {
            store,
            checks: Arc::new(MemoryQueue::new()),
            clock: Arc::new(FixedClock::at_unix(NOW)),
            settings: IntakeSettings::default(),
        },
        seen_for: TimeDelta::days(7),
        skode_booked_statuses: vec!["meeting_booked".into()],
        skode_suppress_statuses: vec!["lost".into(), "do_not_contact".into()],
        crm: Default::default(),
        skipup: Arc::new(shared::adapters::fakes::ScriptedSkipUp::default()),
    };
    // The event moves the lead to Meeting Scheduled: the whole apply path, measured
    // on a fresh store each time (its setup is not timed).
    let store = store_with_requested_lead();
    let answer = runtime.block_on(apply_events::handle(&deps(store.clone()), batch.clone()));
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(store.all_leads()[0].status, LeadStatus::MeetingScheduled);
    c.bench_function("handler/apply_events_skipup_booked", |b| {
        b.to_async(&runtime).iter_batched(
            || (deps(store_with_requested_lead()), batch.clone()),
            |(deps, batch)| async move { apply_events::handle(&deps, batch).await },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    verification,
    parsing,
    ingest_call,
    apply_events_call
);
criterion_main!(benches);
