//! The DynamoDB lead store over the wire against `moto_server`: item mapping,
//! conditional writes, the re-submission window, versions, pointers, timelines.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use shared::adapters::dynamo::{DynamoLeadStore, create_leads_table};
use shared::lead::{
    BookingState, EmailAddress, Lead, LeadProfile, LeadStatus, Recovery, SkipUpCancel,
    TimeZoneName, TimelineEntry,
};
use shared::ports::{CreateOutcome, LeadStore, Pointer, StoreError};
use testkit::moto::{free_port, moto, sdk_config_for};
use testkit::unique_name;

async fn store() -> DynamoLeadStore {
    let client = aws_sdk_dynamodb::Client::new(&moto().sdk_config().await);
    let table = unique_name("leads");
    create_leads_table(&client, &table)
        .await
        .expect("table created");
    DynamoLeadStore::new(client, table)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn profile(email: &str, submission: Option<&str>) -> LeadProfile {
    LeadProfile {
        email: EmailAddress::parse(email).unwrap(),
        name: "Dana Ruiz".into(),
        company: Some("Northwind".into()),
        role: Some("VP Analytics".into()),
        phone: Some("+1 415 555 0142".into()),
        timezone: Some(TimeZoneName::parse("America/Chicago").unwrap()),
        assigned_rep_email: Some(EmailAddress::parse("alex@vendor.example").unwrap()),
        form_id: Some("demo".into()),
        submission_id: submission.map(str::to_string),
        answers: vec![
            ("Team size".into(), "40".into()),
            ("Tools".into(), "Excel".into()),
        ],
        source: Some("website".into()),
        skode_lead_id: None,
    }
}

fn entry(at: DateTime<Utc>, id: &str, status: Option<LeadStatus>) -> TimelineEntry {
    TimelineEntry {
        at,
        event_id: id.into(),
        source: "test".into(),
        status,
        detail: format!("entry {id}"),
    }
}

const WINDOW: TimeDelta = TimeDelta::hours(24);

#[tokio::test]
async fn a_lead_round_trips_with_every_field() {
    let store = store().await;
    let mut lead = Lead::new(
        profile("dana@northwind.example", Some("s1")),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    lead.recovery = Some(Recovery {
        idempotency_key: "lead:x:recovery:2026-11-22".into(),
        started_at: at("2026-11-22T09:30:00Z"),
        attempts: 2,
        lease_until: Some(at("2026-11-22T09:31:00Z")),
    });
    lead.check_scheduled_at = Some(at("2026-11-22T09:00:01Z"));
    lead.move_to(LeadStatus::MeetingRequested, at("2026-11-22T09:30:01Z"));
    lead.move_to(LeadStatus::FollowUpSent, at("2026-11-23T09:30:00Z"));
    lead.bookings = vec![
        ("calcom:b1".into(), BookingState::Cancelled),
        (
            "calendly:https://api.calendly.com/x".into(),
            BookingState::Booked,
        ),
    ];
    lead.meeting_request_id = Some("mr_1".into());
    lead.skipup_cancel = Some(SkipUpCancel {
        meeting_request_id: "mr_1".into(),
        reason: "booked elsewhere".into(),
        decided_at: at("2026-11-23T10:00:00Z"),
        done_at: Some(at("2026-11-23T10:00:01Z")),
    });
    lead.skipup_heard_at = Some(at("2026-11-23T09:30:00Z"));
    let first = entry(lead.submitted_at, "intake", Some(LeadStatus::Submitted));
    assert_eq!(
        store.create_lead(&lead, &first, WINDOW).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.get_lead(&lead.id).await.unwrap(), Some(lead.clone()));
    assert_eq!(store.timeline(&lead.id).await.unwrap(), vec![first]);
}

#[tokio::test]
async fn leads_are_listed_per_day_of_submission() {
    use shared::ports::LeadListing;
    let store = store().await;
    let days = ["2026-11-19", "2026-11-20", "2026-11-20", "2026-11-22"];
    for (i, day) in days.iter().enumerate() {
        let lead = Lead::new(
            profile(
                &format!("lead{i}@northwind.example"),
                Some(&format!("s{i}")),
            ),
            at(&format!("{day}T1{i}:00:00Z")),
            TimeDelta::minutes(30),
        );
        let e = entry(lead.submitted_at, "intake", None);
        store.create_lead(&lead, &e, WINDOW).await.unwrap();
    }
    let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    let listed = store
        .leads_submitted_between(day("2026-11-20"), day("2026-11-22"))
        .await
        .unwrap();
    let emails: Vec<&str> = listed.iter().map(|l| l.profile.email.as_str()).collect();
    assert_eq!(
        emails,
        [
            "lead1@northwind.example",
            "lead2@northwind.example",
            "lead3@northwind.example"
        ]
    );
    assert_eq!(store.list_leads().await.unwrap().len(), 4);
}

#[tokio::test]
async fn the_same_submission_twice_is_one_lead() {
    let store = store().await;
    let lead = Lead::new(
        profile("dana@northwind.example", Some("s1")),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    let e = entry(lead.submitted_at, "intake", None);
    store.create_lead(&lead, &e, WINDOW).await.unwrap();
    let again = Lead::new(
        profile("dana@northwind.example", Some("s1")),
        at("2026-11-22T09:00:05Z"),
        TimeDelta::minutes(30),
    );
    assert_eq!(
        store.create_lead(&again, &e, WINDOW).await.unwrap(),
        CreateOutcome::Existing(Box::new(lead.clone()))
    );
    assert_eq!(store.timeline(&lead.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_email_within_the_window_is_the_same_lead_and_after_it_a_new_one() {
    let store = store().await;
    let first = Lead::new(
        profile("dana@northwind.example", Some("s1")),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    let e = entry(first.submitted_at, "intake", None);
    store.create_lead(&first, &e, WINDOW).await.unwrap();
    let other_form = Lead::new(
        profile("DANA@northwind.example", Some("s2")),
        at("2026-11-23T08:59:00Z"),
        TimeDelta::minutes(30),
    );
    assert_ne!(other_form.id, first.id);
    assert_eq!(
        store.create_lead(&other_form, &e, WINDOW).await.unwrap(),
        CreateOutcome::Existing(Box::new(first.clone()))
    );
    let next_week = Lead::new(
        profile("dana@northwind.example", Some("s3")),
        at("2026-11-29T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    assert_eq!(
        store.create_lead(&next_week, &e, WINDOW).await.unwrap(),
        CreateOutcome::Created
    );
}

#[tokio::test]
async fn a_save_is_refused_when_the_lead_changed_since_it_was_read() {
    let store = store().await;
    let lead = Lead::new(
        profile("dana@northwind.example", None),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    store
        .create_lead(&lead, &entry(lead.submitted_at, "intake", None), WINDOW)
        .await
        .unwrap();

    let mut requested = lead.clone();
    requested.status = LeadStatus::MeetingRequested;
    requested.meeting_request_id = Some("mr_1".into());
    requested.crm_status = Some(LeadStatus::MeetingRequested);
    let change = entry(
        at("2026-11-22T09:31:00Z"),
        "skipup:mr_1:accepted",
        Some(LeadStatus::MeetingRequested),
    );
    let pointer = Pointer::MeetingRequest("mr_1".into());
    store
        .save_lead(&requested, Some(&change), Some(&pointer))
        .await
        .unwrap();

    let mut stale = lead.clone();
    stale.status = LeadStatus::RecoveryFailed;
    assert!(matches!(
        store.save_lead(&stale, None, None).await,
        Err(StoreError::Conflict)
    ));

    let stored = store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::MeetingRequested);
    assert_eq!(stored.crm_status, Some(LeadStatus::MeetingRequested));
    assert_eq!(stored.version, 1);
    assert_eq!(
        store.find_lead(&pointer).await.unwrap(),
        Some(lead.id.clone())
    );
    assert_eq!(
        store
            .find_lead(&Pointer::MeetingRequest("mr_2".into()))
            .await
            .unwrap(),
        None
    );
    let timeline = store.timeline(&lead.id).await.unwrap();
    assert_eq!(
        timeline
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        ["intake", "skipup:mr_1:accepted"]
    );
}

#[tokio::test]
async fn of_two_concurrent_saves_exactly_one_wins() {
    let store = store().await;
    let lead = Lead::new(
        profile("dana@northwind.example", None),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    store
        .create_lead(&lead, &entry(lead.submitted_at, "intake", None), WINDOW)
        .await
        .unwrap();
    let saves = (0..4).map(|i| {
        let store = store.clone();
        let mut copy = lead.clone();
        copy.status_reason = Some(format!("writer {i}"));
        tokio::spawn(async move { store.save_lead(&copy, None, None).await })
    });
    let results = futures::future::join_all(saves).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(StoreError::Conflict))))
        .count();
    assert_eq!((won, lost), (1, 3));
}

#[tokio::test]
async fn an_unreachable_table_is_unavailable_not_a_conflict() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let store = DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config_for(&endpoint).await),
        "leads",
    );
    let lead = Lead::new(
        profile("dana@northwind.example", None),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    assert!(matches!(
        store.get_lead(&lead.id).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.save_lead(&lead, None, None).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_new_lead_is_found_by_its_phone_skode_id_and_email() {
    let store = store().await;
    let mut p = profile("Dana@Northwind.example", Some("s1"));
    p.skode_lead_id = Some("lead_7c1e2a".into());
    let lead = Lead::new(p, at("2026-11-22T09:00:00Z"), TimeDelta::minutes(30));
    store
        .create_lead(&lead, &entry(lead.submitted_at, "intake", None), WINDOW)
        .await
        .unwrap();
    for pointer in [
        Pointer::Phone("+14155550142".into()),
        Pointer::SkodeLead("lead_7c1e2a".into()),
        Pointer::Email(EmailAddress::parse("dana@northwind.example").unwrap()),
    ] {
        assert_eq!(
            store.find_lead(&pointer).await.unwrap(),
            Some(lead.id.clone()),
            "{pointer:?}"
        );
    }
    assert_eq!(
        store
            .find_lead(&Pointer::Phone("+10000000000".into()))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn the_same_timeline_entry_is_appended_once() {
    let store = store().await;
    let lead = Lead::new(
        profile("dana@northwind.example", None),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    store
        .create_lead(&lead, &entry(lead.submitted_at, "intake", None), WINDOW)
        .await
        .unwrap();
    let booked = entry(
        at("2026-11-22T10:00:00Z"),
        "skipup:evt_1",
        Some(LeadStatus::MeetingScheduled),
    );
    store.save_lead(&lead, Some(&booked), None).await.unwrap();
    let mut again = store.get_lead(&lead.id).await.unwrap().unwrap();
    again.status_reason = Some("replayed".into());
    assert!(matches!(
        store.save_lead(&again, Some(&booked), None).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.timeline(&lead.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn processed_and_unmatched_events_are_recorded() {
    use shared::ports::EventLog;
    let client = aws_sdk_dynamodb::Client::new(&moto().sdk_config().await);
    let table = unique_name("leads");
    create_leads_table(&client, &table).await.unwrap();
    let store = DynamoLeadStore::new(client.clone(), &table);
    let later = at("2026-12-01T00:00:00Z");
    assert!(!store.seen("skipup:evt_1").await.unwrap());
    store.mark_seen("skipup:evt_1", later).await.unwrap();
    assert!(store.seen("skipup:evt_1").await.unwrap());
    assert!(!store.seen("skipup:evt_2").await.unwrap());
    store
        .keep_unmatched(
            "skipcalls:CALL_COMPLETED:call_1",
            "no lead with this phone",
            r#"{"v":1}"#,
            later,
        )
        .await
        .unwrap();
    let kept = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            AttributeValue::S("UNMATCHED#skipcalls:CALL_COMPLETED:call_1".into()),
        )
        .key("sk", AttributeValue::S("EVENT".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the unmatched event is stored");
    assert_eq!(
        kept["reason"],
        AttributeValue::S("no lead with this phone".into())
    );
    assert_eq!(kept["event"], AttributeValue::S(r#"{"v":1}"#.into()));
    assert_eq!(
        kept["expires_at"],
        AttributeValue::N(later.timestamp().to_string())
    );
}

#[tokio::test]
async fn a_booking_before_its_lead_is_remembered_at_its_highest_state_until_it_expires() {
    let store = store().await;
    let email = EmailAddress::parse("early@northwind.example").unwrap();
    let now = at("2026-11-22T09:00:00Z");
    let until = now + WINDOW;
    store
        .remember_booking(&email, "calendly:i1", BookingState::Cancelled, until)
        .await
        .unwrap();
    // An older event, arriving later, does not undo the cancellation.
    store
        .remember_booking(&email, "calendly:i1", BookingState::Booked, until)
        .await
        .unwrap();
    store
        .remember_booking(
            &email,
            "calcom:u2",
            BookingState::Booked,
            now + TimeDelta::minutes(5),
        )
        .await
        .unwrap();
    let mut remembered = store.remembered_bookings(&email, now).await.unwrap();
    remembered.sort();
    assert_eq!(
        remembered,
        [
            ("calcom:u2".to_string(), BookingState::Booked),
            ("calendly:i1".to_string(), BookingState::Cancelled)
        ]
    );
    // Past its window (moto does not expire TTL items: the store filters them).
    let later = store
        .remembered_bookings(&email, now + TimeDelta::minutes(10))
        .await
        .unwrap();
    assert_eq!(
        later,
        [("calendly:i1".to_string(), BookingState::Cancelled)]
    );
    let other = EmailAddress::parse("other@northwind.example").unwrap();
    assert!(
        store
            .remembered_bookings(&other, now)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn quiet_recoveries_come_from_the_open_recoveries_index_quietest_first() {
    let store = store().await;
    let mut ids = Vec::new();
    for (i, (status, heard)) in [
        (LeadStatus::MeetingRequested, "2026-11-22T01:00:00Z"),
        (LeadStatus::FollowUpSent, "2026-11-22T00:00:00Z"),
        (LeadStatus::MeetingRequested, "2026-11-22T08:30:00Z"),
        (LeadStatus::MeetingScheduled, "2026-11-22T00:00:00Z"),
        (LeadStatus::Submitted, "2026-11-22T00:00:00Z"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut lead = Lead::new(
            profile(
                &format!("open{i}@northwind.example"),
                Some(&format!("o{i}")),
            ),
            at("2026-11-21T20:00:00Z"),
            TimeDelta::minutes(30),
        );
        let e = entry(lead.submitted_at, "intake", None);
        store.create_lead(&lead, &e, WINDOW).await.unwrap();
        lead.move_to(status, at(heard));
        lead.meeting_request_id = Some(format!("mr_{i}"));
        lead.skipup_heard_at = Some(at(heard));
        store.save_lead(&lead, None, None).await.unwrap();
        ids.push(lead.id);
    }
    let quiet = store
        .quiet_recoveries(at("2026-11-22T06:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(quiet, [ids[1].clone(), ids[0].clone()]);
    let one = store
        .quiet_recoveries(at("2026-11-22T06:00:00Z"), 1)
        .await
        .unwrap();
    assert_eq!(one, [ids[1].clone()]);
    // Once closed, a lead leaves the index.
    let mut closed = store.get_lead(&ids[1]).await.unwrap().unwrap();
    closed.move_to(LeadStatus::MeetingScheduled, at("2026-11-22T09:00:00Z"));
    store.save_lead(&closed, None, None).await.unwrap();
    let quiet = store
        .quiet_recoveries(at("2026-11-22T06:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(quiet, [ids[0].clone()]);
}

/// One reconciliation run on a table of `closed` settled leads and `open` open
/// recoveries (a third of them booked at SkipUp, a third cancelled, a third still
/// active), its AWS requests counted on the wire to moto_server.
async fn one_reconciliation_run(
    closed: usize,
    open: usize,
) -> std::collections::BTreeMap<String, testkit::meter::Usage> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use shared::adapters::fakes::{FixedClock, ScriptedSkipUp};
    use shared::adapters::memory::MemoryQueue;
    use shared::handlers::apply_events::ApplyDeps;
    use shared::handlers::reconcile::{ReconcileSettings, reconcile};
    use shared::intake::{IntakeDeps, IntakeSettings};
    use std::sync::Arc;

    let meter = testkit::meter::Meter::new();
    let client = aws_sdk_dynamodb::Client::new(&meter.wrap(moto().sdk_config().await));
    let table = unique_name("reconcile");
    create_leads_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoLeadStore::new(client.clone(), table.clone()));
    // The settled leads: items like any lead's, without the open recovery's keys.
    let items: Vec<WriteRequest> = (0..closed)
        .map(|i| {
            let id = format!("l_{i:024x}");
            let item = [
                ("pk", format!("LEAD#{id}")),
                ("sk", "LEAD".into()),
                ("lead_id", id),
                ("status", "Meeting Scheduled".into()),
                ("email", format!("done{i}@northwind.example")),
                ("name", "Settled".into()),
                ("day", "2026-11-01".into()),
                ("submitted_at", "2026-11-01T09:00:00.000Z".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v)))
            .collect();
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in items.chunks(25) {
        client
            .batch_write_item()
            .request_items(&table, chunk.to_vec())
            .send()
            .await
            .unwrap();
    }
    let skipup = Arc::new(ScriptedSkipUp::default());
    for i in 0..open {
        let mut lead = Lead::new(
            profile(
                &format!("open{i}@northwind.example"),
                Some(&format!("o{i}")),
            ),
            at("2026-11-22T00:00:00Z"),
            TimeDelta::minutes(30),
        );
        store
            .create_lead(&lead, &entry(lead.submitted_at, "intake", None), WINDOW)
            .await
            .unwrap();
        let mr = format!("mr_{i:04}");
        lead.move_to(LeadStatus::MeetingRequested, at("2026-11-22T00:30:00Z"));
        lead.meeting_request_id = Some(mr.clone());
        lead.skipup_heard_at = Some(at("2026-11-22T00:30:00Z"));
        store
            .save_lead(&lead, None, Some(&Pointer::MeetingRequest(mr.clone())))
            .await
            .unwrap();
        let status = ["booked", "cancelled", "active"][i % 3];
        skipup.statuses.lock().unwrap().insert(mr, status.into());
    }
    let deps = ApplyDeps {
        connectors: shared::connectors::Connectors::from_env(&shared::config::Env::empty())
            .unwrap(),
        store: store.clone(),
        events: store.clone(),
        intake: IntakeDeps {
            store,
            checks: Arc::new(MemoryQueue::new()),
            clock: Arc::new(FixedClock(at("2026-11-22T12:00:00Z"))),
            settings: IntakeSettings::default(),
        },
        seen_for: TimeDelta::days(7),
        skode_booked_statuses: vec![],
        skode_suppress_statuses: vec![],
        crm: Default::default(),
        skipup,
    };
    let before = meter.usage();
    let report = reconcile(
        &deps,
        &ReconcileSettings {
            after: TimeDelta::hours(6),
            batch: 500,
        },
        false,
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.asked, open);
    assert_eq!(report.booked + report.cancelled + report.open, open);
    let after = meter.usage();
    after
        .into_iter()
        .map(|(op, mut usage)| {
            if let Some(b) = before.get(&op) {
                usage.requests -= b.requests;
                usage.request_bytes -= b.request_bytes;
                usage.response_bytes -= b.response_bytes;
                usage.write_units -= b.write_units;
                usage.read_units -= b.read_units;
            }
            (op, usage)
        })
        .filter(|(_, usage)| usage.requests > 0)
        .collect()
}

/// What one reconciliation run costs grows with the open recoveries, not the table:
/// the same requests and units for `RECONCILE_COST_OPEN` open recoveries (10 by
/// default) in a table as large as that as in one of `RECONCILE_COST_LEADS` (40),
/// small to keep the test quick on moto; the README's figure is from
/// `RECONCILE_COST_OPEN=100 RECONCILE_COST_LEADS=10000`, which `scripts/soak` runs.
/// Written to `target/cost/reconcile-run.json`.
#[tokio::test]
async fn a_reconciliation_run_costs_the_open_recoveries_not_the_table() {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let open = var("RECONCILE_COST_OPEN", 10).max(3);
    let leads = var("RECONCILE_COST_LEADS", 40).max(3 * open);
    let small = one_reconciliation_run(open, open).await;
    let large = one_reconciliation_run(leads - open, open).await;
    let requests = |usage: &std::collections::BTreeMap<String, testkit::meter::Usage>| {
        usage
            .iter()
            .map(|(op, u)| (op.clone(), u.requests))
            .collect::<Vec<_>>()
    };
    assert_eq!(requests(&small), requests(&large));
    let units = |usage: &std::collections::BTreeMap<String, testkit::meter::Usage>| {
        usage
            .values()
            .map(|u| u.read_units + u.write_units)
            .sum::<f64>()
    };
    assert!(
        (units(&small) - units(&large)).abs() < 1.0,
        "{small:?} {large:?}"
    );
    assert!(!large.contains_key("dynamodb:Scan"), "{large:?}");
    let report = serde_json::to_string_pretty(&large).unwrap();
    let path = testkit::workspace_root().join("target/cost/reconcile-run.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &report).unwrap();
    println!("one reconciliation run, {leads} leads of which {open} open: {report}");
}

#[tokio::test]
async fn an_email_finds_its_newest_lead_after_its_claim_expired() {
    let client = aws_sdk_dynamodb::Client::new(&moto().sdk_config().await);
    let table = unique_name("leads");
    create_leads_table(&client, &table).await.unwrap();
    let store = DynamoLeadStore::new(client.clone(), table.clone());
    let lead = Lead::new(
        profile("late.booker@northwind.example", Some("late1")),
        at("2026-11-01T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    store
        .create_lead(&lead, &entry(lead.submitted_at, "intake", None), WINDOW)
        .await
        .unwrap();
    // TTL removed the claim: a booking weeks later still finds the lead.
    client
        .delete_item()
        .table_name(&table)
        .key(
            "pk",
            AttributeValue::S("EMAIL#late.booker@northwind.example".into()),
        )
        .key("sk", AttributeValue::S("CLAIM".into()))
        .send()
        .await
        .unwrap();
    let email = EmailAddress::parse("late.booker@northwind.example").unwrap();
    assert_eq!(
        store.find_lead(&Pointer::Email(email)).await.unwrap(),
        Some(lead.id)
    );
}

/// A visitor who types someone else's phone number (or Skode id) does not get that
/// person's calls: the pointer stays with the first lead. The same address's newer
/// lead takes it over.
async fn a_pointer_is_not_taken_by_a_lead_of_another_address(store: &dyn LeadStore) {
    let phone = Pointer::Phone("+14155550142".into());
    let dana = Lead::new(
        profile("dana@northwind.example", Some("s1")),
        at("2026-11-22T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    let mut intruder_profile = profile("mallory@attacker.example", Some("s2"));
    intruder_profile.skode_lead_id = None;
    let intruder = Lead::new(
        intruder_profile,
        at("2026-11-22T10:00:00Z"),
        TimeDelta::minutes(30),
    );
    for lead in [&dana, &intruder] {
        store
            .create_lead(lead, &entry(lead.submitted_at, "intake", None), WINDOW)
            .await
            .unwrap();
    }
    assert_eq!(
        store.find_lead(&phone).await.unwrap(),
        Some(dana.id.clone())
    );
    // Dana again, after the re-submission window: her new lead gets her calls.
    let again = Lead::new(
        profile("dana@northwind.example", Some("s3")),
        at("2026-11-25T09:00:00Z"),
        TimeDelta::minutes(30),
    );
    store
        .create_lead(&again, &entry(again.submitted_at, "intake", None), WINDOW)
        .await
        .unwrap();
    assert_eq!(
        store.find_lead(&phone).await.unwrap(),
        Some(again.id.clone())
    );
}

#[tokio::test]
async fn a_phone_typed_by_another_address_stays_with_its_lead_in_dynamodb() {
    a_pointer_is_not_taken_by_a_lead_of_another_address(&store().await).await;
}

#[tokio::test]
async fn a_phone_typed_by_another_address_stays_with_its_lead_in_memory() {
    let store = shared::adapters::memory::MemoryLeadStore::new();
    a_pointer_is_not_taken_by_a_lead_of_another_address(&store).await;
}

#[tokio::test]
async fn a_cap_counts_each_lead_once_and_refuses_leads_beyond_its_limit() {
    let store = store().await;
    let expires = at("2026-11-24T00:00:00Z");
    let [first, second, third] = [1, 2, 3].map(|i| {
        Lead::new(
            profile(&format!("cap{i}@acme.example"), None),
            at("2026-11-22T10:00:00Z"),
            chrono::Duration::minutes(30),
        )
        .id
    });
    let key = "recoveries:2026-11-22:acme.example";
    assert!(store.count_against(key, &first, 2, expires).await.unwrap());
    assert!(
        store.count_against(key, &first, 2, expires).await.unwrap(),
        "a retry counts once"
    );
    assert!(store.count_against(key, &second, 2, expires).await.unwrap());
    assert!(
        !store.count_against(key, &third, 2, expires).await.unwrap(),
        "full"
    );
    assert!(
        store.count_against(key, &first, 2, expires).await.unwrap(),
        "still counted"
    );
    assert!(
        store
            .count_against("recoveries:2026-11-23", &third, 2, expires)
            .await
            .unwrap()
    );
}
