//! The checks queue and the recovery check over the wire (`moto_server`): per-message
//! delays hold a check back, and a check received early is sent again with the
//! remaining delay until it is due, then makes exactly one meeting request.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use shared::adapters::dynamo::{DynamoLeadStore, create_leads_table};
use shared::adapters::fakes::{ManualClock, RecordedRedelivery, ScriptedSkipUp};
use shared::adapters::sqs::SqsQueue;
use shared::handlers::recovery_check::{CheckOutcome, RecoveryDeps, RecoveryPorts, check};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus, TimelineEntry};
use shared::ports::{LeadStore, Queue};
use shared::recovery::{CheckMessage, RecoverySettings};
use testkit::moto::moto;
use testkit::unique_name;

fn profile() -> LeadProfile {
    LeadProfile::new(
        EmailAddress::parse("dana@northwind.example").unwrap(),
        "Dana Ruiz",
    )
}

fn parse(message: &aws_sdk_sqs::types::Message) -> CheckMessage {
    serde_json::from_str(message.body.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn a_delayed_check_stays_invisible_until_its_delay_has_passed() {
    let url = moto().create_queue("checks").await;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&moto().sdk_config().await), &url);
    let now = Utc::now();
    // Ten minutes (longer than any test may run) and two seconds.
    let far = Lead::new(profile(), now, TimeDelta::seconds(600));
    let near = Lead::new(profile(), now, TimeDelta::seconds(2));
    for lead in [&far, &near] {
        queue
            .send(&CheckMessage::new(lead).to_queue_message(now))
            .await
            .unwrap();
    }
    // The near one comes once its delay has passed; the far one stays invisible.
    let mut later = Vec::new();
    for _ in 0..6 {
        later = moto().receive(&url, 10).await;
        if !later.is_empty() {
            break;
        }
    }
    assert_eq!(later.len(), 1, "only the near check is due");
    assert_eq!(parse(&later[0]), CheckMessage::new(&near));
    assert!(
        moto().receive(&url, 0).await.is_empty(),
        "the far check is delayed, not yet visible"
    );
}

#[tokio::test]
async fn an_early_check_is_chained_until_due_then_requests_once() {
    let sdk = moto().sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique_name("leads");
    create_leads_table(&dynamo, &table).await.unwrap();
    let url = moto().create_queue("checks-chain").await;
    let store = Arc::new(DynamoLeadStore::new(dynamo, table));
    let skipup = Arc::new(ScriptedSkipUp::with_members(&["owner@vendor.example"]));
    // The pipeline's clock stands still until the test moves it.
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let deps = RecoveryDeps::new(
        RecoveryPorts {
            store: store.clone(),
            skipup: skipup.clone(),
            checks: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), &url)),
            redelivery: Arc::new(RecordedRedelivery::default()),
            clock: clock.clone(),
        },
        RecoverySettings {
            member_cache: Duration::from_secs(60),
            lease: TimeDelta::seconds(60),
            ..RecoverySettings::new(EmailAddress::parse("owner@vendor.example").unwrap())
        },
        Default::default(),
    );
    let lead = Lead::new(profile(), now, TimeDelta::seconds(3));
    let entry = TimelineEntry {
        at: lead.submitted_at,
        event_id: "intake".into(),
        source: "test".into(),
        status: Some(LeadStatus::Submitted),
        detail: String::new(),
    };
    store
        .create_lead(&lead, &entry, TimeDelta::hours(24))
        .await
        .unwrap();

    // Received at once (as if the first delay were cut short): sent back, delayed.
    let first = check(&deps, &CheckMessage::new(&lead), 1).await.unwrap();
    assert!(
        matches!(first, CheckOutcome::Rescheduled { delay_secs: 1..=3 }),
        "{first:?}"
    );
    assert!(skipup.calls().is_empty());

    // The chained message comes back once its delay has passed, and the check,
    // its clock now at the due time, requests.
    clock.advance(TimeDelta::seconds(3));
    let mut outcome = first;
    for _ in 0..5 {
        let messages = moto().receive(&url, 10).await;
        for message in messages {
            outcome = check(&deps, &parse(&message), 1).await.unwrap();
        }
        if !matches!(outcome, CheckOutcome::Rescheduled { .. }) {
            break;
        }
    }
    assert!(
        matches!(outcome, CheckOutcome::Requested { .. }),
        "{outcome:?}"
    );
    assert_eq!(skipup.calls().len(), 1);
    let stored = store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::MeetingRequested);
}
