//! apply-events with in-memory ports: webhook events applied once, monotonically, in any
//! order and any number of times; unmatched events kept; Skode leads taken in.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use shared::adapters::fakes::{ManualClock, RecordingConnector, ScriptedSkipUp};
use shared::adapters::memory::{MemoryLeadStore, MemoryQueue};
use shared::config::Env;
use shared::connectors::Connectors;
use shared::crm::{CrmConnectors, ReconcileError};
use shared::handlers::apply_events::{ApplyDeps, ApplyOutcome, apply_event, handle};
use shared::inbound::{InboundEvent, Provider};
use shared::intake::{IntakeDeps, IntakeSettings};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus, Recovery, TimelineEntry};
use shared::ports::{LeadStore, Pointer};
use shared::recovery::CheckMessage;

const MR: &str = "mr_01JAXQ7K3M8D2V5R9T4W6Y1B0C";
const EMAIL: &str = "dana.ruiz@northwind.example";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    deps: ApplyDeps,
    store: Arc<MemoryLeadStore>,
    checks: Arc<MemoryQueue>,
    skipup: Arc<ScriptedSkipUp>,
}

fn world() -> World {
    let skipup = Arc::new(ScriptedSkipUp::default());
    let store = Arc::new(MemoryLeadStore::new());
    let checks = Arc::new(MemoryQueue::new());
    let deps = ApplyDeps {
        connectors: Connectors::from_env(&Env::empty()).unwrap(),
        store: store.clone(),
        events: store.clone(),
        intake: IntakeDeps {
            store: store.clone(),
            checks: checks.clone(),
            clock: Arc::new(ManualClock::new(at("2026-11-22T10:00:00Z"))),
            settings: IntakeSettings::default(),
        },
        seen_for: TimeDelta::days(7),
        skode_booked_statuses: vec!["meeting_booked".into()],
        skode_suppress_statuses: vec!["lost".into(), "do_not_contact".into()],
        crm: Default::default(),
        skipup: skipup.clone(),
    };
    World {
        deps,
        store,
        checks,
        skipup,
    }
}

/// A lead whose recovery request `MR` was accepted (when `requested`).
async fn lead(w: &World, requested: bool) -> Lead {
    let profile = LeadProfile {
        phone: Some("+1 (415) 555-0142".into()),
        submission_id: Some("s1".into()),
        ..LeadProfile::new(EmailAddress::parse(EMAIL).unwrap(), "Dana Ruiz")
    };
    let mut lead = Lead::new(profile, at("2026-11-22T08:00:00Z"), TimeDelta::minutes(30));
    let entry = TimelineEntry {
        at: lead.submitted_at,
        event_id: "intake".into(),
        source: "form-intake".into(),
        status: Some(LeadStatus::Submitted),
        detail: String::new(),
    };
    w.store
        .create_lead(&lead, &entry, TimeDelta::hours(24))
        .await
        .unwrap();
    if requested {
        lead.status = LeadStatus::MeetingRequested;
        lead.meeting_request_id = Some(MR.into());
        w.store
            .save_lead(&lead, None, Some(&Pointer::MeetingRequest(MR.into())))
            .await
            .unwrap();
        lead.version += 1;
    }
    lead
}

/// A SkipUp event about `MR` for `EMAIL`, received at minute `minute`.
fn skipup(event_type: &str, id: &str, minute: i64) -> InboundEvent {
    let body = json!({
        "id": id, "type": event_type, "created_at": "2026-11-22T09:00:00Z",
        "data": {"id": MR, "participant_emails": [EMAIL], "status": "active"}
    });
    InboundEvent::from_delivery(
        Provider::SKIPUP,
        body.to_string().as_bytes(),
        at("2026-11-22T09:00:00Z") + TimeDelta::minutes(minute),
    )
}

async fn status(w: &World, lead: &Lead) -> LeadStatus {
    w.store.get_lead(&lead.id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn skipup_events_move_the_lead_along_the_crm_statuses() {
    let w = world();
    let lead = lead(&w, true).await;
    let follow_up = apply_event(
        &w.deps,
        &skipup("meeting_request.follow_up_sent", "evt_2", 2),
    )
    .await
    .unwrap();
    assert_eq!(
        follow_up,
        ApplyOutcome::Applied {
            lead_id: lead.id.clone(),
            status: Some(LeadStatus::FollowUpSent)
        }
    );
    apply_event(&w.deps, &skipup("meeting_request.booked", "evt_3", 3))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingScheduled);
    let late = apply_event(
        &w.deps,
        &skipup("meeting_request.follow_up_sent", "evt_4", 4),
    )
    .await
    .unwrap();
    assert_eq!(
        late,
        ApplyOutcome::NoChange {
            lead_id: lead.id.clone()
        }
    );
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingScheduled);
    // Booked is terminal at SkipUp: a `cancelled` after it (delivered out of order,
    // or a stray) does not undo the meeting.
    apply_event(&w.deps, &skipup("meeting_request.cancelled", "evt_5", 5))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingScheduled);
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    let statuses: Vec<_> = timeline.iter().filter_map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            LeadStatus::Submitted,
            LeadStatus::FollowUpSent,
            LeadStatus::MeetingScheduled,
        ]
    );
}

#[tokio::test]
async fn a_cancelled_conversation_sends_the_lead_back_to_nurture() {
    let w = world();
    let lead = lead(&w, true).await;
    apply_event(&w.deps, &skipup("meeting_request.cancelled", "evt_5", 5))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::ReEnterNurture);
}

#[tokio::test]
async fn organizer_changed_updates_the_organizer_and_the_timeline() {
    let w = world();
    let lead = lead(&w, true).await;
    let body = json!({
        "id": "evt_org", "type": "meeting_request.organizer_changed",
        "data": {"id": MR, "participant_emails": [EMAIL], "status": "active",
                 "organizer_email": "alex@vendor.example"}
    });
    let event = InboundEvent::from_delivery(
        Provider::SKIPUP,
        body.to_string().as_bytes(),
        at("2026-11-22T09:30:00Z"),
    );
    assert_eq!(
        apply_event(&w.deps, &event).await.unwrap(),
        ApplyOutcome::Applied {
            lead_id: lead.id.clone(),
            status: None
        }
    );
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(
        stored.organizer_email.as_ref().map(|e| e.as_str()),
        Some("alex@vendor.example")
    );
    assert_eq!(stored.status, LeadStatus::MeetingRequested);
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    let last = timeline.last().unwrap();
    assert!(
        last.detail.contains("organizer_changed")
            && last.detail.contains("another workspace member"),
        "{}",
        last.detail
    );
    assert!(!last.detail.contains("alex@"));
}

#[tokio::test]
async fn any_order_and_any_number_of_deliveries_end_in_the_same_state() {
    let events = [
        skipup("meeting_request.created", "evt_1", 1),
        skipup("meeting_request.follow_up_sent", "evt_2", 2),
        skipup("meeting_request.booked", "evt_3", 3),
    ];
    for seed in 0..50 {
        let w = world();
        let lead = lead(&w, true).await;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut deliveries: Vec<&InboundEvent> = events
            .iter()
            .flat_map(|e| std::iter::repeat_n(e, rng.usize(1..=8)))
            .collect();
        rng.shuffle(&mut deliveries);
        for event in deliveries {
            apply_event(&w.deps, event).await.unwrap();
        }
        assert_eq!(
            status(&w, &lead).await,
            LeadStatus::MeetingScheduled,
            "seed {seed}"
        );
        let timeline = w.store.timeline(&lead.id).await.unwrap();
        let mut ids: Vec<&str> = timeline.iter().map(|e| e.event_id.as_str()).collect();
        let total = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            total,
            "seed {seed}: an event appears twice: {timeline:?}"
        );
        assert!(ids.contains(&"skipup:evt_3"), "seed {seed}");
    }
}

#[tokio::test]
async fn a_redelivery_after_the_marker_was_lost_is_still_applied_once() {
    let w = world();
    let lead = lead(&w, true).await;
    let booked = skipup("meeting_request.booked", "evt_3", 3);
    apply_event(&w.deps, &booked).await.unwrap();
    // A second apply-events store without the processed-event marker (as if it was lost).
    let fresh = Arc::new(MemoryLeadStore::new());
    let mut deps = world().deps;
    deps.store = w.store.clone();
    deps.events = fresh;
    assert_eq!(
        apply_event(&deps, &booked).await.unwrap(),
        ApplyOutcome::NoChange {
            lead_id: lead.id.clone()
        }
    );
    assert_eq!(w.store.timeline(&lead.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_booking_of_a_request_that_is_not_ours_before_outreach_is_booked_directly() {
    let w = world();
    let lead = lead(&w, false).await;
    apply_event(&w.deps, &skipup("meeting_request.booked", "evt_9", 1))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::BookedDirectly);
}

#[tokio::test]
async fn a_booking_that_overtakes_the_answer_to_our_own_request_is_a_recovery() {
    let w = world();
    let mut lead = lead(&w, false).await;
    // A check took the lead and sent the request; SkipUp's answer is not recorded yet.
    lead.recovery = Some(Recovery {
        idempotency_key: "lead:x:recovery:2026-11-22".into(),
        started_at: at("2026-11-22T08:30:00Z"),
        attempts: 1,
        lease_until: None,
    });
    w.store.save_lead(&lead, None, None).await.unwrap();
    apply_event(&w.deps, &skipup("meeting_request.booked", "evt_3", 1))
        .await
        .unwrap();
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::MeetingScheduled);
    assert_eq!(stored.meeting_request_id.as_deref(), Some(MR));
}

/// The world with a recording CRM connector.
fn world_with_crm() -> (World, Arc<RecordingConnector>) {
    let mut w = world();
    let connector = Arc::new(RecordingConnector::default());
    w.deps.crm = CrmConnectors::new(vec![connector.clone()]);
    (w, connector)
}

#[tokio::test]
async fn the_crm_is_told_each_status_once_however_often_events_arrive() {
    let (w, crm) = world_with_crm();
    let lead = lead(&w, true).await;
    for (kind, id) in [
        ("meeting_request.created", "evt_1"),
        ("meeting_request.follow_up_sent", "evt_2"),
        ("meeting_request.follow_up_sent", "evt_2"),
        ("meeting_request.booked", "evt_3"),
        ("meeting_request.created", "evt_1"),
    ] {
        apply_event(&w.deps, &skipup(kind, id, 1)).await.unwrap();
    }
    assert_eq!(
        crm.pushed(),
        [
            LeadStatus::MeetingRequested,
            LeadStatus::FollowUpSent,
            LeadStatus::MeetingScheduled
        ]
    );
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.crm_status, Some(LeadStatus::MeetingScheduled));
}

#[tokio::test]
async fn a_crm_that_is_down_holds_back_no_event_and_is_retried_from_the_checks_queue() {
    let (w, crm) = world_with_crm();
    let lead = lead(&w, true).await;
    crm.fail_next([true]);
    let booked = skipup("meeting_request.booked", "evt_3", 3);
    assert_eq!(
        apply_event(&w.deps, &booked).await.unwrap(),
        ApplyOutcome::Applied {
            lead_id: lead.id.clone(),
            status: Some(LeadStatus::MeetingScheduled)
        }
    );
    assert_eq!(
        apply_event(&w.deps, &booked).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    assert!(crm.pushed().is_empty());
    // The retry waits in the checks queue, whose consumer reconciles the lead.
    let retry = w.checks.drain();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].delay_seconds, Some(60));
    let check: CheckMessage = serde_json::from_str(&retry[0].body).unwrap();
    assert_eq!(check.lead_id, lead.id);
    w.deps
        .crm
        .reconcile(&*w.store, &lead.id, "test")
        .await
        .unwrap();
    assert_eq!(crm.pushed(), [LeadStatus::MeetingScheduled]);
    assert_eq!(w.store.timeline(&lead.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_status_overtaken_while_it_was_pushed_is_followed_by_the_newer_one() {
    let (w, crm) = world_with_crm();
    let lead = lead(&w, true).await;
    // The CRM is told "Meeting Requested"; before that is recorded, the lead moves on
    // (as if another consumer applied `booked` and pushed it first).
    let store = w.store.clone();
    let id = lead.id.clone();
    crm.before_next_push(move || {
        let mut moved = futures::executor::block_on(store.get_lead(&id))
            .unwrap()
            .unwrap();
        moved.status = LeadStatus::MeetingScheduled;
        futures::executor::block_on(store.save_lead(&moved, None, None)).unwrap();
    });
    let pushed = w
        .deps
        .crm
        .reconcile(&*w.store, &lead.id, "test")
        .await
        .unwrap();
    assert_eq!(pushed, Some(LeadStatus::MeetingScheduled));
    assert_eq!(
        crm.pushed(),
        [LeadStatus::MeetingRequested, LeadStatus::MeetingScheduled]
    );
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.crm_status, Some(LeadStatus::MeetingScheduled));
}

/// The world with a CRM connector that keeps a note per status change.
fn world_with_noting_crm() -> (World, Arc<RecordingConnector>) {
    let mut w = world();
    let connector = Arc::new(RecordingConnector::keeping_notes());
    w.deps.crm = CrmConnectors::new(vec![connector.clone()]);
    (w, connector)
}

#[tokio::test]
async fn a_crm_that_keeps_notes_gets_every_status_change_with_what_the_timeline_says() {
    let (w, crm) = world_with_noting_crm();
    let lead = lead(&w, false).await;
    crm.fail_next([true]);
    for (kind, id, n) in [
        ("meeting_request.created", "evt_1", 1),
        ("meeting_request.follow_up_sent", "evt_2", 2),
        ("meeting_request.booked", "evt_3", 3),
    ] {
        apply_event(&w.deps, &skipup(kind, id, n)).await.unwrap();
    }
    let updates = crm.updates();
    let last = updates.last().unwrap();
    assert_eq!(last.status, LeadStatus::MeetingScheduled);
    let statuses: Vec<LeadStatus> = last.changes.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            LeadStatus::MeetingRequested,
            LeadStatus::FollowUpSent,
            LeadStatus::MeetingScheduled
        ]
    );
    // Every change keeps its marker from push to push, and says what happened.
    let first = &updates[0].changes[0];
    assert_eq!(first.marker, last.changes[0].marker);
    assert!(
        first
            .marker
            .starts_with(&format!("{}/meeting-requested/", lead.id))
    );
    assert!(
        last.changes[2].text.contains("meeting_request.booked"),
        "{}",
        last.changes[2].text
    );
    // The lease is let go once the status is recorded, and after the failed push.
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.crm_status, Some(LeadStatus::MeetingScheduled));
    assert_eq!(stored.crm_lease_until, None);
}

#[tokio::test]
async fn a_push_that_finds_the_lead_held_by_another_is_put_off_and_pushes_nothing() {
    let (w, crm) = world_with_noting_crm();
    let lead = lead(&w, true).await;
    let mut held = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    held.crm_lease_until = Some(chrono::Utc::now() + chrono::TimeDelta::seconds(60));
    w.store.save_lead(&held, None, None).await.unwrap();
    let busy = w.deps.crm.reconcile(&*w.store, &lead.id, "test").await;
    assert!(matches!(busy, Err(ReconcileError::Busy { .. })), "{busy:?}");
    assert!(busy.unwrap_err().retry_after().is_some());
    assert!(crm.pushed().is_empty());
    // A lease that ran out (its holder died) is taken over.
    let mut expired = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    expired.crm_lease_until = Some(chrono::Utc::now() - chrono::TimeDelta::seconds(1));
    w.store.save_lead(&expired, None, None).await.unwrap();
    w.deps
        .crm
        .reconcile(&*w.store, &lead.id, "test")
        .await
        .unwrap();
    assert_eq!(crm.pushed(), [LeadStatus::MeetingRequested]);
}

#[tokio::test]
async fn a_crm_that_refuses_the_update_is_not_asked_again_for_that_status() {
    let (w, crm) = world_with_crm();
    let lead = lead(&w, true).await;
    crm.fail_next([false]);
    apply_event(
        &w.deps,
        &skipup("meeting_request.follow_up_sent", "evt_2", 2),
    )
    .await
    .unwrap();
    apply_event(&w.deps, &skipup("meeting_request.created", "evt_1", 1))
        .await
        .unwrap();
    assert!(crm.pushed().is_empty());
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.crm_status, Some(LeadStatus::FollowUpSent));
    apply_event(&w.deps, &skipup("meeting_request.booked", "evt_3", 3))
        .await
        .unwrap();
    assert_eq!(crm.pushed(), [LeadStatus::MeetingScheduled]);
}

#[tokio::test]
async fn a_created_webhook_before_our_own_record_marks_the_lead_requested() {
    let w = world();
    let lead = lead(&w, false).await;
    apply_event(&w.deps, &skipup("meeting_request.created", "evt_1", 1))
        .await
        .unwrap();
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::MeetingRequested);
    assert_eq!(stored.meeting_request_id.as_deref(), Some(MR));
    assert_eq!(
        w.store
            .find_lead(&Pointer::MeetingRequest(MR.into()))
            .await
            .unwrap(),
        Some(lead.id)
    );
}

#[tokio::test]
async fn an_event_for_no_known_lead_is_kept_and_counted_once() {
    let w = world();
    let event = skipup("meeting_request.booked", "evt_orphan", 1);
    let outcome = apply_event(&w.deps, &event).await.unwrap();
    assert!(matches!(outcome, ApplyOutcome::Kept { .. }), "{outcome:?}");
    assert_eq!(
        apply_event(&w.deps, &event).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    let kept = w.store.unmatched();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, "skipup:evt_orphan");
    let back: InboundEvent = serde_json::from_str(&kept[0].2).unwrap();
    assert_eq!(back, event, "the whole event is kept");
}

#[tokio::test]
async fn an_unrecognized_payload_is_kept_not_refused() {
    let w = world();
    let event = InboundEvent::from_delivery(Provider::SKIPUP, br#"{"ping":true}"#, Utc::now());
    assert!(matches!(
        apply_event(&w.deps, &event).await.unwrap(),
        ApplyOutcome::Kept { .. }
    ));
    assert_eq!(w.store.unmatched().len(), 1);
}

#[tokio::test]
async fn a_skipcalls_outcome_is_added_to_the_timeline_of_the_lead_with_that_phone() {
    let w = world();
    let lead = lead(&w, true).await;
    let body = include_str!("../../fixtures/payloads/skipcalls-call-completed-default.json")
        .replace("+1 (415) 555-0142", "+1 415 555 0142");
    let event = InboundEvent::from_delivery(Provider::SKIPCALLS, body.as_bytes(), Utc::now());
    let outcome = apply_event(&w.deps, &event).await.unwrap();
    assert_eq!(
        outcome,
        ApplyOutcome::Applied {
            lead_id: lead.id.clone(),
            status: None
        }
    );
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    let call = timeline.last().unwrap();
    assert!(
        call.detail
            .starts_with("CALL_COMPLETED; Interested; wants a Tuesday demo."),
        "{}",
        call.detail
    );
    assert!(call.detail.contains("preferred_day=Tuesday"));
    assert_eq!(
        status(&w, &lead).await,
        LeadStatus::MeetingRequested,
        "calls do not move the status"
    );
}

#[tokio::test]
async fn a_skode_lead_created_starts_intake_and_a_booked_update_marks_it_booked() {
    let w = world();
    let body = include_str!("../../fixtures/payloads/skode-lead-created.json");
    let event = InboundEvent::from_delivery(Provider::SKODE, body.as_bytes(), Utc::now());
    let ApplyOutcome::LeadCreated { lead_id } = apply_event(&w.deps, &event).await.unwrap() else {
        panic!("intake expected");
    };
    assert_eq!(w.checks.len(), 1, "its check is scheduled");
    let update = json!({"id": "evt_upd", "event": "lead.updated", "created_at": "2026-11-22T09:30:00Z",
                        "data": {"id": "lead_7c1e2a", "status": "meeting_booked"}});
    let event =
        InboundEvent::from_delivery(Provider::SKODE, update.to_string().as_bytes(), Utc::now());
    assert_eq!(
        apply_event(&w.deps, &event).await.unwrap(),
        ApplyOutcome::Applied {
            lead_id: lead_id.clone(),
            status: Some(LeadStatus::BookedDirectly)
        }
    );
    let incomplete = json!({"id": "evt_bad", "event": "lead.created", "data": {"id": "lead_x", "name": "No Email"}});
    let event = InboundEvent::from_delivery(
        Provider::SKODE,
        incomplete.to_string().as_bytes(),
        Utc::now(),
    );
    assert!(matches!(
        apply_event(&w.deps, &event).await.unwrap(),
        ApplyOutcome::Kept { .. }
    ));
}

#[tokio::test]
async fn in_a_fifo_batch_every_message_after_a_failure_fails_too() {
    let w = world();
    lead(&w, true).await;
    let message = |id: &str, body: String| {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    };
    let good = serde_json::to_string(&skipup("meeting_request.booked", "evt_3", 3)).unwrap();
    let mut event = SqsEvent::default();
    event.records = vec![
        message("a", good.clone()),
        message("b", "not json".into()),
        message("c", good),
    ];
    let response = handle(&w.deps, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["b", "c"]);
}

#[tokio::test]
async fn events_the_pipeline_does_not_act_on_are_ignored() {
    let w = world();
    lead(&w, true).await;
    let context = skipup("meeting_request.context_updated", "evt_7", 7);
    assert_eq!(
        apply_event(&w.deps, &context).await.unwrap(),
        ApplyOutcome::Ignored
    );
    let deal: Value = serde_json::from_str(include_str!(
        "../../fixtures/payloads/skode-deal-stage-changed.json"
    ))
    .unwrap();
    let event =
        InboundEvent::from_delivery(Provider::SKODE, deal.to_string().as_bytes(), Utc::now());
    assert_eq!(
        apply_event(&w.deps, &event).await.unwrap(),
        ApplyOutcome::Ignored
    );
}

/// An event log that cannot be reached.
struct DownEventLog;

#[async_trait::async_trait]
impl shared::ports::EventLog for DownEventLog {
    async fn seen(&self, _: &str) -> Result<bool, shared::ports::StoreError> {
        Err(shared::ports::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
    async fn mark_seen(&self, _: &str, _: DateTime<Utc>) -> Result<(), shared::ports::StoreError> {
        Err(shared::ports::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
    async fn keep_unmatched(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<(), shared::ports::StoreError> {
        Err(shared::ports::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
}

#[tokio::test]
async fn with_the_store_down_the_event_is_retried_and_the_lead_untouched() {
    let mut w = world();
    let lead = lead(&w, true).await;
    w.deps.events = Arc::new(DownEventLog);
    let retry = apply_event(&w.deps, &skipup("meeting_request.booked", "evt_3", 3))
        .await
        .unwrap_err();
    assert!(retry.reason().contains("unavailable"), "{}", retry.reason());
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingRequested);
    let mut event = SqsEvent::default();
    let mut m = SqsMessage::default();
    m.message_id = Some("a".into());
    m.body = Some(serde_json::to_string(&skipup("meeting_request.booked", "evt_3", 3)).unwrap());
    event.records = vec![m];
    let response = handle(&w.deps, event).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "not acknowledged, so SQS redelivers it"
    );
}

/// A Skode `lead.updated` for `EMAIL` with `status`.
fn skode_status(id: &str, status: &str) -> InboundEvent {
    let body = json!({
        "id": id, "event": "lead.updated", "created_at": "2026-11-22T09:00:00Z",
        "data": {"id": "sk_lead_1", "email": EMAIL, "status": status}
    });
    InboundEvent::from_delivery(
        Provider::SKODE,
        body.to_string().as_bytes(),
        at("2026-11-22T09:40:00Z"),
    )
}

#[tokio::test]
async fn a_disqualification_after_outreach_suppresses_the_lead_and_stops_skipup_once() {
    let w = world();
    let lead = lead(&w, true).await;
    apply_event(&w.deps, &skode_status("evt_dq1", "lost"))
        .await
        .unwrap();
    // Delivered again under another id: no second cancellation.
    apply_event(&w.deps, &skode_status("evt_dq2", "do_not_contact"))
        .await
        .unwrap();
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::Suppressed);
    let cancels = w.skipup.cancels.lock().unwrap().clone();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].0, MR);
    assert!(!cancels[0].2, "the prospect is not notified");
    assert!(stored.skipup_cancel.unwrap().done_at.is_some());
    // The `cancelled` webhook that follows our cancellation: on the timeline, no move.
    let ours = apply_event(&w.deps, &skipup("meeting_request.cancelled", "evt_c", 50))
        .await
        .unwrap();
    assert_eq!(
        ours,
        ApplyOutcome::Applied {
            lead_id: lead.id.clone(),
            status: None
        }
    );
    assert_eq!(status(&w, &lead).await, LeadStatus::Suppressed);
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.detail.contains("asked SkipUp to stop meeting request"))
    );
    assert!(
        timeline
            .iter()
            .any(|e| e.detail.contains("the cancellation we asked for"))
    );
}

/// A disqualification whose cancellation SkipUp refuses (422) because the request
/// already ended: SkipUp is asked how, and `ended` decides the lead's status.
async fn disqualified_after_skipup_ended(ended: &str) -> (LeadStatus, Vec<TimelineEntry>) {
    let w = world();
    let lead = lead(&w, true).await;
    w.skipup
        .cancel_answers
        .lock()
        .unwrap()
        .push_back(Err(shared::skipup::SkipUpError::Invalid {
            kind: "invalid_request".into(),
            message: format!("Cannot cancel a request that is already {ended}"),
        }));
    w.skipup
        .statuses
        .lock()
        .unwrap()
        .insert(MR.into(), ended.into());
    apply_event(&w.deps, &skode_status("evt_dq1", "lost"))
        .await
        .unwrap();
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert!(stored.skipup_cancel.unwrap().done_at.is_some());
    (stored.status, w.store.timeline(&lead.id).await.unwrap())
}

#[tokio::test]
async fn a_disqualification_after_skipup_booked_with_its_webhook_lost_ends_scheduled() {
    let (status, timeline) = disqualified_after_skipup_ended("booked").await;
    assert_eq!(status, LeadStatus::MeetingScheduled, "{timeline:#?}");
    let stop = timeline
        .iter()
        .find(|e| e.detail.contains("asked SkipUp to stop meeting request"))
        .unwrap();
    assert_eq!(stop.status, Some(LeadStatus::MeetingScheduled));
    assert!(
        stop.detail.contains("SkipUp had already booked it"),
        "{stop:?}"
    );
}

#[tokio::test]
async fn a_disqualification_after_skipup_cancelled_stays_suppressed() {
    let (status, timeline) = disqualified_after_skipup_ended("cancelled").await;
    assert_eq!(status, LeadStatus::Suppressed, "{timeline:#?}");
    let stop = timeline
        .iter()
        .find(|e| e.detail.contains("asked SkipUp to stop meeting request"))
        .unwrap();
    assert_eq!(stop.status, None);
    assert!(
        stop.detail.contains("SkipUp had already ended it"),
        "{stop:?}"
    );
}

#[tokio::test]
async fn when_skipup_cannot_say_how_a_refused_cancellation_ended_the_stop_is_retried() {
    let w = world();
    let lead = lead(&w, true).await;
    let already_booked = || shared::skipup::SkipUpError::Invalid {
        kind: "invalid_request".into(),
        message: "Cannot cancel a request that is already booked".into(),
    };
    w.skipup
        .cancel_answers
        .lock()
        .unwrap()
        .extend([Err(already_booked()), Err(already_booked())]);
    w.skipup
        .get_failures
        .lock()
        .unwrap()
        .push_back(shared::skipup::SkipUpError::Server {
            status: 503,
            message: "down".into(),
        });
    w.skipup
        .statuses
        .lock()
        .unwrap()
        .insert(MR.into(), "booked".into());
    let event = skode_status("evt_dq1", "lost");
    assert!(apply_event(&w.deps, &event).await.is_err(), "retried");
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert_eq!(stored.status, LeadStatus::Suppressed);
    assert!(
        stored.skipup_cancel.unwrap().done_at.is_none(),
        "the stop stays pending"
    );
    // The redelivery asks again, learns of the booking, and applies it.
    apply_event(&w.deps, &event).await.unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingScheduled);
    assert_eq!(w.skipup.cancels.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_cancellation_that_fails_transiently_is_retried_and_made_once() {
    let w = world();
    let lead = lead(&w, true).await;
    w.skipup
        .cancel_answers
        .lock()
        .unwrap()
        .push_back(Err(shared::skipup::SkipUpError::Server {
            status: 503,
            message: "down".into(),
        }));
    let event = skode_status("evt_dq1", "lost");
    assert!(apply_event(&w.deps, &event).await.is_err(), "retried");
    assert_eq!(status(&w, &lead).await, LeadStatus::Suppressed);
    // The redelivered message finishes the cancellation.
    apply_event(&w.deps, &event).await.unwrap();
    apply_event(&w.deps, &event).await.unwrap();
    assert_eq!(
        w.skipup.cancels.lock().unwrap().len(),
        2,
        "one failed try, one cancellation"
    );
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert!(stored.skipup_cancel.unwrap().done_at.is_some());
}

#[tokio::test]
async fn a_request_skipup_already_ended_counts_as_stopped() {
    let w = world();
    let lead = lead(&w, true).await;
    w.skipup
        .cancel_answers
        .lock()
        .unwrap()
        .push_back(Err(shared::skipup::SkipUpError::Invalid {
            kind: "invalid_request".into(),
            message: "Cannot cancel a request that is already booked".into(),
        }));
    apply_event(&w.deps, &skode_status("evt_dq1", "lost"))
        .await
        .unwrap();
    let stored = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert!(stored.skipup_cancel.unwrap().done_at.is_some());
    // SkipUp booked it before our cancellation reached it: the meeting wins.
    apply_event(&w.deps, &skipup("meeting_request.booked", "evt_b", 40))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingScheduled);
}

#[tokio::test]
async fn a_skode_booked_status_before_the_check_books_the_lead_directly() {
    let w = world();
    let lead = lead(&w, false).await;
    apply_event(&w.deps, &skode_status("evt_b1", "meeting_booked"))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::BookedDirectly);
    assert!(w.skipup.cancels.lock().unwrap().is_empty());
    // A later disqualification still suppresses.
    apply_event(&w.deps, &skode_status("evt_dq", "lost"))
        .await
        .unwrap();
    assert_eq!(status(&w, &lead).await, LeadStatus::Suppressed);
    assert!(
        w.skipup.cancels.lock().unwrap().is_empty(),
        "no request to cancel"
    );
}

#[tokio::test]
async fn reconciliation_applies_what_skipup_says_once_and_leaves_recent_recoveries_alone() {
    use shared::handlers::reconcile::{ReconcileSettings, reconcile};
    let w = world();
    let lead = lead(&w, true).await;
    w.skipup
        .statuses
        .lock()
        .unwrap()
        .insert(MR.into(), "booked".into());
    let settings = ReconcileSettings {
        after: TimeDelta::hours(6),
        batch: 10,
    };
    // Quiet for two hours only (the clock says 10:00, the lead moved at 08:00).
    let report = reconcile(&w.deps, &settings, false, None).await.unwrap();
    assert_eq!(report.asked, 0);
    let quick = ReconcileSettings {
        after: TimeDelta::minutes(30),
        batch: 10,
    };
    let dry = reconcile(&w.deps, &quick, true, None).await.unwrap();
    assert_eq!((dry.asked, dry.booked), (1, 1));
    assert_eq!(
        status(&w, &lead).await,
        LeadStatus::MeetingRequested,
        "a dry run changes nothing"
    );
    let report = reconcile(&w.deps, &quick, false, None).await.unwrap();
    assert_eq!((report.asked, report.booked), (1, 1));
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingScheduled);
    // The real webhook, late: nothing changes, nothing is added.
    let before = w.store.timeline(&lead.id).await.unwrap().len();
    let late = apply_event(&w.deps, &skipup("meeting_request.booked", "evt_late", 90))
        .await
        .unwrap();
    assert_eq!(
        late,
        ApplyOutcome::NoChange {
            lead_id: lead.id.clone()
        }
    );
    assert_eq!(w.store.timeline(&lead.id).await.unwrap().len(), before);
    // No longer open: not asked again.
    assert_eq!(
        reconcile(&w.deps, &quick, false, None).await.unwrap().asked,
        0
    );
}

#[tokio::test]
async fn reconciliation_asks_an_active_request_again_only_after_another_quiet_period() {
    use shared::handlers::reconcile::{ReconcileSettings, reconcile};
    let w = world();
    let lead = lead(&w, true).await;
    w.skipup
        .statuses
        .lock()
        .unwrap()
        .insert(MR.into(), "active".into());
    let quick = ReconcileSettings {
        after: TimeDelta::minutes(30),
        batch: 10,
    };
    let first = reconcile(&w.deps, &quick, false, None).await.unwrap();
    assert_eq!((first.asked, first.open), (1, 1));
    assert_eq!(
        reconcile(&w.deps, &quick, false, None).await.unwrap().asked,
        0
    );
    assert_eq!(status(&w, &lead).await, LeadStatus::MeetingRequested);
}

#[tokio::test]
async fn reconciliation_finishes_a_cancellation_whose_message_gave_up() {
    use shared::handlers::reconcile::{ReconcileSettings, reconcile};
    let w = world();
    let lead = lead(&w, true).await;
    w.skipup
        .cancel_answers
        .lock()
        .unwrap()
        .push_back(Err(shared::skipup::SkipUpError::Server {
            status: 503,
            message: "down".into(),
        }));
    // The message fails; say it then ended in the dead-letter queue.
    assert!(
        apply_event(&w.deps, &skode_status("evt_dq1", "lost"))
            .await
            .is_err()
    );
    let pending = w.store.get_lead(&lead.id).await.unwrap().unwrap();
    assert!(pending.cancel_pending());
    // The next run carries it out, however recent, and only once.
    let settings = ReconcileSettings {
        after: TimeDelta::hours(6),
        batch: 10,
    };
    let report = reconcile(&w.deps, &settings, false, None).await.unwrap();
    assert_eq!((report.stopped, report.asked), (1, 0));
    assert!(
        !w.store
            .get_lead(&lead.id)
            .await
            .unwrap()
            .unwrap()
            .cancel_pending()
    );
    assert_eq!(
        reconcile(&w.deps, &settings, false, None)
            .await
            .unwrap()
            .stopped,
        0
    );
    assert_eq!(
        w.skipup.cancels.lock().unwrap().len(),
        2,
        "one failed try, one cancellation"
    );
}

#[tokio::test]
async fn an_event_id_of_any_length_makes_bounded_keys_and_applies_once() {
    let w = world();
    let lead = lead(&w, true).await;
    // A provider id far beyond DynamoDB's 1,024-byte sort key, with non-ASCII in it.
    let long_id = format!("evt_{}é", "x".repeat(5_000));
    let booked = skipup("meeting_request.booked", &long_id, 3);
    assert!(matches!(
        apply_event(&w.deps, &booked).await.unwrap(),
        ApplyOutcome::Applied { .. }
    ));
    assert_eq!(
        apply_event(&w.deps, &booked).await.unwrap(),
        ApplyOutcome::Duplicate
    );
    let timeline = w.store.timeline(&lead.id).await.unwrap();
    let entry = timeline.last().unwrap();
    assert!(entry.event_id.len() <= 128, "{}", entry.event_id.len());
    assert!(
        entry.event_id.starts_with("skipup:sha256:"),
        "{}",
        entry.event_id
    );
}
