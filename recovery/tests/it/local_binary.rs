//! `recovery local` as a user runs it: the binary started with secrets from the
//! environment, an outside client signing with the Python reference signer, and the
//! lead's status read back over HTTP until SkipUp's conversation ends it. Also
//! `recovery simulate` against that stack.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::moto::free_port;
use testkit::sign::python_sign;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SECRETS: [(&str, &str); 4] = [
    (
        "FORM_WEBHOOK_SECRETS",
        "whsec_test_forms_new,whsec_test_forms_old",
    ),
    ("SKIPUP_WEBHOOK_SECRETS", "whsec_test_skipup"),
    ("SKIPCALLS_WEBHOOK_SECRETS", "whsec_test_skipcalls"),
    ("SKODE_WEBHOOK_SECRETS", "whsec_test_skode"),
];

fn start(port: u16) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recovery"));
    command
        .args(["local", "--port", &port.to_string()])
        .env("RECOVERY_DELAY_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("LEADS_TABLE")
        .env_remove("SKIPUP_BASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (key, value) in SECRETS {
        command.env(key, value);
    }
    Running(command.spawn().expect("the recovery binary starts"))
}

async fn wait_until_serving(http: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while http.get(format!("{base}/report")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "recovery local did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    header: &str,
    signature: &str,
    body: &[u8],
) -> (u16, Value) {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header(header, signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_outside_client_signs_deliveries_and_reads_the_lead_back() {
    let port = free_port();
    let _local = start(port);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_serving(&http, &base).await;

    let form = serde_json::to_vec(&json!({
        "email": "dana.ruiz@northwind.example", "name": "Dana Ruiz", "company": "Northwind",
        "phone": "+1 415 555 0142", "submission_id": "sub_local_1"
    }))
    .unwrap();
    // Signed with the older of the two form secrets: rotation works.
    let signature = python_sign("skipup", "whsec_test_forms_old", None, &form);
    let (status, answer) = post(
        &http,
        &format!("{base}/forms"),
        "x-webhook-signature",
        &signature,
        &form,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let lead_id = answer["lead_id"].as_str().unwrap().to_string();
    let default_secret = python_sign("skipup", "whsec_local_forms", None, &form);
    let (status, _) = post(
        &http,
        &format!("{base}/forms"),
        "x-webhook-signature",
        &default_secret,
        &form,
    )
    .await;
    assert_eq!(
        status, 401,
        "the built-in local secret is replaced by the environment's"
    );
    // A page whose domain was rebound to 127.0.0.1 sends its own name as Host.
    for host in ["attacker.example", "127.0.0.1.attacker.example"] {
        let rebound = http
            .get(format!("{base}/report"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(rebound.status().as_u16(), 403, "Host: {host}");
        let answer: Value = rebound.json().await.unwrap();
        assert_eq!(answer["error"], "host_not_allowed");
    }
    let named = http
        .get(format!("{base}/report"))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(named.status().as_u16(), 200);

    let call = serde_json::to_vec(&json!({ "event": "CALL_COMPLETED",
        "call": { "id": "call_local_1", "to": "+1 (415) 555-0142", "short_summary": "Interested" } }))
    .unwrap();
    let signature = python_sign("skipcalls", "whsec_test_skipcalls", None, &call);
    let (status, _) = post(
        &http,
        &format!("{base}/webhooks/skipcalls"),
        "x-webhook-signature",
        &signature,
        &call,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &http,
        &format!("{base}/webhooks/skipcalls"),
        "x-webhook-signature",
        "00ff",
        &call,
    )
    .await;
    assert_eq!(status, 401);

    // The check comes due, the sandbox's conversation runs, its signed webhooks return.
    let started = Instant::now();
    let lead = loop {
        let lead: Value = http
            .get(format!("{base}/leads/{lead_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = lead["lead"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == "Meeting Scheduled" || status == "Re-enter Nurture" {
            break lead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stuck at {status}: {lead}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let timeline = lead["timeline"].as_array().unwrap();
    let details: Vec<&str> = timeline
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("SkipUp accepted meeting request")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("Interested")),
        "{details:?}"
    );

    let report: Value = http
        .get(format!("{base}/report"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["funnel"]["submitted"], 1);
    assert_eq!(report["funnel"]["requested"], 1);
    let missing = http
        .get(format!("{base}/leads/l_000000000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let invalid = http
        .get(format!("{base}/leads/not-a-lead"))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);

    // `recovery simulate` signs like the provider; with the wrong secret it is refused.
    let simulate = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_recovery"))
            .args([
                "simulate",
                "skode",
                &format!("{base}/webhooks/skode"),
                "--secret",
                secret,
            ])
            .output()
            .unwrap()
    };
    let accepted = simulate("whsec_test_skode");
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stdout)
    );
    assert!(String::from_utf8_lossy(&accepted.stdout).starts_with("200 "));
    let refused = simulate("whsec_wrong");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).starts_with("401 "));
}

/// Exported production settings do not make `recovery local` a door into production.
#[test]
fn local_refuses_real_aws_without_the_flag_and_the_built_in_secrets_with_it() {
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_recovery"));
        command
            .args(["local", "--port", "0"])
            .args(args)
            .env("RUST_LOG", "error")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("SKIPUP_BASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in extra {
            command.env(key, value);
        }
        let mut child = Running(command.spawn().unwrap());
        let started = Instant::now();
        while child.0.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "recovery local {args:?} {extra:?} kept running"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (child.0.wait().unwrap().success(), stderr)
    };
    let prod = [("LEADS_TABLE", "prod-leads")];
    let (ok, stderr) = run(&[], &prod);
    assert!(!ok && stderr.contains("--allow-aws"), "{stderr}");
    let elsewhere = [("AWS_ENDPOINT_URL", "http://10.0.0.7:4566")];
    let (ok, stderr) = run(&[], &elsewhere);
    assert!(!ok && stderr.contains("AWS_ENDPOINT_URL set"), "{stderr}");
    let (ok, stderr) = run(&["--allow-aws"], &prod);
    assert!(
        !ok && stderr.contains("refuses the built-in local secrets"),
        "{stderr}"
    );
}

/// The README's first command: `recovery demo` ends with every lead at an outcome, and
/// shows each booking rule at work.
#[test]
fn the_demo_shows_every_booking_rule_and_exits_0() {
    let output = Command::new(env!("CARGO_BIN_EXE_recovery"))
        .args(["demo"])
        .env("RUST_LOG", "error")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("LEADS_TABLE")
        .env_remove("SKIPUP_BASE_URL")
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .env_remove("HUBSPOT_BASE_URL")
        .env_remove("SALESFORCE_INSTANCE_URL")
        .output()
        .expect("the demo runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let status_of = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with("l_") && l.contains(name))
            .unwrap_or_else(|| panic!("no timeline for {name}: {text}"))
            .rsplit(": ")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        status_of("Quinn Adler"),
        "BookedDirectly",
        "booked before the form"
    );
    assert_eq!(
        status_of("Harper Diaz"),
        "Meeting Scheduled",
        "booked after outreach"
    );
    // Rowan's timeline: booked directly, then back to Submitted by the cancellation
    // (read from the timeline, which holds every change, not from the live lines,
    // which show what each look happened to see).
    let rowan: Vec<&str> = text
        .lines()
        .skip_while(|l| !(l.trim_start().starts_with("l_") && l.contains("Rowan Gray")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    let booked = rowan.iter().position(|l| l.contains(" BookedDirectly "));
    let back = rowan.iter().rposition(|l| l.contains(" Submitted "));
    assert!(
        booked.zip(back).is_some_and(|(b, s)| b < s),
        "Rowan's timeline: {rowan:#?}"
    );
    assert!(
        text.contains("SkipUp cancelled it"),
        "Harper's conversation stopped: {text}"
    );
    assert!(
        text.contains("conversations stopped by the pipeline: 1."),
        "{text}"
    );
    assert!(
        !text.contains("set right by reconciliation: none"),
        "{text}"
    );
    assert!(
        text.contains("read from SkipUp by reconciliation"),
        "{text}"
    );
    // Every lead's status landed in both CRM doubles, with a note and a Task per change.
    let crm_line = |name: &str| {
        text.lines()
            .skip_while(|l| !l.starts_with("== the CRMs"))
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no CRM line for {name}: {text}"))
            .to_string()
    };
    let harper = crm_line("Harper Diaz");
    assert!(
        harper.contains("HubSpot meeting-scheduled") && harper.contains("notes 2"),
        "{harper}"
    );
    assert!(
        harper.contains("Salesforce Working - Contacted") && harper.contains("Tasks 2"),
        "{harper}"
    );
    let quinn = crm_line("Quinn Adler");
    assert!(
        quinn.contains("HubSpot booked-directly") && quinn.contains("notes 1"),
        "{quinn}"
    );
}

/// With `--json` and port 0, a script learns where the stack serves from its first
/// line, and `simulate --json` answers with the status and the parsed answer.
#[tokio::test]
async fn local_json_names_its_address_and_simulate_json_its_answer() {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_recovery"));
    command
        .args(["--json", "local", "--port", "0"])
        .env("RUST_LOG", "warn")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("LEADS_TABLE")
        .env_remove("SKIPUP_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in SECRETS {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the recovery binary starts");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let started: Value = serde_json::from_str(&line).unwrap();
    let base = started["url"].as_str().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{started}");
    assert!(!base.ends_with(":0"), "the port it was given: {base}");
    assert!(started["skipup_sandbox"].as_str().is_some(), "{started}");
    assert_eq!(started["backing"], "in-memory leads and queues");

    let answer = Command::new(env!("CARGO_BIN_EXE_recovery"))
        .args([
            "simulate",
            "skode",
            &format!("{base}/webhooks/skode"),
            "--secret",
            "whsec_wrong",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!answer.status.success());
    let answer: Value = serde_json::from_slice(&answer.stdout).unwrap();
    assert_eq!(answer["status"], 401);
    assert!(
        answer["answer"].is_object(),
        "the problem, parsed: {answer}"
    );
    drop(running);
}
