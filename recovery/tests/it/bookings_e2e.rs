//! The booking rules end to end, as `recovery local` runs them, in memory (100 leads)
//! and again on DynamoDB and SQS in `moto_server` (50 leads): each lead given a random mix of a
//! booking before its form (Calendly), a booking before its check (Cal.com), a
//! cancelled direct booking (the generic route), a booking after outreach
//! (SavvyCal) and a disqualification (Skode); SkipUp's sandbox drops 30% of its
//! webhooks, and every remaining webhook and booking arrives 1 to 5 times, shuffled.
//! Then each lead's status must be the one the rules give for its events, SkipUp must
//! have been asked for exactly the requests that were needed, each stopped once when
//! it had to stop, and reconciliation must leave no lead waiting on a request SkipUp
//! has ended.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use recovery::simulate::{Sender, send};
use recovery::stack::{Options, Stack, local_defaults};
use serde_json::json;
use shared::config::Env;
use shared::connectors::Provider;
use shared::lead::LeadStatus;
use skipup_sandbox::{ConversationConfig, Outcome, SandboxConfig};

const PATIENCE: Duration = Duration::from_secs(240);

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

fn options(
    delay_secs: &str,
    step: Duration,
    sdk: Option<aws_config::SdkConfig>,
    extra: &[(&str, &str)],
) -> Options {
    let mut pairs: Vec<(String, String)> = local_defaults()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("RECOVERY_DELAY_SECONDS", delay_secs),
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
                // Slow enough that a booking after outreach lands mid-conversation.
                step,
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

/// Plays the rules for `leads` leads, looking at the stack every `poll`.
async fn run(stack: &Stack, leads: usize, poll: Duration) {
    let sandbox = stack.sandbox().expect("the embedded sandbox");
    let mut rng = fastrand::Rng::with_seed(2026);
    let plans: Vec<Plan> = (0..leads).map(|_| Plan::draw(&mut rng)).collect();
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
    let started = Instant::now();
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
    let delay = stack.apply_deps().intake.settings.delay.to_std().unwrap();
    println!(
        "signals before the check applied after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < delay,
        "the signals before the check took {:?}, longer than the {delay:?} recovery delay",
        started.elapsed()
    );

    let phase = Instant::now();
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

    println!(
        "requests made {:?} after the pre-check phase",
        phase.elapsed()
    );
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

    println!("late signals sent at {:?}", phase.elapsed());
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

    println!("settled at {:?}", phase.elapsed());
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
    let mut stopped_by_us = 0;
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
                }
                (false, _) => assert!(asked.is_empty(), "{who} {plan:?}: cancelled for nothing"),
            }
        } else {
            assert_eq!(created.get(&who), None, "{who} {plan:?}: no request");
        }
    }
    assert!(stopped_by_us > 0, "no conversation was stopped mid-way");
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
    if let Some(unmatched) = stack.unmatched() {
        assert!(unmatched.is_empty(), "{unmatched:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_rules_end_to_end_in_memory() {
    let stack = Stack::start(options("8", Duration::from_millis(2500), None, &[]))
        .await
        .unwrap();
    run(&stack, 100, Duration::from_millis(250)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_rules_end_to_end_on_dynamodb_and_sqs() {
    let moto = testkit::moto::moto();
    let prefix = testkit::unique_name("bookings");
    // moto is slower, so this run is smaller and slower-paced. Every signal meant to
    // come before the checks must be applied within the recovery delay (the run
    // asserts it, rather than end on statuses the rules do not give): 50 leads take
    // some 11 s on a 2-core machine and took 3.5 times as long on a loaded CI runner
    // (100 leads, 75 s), hence 60 s. The conversations are slow enough to still be
    // playing when the late signals come, after the last request (one consumer makes
    // them one by one).
    let mut options = options(
        "60",
        Duration::from_secs(6),
        Some(moto.sdk_config().await),
        // The daily caps off: with them this run's requests came ~80 s after the
        // checks were due (not understood: a cap write takes 11 ms on moto), late
        // enough for every conversation to end before the late signals. The caps are
        // tested over moto in shared/tests/dynamo_store.rs.
        &[
            ("LOCAL_RESOURCE_PREFIX", prefix.as_str()),
            ("MAX_RECOVERIES_PER_DAY", "0"),
            ("MAX_RECOVERIES_PER_DOMAIN_PER_DAY", "0"),
        ],
    );
    // One consumer per queue, as in the pipeline test (moto has no FIFO group lock).
    options.workers = 1;
    let stack = Stack::start(options).await.unwrap();
    // Each look scans the leads: on moto, whose one process serves the pipeline too,
    // a look every 250 ms took much of its time.
    run(&stack, 50, Duration::from_secs(2)).await;
}
