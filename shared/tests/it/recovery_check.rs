//! Every branch of recovery-check, with fakes behind the ports.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, TimeDelta, Utc};
use shared::adapters::fakes::{
    ManualClock, RecordedRedelivery, RecordingConnector, ScriptedSkipUp,
};
use shared::adapters::memory::{MemoryLeadStore, MemoryQueue};
use shared::crm::CrmConnectors;
use shared::handlers::recovery_check::{CheckOutcome, RecoveryDeps, RecoveryPorts, check, handle};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus, TimelineEntry};
use shared::ports::{LeadStore, Pointer};
use shared::recovery::{CheckMessage, RecoverySettings};
use shared::skipup::SkipUpError;
use shared::suppression::{Caps, SuppressionList};

const DEFAULT: &str = "owner@vendor.example";
const REP: &str = "alex@vendor.example";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    deps: RecoveryDeps,
    store: Arc<MemoryLeadStore>,
    skipup: Arc<ScriptedSkipUp>,
    checks: Arc<MemoryQueue>,
    redelivery: Arc<RecordedRedelivery>,
    clock: Arc<ManualClock>,
}

fn world(members: &[&str]) -> World {
    let store = Arc::new(MemoryLeadStore::new());
    let skipup = Arc::new(ScriptedSkipUp::with_members(members));
    let checks = Arc::new(MemoryQueue::new());
    let redelivery = Arc::new(RecordedRedelivery::default());
    let clock = Arc::new(ManualClock::new(at("2026-11-22T10:00:00Z")));
    let deps = RecoveryDeps::new(
        RecoveryPorts {
            store: store.clone(),
            skipup: skipup.clone(),
            checks: checks.clone(),
            redelivery: redelivery.clone(),
            clock: clock.clone(),
        },
        RecoverySettings {
            member_cache: Duration::from_secs(300),
            lease: TimeDelta::seconds(60),
            ..RecoverySettings::new(EmailAddress::parse(DEFAULT).unwrap())
        },
        Default::default(),
    );
    World {
        deps,
        store,
        skipup,
        checks,
        redelivery,
        clock,
    }
}

fn profile(email: &str, rep: Option<&str>) -> LeadProfile {
    LeadProfile {
        company: Some("Northwind".into()),
        assigned_rep_email: rep.map(|r| EmailAddress::parse(r).unwrap()),
        ..LeadProfile::new(EmailAddress::parse(email).unwrap(), "Dana Ruiz")
    }
}

/// A lead submitted 30 minutes before the world's clock, so it is due now.
async fn due_lead(w: &World, rep: Option<&str>) -> Lead {
    due_lead_from(w, "dana@northwind.example", rep).await
}

async fn due_lead_from(w: &World, email: &str, rep: Option<&str>) -> Lead {
    let submitted = w.clock_now() - TimeDelta::minutes(30);
    let lead = Lead::new(profile(email, rep), submitted, TimeDelta::minutes(30));
    let entry = TimelineEntry {
        at: submitted,
        event_id: "test".into(),
        source: "test".into(),
        status: Some(LeadStatus::Submitted),
        detail: String::new(),
    };
    w.store
        .create_lead(&lead, &entry, TimeDelta::hours(24))
        .await
        .unwrap();
    lead
}

impl World {
    fn clock_now(&self) -> DateTime<Utc> {
        use shared::ports::Clock;
        self.clock.now()
    }

    async fn lead(&self, lead: &Lead) -> Lead {
        self.store.get_lead(&lead.id).await.unwrap().unwrap()
    }

    async fn check(&self, lead: &Lead) -> Result<CheckOutcome, shared::handlers::MessageFailure> {
        check(&self.deps, &CheckMessage::new(lead), 1).await
    }
}

fn invalid(message: &str) -> SkipUpError {
    SkipUpError::Invalid {
        kind: "validation_error".into(),
        message: message.into(),
    }
}

#[tokio::test]
async fn a_missing_lead_is_dropped() {
    let w = world(&[DEFAULT]);
    let ghost = Lead::new(
        profile("ghost@x.example", None),
        w.clock_now(),
        TimeDelta::zero(),
    );
    assert_eq!(w.check(&ghost).await, Ok(CheckOutcome::LeadMissing));
    assert!(w.skipup.calls().is_empty());
}

#[tokio::test]
async fn a_lead_not_yet_due_is_sent_again_with_the_remaining_delay() {
    let w = world(&[DEFAULT]);
    let lead = due_lead(&w, None).await;
    w.clock.set(lead.due_at - TimeDelta::seconds(2 * 3600 + 5));
    assert_eq!(
        w.check(&lead).await,
        Ok(CheckOutcome::Rescheduled { delay_secs: 900 })
    );
    w.clock.set(lead.due_at - TimeDelta::milliseconds(4_200));
    assert_eq!(
        w.check(&lead).await,
        Ok(CheckOutcome::Rescheduled { delay_secs: 5 })
    );
    let sent = w.checks.drain();
    assert_eq!(
        sent.iter().map(|m| m.delay_seconds).collect::<Vec<_>>(),
        [Some(900), Some(5)]
    );
    let message: CheckMessage = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(message, CheckMessage::new(&lead));
    assert!(w.skipup.calls().is_empty());
}

#[tokio::test]
async fn a_lead_that_booked_or_was_suppressed_or_requested_is_left_alone() {
    for status in [
        LeadStatus::BookedDirectly,
        LeadStatus::Suppressed,
        LeadStatus::MeetingRequested,
        LeadStatus::MeetingScheduled,
        LeadStatus::RecoveryFailed,
    ] {
        let w = world(&[DEFAULT]);
        let mut lead = due_lead(&w, None).await;
        lead.status = status;
        w.store.save_lead(&lead, None, None).await.unwrap();
        assert_eq!(w.check(&lead).await, Ok(CheckOutcome::NothingToDo(status)));
        assert!(w.skipup.calls().is_empty());
    }
}

#[tokio::test]
async fn an_accepted_request_marks_the_lead_requested_and_findable_by_its_id() {
    let w = world(&[DEFAULT]);
    let lead = due_lead(&w, None).await;
    let outcome = w.check(&lead).await.unwrap();
    assert_eq!(
        outcome,
        CheckOutcome::Requested {
            meeting_request_id: "mr_FAKE0001".into()
        }
    );
    let stored = w.lead(&lead).await;
    assert_eq!(stored.status, LeadStatus::MeetingRequested);
    assert_eq!(stored.meeting_request_id.as_deref(), Some("mr_FAKE0001"));
    assert_eq!(stored.organizer_email.unwrap().as_str(), DEFAULT);
    assert_eq!(stored.recovery.as_ref().unwrap().lease_until, None);
    assert_eq!(
        w.store
            .find_lead(&Pointer::MeetingRequest("mr_FAKE0001".into()))
            .await
            .unwrap(),
        Some(lead.id.clone())
    );
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    assert_eq!(
        timeline.last().unwrap().status,
        Some(LeadStatus::MeetingRequested)
    );
    let (key, request) = &w.skipup.calls()[0];
    assert_eq!(key, &format!("lead:{}:recovery:2026-11-22", lead.id));
    assert!(request.include_introduction);
    assert!(request.context.timeframe.start > w.clock_now());
    // A redelivered check does nothing more.
    assert_eq!(
        w.check(&lead).await,
        Ok(CheckOutcome::NothingToDo(LeadStatus::MeetingRequested))
    );
    assert_eq!(w.skipup.calls().len(), 1);
}

#[tokio::test]
async fn an_assigned_rep_who_is_a_member_organizes_and_is_looked_up_once() {
    let w = world(&[DEFAULT, REP]);
    for email in ["a@x.example", "b@x.example"] {
        let lead = Lead::new(
            profile(email, Some(REP)),
            w.clock_now() - TimeDelta::hours(1),
            TimeDelta::zero(),
        );
        let entry = TimelineEntry {
            at: lead.submitted_at,
            event_id: "t".into(),
            source: "t".into(),
            status: None,
            detail: String::new(),
        };
        w.store
            .create_lead(&lead, &entry, TimeDelta::hours(24))
            .await
            .unwrap();
        w.check(&lead).await.unwrap();
    }
    let organizers: Vec<String> = w
        .skipup
        .calls()
        .iter()
        .map(|(_, r)| r.organizer_email.clone())
        .collect();
    assert_eq!(organizers, [REP, REP]);
    assert_eq!(
        w.skipup
            .member_lookups
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn a_rep_who_is_not_a_member_is_replaced_by_the_default_organizer() {
    let w = world(&[DEFAULT]);
    let lead = due_lead(&w, Some(REP)).await;
    w.check(&lead).await.unwrap();
    assert_eq!(w.skipup.calls()[0].1.organizer_email, DEFAULT);
}

#[tokio::test]
async fn a_422_for_the_rep_is_retried_once_with_the_default_organizer() {
    let w = world(&[DEFAULT, REP]);
    w.skipup
        .then([Err(invalid("organizer_email is not an active member"))]);
    let lead = due_lead(&w, Some(REP)).await;
    assert!(matches!(
        w.check(&lead).await,
        Ok(CheckOutcome::Requested { .. })
    ));
    let calls = w.skipup.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1.organizer_email, REP);
    assert_eq!(calls[1].1.organizer_email, DEFAULT);
    assert_eq!(calls[1].0, format!("{}:default-organizer", calls[0].0));
    assert_eq!(
        w.lead(&lead).await.organizer_email.unwrap().as_str(),
        DEFAULT
    );
}

#[tokio::test]
async fn a_422_for_the_default_organizer_fails_the_lead_with_the_reason_for_good() {
    let w = world(&[DEFAULT]);
    w.skipup
        .then([Err(invalid("organizer_email is not an active member"))]);
    let lead = due_lead(&w, None).await;
    let outcome = w.check(&lead).await.unwrap();
    let CheckOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("not an active member"), "{reason}");
    let stored = w.lead(&lead).await;
    assert_eq!(stored.status, LeadStatus::RecoveryFailed);
    assert_eq!(stored.status_reason.as_deref(), Some(reason.as_str()));
    assert_eq!(
        w.check(&lead).await,
        Ok(CheckOutcome::NothingToDo(LeadStatus::RecoveryFailed))
    );
    assert_eq!(w.skipup.calls().len(), 1, "never retried");
}

#[tokio::test]
async fn a_suppressed_or_role_address_ends_suppressed_with_the_reason_and_is_never_emailed() {
    let mut w = world(&[DEFAULT]);
    w.deps.settings.suppression =
        SuppressionList::parse(["ceo@rival.example", "@competitor.example"], true).unwrap();
    for (email, why) in [
        ("ceo@rival.example", "the address is on SUPPRESS_LIST"),
        (
            "sam@eu.competitor.example",
            "the domain competitor.example is on SUPPRESS_LIST",
        ),
        (
            "noreply@northwind.example",
            "noreply@ is a role address (SUPPRESS_ROLE_ADDRESSES)",
        ),
    ] {
        let lead = due_lead_from(&w, email, None).await;
        assert_eq!(
            w.check(&lead).await,
            Ok(CheckOutcome::Suppressed { reason: why.into() }),
            "{email}"
        );
        let stored = w.lead(&lead).await;
        assert_eq!(stored.status, LeadStatus::Suppressed);
        assert_eq!(stored.status_reason.as_deref(), Some(why));
        let timeline = w.store.timeline(&lead.id).await.unwrap();
        let last = timeline.last().unwrap();
        assert_eq!(
            (last.status, last.detail.as_str()),
            (Some(LeadStatus::Suppressed), why)
        );
    }
    assert!(w.skipup.calls().is_empty(), "nobody was emailed");
}

#[tokio::test]
async fn leads_over_a_daily_cap_end_suppressed_and_the_next_day_starts_afresh() {
    let mut w = world(&[DEFAULT]);
    w.deps.settings.caps = Caps {
        per_day: 3,
        per_domain_per_day: 2,
    };
    let mut outcomes = Vec::new();
    for email in [
        "a1@acme.example",
        "a2@acme.example",
        "a3@acme.example",
        "b1@beta.example",
        "b2@beta.example",
    ] {
        let lead = due_lead_from(&w, email, None).await;
        let outcome = w.check(&lead).await.unwrap();
        outcomes.push(match outcome {
            CheckOutcome::Requested { .. } => "requested".to_string(),
            CheckOutcome::Suppressed { reason } => reason,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(
        outcomes,
        [
            "requested",
            "requested",
            "acme.example reached its cap of 2 recoveries on 2026-11-22 (MAX_RECOVERIES_PER_DOMAIN_PER_DAY)",
            "requested",
            "the cap of 3 recoveries on 2026-11-22 was reached (MAX_RECOVERIES_PER_DAY)",
        ]
    );
    assert_eq!(w.skipup.calls().len(), 3);
    w.clock.set(at("2026-11-23T10:00:00Z"));
    let lead = due_lead_from(&w, "a4@acme.example", None).await;
    assert!(matches!(
        w.check(&lead).await,
        Ok(CheckOutcome::Requested { .. })
    ));
}

#[tokio::test]
async fn credential_errors_keep_the_lead_and_fail_the_message() {
    for error in [
        SkipUpError::Unauthorized {
            message: "Invalid or expired API key".into(),
        },
        SkipUpError::Forbidden {
            message: "missing scope".into(),
        },
    ] {
        let w = world(&[DEFAULT]);
        w.skipup.then([Err(error)]);
        let lead = due_lead(&w, None).await;
        let retry = w.check(&lead).await.unwrap_err();
        assert!(retry.retry_after().is_some());
        let stored = w.lead(&lead).await;
        assert_eq!(
            stored.status,
            LeadStatus::Submitted,
            "the lead is not burned"
        );
        assert_eq!(
            stored.recovery.as_ref().unwrap().lease_until,
            None,
            "lease released"
        );
        // Once the key is fixed, the next delivery succeeds with the same idempotency key.
        assert!(matches!(
            w.check(&lead).await,
            Ok(CheckOutcome::Requested { .. })
        ));
        let calls = w.skipup.calls();
        assert_eq!(calls[0].0, calls[1].0);
    }
}

#[tokio::test]
async fn rate_limits_honour_retry_after_and_server_errors_back_off() {
    let w = world(&[DEFAULT]);
    w.skipup.then([Err(SkipUpError::RateLimited {
        retry_after: Some(Duration::from_secs(42)),
    })]);
    let lead = due_lead(&w, None).await;
    let retry = w.check(&lead).await.unwrap_err();
    assert_eq!(retry.retry_after(), Some(Duration::from_secs(42)));

    for error in [
        SkipUpError::Server {
            status: 503,
            message: "down".into(),
        },
        SkipUpError::Timeout,
        SkipUpError::RateLimited { retry_after: None },
    ] {
        w.skipup.then([Err(error)]);
        let retry = w.check(&lead).await.unwrap_err();
        let after = retry.retry_after().unwrap().as_secs();
        assert!(
            (15..=30).contains(&after),
            "first backoff is 15-30 s, got {after}"
        );
    }
    assert_eq!(w.lead(&lead).await.status, LeadStatus::Submitted);
}

#[tokio::test]
async fn the_idempotency_key_is_fixed_at_the_first_attempt_and_survives_midnight() {
    let w = world(&[DEFAULT]);
    w.clock.set(at("2026-11-22T23:59:30Z"));
    let lead = due_lead(&w, None).await;
    w.skipup.then([Err(SkipUpError::Timeout)]);
    w.check(&lead).await.unwrap_err();
    w.clock.set(at("2026-11-23T00:05:00Z"));
    w.check(&lead).await.unwrap();
    let keys: Vec<String> = w.skipup.calls().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys[0], keys[1]);
    assert!(keys[0].ends_with(":recovery:2026-11-22"));
}

#[tokio::test]
async fn a_lead_held_by_a_concurrent_check_is_retried_after_the_lease() {
    let w = world(&[DEFAULT]);
    let lead = due_lead(&w, None).await;
    let mut held = w.lead(&lead).await;
    held.recovery = Some(shared::lead::Recovery {
        idempotency_key: "lead:x:recovery:2026-11-22".into(),
        started_at: w.clock_now(),
        attempts: 1,
        lease_until: Some(w.clock_now() + TimeDelta::seconds(30)),
    });
    w.store.save_lead(&held, None, None).await.unwrap();
    let retry = w.check(&lead).await.unwrap_err();
    assert_eq!(retry.retry_after(), Some(Duration::from_secs(31)));
    assert!(w.skipup.calls().is_empty());
    w.clock.advance(TimeDelta::seconds(31));
    assert!(matches!(
        w.check(&lead).await,
        Ok(CheckOutcome::Requested { .. })
    ));
    assert_eq!(
        w.skipup.calls()[0].0,
        "lead:x:recovery:2026-11-22",
        "the stored key is reused"
    );
}

fn sqs_event(bodies: &[&str]) -> SqsEvent {
    let records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.receipt_handle = Some(format!("r{i}"));
            m.body = Some(body.to_string());
            m.attributes
                .insert("ApproximateReceiveCount".into(), "1".into());
            m
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

#[tokio::test]
async fn a_batch_reports_only_its_failed_messages_and_delays_their_retry() {
    let w = world(&[DEFAULT]);
    let ok = due_lead(&w, None).await;
    let other = Lead::new(
        profile("sam@acme.example", None),
        w.clock_now() - TimeDelta::hours(1),
        TimeDelta::zero(),
    );
    let entry = TimelineEntry {
        at: other.submitted_at,
        event_id: "t".into(),
        source: "t".into(),
        status: None,
        detail: String::new(),
    };
    w.store
        .create_lead(&other, &entry, TimeDelta::hours(24))
        .await
        .unwrap();
    w.skipup.then([
        Ok(()),
        Err(SkipUpError::RateLimited {
            retry_after: Some(Duration::from_secs(9)),
        }),
    ]);
    let ok_body = serde_json::to_string(&CheckMessage::new(&ok)).unwrap();
    let other_body = serde_json::to_string(&CheckMessage::new(&other)).unwrap();
    let response = handle(&w.deps, sqs_event(&[&ok_body, &other_body, "not json"])).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, ["m1", "m2"]);
    let delays = w.redelivery.delays.lock().unwrap().clone();
    assert_eq!(
        delays,
        [("r1".to_string(), Duration::from_secs(9))],
        "poison keeps the default visibility"
    );
}

#[tokio::test]
async fn the_crm_hears_of_the_request_and_of_a_failure_even_after_it_was_down() {
    let mut w = world(&[DEFAULT]);
    let crm = Arc::new(RecordingConnector::default());
    w.deps.crm = CrmConnectors::new(vec![crm.clone()]);
    let lead = due_lead(&w, None).await;
    crm.fail_next([true]);
    // SkipUp accepted, the CRM did not: the message comes back for the CRM alone.
    let retry = w.check(&lead).await.unwrap_err();
    assert!(retry.reason().contains("HTTP 503"), "{}", retry.reason());
    assert_eq!(
        w.check(&lead).await,
        Ok(CheckOutcome::NothingToDo(LeadStatus::MeetingRequested))
    );
    assert_eq!(crm.pushed(), [LeadStatus::MeetingRequested]);
    assert_eq!(w.skipup.calls().len(), 1);

    let other = Lead::new(
        profile("lee@initech.example", None),
        w.clock_now() - TimeDelta::minutes(30),
        TimeDelta::minutes(30),
    );
    w.store
        .create_lead(
            &other,
            &TimelineEntry {
                at: other.submitted_at,
                event_id: "test".into(),
                source: "test".into(),
                status: Some(LeadStatus::Submitted),
                detail: String::new(),
            },
            TimeDelta::hours(24),
        )
        .await
        .unwrap();
    w.skipup
        .then([Err(invalid("context.description is too long"))]);
    assert!(matches!(
        w.check(&other).await,
        Ok(CheckOutcome::Failed { .. })
    ));
    assert_eq!(
        crm.pushed(),
        [LeadStatus::MeetingRequested, LeadStatus::RecoveryFailed]
    );
}
