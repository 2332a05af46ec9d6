//! The whole pipeline end to end, as `recovery local` runs it: signed form posts (12
//! in memory, 10 on moto; 100 and 40 in `scripts/soak`),
//! the recovery checks against a SkipUp sandbox that fails 30% of calls, and every
//! conversation webhook delivered 1 to 8 times in shuffled order. Run in memory and
//! again on DynamoDB and SQS in `moto_server`. Each lead must end in the status its
//! conversation earned, with each applied event once on its timeline, exactly one
//! meeting request per lead, and nothing lost (no dead letter, no unmatched event,
//! every webhook delivered). HubSpot and Salesforce doubles fail 30% of calls too
//! (rate limits with their headers, 5xx, timeouts): each lead's last status must
//! land in both, with one note (HubSpot) and one Task (Salesforce) per status change
//! and none twice.
//!
//! The test orders the work: checks are held until every form is stored, then the
//! pipeline's clock moves past the delay; conversations are held until every lead
//! was asked for (and its CRMs told), then Salesforce's sessions end, and only then
//! do the conversations play out. Waits end on what happened; their deadline is a
//! guard that reports what is stuck.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recovery::simulate::{Sender, send};
use recovery::stack::{Controls, Options, ShiftedClock, Stack, local_defaults};
use serde_json::json;
use shared::config::Env;
use shared::crm::{SalesforceStatusMap, marker_in, status_changes, status_slug};
use shared::lead::{Lead, LeadStatus};
use skipup_sandbox::{
    ConversationConfig, FaultConfig, HubSpotConfig, Outcome, SalesforceConfig, Sandbox,
    SandboxConfig,
};
use testkit::meter::{COSTED_REQUESTS, Meter, RequestsPerLead};

/// Leads per run: enough for every path (each rep kind, CRM contacts found and
/// created, faults of every kind); the soak runs take more.
const LEADS: usize = 12;
const MOTO_LEADS: usize = 10;
const SOAK_LEADS: usize = 100;
/// On moto, with one consumer per queue (see below), fewer: every CRM push there is
/// a dozen DynamoDB and HTTP calls in a row.
const SOAK_MOTO_LEADS: usize = 40;
/// The recovery track, in order.
const TRACK: [LeadStatus; 5] = [
    LeadStatus::Submitted,
    LeadStatus::MeetingRequested,
    LeadStatus::FollowUpSent,
    LeadStatus::MeetingScheduled,
    LeadStatus::ReEnterNurture,
];
/// How long the run may go without any lead, conversation or delivery moving before
/// the test reports what is stuck. Retries here wait a second or less (time runs 60
/// times faster for them), a held CRM lease 5 s, reconciliation a minute. Progress,
/// not a deadline: a slow machine takes longer, a stuck lead stops moving.
const STALL: Duration = Duration::from_secs(120);
/// The pipeline's recovery delay; the test moves the pipeline's clock past it.
const DELAY: Duration = Duration::from_secs(1);
/// A bound on the whole run, should something keep moving without settling.
const PATIENCE: Duration = Duration::from_secs(900);

/// The org's Lead Status picklist in this run, one value per status so that the
/// test can tell which status landed.
const SF_MAP: &str = "booked-directly=Booked Directly;meeting-requested=Meeting Requested;\
    follow-up-sent=Follow-up Sent;meeting-scheduled=Meeting Scheduled;\
    re-enter-nurture=Re-enter Nurture;recovery-failed=Recovery Failed;suppressed=Suppressed";

/// A CRM double that fails 30% of calls: a third rate limits, a third 5xx, the rest
/// slower than the connector waits (after taking effect).
fn crm_faults(seed: u64) -> FaultConfig {
    FaultConfig {
        fault_rate: 0.3,
        slow_delay: Duration::from_millis(250),
        // HubSpot's window, 100 times shorter (its 429 names the window to wait).
        rate_limit: 20,
        rate_window: Duration::from_millis(100),
        seed,
    }
}

fn options(extra: &[(&str, &str)], sdk: Option<aws_config::SdkConfig>) -> Options {
    let mut pairs: Vec<(String, String)> = local_defaults()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.push(("RECOVERY_DELAY_SECONDS".into(), "1".into()));
    pairs.push(("SKIPUP_TIMEOUT_SECONDS".into(), "1".into()));
    pairs.push(("CRM_TIMEOUT_SECONDS".into(), "0.15".into()));
    pairs.push(("SALESFORCE_STATUS_MAP".into(), SF_MAP.into()));
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Options {
        port: 0,
        env: Env::from_pairs(pairs),
        sandbox: SandboxConfig {
            members: vec![
                "owner@vendor.example".into(),
                "alex.morgan@vendor.example".into(),
            ],
            fault_rate: 0.3,
            // Time runs 60 times faster for retries, so for the rate limit too.
            rate_window: Duration::from_secs(1),
            slow_delay: Duration::from_millis(1500),
            seed: 42,
            conversation: ConversationConfig {
                step: Duration::from_millis(20),
                follow_up_odds: 0.5,
                booked_odds: 0.6,
                copies: (1, 8),
                shuffle: true,
                held: true,
                retry_unit: Duration::from_millis(50),
                ..ConversationConfig::default()
            },
            ..SandboxConfig::default()
        },
        hubspot: Some(HubSpotConfig {
            faults: crm_faults(5),
            // Small pages, so that finding the notes made follows the paging.
            page_size: 2,
            ..HubSpotConfig::default()
        }),
        salesforce: Some(SalesforceConfig {
            lead_statuses: SalesforceStatusMap::parse(SF_MAP)
                .unwrap()
                .values()
                .map(str::to_string)
                .collect(),
            faults: crm_faults(6),
            ..SalesforceConfig::default()
        }),
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

fn email(i: usize) -> String {
    format!("prospect{i:03}@company{}.example", i % 17)
}

async fn start(options: Options) -> Stack {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    Stack::start(options).await.unwrap()
}

/// What the sandbox did to the pipeline.
#[derive(Clone, Copy, PartialEq)]
enum Day {
    /// SkipUp faults, and every webhook delivered 1 to 8 times, shuffled.
    Harsh,
    /// No faults, each webhook delivered once, in order.
    Quiet,
}

/// Posts `count` forms to `stack` and checks everything that follows.
async fn run(stack: &Stack, count: usize, day: Day) {
    let sandbox = stack.sandbox().expect("the embedded sandbox");
    let http = reqwest::Client::new();
    let url = format!("{}/forms", stack.url());
    // Some prospects are already in the CRMs; the others are created there.
    for i in 0..count {
        if let Some(hubspot) = stack.hubspot()
            && i % 3 == 0
        {
            hubspot.add_contact(&email(i));
        }
        if let Some(salesforce) = stack.salesforce()
            && i % 2 == 0
        {
            salesforce.add_lead(&email(i), &format!("Prospect {i}"), "Web");
        }
    }
    for i in 0..count {
        // A third of the leads have a rep who is not a SkipUp member.
        let rep = match i % 3 {
            0 => "alex.morgan@vendor.example",
            1 => "gone.rep@vendor.example",
            _ => "owner@vendor.example",
        };
        let form = json!({ "email": email(i), "name": format!("Prospect {i}"),
            "company": format!("Company {}", i % 17), "assigned_rep_email": rep,
            "submission_id": format!("sub_{i}") });
        let body = serde_json::to_vec(&form).unwrap();
        // Like a form tool: a 503 (the store or queue was slow) is posted again, for
        // as long as the stall guard allows.
        let first = Instant::now();
        loop {
            let (status, answer) = send(&http, Sender::Form, &url, "whsec_local_forms", &body)
                .await
                .unwrap();
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "{answer}");
            assert!(
                first.elapsed() < STALL,
                "form {i} still refused after {STALL:?}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // With CRM connectors, a lead has settled once its CRMs were told its status.
    let crms = stack.hubspot().is_some() || stack.salesforce().is_some();
    let told = |l: &Lead| !crms || l.crm_status == Some(l.status);

    // Every form is stored: the checks come, due.
    stack.advance_clock(DELAY).unwrap();
    stack.release_checks();
    // Every lead asked for, its CRMs told; no conversation has moved yet.
    settle(stack, count, "every lead asked for", |leads| {
        leads.len() == count
            && sandbox.conversations().len() == count
            && leads
                .iter()
                .all(|l| l.status == LeadStatus::MeetingRequested && told(l))
    })
    .await;
    // Salesforce ends its sessions: the pushes to come must fetch a token again.
    if let Some(salesforce) = stack.salesforce() {
        assert!(salesforce.tokens_issued() > 0);
        salesforce.expire_sessions();
    }
    sandbox.release_all();
    let leads = settle(stack, count, "every conversation played out", |leads| {
        leads.len() == count
            && sandbox.conversations_playing() == 0
            && leads.iter().all(|l| {
                matches!(
                    l.status,
                    LeadStatus::MeetingScheduled | LeadStatus::ReEnterNurture
                ) && told(l)
            })
    })
    .await;

    // Exactly one meeting request per lead, whatever the faults and retries.
    let created = sandbox.created_per_participant();
    assert_eq!(created.len(), count);
    assert!(created.values().all(|n| *n == 1), "{created:?}");
    let faults = sandbox.status_counts();
    assert_eq!(
        faults.keys().any(|s| *s >= 500),
        day == Day::Harsh,
        "the sandbox injected faults only on a harsh day: {faults:?}"
    );

    // Each lead ends where its conversation took it.
    let by_email: HashMap<&str, &Lead> = leads
        .iter()
        .map(|l| (l.profile.email.as_str(), l))
        .collect();
    for conversation in sandbox.conversations() {
        let lead = by_email[conversation.participant.as_str()];
        let expected = match conversation.outcome {
            Outcome::Booked => LeadStatus::MeetingScheduled,
            Outcome::Cancelled => LeadStatus::ReEnterNurture,
        };
        assert_eq!(lead.status, expected, "{}", lead.id);
        assert_eq!(
            lead.meeting_request_id.as_deref(),
            Some(conversation.meeting_request_id.as_str())
        );
        let timeline = stack.timeline(&lead.id).await.unwrap();
        let ids: Vec<&str> = timeline.iter().map(|e| e.event_id.as_str()).collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "an event twice on {}: {ids:?}",
            lead.id
        );
        let finals = timeline
            .iter()
            .filter(|e| e.status == Some(expected))
            .count();
        assert_eq!(finals, 1, "{}: {timeline:?}", lead.id);
        let follow_ups = timeline
            .iter()
            .filter(|e| e.status == Some(LeadStatus::FollowUpSent))
            .count();
        // In order and once each, every follow-up lands; shuffled, one that comes
        // after the end is rightly ignored (how many do depends on the order the
        // copies arrived in, so the harsh day asserts only the bound).
        match day {
            Day::Quiet => assert_eq!(
                follow_ups,
                usize::from(conversation.follow_up),
                "{}",
                lead.id
            ),
            Day::Harsh => assert!(
                follow_ups <= usize::from(conversation.follow_up),
                "{}",
                lead.id
            ),
        }
        // Statuses on the timeline only move forward along the recovery track.
        let track: Vec<usize> = timeline
            .iter()
            .filter_map(|e| e.status)
            .map(|s| TRACK.iter().position(|t| *t == s).expect("on the track"))
            .collect();
        assert!(
            track.windows(2).all(|w| w[0] < w[1]),
            "{}: {timeline:?}",
            lead.id
        );
    }

    // Nothing lost: every delivery was accepted, nothing dead or unmatched.
    let deliveries = sandbox.deliveries();
    let events: usize = sandbox
        .conversations()
        .iter()
        .map(|c| c.event_types().len())
        .sum();
    match day {
        Day::Harsh => assert!(
            deliveries.len() > events,
            "some webhooks came more than once"
        ),
        Day::Quiet => assert_eq!(deliveries.len(), events, "each webhook came once"),
    }
    assert!(
        deliveries.iter().all(|d| d.delivered),
        "a webhook was not delivered"
    );
    assert_eq!(stack.dead_letters().await, 0);
    let unmatched = stack.unmatched().await.unwrap();
    assert!(unmatched.is_empty(), "{unmatched:?}");
    check_crms(stack, &leads, day).await;
}

/// Looks at the stack until `done` holds of its leads, and returns them. Fails, with
/// what is stuck, once nothing has moved for [`STALL`] (or after [`PATIENCE`]).
async fn settle(
    stack: &Stack,
    count: usize,
    what: &str,
    done: impl Fn(&[Lead]) -> bool,
) -> Vec<Lead> {
    let sandbox = stack.sandbox().expect("the embedded sandbox");
    let started = Instant::now();
    let (mut seen, mut moved) = (None, Instant::now());
    loop {
        let leads = stack.leads().await.unwrap();
        if done(&leads) {
            return leads;
        }
        let now = progress(&leads, sandbox);
        if seen.as_ref() != Some(&now) {
            (seen, moved) = (Some(now), Instant::now());
        }
        if moved.elapsed() > STALL || started.elapsed() > PATIENCE {
            let stuck: Vec<String> = leads
                .iter()
                .map(|l| {
                    format!(
                        "{} {} (CRM {:?}) {:?}",
                        l.id, l.status, l.crm_status, l.recovery
                    )
                })
                .collect();
            panic!(
                "{what}: not so after {:?} ({:?} without progress): {} of {count} leads, {} conversations ({} playing), {} dead letters, SkipUp answers {:?}; leads: {stuck:?}",
                started.elapsed(),
                moved.elapsed(),
                leads.len(),
                sandbox.conversations().len(),
                sandbox.conversations_playing(),
                stack.dead_letters().await,
                sandbox.status_counts()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where the run stands: each lead's version and CRM status, the conversations, and
/// the webhooks sent and delivered. It changes whenever anything moves.
#[derive(PartialEq)]
struct Progress {
    leads: Vec<(String, u64, Option<LeadStatus>)>,
    conversations: usize,
    deliveries: usize,
    delivered: usize,
}

fn progress(leads: &[Lead], sandbox: &Sandbox) -> Progress {
    let mut leads: Vec<_> = leads
        .iter()
        .map(|l| (l.id.to_string(), l.version, l.crm_status))
        .collect();
    leads.sort_by(|a, b| a.0.cmp(&b.0));
    let deliveries = sandbox.deliveries();
    Progress {
        leads,
        conversations: sandbox.conversations().len(),
        deliveries: deliveries.len(),
        delivered: deliveries.iter().filter(|d| d.delivered).count(),
    }
}

/// Each lead's last status landed in HubSpot and Salesforce, with one note and one
/// Task per status change of its timeline, none twice, and nothing else.
async fn check_crms(stack: &Stack, leads: &[Lead], day: Day) {
    let (Some(hubspot), Some(salesforce)) = (stack.hubspot(), stack.salesforce()) else {
        return;
    };
    let map = SalesforceStatusMap::parse(SF_MAP).unwrap();
    let property = "lead_recovery_status";
    for lead in leads {
        let email = lead.profile.email.as_str();
        let contact = hubspot.contact(email).expect("a HubSpot contact");
        assert_eq!(
            contact.properties[property],
            json!(status_slug(lead.status)),
            "{}",
            lead.id
        );
        let sf_lead = salesforce.lead(email).expect("a Salesforce Lead");
        assert_eq!(
            Some(sf_lead.status.as_str()),
            map.value(lead.status),
            "{}",
            lead.id
        );

        let timeline = stack.timeline(&lead.id).await.unwrap();
        let mut expected: Vec<String> = status_changes(&lead.id, &timeline)
            .into_iter()
            .map(|c| c.marker)
            .collect();
        expected.sort();
        assert!(!expected.is_empty(), "{}: {timeline:?}", lead.id);
        let mut noted: Vec<String> = hubspot
            .notes_of(email)
            .iter()
            .map(|n| marker_in(&n.body).expect("a note of ours").to_string())
            .collect();
        noted.sort();
        assert_eq!(noted, expected, "HubSpot notes of {}", lead.id);
        let mut tasks: Vec<String> = salesforce
            .tasks_of(email)
            .iter()
            .map(|t| marker_in(&t.subject).expect("a Task of ours").to_string())
            .collect();
        tasks.sort();
        assert_eq!(tasks, expected, "Salesforce Tasks of {}", lead.id);
    }
    assert_eq!(hubspot.contacts().len(), leads.len());
    assert_eq!(salesforce.leads().len(), leads.len());
    assert!(
        hubspot.violations().is_empty(),
        "{:?}",
        hubspot.violations()
    );
    assert!(
        salesforce.violations().is_empty(),
        "{:?}",
        salesforce.violations()
    );
    if day == Day::Harsh {
        let (hs, sf) = (hubspot.status_counts(), salesforce.status_counts());
        assert!(
            hs.contains_key(&429) && hs.keys().any(|s| *s >= 500),
            "{hs:?}"
        );
        assert!(
            sf.contains_key(&403) && sf.keys().any(|s| *s >= 500),
            "{sf:?}"
        );
        assert!(
            sf.contains_key(&401),
            "a session ended during the run: {sf:?}"
        );
        assert!(salesforce.tokens_issued() > 1);
    }
}

async fn in_memory(leads: usize) {
    run(&start(options(&[], None)).await, leads, Day::Harsh).await;
}

async fn on_moto(leads: usize) {
    let moto = testkit::moto::moto();
    let prefix = testkit::unique_name("e2e");
    // The checks and CRM pushes contend for leads while forms still arrive: moto gets
    // one DynamoDB request at a time (testkit::moto), as DynamoDB's atomic writes and
    // isolated transactions would have it.
    let mut options = options(
        &[("LOCAL_RESOURCE_PREFIX", prefix.as_str())],
        Some(moto.sdk_config().await),
    );
    // One consumer per queue: moto does not hold a FIFO message group back while one
    // of its messages is in flight, so two consumers could apply events of the same
    // lead at once, as they cannot on SQS. Concurrent consumers are covered by the
    // memory run.
    options.workers = 1;
    run(&start(options).await, leads, Day::Harsh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_in_memory() {
    in_memory(LEADS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_on_dynamodb_and_sqs() {
    on_moto(MOTO_LEADS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: scripts/soak"]
async fn soak_the_whole_pipeline_with_100_leads_in_memory() {
    in_memory(SOAK_LEADS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: scripts/soak"]
async fn soak_the_whole_pipeline_with_40_leads_on_dynamodb_and_sqs() {
    on_moto(SOAK_MOTO_LEADS).await;
}

/// The AWS requests behind each lead on a quiet day (no SkipUp faults, each webhook
/// delivered once), counted on the wire to moto_server while the whole pipeline runs:
/// the basis of the README's cost figures, written to `target/cost/`. 10 leads, or
/// `QUIET_DAY_LEADS` (`scripts/soak` runs 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_requests_per_lead_on_a_quiet_day() {
    let quiet_leads: usize = std::env::var("QUIET_DAY_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // What this test itself calls, not the pipeline: polling the leads (the `by_day`
    // index) and reading each timeline.
    const TEST_ONLY: [&str; 2] = ["dynamodb:Scan", "dynamodb:Query"];
    let moto = testkit::moto::moto();
    let meter = Meter::new();
    let prefix = testkit::unique_name("quiet");
    let mut options = options(
        &[
            ("LOCAL_RESOURCE_PREFIX", prefix.as_str()),
            // No reconciliation during the run: a quiet day needs none, and its
            // queries would count by how long the run took.
            ("RECONCILE_INTERVAL_SECONDS", "86400"),
        ],
        Some(meter.wrap(moto.sdk_config().await)),
    );
    options.workers = 1;
    // The README's figures are for the pipeline without a CRM connector.
    options.hubspot = None;
    options.salesforce = None;
    options.sandbox.fault_rate = 0.0;
    options.sandbox.conversation.copies = (1, 1);
    options.sandbox.conversation.shuffle = false;
    let stack = start(options).await;
    // Creating the table and queues is not the leads' doing.
    let before = meter.usage();
    run(&stack, quiet_leads, Day::Quiet).await;
    let deliveries = stack.sandbox().unwrap().deliveries().len();
    let mut counted = RequestsPerLead::between(&before, &meter.usage(), quiet_leads, deliveries);
    counted
        .per_lead
        .retain(|operation, _| !TEST_ONLY.contains(&operation.as_str()));
    // Every request the pipeline makes, exactly: a quiet day is the same on every
    // run (the test orders the checks and the conversations, and each webhook comes
    // once), so a change that adds or drops a request fails here and the README's
    // cost figures are brought up to date with it. `d` is webhooks per lead.
    let d = deliveries as f64 / quiet_leads as f64;
    let expected = [
        ("dynamodb:GetItem", 3.0 + 4.0 * d),
        ("dynamodb:PutItem", d),
        ("dynamodb:TransactWriteItems", 3.0 + d),
        // The two daily caps, one conditional update each.
        ("dynamodb:UpdateItem", 2.0),
        // Each webhook queued once; one check per lead.
        ("sqs-fifo:SendMessage", d),
        ("sqs:SendMessage", 1.0),
    ];
    // What Lambda's event source does in AWS (here the local consumers, as often
    // as they poll) and the test's look at the dead letters: not the pipeline's.
    const EVENT_SOURCE: [&str; 3] = ["ReceiveMessage", "DeleteMessageBatch", "GetQueueAttributes"];
    let pipeline: Vec<(&str, f64)> = counted
        .per_lead
        .keys()
        .filter(|op| !EVENT_SOURCE.iter().any(|e| op.ends_with(e)))
        .map(|op| (op.as_str(), counted.requests(op)))
        .collect();
    assert_eq!(
        pipeline.iter().map(|(op, _)| *op).collect::<Vec<_>>(),
        expected.iter().map(|(op, _)| *op).collect::<Vec<_>>(),
        "{counted:?}"
    );
    for ((op, got), (_, want)) in pipeline.iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-9,
            "{op}: {got} per lead, not {want}"
        );
    }
    let report = serde_json::to_string_pretty(&counted).unwrap();
    let path = testkit::workspace_root().join(COSTED_REQUESTS);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &report).unwrap();
    println!("AWS requests per lead on a quiet day: {report}");
}
