//! The operator commands against `moto_server` and the SkipUp sandbox over HTTP:
//! backfill (exactly one request per lead under a rate limit, none on a re-run, 429
//! backoff), the dead-letter queues (list, replay), webhook registration and health,
//! and the `recovery` binary running a backfill and writing the HTML report.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recovery::backfill::{Backfill, Settings, Source, Summary, backfill};
use recovery::dlq::{self, QueuePair};
use recovery::ops::{Health, HubSpotSetup, Registration, register_webhook};
use secrecy::SecretString;
use shared::adapters::dynamo::{DynamoLeadStore, create_leads_table};
use shared::adapters::memory::MemoryLeadStore;
use shared::adapters::skipup::SkipUpClient;
use shared::config::Env;
use shared::lead::LeadStatus;
use shared::pacing::Pace;
use shared::ports::{LeadListing, LeadStore, SystemClock};
use shared::skipup::SkipUpSettings;
use skipup_sandbox::{HubSpotConfig, HubSpotDouble, Sandbox, SandboxConfig};
use testkit::moto::moto;

async fn sandbox(rate_limit: usize, rate_window: Duration) -> Sandbox {
    let config = SandboxConfig {
        rate_limit,
        rate_window,
        members: vec!["owner@vendor.example".into(), "alex@vendor.example".into()],
        ..SandboxConfig::default()
    };
    Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

fn client(sandbox: &Sandbox) -> SkipUpClient {
    SkipUpClient::new(SkipUpSettings {
        base_url: sandbox.base_url(),
        api_key: SecretString::from(sandbox.api_key()),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

async fn table() -> (DynamoLeadStore, String) {
    let client = aws_sdk_dynamodb::Client::new(&moto().sdk_config().await);
    let table = testkit::unique_name("leads");
    create_leads_table(&client, &table).await.unwrap();
    (DynamoLeadStore::new(client, &table), table)
}

/// A CSV of `n` leads submitted over the last days: every 7th booked already, every
/// 3rd with a rep who is a SkipUp member, two bad rows, and last the first lead
/// submitting again the next morning (within the re-submission window: the same lead).
fn csv(n: usize) -> (tempfile_path::TempFile, usize) {
    let mut text = String::from("email,name,company,submitted_at,rep_email,booked\n");
    let mut expected = 0;
    for i in 0..n {
        let booked = i % 7 == 6;
        if !booked {
            expected += 1;
        }
        let day = 1 + i % 20;
        text += &format!(
            "lead{i}@prospect{i}.example,Lead {i},Prospect {i},2026-11-{day:02}T{:02}:15:00Z,{},{}\n",
            i % 24,
            if i % 3 == 0 {
                "alex@vendor.example"
            } else {
                ""
            },
            if booked { "yes" } else { "" },
        );
        if i == 10 {
            text += "not-an-email,Someone,,2026-11-02,,\n";
        }
    }
    text += "late@prospect.example,Late,,2099-01-01,,\n";
    text += "lead0@prospect0.example,Lead 0,Prospect 0,2026-11-02T00:10:00Z,,\n";
    (tempfile_path::TempFile::with(&text), expected)
}

/// A named temporary file removed on drop.
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);
    impl TempFile {
        pub fn with(text: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("{}.csv", testkit::unique_name("backfill")));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn env() -> Env {
    Env::from_pairs([
        ("SKIPUP_API_KEY", "sk_test_sandbox"),
        ("DEFAULT_ORGANIZER_EMAIL", "owner@vendor.example"),
        ("MEETING_TITLE", "Product demo"),
    ])
}

async fn run<S: LeadStore + LeadListing + 'static>(
    store: &Arc<S>,
    sandbox: &Sandbox,
    source: &Source,
    pace: Pace,
    limit: Pace,
    dry_run: bool,
) -> Summary {
    let job = Backfill {
        store: store.clone(),
        skipup: Arc::new(client(sandbox)),
        env: env(),
        clock: Arc::new(SystemClock),
    };
    let settings = Settings {
        pace,
        dry_run,
        concurrency: 4,
        progress: false,
    };
    backfill(&job, &**store, source, &settings, limit)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_csv_backfill_requests_each_lead_once_under_the_limit_and_a_rerun_sends_nothing() {
    // SkipUp's limit, with the window shortened to keep the test short.
    let limit = Pace {
        requests: 120,
        per: Duration::from_secs(1),
    };
    let sandbox = sandbox(120, limit.per).await;
    // In memory: this is about SkipUp; the table backfill and the binary below run on
    // DynamoDB (moto), whose pace would hide the pacing.
    let store = Arc::new(MemoryLeadStore::new());
    let (file, expected) = csv(300);
    let source = Source::Csv(file.0.clone());

    let dry = run(&store, &sandbox, &source, limit.share(0.97), limit, true).await;
    // A dry run writes nothing, so it cannot merge the re-submission of lead 0.
    assert_eq!(dry.would_request, expected + 1);
    assert_eq!(dry.skipup_calls, 0, "a dry run calls SkipUp for nothing");
    assert!(
        store.list_leads().await.unwrap().is_empty(),
        "and writes nothing"
    );

    let first = run(&store, &sandbox, &source, limit.share(0.97), limit, false).await;
    assert_eq!(first.requested, expected, "{first:?}");
    assert_eq!(
        first.already.get("Meeting Requested").copied(),
        Some(1),
        "the second submission of lead 0 is lead 0: {first:?}"
    );
    assert!(first.complete(), "{first:?}");
    assert_eq!(first.booked_in_csv, 300 - expected);
    let bad: Vec<u64> = first.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!(bad, [13, 303], "the header is line 1: {:?}", first.bad_rows);
    assert_eq!(
        first.rate_limited, 0,
        "paced at 97% of the limit, SkipUp never refused"
    );
    let per_participant = sandbox.created_per_participant();
    assert_eq!(per_participant.len(), expected);
    assert!(
        per_participant.values().all(|n| *n == 1),
        "one request per lead"
    );
    assert!(
        sandbox.violations().is_empty(),
        "{:?}",
        sandbox.violations()
    );
    let leads = store.list_leads().await.unwrap();
    assert_eq!(leads.len(), expected);
    assert!(
        leads
            .iter()
            .all(|l| l.status == LeadStatus::MeetingRequested && l.meeting_request_id.is_some())
    );

    let again = run(&store, &sandbox, &source, limit.share(0.97), limit, false).await;
    assert_eq!(again.requested, 0);
    assert_eq!(
        again.already.get("Meeting Requested").copied(),
        Some(expected + 1),
        "{again:?}"
    );
    assert_eq!(again.skipup_calls, 0);
    let total: usize = sandbox.created_per_participant().values().sum();
    assert_eq!(total, expected, "the re-run created no request");
}

/// A backfill is the operator's own list: the suppression list applies to it, the
/// daily caps (which guard the public form) do not.
#[tokio::test]
async fn a_backfill_skips_suppressed_addresses_but_not_for_the_daily_caps() {
    let limit = Pace {
        requests: 120,
        per: Duration::from_secs(1),
    };
    let sandbox = sandbox(120, limit.per).await;
    let store = Arc::new(MemoryLeadStore::new());
    let (file, expected) = csv(10);
    let job = Backfill {
        store: store.clone(),
        skipup: Arc::new(client(&sandbox)),
        env: env().with_defaults([
            ("SUPPRESS_LIST", "lead2@prospect2.example"),
            ("MAX_RECOVERIES_PER_DAY", "1"),
            ("MAX_RECOVERIES_PER_DOMAIN_PER_DAY", "1"),
        ]),
        clock: Arc::new(SystemClock),
    };
    let settings = Settings {
        pace: limit.share(0.5),
        dry_run: false,
        concurrency: 4,
        progress: false,
    };
    let summary = backfill(
        &job,
        &*store,
        &Source::Csv(file.0.clone()),
        &settings,
        limit,
    )
    .await
    .unwrap();
    let [(who, reason)] = &summary.suppressed[..] else {
        panic!("{summary:?}")
    };
    assert!(who.starts_with("line 4 (l_"), "CSV line 4 is lead2: {who}");
    assert_eq!(reason, "the address is on SUPPRESS_LIST");
    assert_eq!(summary.requested, expected - 1, "{summary:?}");
    let mut out = Vec::new();
    summary.print(&mut out).unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("suppressed           1")
    );
}

#[tokio::test]
async fn over_the_limit_a_backfill_backs_off_on_429_and_still_sends_each_once() {
    // The double allows 5 per second; the run is told 60 (a wrong --limit).
    let sandbox = sandbox(5, Duration::from_secs(1)).await;
    let store = Arc::new(MemoryLeadStore::new());
    let (file, expected) = csv(60);
    let told = Pace {
        requests: 60,
        per: Duration::from_secs(1),
    };
    let summary = run(
        &store,
        &sandbox,
        &Source::Csv(file.0.clone()),
        told,
        told,
        false,
    )
    .await;
    assert!(summary.rate_limited > 0, "{summary:?}");
    assert_eq!(summary.requested, expected, "{summary:?}");
    let per_participant = sandbox.created_per_participant();
    assert_eq!(per_participant.len(), expected);
    assert!(per_participant.values().all(|n| *n == 1));
}

/// A lead as a form post of `email` at `submitted_at` would make, due `delay` later.
fn lead(email: &str, submitted_at: &str, delay: chrono::TimeDelta) -> shared::lead::Lead {
    let body = serde_json::json!({ "email": email, "name": "Someone" });
    let profile = shared::form::parse_form(body.to_string().as_bytes())
        .unwrap()
        .profile;
    shared::lead::Lead::new(profile, submitted_at.parse().unwrap(), delay)
}

#[tokio::test]
async fn a_table_backfill_checks_the_due_waiting_leads_since_a_day() {
    let sandbox = sandbox(1000, Duration::from_secs(1)).await;
    let (store, _) = table().await;
    let store = Arc::new(store);
    let now = Utc::now();
    let recent = (now - chrono::TimeDelta::minutes(5)).to_rfc3339();
    let leads = [
        // Waiting and due: their checks were lost (the reason to backfill).
        lead(
            "a@prospect.example",
            "2026-11-10T09:00:00Z",
            chrono::TimeDelta::minutes(30),
        ),
        lead(
            "b@prospect.example",
            "2026-11-12T09:00:00Z",
            chrono::TimeDelta::minutes(30),
        ),
        // Before --since.
        lead(
            "c@prospect.example",
            "2026-10-30T09:00:00Z",
            chrono::TimeDelta::minutes(30),
        ),
        // Submitted five minutes ago: its own check is still to come.
        lead(
            "d@prospect.example",
            &recent,
            chrono::TimeDelta::minutes(30),
        ),
        // Booked on their own.
        lead(
            "e@prospect.example",
            "2026-11-11T09:00:00Z",
            chrono::TimeDelta::minutes(30),
        ),
    ];
    for lead in &leads {
        let entry = shared::lead::TimelineEntry {
            at: lead.submitted_at,
            event_id: format!("form:{}", lead.id),
            source: "test".into(),
            status: Some(LeadStatus::Submitted),
            detail: "submitted".into(),
        };
        store
            .create_lead(lead, &entry, chrono::TimeDelta::hours(24))
            .await
            .unwrap();
    }
    let mut booked = store.get_lead(&leads[4].id).await.unwrap().unwrap();
    booked.move_to(LeadStatus::BookedDirectly, leads[4].submitted_at);
    store.save_lead(&booked, None, None).await.unwrap();

    let limit = Pace {
        requests: 1000,
        per: Duration::from_secs(1),
    };
    let since = Source::Table {
        since: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
    };
    let summary = run(&store, &sandbox, &since, limit, limit, false).await;
    assert_eq!(
        (summary.considered, summary.requested, summary.not_due),
        (3, 2, 1),
        "{summary:?}"
    );
    let asked: Vec<String> = {
        let mut v: Vec<String> = sandbox.created_per_participant().into_keys().collect();
        v.sort();
        v
    };
    assert_eq!(asked, ["a@prospect.example", "b@prospect.example"]);
    let again = run(&store, &sandbox, &since, limit, limit, false).await;
    assert_eq!((again.considered, again.requested), (1, 0), "{again:?}");
}

async fn queue_pair(fifo: bool) -> QueuePair {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(&moto().sdk_config().await);
    let suffix = if fifo { ".fifo" } else { "" };
    let name = testkit::unique_name("ops");
    let create = |name: String| {
        let mut request = sqs.create_queue().queue_name(name);
        if fifo {
            request = request.attributes(A::FifoQueue, "true");
        }
        request
    };
    let dlq = create(format!("{name}-dlq{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&A::QueueArn]
        .clone();
    let url = create(format!("{name}{suffix}"))
        .attributes(
            A::RedrivePolicy,
            serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": 1 }).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    QueuePair::of(&sqs, &url).await.unwrap()
}

/// Sends `bodies`, then receives each without deleting twice, so SQS moves them to
/// the dead-letter queue.
async fn dead_letter(pair: &QueuePair, bodies: &[(&str, &str)]) {
    let sqs = aws_sdk_sqs::Client::new(&moto().sdk_config().await);
    for (i, (group, body)) in bodies.iter().enumerate() {
        let mut send = sqs.send_message().queue_url(&pair.url).message_body(*body);
        if pair.fifo {
            send = send
                .message_group_id(*group)
                .message_deduplication_id(format!("d{i}"));
        }
        send.send().await.unwrap();
    }
    for _ in 0..bodies.len() * 2 + 2 {
        sqs.receive_message()
            .queue_url(&pair.url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn dead_letters_are_listed_without_bodies_and_replayed_to_their_queue() {
    for fifo in [false, true] {
        let pair = queue_pair(fifo).await;
        assert_eq!(pair.fifo, fifo);
        let check =
            r#"{"v":1,"lead_id":"l_3f9a2c71b0d84e5f6a7b8c9d","due_at":"2026-11-22T10:30:00Z"}"#;
        let event = r#"{"v":1,"provider":"skipup","event_id":"evt_1","event_type":"meeting_request.booked","payload":{"email":"dana@northwind.example"}}"#;
        dead_letter(&pair, &[("g1", check), ("g2", event)]).await;
        let sqs = aws_sdk_sqs::Client::new(&moto().sdk_config().await);

        let listed = dlq::list(&sqs, &pair, 100).await.unwrap();
        let mut about: Vec<&str> = listed.iter().map(|l| l.about.as_str()).collect();
        about.sort();
        assert_eq!(
            about,
            [
                "check of l_3f9a2c71b0d84e5f6a7b8c9d due 2026-11-22T10:30:00Z",
                "skipup meeting_request.booked evt_1"
            ],
            "fifo: {fifo}"
        );
        let mut printed = Vec::new();
        dlq::print(&mut printed, "checks", &listed).unwrap();
        let printed = String::from_utf8(printed).unwrap();
        assert!(!printed.contains("dana@"), "no body is printed: {printed}");
        if fifo {
            assert!(listed.iter().all(|l| l.group.is_some()));
        }
        // Listing leaves them in place.
        assert_eq!(dlq::list(&sqs, &pair, 100).await.unwrap().len(), 2);

        let replayed = dlq::replay(&sqs, &pair, 100).await.unwrap();
        assert_eq!(replayed.replayed.len(), 2);
        assert!(replayed.failed.is_empty());
        assert!(dlq::list(&sqs, &pair, 100).await.unwrap().is_empty());
        let back = moto().drain_queue(&pair.url).await;
        let mut bodies: Vec<&str> = back.iter().filter_map(|m| m.body()).collect();
        bodies.sort();
        let mut sent = vec![check, event];
        sent.sort();
        assert_eq!(bodies, sent, "the same bodies, back in their queue");
        if fifo {
            let groups: HashMap<&str, &str> = back
                .iter()
                .map(|m| {
                    let group = m
                        .attributes()
                        .unwrap()
                        .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                        .unwrap()
                        .as_str();
                    (m.body().unwrap(), group)
                })
                .collect();
            assert_eq!(groups[check], "g1");
            assert_eq!(groups[event], "g2");
        }
    }
}

/// `setup hubspot` as the binary runs it: whether it is ready, and what it printed.
async fn setup_hubspot(env: &Env, out: &mut Vec<u8>) -> anyhow::Result<bool> {
    let setup = HubSpotSetup::run(env).await?;
    setup.print(out)?;
    Ok(setup.ready())
}

/// `health` as the binary runs it.
async fn health(skipup: &SkipUpClient, out: &mut Vec<u8>) -> anyhow::Result<bool> {
    let health = Health::check(skipup).await?;
    health.print(out)?;
    Ok(health.healthy())
}

#[tokio::test]
async fn setup_hubspot_creates_the_property_once_and_names_what_an_existing_one_lacks() {
    let double = HubSpotDouble::start(HubSpotConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let env = Env::from_pairs([
        ("HUBSPOT_BASE_URL", double.base_url()),
        ("HUBSPOT_ACCESS_TOKEN", double.access_token().to_string()),
    ]);
    let mut out = Vec::new();
    assert!(setup_hubspot(&env, &mut out).await.unwrap());
    assert!(setup_hubspot(&env, &mut out).await.unwrap());
    let said = String::from_utf8(out).unwrap();
    assert!(
        said.contains("created the contact property lead_recovery_status"),
        "{said}"
    );
    assert!(
        said.contains("exists with every status: nothing to do"),
        "{said}"
    );
    assert_eq!(double.property("lead_recovery_status").unwrap().len(), 7);
    assert!(double.violations().is_empty(), "{:?}", double.violations());

    // A property made by hand with other options: exit 1, naming the missing ones.
    let config = HubSpotConfig {
        properties: vec![(
            "lead_recovery_status".into(),
            vec!["meeting-scheduled".into()],
        )],
        ..HubSpotConfig::default()
    };
    let double = HubSpotDouble::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let env = Env::from_pairs([
        ("HUBSPOT_BASE_URL", double.base_url()),
        ("HUBSPOT_ACCESS_TOKEN", double.access_token().to_string()),
    ]);
    let mut out = Vec::new();
    assert!(!setup_hubspot(&env, &mut out).await.unwrap());
    let said = String::from_utf8(out).unwrap();
    assert!(
        said.contains("lacks the options booked-directly, meeting-requested"),
        "{said}"
    );
    // Without a token it says what is missing.
    let error = setup_hubspot(&Env::from_pairs([("X", "y")]), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("HUBSPOT_ACCESS_TOKEN is not set"),
        "{error}"
    );
}

#[tokio::test]
async fn a_webhook_is_registered_once_and_health_reports_what_stops_recovery() {
    let sandbox = sandbox(1000, Duration::from_secs(60)).await;
    let skipup = client(&sandbox);
    let mut out = Vec::new();
    assert!(!health(&skipup, &mut out).await.unwrap(), "no endpoint yet");
    assert!(String::from_utf8_lossy(&out).contains("No enabled endpoint receives"));

    let url = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/skipup";
    let Registration::Created { endpoint, secret } =
        register_webhook(&skipup, url, "test").await.unwrap()
    else {
        panic!("expected a new endpoint");
    };
    assert_eq!(endpoint.url, url);
    assert_eq!(
        endpoint.events.len(),
        5,
        "the recovery events and organizer_changed"
    );
    use secrecy::ExposeSecret;
    assert_eq!(
        secret.as_ref().map(|s| s.expose_secret()),
        Some(sandbox.webhook_secret())
    );
    let mut printed = Vec::new();
    recovery::ops::print_registration(
        &mut printed,
        &Registration::Created {
            endpoint: endpoint.clone(),
            secret,
        },
    )
    .unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(
        printed.contains(sandbox.webhook_secret()) && printed.contains("SKIPUP_WEBHOOK_SECRETS")
    );
    assert!(matches!(
        register_webhook(&skipup, url, "test").await.unwrap(),
        Registration::Existing(_)
    ));
    assert_eq!(sandbox.endpoints().len(), 1, "registered once");
    assert!(register_webhook(&skipup, "ftp://x", "test").await.is_err());

    let mut out = Vec::new();
    assert!(health(&skipup, &mut out).await.unwrap());
    sandbox.disable_endpoint(url, "too_many_failures");
    let mut out = Vec::new();
    assert!(!health(&skipup, &mut out).await.unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("DISABLED") && text.contains("too_many_failures"),
        "{text}"
    );
}

// Multi-threaded: the sandbox serves while this thread waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_backfills_a_csv_and_writes_a_readable_html_report() {
    let sandbox = sandbox(1000, Duration::from_secs(1)).await;
    let (_, table) = table().await;
    let (file, expected) = csv(30);
    let recovery = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recovery"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", moto().endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("LEADS_TABLE", &table)
            .env("SKIPUP_BASE_URL", sandbox.base_url())
            .env("SKIPUP_API_KEY", sandbox.api_key())
            .env("DEFAULT_ORGANIZER_EMAIL", "owner@vendor.example")
            .output()
            .unwrap()
    };
    let path = file.0.display().to_string();
    let run = recovery(&[
        "backfill",
        "--csv",
        &path,
        "--limit",
        "1000",
        "--window-secs",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!("requested now        {expected}")),
        "{stdout}"
    );
    assert!(stdout.contains("line 13: email"), "{stdout}");
    assert!(
        !stdout.contains("@prospect"),
        "no address in the summary: {stdout}"
    );

    // Book a few through the table as their webhooks would, for the report.
    let store = DynamoLeadStore::new(
        aws_sdk_dynamodb::Client::new(&moto().sdk_config().await),
        &table,
    );
    for mut lead in store.list_leads().await.unwrap().into_iter().step_by(3) {
        let booked_at = lead.submitted_at + chrono::TimeDelta::hours(2);
        lead.move_to(LeadStatus::MeetingScheduled, booked_at);
        store.save_lead(&lead, None, None).await.unwrap();
    }

    let html = std::env::temp_dir().join(format!("{}.html", testkit::unique_name("report")));
    let html_path = html.display().to_string();
    let run = recovery(&[
        "report",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-21",
        "--format",
        "html",
        "--out",
        &html_path,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    let _ = std::fs::remove_file(&html);
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<svg") && page.contains("</svg>"));
    assert!(!page.contains("<script"), "self-contained, no scripts");
    assert!(!page.contains("@prospect"), "no addresses in the report");
    assert!(page.contains("<b>2h 00m</b>"), "every booking took 2 hours");
    assert!(
        page.contains(&format!("<td>total</td><td>{expected}</td>")),
        "{page}"
    );

    let run = recovery(&[
        "report",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-21",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["days"].as_array().unwrap().len(), 21);
    assert_eq!(report["total"]["submitted"], expected);
    assert_eq!(report["total"]["median_seconds_to_book"], 7200);
    let scheduled = report["total"]["scheduled"].as_u64().unwrap();
    assert!(scheduled > 0);
    let rate = report["total"]["booking_rate"].as_f64().unwrap();
    assert!((rate - scheduled as f64 / expected as f64).abs() < 1e-9);

    let run = recovery(&["report", "--since", "2026-11-20", "--until", "2026-11-19"]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("is after"));
}

/// Runs the `recovery` binary on moto and the sandbox with `extra` variables.
fn recovery_binary(
    sandbox: &Sandbox,
    table: &str,
    extra: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recovery"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("LEADS_TABLE", table)
        .env("SKIPUP_BASE_URL", sandbox.base_url())
        .env("SKIPUP_API_KEY", sandbox.api_key())
        .env("DEFAULT_ORGANIZER_EMAIL", "owner@vendor.example")
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

/// The JSON document a `--json` run printed (whatever its exit code).
fn json_of(run: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        )
    })
}

// Multi-threaded: the sandbox and the HubSpot double serve while the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_command_answers_one_json_document_with_json() {
    let sandbox = sandbox(1000, Duration::from_secs(1)).await;
    let (_, table) = table().await;
    let checks = queue_pair(false).await;
    let crm = queue_pair(true).await;
    let queues = [
        ("CHECK_QUEUE_URL", checks.url.as_str()),
        ("CRM_QUEUE_URL", crm.url.as_str()),
        ("RECONCILE_AFTER_SECONDS", "1"),
    ];
    let run = |args: &[&str]| recovery_binary(&sandbox, &table, &queues, args);

    // health: no endpoint yet, so unhealthy (exit 1) and the events nobody receives.
    let answer = run(&["--json", "health"]);
    assert!(!answer.status.success());
    let health = json_of(&answer);
    assert_eq!(health["healthy"], false);
    assert_eq!(health["endpoints"], serde_json::json!([]));
    assert!(!health["unsubscribed_events"].as_array().unwrap().is_empty());

    let url = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/skipup";
    let created = json_of(&run(&["register-webhook", "--url", url, "--json"]));
    assert_eq!(created["created"], true);
    assert_eq!(created["endpoint"]["url"], url);
    assert_eq!(created["signing_secret"], sandbox.webhook_secret());
    let again = json_of(&run(&["--json", "register-webhook", "--url", url]));
    assert_eq!(again["created"], false);
    assert_eq!(again["signing_secret"], serde_json::Value::Null);
    let answer = run(&["--json", "health"]);
    assert!(answer.status.success());
    let health = json_of(&answer);
    assert_eq!(health["healthy"], true);
    assert_eq!(health["endpoints"][0]["url"], url);
    assert_eq!(health["disabled"], 0);

    // backfill: the summary's counts, leads named by line and id only.
    let (file, expected) = csv(12);
    let path = file.0.display().to_string();
    let answer = run(&[
        "--json",
        "backfill",
        "--csv",
        &path,
        "--limit",
        "1000",
        "--window-secs",
        "1",
    ]);
    assert!(answer.status.success());
    let summary = json_of(&answer);
    assert_eq!(summary["requested"], expected);
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["bad_rows"][0]["line"], 13);
    assert_eq!(summary["limit"]["requests"], 1000);
    assert!(
        !String::from_utf8_lossy(&answer.stdout).contains("@prospect"),
        "no address in the summary"
    );

    // suppress: the lead's status, and whether this run changed it.
    let suppressed = json_of(&run(&[
        "--json",
        "suppress",
        "lead1@prospect1.example",
        "--reason",
        "asked us to stop",
    ]));
    assert_eq!(suppressed["status"], "Suppressed");
    assert_eq!(suppressed["outcome"], "suppressed");
    assert!(suppressed["lead_id"].as_str().unwrap().starts_with("l_"));
    let again = json_of(&run(&[
        "--json",
        "suppress",
        "lead1@prospect1.example",
        "--reason",
        "asked us to stop",
    ]));
    assert_eq!(again["status"], "Suppressed");
    assert_eq!(again["outcome"], "unchanged");

    // reconcile: once recoveries have been quiet for a second, SkipUp is asked about
    // them (a dry run changes nothing), each lead with what SkipUp said.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answer = run(&["--json", "reconcile", "--dry-run"]);
    assert!(answer.status.success());
    let report = json_of(&answer);
    assert_eq!(report["dry_run"], true);
    let asked = report["asked"].as_u64().unwrap();
    assert!(asked > 0, "{report:#}");
    let count = |key: &str| report[key].as_u64().unwrap();
    assert_eq!(
        count("booked") + count("cancelled") + count("open") + count("failed"),
        asked
    );
    let leads = report["leads"].as_array().unwrap();
    assert_eq!(leads.len() as u64, asked);
    assert!(
        leads
            .iter()
            .all(|l| l[0].as_str().unwrap().starts_with("l_"))
    );

    // dlq list and replay: per queue, dead letters without their bodies.
    let check = r#"{"v":1,"lead_id":"l_3f9a2c71b0d84e5f6a7b8c9d","due_at":"2026-11-22T10:30:00Z"}"#;
    dead_letter(&checks, &[("g", check)]).await;
    let listed = json_of(&run(&["--json", "dlq", "list"]));
    assert_eq!(listed["queues"][0]["queue"], "checks");
    assert_eq!(
        listed["queues"][0]["dead_letters"][0]["about"],
        "check of l_3f9a2c71b0d84e5f6a7b8c9d due 2026-11-22T10:30:00Z"
    );
    assert_eq!(listed["queues"][1]["queue"], "crm");
    assert_eq!(listed["queues"][1]["dead_letters"], serde_json::json!([]));
    let replayed = json_of(&run(&["--json", "dlq", "replay", "--queue", "checks"]));
    assert_eq!(
        replayed["queues"][0]["replayed"].as_array().unwrap().len(),
        1
    );
    assert_eq!(replayed["queues"][0]["failed"], serde_json::json!([]));

    // setup hubspot: what it did to the property.
    let hubspot = HubSpotDouble::start(HubSpotConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let base = hubspot.base_url();
    let token = hubspot.access_token().to_string();
    let setup = |args: &[&str]| {
        json_of(&recovery_binary(
            &sandbox,
            &table,
            &[
                ("HUBSPOT_BASE_URL", &base),
                ("HUBSPOT_ACCESS_TOKEN", &token),
            ],
            args,
        ))
    };
    let first = setup(&["--json", "setup", "hubspot"]);
    assert_eq!(first["result"], "created");
    assert_eq!(first["property"], "lead_recovery_status");
    assert_eq!(setup(&["--json", "setup", "hubspot"])["result"], "exists");

    // report: --json is its JSON format, and refuses another.
    let report = json_of(&run(&["--json", "report"]));
    assert!(report["days"].as_array().is_some_and(|d| d.len() == 30));
    let answer = run(&["--json", "report", "--format", "html"]);
    assert!(!answer.status.success() && answer.stdout.is_empty());
    assert!(String::from_utf8_lossy(&answer.stderr).contains("--json prints the JSON format"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_split_copies_the_signing_keys_once_names_conflicts_and_prints_no_value() {
    let secrets = aws_sdk_secretsmanager::Client::new(&moto().sdk_config().await);
    let create = async |name: &str, value: serde_json::Value| {
        secrets
            .create_secret()
            .name(testkit::unique_name(name))
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap()
            .arn
            .unwrap()
    };
    let pipeline = create(
        "pipeline",
        serde_json::json!({
            "SKIPUP_API_KEY": "sk_live_never_copied",
            "FORM_WEBHOOK_SECRETS": "whsec_form_value",
            "SKIPUP_WEBHOOK_SECRETS": "whsec_skipup_value",
            "CALCOM_WEBHOOK_SECRETS": "whsec_calcom_value",
        }),
    )
    .await;
    let webhooks = create(
        "webhooks",
        serde_json::json!({ "CALCOM_WEBHOOK_SECRETS": "whsec_calcom_set_by_hand" }),
    )
    .await;
    let forms = create("forms", serde_json::json!({})).await;
    let read = async |arn: &str| -> serde_json::Value {
        let text = secrets
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .unwrap()
            .secret_string
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recovery"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", moto().endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("SECRETS_ARN", &pipeline)
            .env("WEBHOOK_SECRETS_ARN", &webhooks)
            .env("FORM_SECRETS_ARN", &forms)
            .output()
            .unwrap()
    };

    // A dry run writes nothing.
    let dry = run(&["--json", "secrets", "split", "--dry-run"]);
    assert_eq!(
        json_of(&dry)["to_forms"],
        serde_json::json!(["FORM_WEBHOOK_SECRETS"])
    );
    assert_eq!(read(&forms).await, serde_json::json!({}));

    // The split: exit 1 for the conflict, which keeps the hand-set value.
    let answer = run(&["--json", "secrets", "split"]);
    assert!(!answer.status.success());
    let plan = json_of(&answer);
    assert_eq!(
        plan["to_webhooks"],
        serde_json::json!(["SKIPUP_WEBHOOK_SECRETS"])
    );
    assert_eq!(
        plan["to_forms"],
        serde_json::json!(["FORM_WEBHOOK_SECRETS"])
    );
    assert_eq!(
        plan["conflicts"],
        serde_json::json!(["CALCOM_WEBHOOK_SECRETS"])
    );
    assert_eq!(
        read(&webhooks).await,
        serde_json::json!({
            "CALCOM_WEBHOOK_SECRETS": "whsec_calcom_set_by_hand",
            "SKIPUP_WEBHOOK_SECRETS": "whsec_skipup_value",
        })
    );
    assert_eq!(
        read(&forms).await,
        serde_json::json!({ "FORM_WEBHOOK_SECRETS": "whsec_form_value" })
    );

    // Again, in text: nothing more to copy, and no value printed either time.
    let again = run(&["secrets", "split"]);
    let text = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(
        text.contains("copied to FORM_SECRETS_ARN: nothing"),
        "{text}"
    );
    assert!(text.contains("already there: "), "{text}");
    for output in [&answer.stdout, &again.stdout, &dry.stdout] {
        let output = String::from_utf8_lossy(output);
        assert!(
            !output.contains("_value") && !output.contains("sk_live"),
            "{output}"
        );
    }
}
