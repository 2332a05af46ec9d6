//! The DynamoDB lead store over the wire against `moto_server`: item mapping,
//! conditional writes, the re-submission window, versions, pointers, timelines.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use shared::adapters::dynamo::{DynamoLeadStore, create_leads_table};
use shared::lead::{
    EmailAddress, Lead, LeadProfile, LeadStatus, Recovery, TimeZoneName, TimelineEntry,
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
