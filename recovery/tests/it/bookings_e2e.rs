//! The booking rules end to end, as `recovery local` runs them, in memory and again on
//! DynamoDB and SQS in `moto_server` (12 leads each, every kind of lead; 100 and 50
//! leads of random kinds in `scripts/soak`): each lead given a mix of a
//! booking before its form (Calendly), a booking before its check (Cal.com), a
//! cancelled direct booking (the generic route), a booking after outreach
//! (SavvyCal) and a disqualification (Skode); SkipUp's sandbox drops 30% of its
//! webhooks, and every remaining webhook and booking arrives 1 to 5 times, shuffled.
//! Then each lead's status must be the one the rules give for its events, SkipUp must
//! have been asked for exactly the requests that were needed, each stopped once when
//! it had to stop, and reconciliation must leave no lead waiting on a request SkipUp
//! has ended.
//!
//! The order is made by the test, not by timing: the checks are held until every
//! signal meant to come before them was applied (then the pipeline's clock moves past
//! the recovery delay), and the conversations are held until the test lets them go,
//! some before the late signals (they end on their own) and the rest after the
//! pipeline stopped them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use recovery::simulate::{Sender, send};
use std::sync::Arc;

use recovery::stack::{Controls, Options, ShiftedClock, Stack, local_defaults};
use serde_json::json;
use shared::config::Env;
use shared::connectors::Provider;
use shared::lead::LeadStatus;
use skipup_sandbox::{ConversationConfig, Outcome, SandboxConfig};

/// A guard, not a pace: a wait that lasts this long fails with what is stuck.
const PATIENCE: Duration = Duration::from_secs(240);
/// The pipeline's recovery delay; the test moves the pipeline's clock past it.
const DELAY: Duration = Duration::from_secs(1);

/// What happens to one lead, drawn at random.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    before_form: bool,
    before_check: bool,
    cancelled_direct: bool,
    after_outreach: bool,
    disqualified: bool,
    /// The disqualification comes after outreach began (else before the check).
    late: bool,
}

impl Plan {
    fn draw(rng: &mut fastrand::Rng) -> Self {
        Self {
            before_form: rng.f64() < 0.15,
            before_check: rng.f64() < 0.15,
            cancelled_direct: rng.f64() < 0.2,
            after_outreach: rng.f64() < 0.3,
            disqualified: rng.f64() < 0.2,
            late: rng.bool(),
        }
    }

    /// Every kind of lead at least once, for the small runs.
    fn every_kind() -> Vec<Self> {
        let plan = Self::default();
        vec![
            Self {
                before_form: true,
                ..plan
            },
            Self {
                before_check: true,
                ..plan
            },
            Self {
                cancelled_direct: true,
                ..plan
            },
            Self {
                after_outreach: true,
                ..plan
            },
            Self {
                disqualified: true,
                late: true,
                ..plan
            },
            Self {
                disqualified: true,
                ..plan
            },
            plan,
            Self {
                after_outreach: true,
                ..plan
            },
            Self {
                disqualified: true,
                late: true,
                ..plan
            },
            Self {
                before_form: true,
                disqualified: true,
                late: true,
                ..plan
            },
            Self {
                cancelled_direct: true,
                after_outreach: true,
                ..plan
            },
            plan,
        ]
    }

    /// Whether the pipeline must stop the lead's conversation if it is still going.
    fn must_stop(self) -> bool {
        self.after_outreach || self.disqualified
    }

    /// Whether a booking stands when the check comes (the generic booking is
    /// cancelled before it).
    fn disqualified_before_check(self) -> bool {
        self.disqualified && !self.late
    }

    fn booked_before_check(self) -> bool {
        self.before_form || self.before_check
    }
}

fn email(i: usize) -> String {
    format!("booker{i:03}@firm{}.example", i % 13)
}

fn options(sdk: Option<aws_config::SdkConfig>, extra: &[(&str, &str)]) -> Options {
    let mut pairs: Vec<(String, String)> = local_defaults()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("RECOVERY_DELAY_SECONDS", "1"),
        ("RECONCILE_AFTER_SECONDS", "3"),
        ("RECONCILE_INTERVAL_SECONDS", "2"),
        ("RECONCILE_REQUESTS_PER_MINUTE", "6000"),
        ("SKODE_SUPPRESS_STATUSES", "lost,do_not_contact"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        pairs.push((k.into(), v.into()));
    }
    Options {
        port: 0,
        env: Env::from_pairs(pairs),
        sandbox: SandboxConfig {
            rate_limit: 100_000,
            seed: 11,
            conversation: ConversationConfig {
                // Held until the test lets each go: a booking after outreach lands
                // mid-conversation because the test says so, not by timing.
                held: true,
                step: Duration::from_millis(20),
                follow_up_odds: 0.5,
                booked_odds: 0.5,
                copies: (1, 5),
                shuffle: true,
                drop_webhooks: 0.3,
                retry_unit: Duration::from_millis(50),
                ..ConversationConfig::default()
            },
            ..SandboxConfig::default()
        },
        hubspot: None,
        salesforce: None,
        retry_scale: 60.0,
        workers: 4,
        sdk,
        allow_aws: false,
        controls: Controls {
            hold_checks: true,
            clock: Some(Arc::new(ShiftedClock::default())),
        },
    }
}

/// One delivery to sign and send: its connector and body.
type Delivery = (Provider, Vec<u8>);

fn calendly(i: usize) -> Delivery {
    let body = json!({
        "event": "invitee.created", "created_at": "2026-12-01T10:00:00.000000Z",
        "created_by": "https://api.calendly.com/users/AAAA",
        "payload": {
            "email": email(i), "name": format!("Booker {i}"),
            "uri": format!("https://api.calendly.com/scheduled_events/EV{i}/invitees/INV{i}"),
            "scheduled_event": {"uri": format!("https://api.calendly.com/scheduled_events/EV{i}"),
                "start_time": "2026-12-10T15:00:00.000000Z", "end_time": "2026-12-10T15:30:00.000000Z"},
            "rescheduled": false
        }
    });
    (named("calendly"), body.to_string().into_bytes())
}

fn calcom(i: usize) -> Delivery {
    let body = json!({
        "triggerEvent": "BOOKING_CREATED", "createdAt": "2026-12-01T10:00:00.000Z",
        "payload": {"uid": format!("cal{i}"), "bookingId": i, "startTime": "2026-12-11T15:00:00Z",
            "endTime": "2026-12-11T15:30:00Z", "status": "ACCEPTED",
            "attendees": [{"email": email(i), "name": format!("Booker {i}"), "timeZone": "Europe/Berlin"}]}
    });
    (named("calcom"), body.to_string().into_bytes())
}

fn savvycal(i: usize) -> Delivery {
    let body = json!({
        "type": "event.created", "id": format!("evt_sc{i}"), "version": "1.0",
        "occurred_at": "2026-12-01T10:05:00Z",
        "payload": {"id": format!("sc{i}"), "state": "confirmed", "start_at": "2026-12-12T15:00:00Z",
            "end_at": "2026-12-12T15:30:00Z",
            "attendees": [{"email": "owner@vendor.example", "display_name": "Owner", "is_organizer": true},
                          {"email": email(i), "display_name": format!("Booker {i}"), "is_organizer": false}]}
    });
    (named("savvycal"), body.to_string().into_bytes())
}

fn generic(i: usize, event: &str) -> Delivery {
    let body = json!({"email": email(i), "event": event, "booking_id": format!("cp{i}"),
        "start_at": "2026-12-13T15:00:00Z", "id": format!("cp{i}:{event}")});
    (named("bookings"), body.to_string().into_bytes())
}

fn disqualify(i: usize) -> Delivery {
    let body = json!({"id": format!("evt_dq{i}"), "event": "lead.updated",
        "created_at": "2026-12-01T10:06:00Z",
        "data": {"id": format!("sk{i}"), "email": email(i), "status": "lost"}});
    (named("skode"), body.to_string().into_bytes())
}

fn named(name: &str) -> Provider {
    Provider::named(name).expect("a connector")
}

/// Sends every delivery 1 to 5 times, all shuffled together.
async fn deliver(stack: &Stack, rng: &mut fastrand::Rng, deliveries: Vec<Delivery>) {
    let mut all = Vec::new();
    for delivery in deliveries {
        for _ in 0..rng.usize(1..=5) {
            all.push(delivery.clone());
        }
    }
    rng.shuffle(&mut all);
    let http = reqwest::Client::new();
    for (provider, body) in all {
        let url = format!("{}{}", stack.url(), provider.route());
        let secret = format!("whsec_local_{}", provider.as_str());
        let (status, answer) = send(&http, Sender::Connector(provider), &url, &secret, &body)
            .await
            .unwrap();
        assert_eq!(status, 200, "{provider}: {answer}");
    }
}

/// Checks `check` every `poll` until it holds (or PATIENCE runs out).
async fn wait_until<F: AsyncFn() -> Result<(), String>>(what: &str, poll: Duration, check: F) {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(state) if started.elapsed() > PATIENCE => panic!("{what}: {state}"),
            Err(_) => tokio::time::sleep(poll).await,
        }
    }
}

async fn statuses(stack: &Stack) -> HashMap<String, (LeadStatus, Option<String>)> {
    stack
        .leads()
        .await
        .unwrap()
        .into_iter()
        .map(|l| {
            (
                l.profile.email.as_str().to_string(),
                (l.status, l.meeting_request_id),
            )
        })
        .collect()
}

/// Plays the rules for the leads of `plans`, looking at the stack every `poll`.
async fn run(stack: &Stack, plans: Vec<Plan>, poll: Duration) {
    let sandbox = stack.sandbox().expect("the embedded sandbox");
    let mut rng = fastrand::Rng::with_seed(2026);
    let leads = plans.len();
    let http = reqwest::Client::new();

    // Bookings before their forms exist.
    let early = (0..leads)
        .filter(|i| plans[*i].before_form)
        .map(calendly)
        .collect();
    deliver(stack, &mut rng, early).await;
    wait_until("the early bookings remembered", poll, async || {
        let deps = stack.apply_deps();
        for i in (0..leads).filter(|i| plans[*i].before_form) {
            let address = shared::lead::EmailAddress::parse(&email(i)).unwrap();
            let remembered = deps
                .store
                .remembered_bookings(&address, chrono::Utc::now())
                .await
                .unwrap();
            if remembered.is_empty() {
                return Err(format!("nothing remembered for {i}"));
            }
        }
        Ok(())
    })
    .await;

    // The forms.
    for i in 0..leads {
        let form = json!({"email": email(i), "name": format!("Booker {i}"), "submission_id": format!("bk_{i}")});
        let (status, answer) = send(
            &http,
            Sender::Form,
            &format!("{}/forms", stack.url()),
            "whsec_local_forms",
            &serde_json::to_vec(&form).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(status, 202, "{answer}");
    }

    // Before the checks: bookings, cancelled direct bookings, early disqualifications.
    let mut before = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        if plan.before_check {
            before.push(calcom(i));
        }
        if plan.cancelled_direct {
            before.push(generic(i, "booked"));
            before.push(generic(i, "cancelled"));
        }
        if plan.disqualified_before_check() {
            before.push(disqualify(i));
        }
    }
    deliver(stack, &mut rng, before).await;
    wait_until("the pre-check signals applied", poll, async || {
        let leads = stack.leads().await.unwrap();
        for (i, plan) in plans.iter().enumerate() {
            let Some(lead) = leads.iter().find(|l| l.profile.email.as_str() == email(i)) else {
                return Err(format!("no lead {i}"));
            };
            let state = |key: &str| {
                lead.bookings
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, s)| *s)
            };
            use shared::lead::BookingState::{Booked, Cancelled};
            let calendly =
                format!("calendly:https://api.calendly.com/scheduled_events/EV{i}/invitees/INV{i}");
            let applied = (!plan.before_form || state(&calendly) == Some(Booked))
                && (!plan.before_check || state(&format!("calcom:cal{i}")) == Some(Booked))
                && (!plan.cancelled_direct || state(&format!("bookings:cp{i}")) == Some(Cancelled))
                && (!plan.disqualified_before_check() || lead.status == LeadStatus::Suppressed);
            if !applied {
                return Err(format!(
                    "lead {i} {plan:?}: {} {:?}",
                    lead.status, lead.bookings
                ));
            }
        }
        Ok(())
    })
    .await;
    // Every signal meant to come first was applied: now the checks come, due.
    stack.advance_clock(DELAY).unwrap();
    stack.release_checks();
    // Outreach begins for the leads that need it.
    let needed: Vec<usize> = (0..leads)
        .filter(|i| !plans[*i].booked_before_check() && !plans[*i].disqualified_before_check())
        .collect();
    wait_until("the requests made", poll, async || {
        let now = statuses(stack).await;
        let missing: Vec<&usize> = needed
            .iter()
            .filter(|i| now.get(&email(**i)).is_none_or(|(_, mr)| mr.is_none()))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("no request yet for {missing:?}"))
        }
    })
    .await;

    // Half the conversations that will have to stop end on their own first (the
    // pipeline's cancellation then finds them over: SkipUp answers 422, and a request
    // it booked outranks a disqualification even when its `booked` webhook was
    // lost); the rest are still going.
    let must_stop: Vec<usize> = needed
        .iter()
        .copied()
        .filter(|i| plans[*i].must_stop())
        .collect();
    let ended_first: Vec<usize> = must_stop.iter().copied().skip(1).step_by(2).collect();
    for i in &ended_first {
        sandbox.release(&email(*i));
    }
    wait_until(
        "the conversations let go first ended",
        poll,
        async || match ended_first.iter().find(|i| !sandbox.finished(&email(**i))) {
            Some(i) => Err(format!("lead {i} still playing")),
            None => Ok(()),
        },
    )
    .await;

    // After outreach: bookings elsewhere and late disqualifications.
    let mut after = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        if plan.after_outreach && needed.contains(&i) {
            after.push(savvycal(i));
        }
        // A late disqualification reaches a lead with or without outreach.
        if plan.disqualified && plan.late {
            after.push(disqualify(i));
        }
    }
    deliver(stack, &mut rng, after).await;
    // The pipeline stopped every conversation still going that had to stop.
    wait_until("the conversations stopped", poll, async || {
        let now = statuses(stack).await;
        let cancels = sandbox.cancels();
        let waiting: Vec<&usize> = must_stop
            .iter()
            .filter(|i| !ended_first.contains(i))
            .filter(|i| {
                let mr = now[&email(**i)].1.as_ref();
                mr.is_none_or(|mr| !cancels.contains_key(mr))
            })
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!("not cancelled yet: {waiting:?}"))
        }
    })
    .await;
    sandbox.release_all();

    // Every conversation played out, then reconciliation repaired what was dropped.
    wait_until("everything settled", poll, async || {
        if sandbox.conversations_playing() > 0 {
            return Err(format!(
                "{} conversations playing",
                sandbox.conversations_playing()
            ));
        }
        let now = statuses(stack).await;
        let open: Vec<_> = now
            .iter()
            .filter(|(_, (s, _))| {
                matches!(
                    s,
                    LeadStatus::MeetingRequested | LeadStatus::FollowUpSent | LeadStatus::Submitted
                )
            })
            .map(|(e, s)| format!("{e} {s:?}"))
            .collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("still open: {open:?}"))
        }
    })
    .await;

    let now = statuses(stack).await;
    // How each conversation ended at SkipUp: on its own (booked, or cancelled by the
    // prospect), or stopped by our cancellation.
    let conversations: HashMap<String, (Outcome, bool)> = sandbox
        .conversations()
        .into_iter()
        .map(|c| (c.participant.clone(), (c.outcome, c.cancelled_by_api)))
        .collect();
    let cancels = sandbox.cancels();
    let actions = sandbox.actions();
    let (mut stopped_by_us, mut over_first) = (0, 0);
    let created = sandbox.created_per_participant();
    for (i, plan) in plans.iter().enumerate() {
        let who = email(i);
        let (status, mr) = &now[&who];
        let stopped = mr
            .as_ref()
            .and_then(|mr| cancels.get(mr))
            .copied()
            .unwrap_or(0);
        let asked: Vec<u16> = mr
            .as_deref()
            .map(|mr| {
                actions
                    .iter()
                    .filter(|a| a.action == "cancel" && a.meeting_request_id == mr)
                    .map(|a| a.status)
                    .collect()
            })
            .unwrap_or_default();
        // SkipUp's own end, when the conversation reached it before our cancellation
        // did: then its booked or cancelled is one of the lead's events too.
        let skipup_end = match conversations.get(&who) {
            Some((Outcome::Booked, false)) => Some(LeadStatus::MeetingScheduled),
            Some((Outcome::Cancelled, false)) => Some(LeadStatus::ReEnterNurture),
            _ => None,
        };
        let expected = if plan.booked_before_check() && !plan.disqualified {
            LeadStatus::BookedDirectly
        } else if !needed.contains(&i) {
            LeadStatus::Suppressed
        } else if plan.after_outreach {
            LeadStatus::MeetingScheduled
        } else if plan.disqualified {
            // A meeting SkipUp booked outranks the disqualification.
            match skipup_end {
                Some(LeadStatus::MeetingScheduled) => LeadStatus::MeetingScheduled,
                _ => LeadStatus::Suppressed,
            }
        } else {
            skipup_end.expect("a conversation nobody stopped ends on its own")
        };
        if *status != expected {
            let lead = stack
                .leads()
                .await
                .unwrap()
                .into_iter()
                .find(|l| l.profile.email.as_str() == who)
                .unwrap();
            let timeline = stack.timeline(&lead.id).await.unwrap();
            panic!(
                "{who} {plan:?}: {status} but the rules give {expected} (cancel answers {asked:?}, SkipUp {:?}); timeline {timeline:#?}",
                conversations.get(&who)
            );
        }
        if needed.contains(&i) {
            assert_eq!(created.get(&who), Some(&1), "{who}: one request");
            let must_stop = plan.after_outreach || plan.disqualified;
            match (must_stop, skipup_end) {
                // Stopped mid-way: cancelled once (a retried call under the same
                // idempotency key is answered with the same 200, and changes nothing),
                // nothing sent after it.
                (true, None) => {
                    assert!(
                        !asked.is_empty() && asked.iter().all(|s| *s == 200),
                        "{who} {plan:?}: cancel answers {asked:?}"
                    );
                    assert_eq!(stopped, 1, "{who} {plan:?}");
                    stopped_by_us += 1;
                }
                // It had ended on its own: SkipUp's 422 taken as done (not asked at
                // all when SkipUp's booking was applied first).
                (true, Some(_)) => {
                    assert!(asked.iter().all(|s| *s == 422), "{who} {plan:?}: {asked:?}");
                    assert_eq!(stopped, 0, "{who}");
                    over_first += 1;
                }
                (false, _) => assert!(asked.is_empty(), "{who} {plan:?}: cancelled for nothing"),
            }
        } else {
            assert_eq!(created.get(&who), None, "{who} {plan:?}: no request");
        }
    }
    // Exactly the conversations the test let go first ended on their own.
    assert_eq!(stopped_by_us, must_stop.len() - ended_first.len());
    assert_eq!(over_first, ended_first.len());
    assert!(stopped_by_us > 0 && over_first > 0, "{must_stop:?}");
    assert!(
        sandbox.cancellations().values().all(|c| !c.notify),
        "a prospect was told of a cancellation"
    );
    // Every kind of lead was in the run, and reconciliation set some right.
    let kinds = [
        (
            "booked before the form",
            plans.iter().filter(|p| p.before_form).count(),
        ),
        (
            "booked before the check",
            plans.iter().filter(|p| p.before_check).count(),
        ),
        (
            "cancelled direct booking, then recovered",
            plans
                .iter()
                .filter(|p| p.cancelled_direct && !p.booked_before_check() && !p.disqualified)
                .count(),
        ),
        (
            "booked after outreach",
            needed.iter().filter(|i| plans[**i].after_outreach).count(),
        ),
        (
            "disqualified after outreach",
            needed
                .iter()
                .filter(|i| plans[**i].disqualified && plans[**i].late)
                .count(),
        ),
    ];
    for (name, count) in kinds {
        assert!(count > 0, "no lead {name}");
    }
    let mut reconciled = 0;
    for lead in stack.leads().await.unwrap() {
        let timeline = stack.timeline(&lead.id).await.unwrap();
        reconciled += usize::from(
            timeline
                .iter()
                .any(|e| e.event_id.starts_with("reconcile:")),
        );
    }
    assert!(reconciled > 0, "reconciliation repaired no lead");
    assert!(
        sandbox.sent_after_cancel().is_empty(),
        "{:?}",
        sandbox.sent_after_cancel()
    );
    assert!(!sandbox.dropped().is_empty(), "some webhooks were dropped");
    assert_eq!(stack.dead_letters().await, 0);
    let unmatched = stack.unmatched().await.unwrap();
    assert!(unmatched.is_empty(), "{unmatched:?}");
}

/// `count` leads of random kinds (a soak), or `None`: each kind at least once.
fn plans(count: Option<usize>) -> Vec<Plan> {
    match count {
        Some(count) => {
            let mut rng = fastrand::Rng::with_seed(2026);
            (0..count).map(|_| Plan::draw(&mut rng)).collect()
        }
        None => Plan::every_kind(),
    }
}

async fn in_memory(count: Option<usize>) {
    let stack = Stack::start(options(None, &[])).await.unwrap();
    run(&stack, plans(count), Duration::from_millis(100)).await;
}

async fn on_moto(count: Option<usize>) {
    let moto = testkit::moto::moto();
    let prefix = testkit::unique_name("bookings");
    let mut options = options(
        Some(moto.sdk_config().await),
        &[("LOCAL_RESOURCE_PREFIX", prefix.as_str())],
    );
    // One consumer per queue, as in the pipeline test (moto has no FIFO group lock).
    options.workers = 1;
    let stack = Stack::start(options).await.unwrap();
    // Each look scans the leads, on the moto process that serves the pipeline too.
    run(&stack, plans(count), Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_rules_end_to_end_in_memory() {
    in_memory(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_rules_end_to_end_on_dynamodb_and_sqs() {
    on_moto(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: scripts/soak"]
async fn soak_the_booking_rules_with_100_leads_in_memory() {
    in_memory(Some(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: scripts/soak"]
async fn soak_the_booking_rules_with_50_leads_on_dynamodb_and_sqs() {
    on_moto(Some(50)).await;
}
