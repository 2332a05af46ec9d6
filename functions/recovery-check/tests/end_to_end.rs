//! Detect and recover, end to end: signed form posts through form-intake, checks
//! through recovery-check and the real HTTP SkipUp client, against the SkipUp sandbox
//! checking the contract with 30% transient faults (500, 503, answers slower than the
//! client waits) and a 120-request rate limit. The SQS redelivery of failed checks is
//! simulated by the driver loop below.
//!
//! Every distinct lead gets exactly one meeting request; duplicate posts and re-run
//! checks create none; leads who booked get none; a lead whose organizer is not a
//! member ends RecoveryFailed with SkipUp's reason, unretried; no request carries a
//! timeframe in the past or a description over 5,000 characters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{TimeDelta, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::adapters::fakes::RecordedRedelivery;
use shared::adapters::memory::{MemoryLeadStore, MemoryQueue};
use shared::adapters::skipup::SkipUpClient;
use shared::handlers::{form_intake, recovery_check};
use shared::intake::{IntakeDeps, IntakeSettings};
use shared::lead::{EmailAddress, LeadId, LeadStatus};
use shared::ports::{LeadStore, SystemClock};
use shared::recovery::{CheckMessage, RecoverySettings};
use shared::signature::{SecretSet, TimestampedSignature, WebhookSecret};
use shared::skipup::SkipUpSettings;
use skipup_sandbox::{Sandbox, SandboxConfig};

const FORM_SECRET: &str = "whsec_e2e_forms";
const DEFAULT_ORGANIZER: &str = "owner@vendor.example";
const MEMBER_REP: &str = "alex@vendor.example";
const FORMER_REP: &str = "former.rep@vendor.example";
const LEADS: usize = 150;

struct Pipeline {
    forms: form_intake::FormDeps,
    recovery: recovery_check::RecoveryDeps,
    store: Arc<MemoryLeadStore>,
    checks: Arc<MemoryQueue>,
}

fn pipeline(sandbox: &Sandbox) -> Pipeline {
    let store = Arc::new(MemoryLeadStore::new());
    let checks = Arc::new(MemoryQueue::new());
    let skipup = SkipUpClient::new(SkipUpSettings {
        base_url: sandbox.base_url(),
        api_key: SecretString::from(sandbox.api_key()),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    Pipeline {
        forms: form_intake::FormDeps {
            signature: TimestampedSignature::new(SecretSet::parse(FORM_SECRET), 300),
            max_body_bytes: 64 * 1024,
            intake: IntakeDeps {
                store: store.clone(),
                checks: checks.clone(),
                clock: Arc::new(SystemClock),
                // Due at once: this test is about exactly-once, not about waiting.
                settings: IntakeSettings {
                    delay: TimeDelta::zero(),
                    resubmit_window: TimeDelta::hours(24),
                },
            },
        },
        recovery: recovery_check::RecoveryDeps::new(
            recovery_check::RecoveryPorts {
                store: store.clone(),
                skipup: Arc::new(skipup),
                checks: checks.clone(),
                redelivery: Arc::new(RecordedRedelivery::default()),
                clock: Arc::new(SystemClock),
            },
            RecoverySettings {
                member_cache: Duration::from_secs(300),
                lease: TimeDelta::seconds(30),
                ..RecoverySettings::new(EmailAddress::parse(DEFAULT_ORGANIZER).unwrap())
            },
            Default::default(),
        ),
        store,
        checks,
    }
}

impl Pipeline {
    async fn post_form(&self, body: &Value) -> Value {
        let raw = body.to_string();
        let secret = WebhookSecret::new(FORM_SECRET).unwrap();
        let signature = TimestampedSignature::sign(&secret, Utc::now().timestamp(), raw.as_bytes());
        let request = http::Request::builder()
            .method("POST")
            .uri("/forms")
            .header("x-webhook-signature", signature)
            .body(raw.into_bytes())
            .unwrap();
        let response = form_intake::handle(&self.forms, &request).await;
        assert_eq!(response.status(), 202, "{}", response.body());
        serde_json::from_str(response.body()).unwrap()
    }

    /// Plays SQS and Lambda: delivers queued checks in batches of 10, four batches at
    /// a time, and delivers failed ones again (right away, not after their backoff,
    /// to keep the test short).
    async fn run_checks(&self) {
        let mut pending: Vec<(String, u32)> = Vec::new();
        for round in 0..400 {
            pending.extend(self.checks.drain().into_iter().map(|m| (m.body, 1)));
            if pending.is_empty() {
                return;
            }
            let batches: Vec<Vec<(String, u32)>> = std::mem::take(&mut pending)
                .chunks(10)
                .map(<[_]>::to_vec)
                .collect();
            for wave in batches.chunks(4) {
                let runs = wave.iter().enumerate().map(|(b, batch)| {
                    let event = sqs_event(&format!("{round}-{b}"), batch);
                    async move { (batch, recovery_check::handle(&self.recovery, event).await) }
                });
                for (batch, response) in futures::future::join_all(runs).await {
                    for failure in &response.batch_item_failures {
                        let index: usize = failure
                            .item_identifier
                            .rsplit('-')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        let (body, count) = &batch[index];
                        pending.push((body.clone(), count + 1));
                    }
                }
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("checks did not settle: {} pending", pending.len());
    }

    async fn status(&self, id: &str) -> (LeadStatus, Option<String>) {
        let lead = self
            .store
            .get_lead(&LeadId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        (lead.status, lead.status_reason)
    }
}

fn sqs_event(prefix: &str, batch: &[(String, u32)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .enumerate()
        .map(|(i, (body, count))| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("{prefix}-{i}"));
            m.receipt_handle = Some(format!("r{prefix}-{i}"));
            m.body = Some(body.clone());
            m.attributes
                .insert("ApproximateReceiveCount".into(), count.to_string());
            m
        })
        .collect();
    event
}

fn form(i: usize) -> Value {
    let timezone = ["America/Chicago", "Europe/Berlin", "Asia/Tokyo"][i % 3];
    let mut body = json!({
        "email": format!("lead{i:03}@prospect{}.example", i % 7),
        "name": format!("Lead {i}"),
        "company": format!("Company {i}"),
        "role": "Head of Operations",
        "timezone": timezone,
        "form_id": "demo-request",
        "submission_id": format!("sub_{i:04}"),
        "answers": {"Team size": (i * 3) % 200, "Current tool": "Spreadsheets"},
        "source": "website",
    });
    if i % 10 == 1 {
        body["assigned_rep_email"] = json!(MEMBER_REP);
    }
    if i == 2 {
        body["assigned_rep_email"] = json!(FORMER_REP);
    }
    if i % 25 == 3 {
        // Long answers: the description must still fit in 5,000 characters.
        body["answers"]["What do you need?"] =
            json!("We need forecasting across regions. ".repeat(50));
        body["answers"]["Anything else?"] =
            json!("Integrations with Looker and Salesforce matter. ".repeat(40));
    }
    body
}

#[tokio::test]
async fn every_distinct_lead_gets_exactly_one_meeting_request_despite_faults() {
    let sandbox = Sandbox::start(
        SandboxConfig {
            members: vec![DEFAULT_ORGANIZER.into(), MEMBER_REP.into()],
            fault_rate: 0.3,
            rate_limit: 120,
            // The limit's window is shortened so the test meets it in seconds.
            rate_window: Duration::from_secs(5),
            slow_delay: Duration::from_millis(600),
            seed: 42,
            ..SandboxConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let p = pipeline(&sandbox);

    // 150 distinct leads; 30 post twice, 15 post a second form the same day.
    let mut ids: HashMap<usize, String> = HashMap::new();
    for i in 0..LEADS {
        let answer = p.post_form(&form(i)).await;
        ids.insert(i, answer["lead_id"].as_str().unwrap().to_string());
    }
    for i in (0..LEADS).step_by(5) {
        let answer = p.post_form(&form(i)).await;
        assert_eq!(answer["status"], "duplicate");
        assert_eq!(answer["lead_id"].as_str(), Some(ids[&i].as_str()));
    }
    for i in (0..LEADS).step_by(10) {
        let mut second = form(i);
        second["submission_id"] = json!(format!("sub_pricing_{i}"));
        second["form_id"] = json!("pricing");
        assert_eq!(p.post_form(&second).await["status"], "duplicate");
    }
    // One in ten books on its own before its check runs.
    let booked: Vec<usize> = (0..LEADS).filter(|i| i % 10 == 7).collect();
    for i in &booked {
        let id = LeadId::parse(&ids[i]).unwrap();
        let mut lead = p.store.get_lead(&id).await.unwrap().unwrap();
        lead.status = LeadStatus::BookedDirectly;
        p.store.save_lead(&lead, None, None).await.unwrap();
    }

    p.run_checks().await;

    let per_participant = sandbox.created_per_participant();
    for i in 0..LEADS {
        let email = form(i)["email"].as_str().unwrap().to_string();
        let expected = usize::from(!booked.contains(&i));
        assert_eq!(
            per_participant.get(&email).copied().unwrap_or(0),
            expected,
            "lead {i}"
        );
        let (status, _) = p.status(&ids[&i]).await;
        let want = if expected == 1 {
            LeadStatus::MeetingRequested
        } else {
            LeadStatus::BookedDirectly
        };
        assert_eq!(status, want, "lead {i}");
    }
    let statuses = sandbox.status_counts();
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 0,
        "the rate limit was met: {statuses:?}"
    );
    assert!(
        statuses.get(&500).copied().unwrap_or(0) + statuses.get(&503).copied().unwrap_or(0) > 0,
        "faults were injected: {statuses:?}"
    );

    // Who organized: the member rep; the default for the rep who left.
    let organizers: HashMap<String, String> = sandbox
        .recorded()
        .into_iter()
        .filter(|r| r.created.is_some())
        .map(|r| {
            (
                r.body["participants"][0]["email"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r.body["organizer_email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(organizers[form(11)["email"].as_str().unwrap()], MEMBER_REP);
    assert_eq!(
        organizers[form(2)["email"].as_str().unwrap()],
        DEFAULT_ORGANIZER
    );

    // Re-running every check creates nothing.
    let created_before = per_participant.values().sum::<usize>();
    for id in ids.values() {
        let lead = p
            .store
            .get_lead(&LeadId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        p.checks
            .send_raw(serde_json::to_string(&CheckMessage::new(&lead)).unwrap());
    }
    p.run_checks().await;
    assert_eq!(
        sandbox.created_per_participant().values().sum::<usize>(),
        created_before
    );

    // The default organizer is deactivated in SkipUp: the next lead fails for good.
    sandbox.set_members(&[MEMBER_REP]);
    let orphan = p.post_form(&form(999)).await;
    p.run_checks().await;
    let (status, reason) = p.status(orphan["lead_id"].as_str().unwrap()).await;
    assert_eq!(status, LeadStatus::RecoveryFailed);
    assert!(reason.unwrap().contains("not an active member"));
    let orphan_email = form(999)["email"].as_str().unwrap().to_string();
    let refusals = sandbox
        .recorded()
        .iter()
        .filter(|r| r.status == 422 && r.body["participants"][0]["email"] == orphan_email.as_str())
        .count();
    assert_eq!(refusals, 1, "a 422 is never retried");

    // The contract held for every request the pipeline sent.
    assert_eq!(sandbox.violations(), Vec::<String>::new());
    for recorded in sandbox.recorded() {
        let description = recorded.body["context"]["description"]
            .as_str()
            .unwrap_or("");
        assert!(description.chars().count() <= 5_000);
        let key = recorded
            .idempotency_key
            .expect("every request carries an idempotency key");
        assert!(
            key.starts_with("lead:l_") && key.contains(":recovery:"),
            "{key}"
        );
    }
}
