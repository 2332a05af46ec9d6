//! Every form connector through the local stack over HTTP, as a form tool would post
//! to a deployed stack: deliveries signed by the reference signer
//! (`scripts/sign_webhook.py`, independent of the Rust verifiers) become one lead each,
//! however often they are sent; tampered, wrongly signed, stale (where the tool signs
//! a time), unsigned and oversized ones are refused and create nothing. Also the
//! leniency of `POST /forms` with a long answer, an odd time zone and phone.

use std::time::{Duration, Instant};

use recovery::stack::{Options, Stack, local_defaults};
use serde_json::{Value, json};
use shared::config::Env;
use shared::connectors::{Connectors, Event, Provider};
use shared::inbound::Payload;
use skipup_sandbox::SandboxConfig;
use testkit::sign::{python_sign, python_sign_headers};

/// A guard: a wait this long fails with what is missing.
const PATIENCE: Duration = Duration::from_secs(30);
/// Every form tool's connector (SkipUp, SkipCalls, Skode and the booking tools have
/// their own end-to-end tests), in `Provider::all()` order.
const FORM_TOOLS: [&str; 5] = ["typeform", "tally", "hubspot", "forms", "webflow"];
/// The tools whose signature covers no time: a replay is caught by its event id.
const SIGN_NO_TIME: [&str; 3] = ["typeform", "tally", "forms"];
/// The tools whose signature does not cover the body: the generic route takes a
/// bearer secret, as Zapier and Make can send no signature.
const SIGN_NO_BODY: [&str; 1] = ["forms"];

async fn start() -> Stack {
    let mut env: Vec<(String, String)> = local_defaults()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("RECOVERY_DELAY_SECONDS".into(), "600".into()));
    Stack::start(Options {
        port: 0,
        env: Env::from_pairs(env),
        sandbox: SandboxConfig::default(),
        hubspot: None,
        salesforce: None,
        retry_scale: 60.0,
        workers: 2,
        sdk: None,
        allow_aws: false,
        controls: Default::default(),
    })
    .await
    .unwrap()
}

fn secret(provider: Provider) -> String {
    format!("whsec_local_{provider}")
}

async fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn leads_of(stack: &Stack, email: &str) -> Vec<Value> {
    let url = format!("{}/leads?email={email}", stack.url());
    let answer: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    answer["leads"].as_array().cloned().unwrap_or_default()
}

/// Waits until every queued delivery was applied (the queue is empty), then reads
/// the leads of `email`.
async fn settled_leads(stack: &Stack, email: &str) -> Vec<Value> {
    let queue = stack.memory_event_queue().expect("an in-memory stack");
    let started = Instant::now();
    while !queue.is_empty() {
        assert!(
            started.elapsed() < PATIENCE,
            "{} deliveries not applied for {email}",
            queue.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    leads_of(stack, email).await
}

#[tokio::test]
async fn every_form_connector_turns_a_signed_delivery_into_one_lead_and_refuses_the_rest() {
    let stack = start().await;
    let connectors = Connectors::from_env(&Env::empty()).unwrap();
    let mut tested = Vec::new();
    let queue = stack.memory_event_queue().expect("an in-memory stack");
    for provider in Provider::all().filter(|p| FORM_TOOLS.contains(&p.as_str())) {
        let connector = provider.connector();
        let body = connector.sample("http1").body;
        // What the connector's own tests pin down field by field; here, that the same
        // lead arrives through the route, the verifier, the queue and the intake.
        let Ok(Event::Form(expected)) =
            connectors.parse(provider, &Payload::from_body(&body)).event
        else {
            panic!("{provider}: its sample is a form submission");
        };
        let expected = expected.profile;
        assert!(
            expected.company.is_some() && expected.phone.is_some(),
            "{provider}: the fixture has a company and a phone"
        );
        assert!(
            !expected.answers.is_empty(),
            "{provider}: the fixture has answers"
        );
        tested.push(provider.as_str());
        let url = format!("{}{}", stack.url(), provider.route());
        let scheme = provider.as_str();
        let signed = python_sign_headers(scheme, &secret(provider), None, &url, &body);
        let before = stack.leads().await.unwrap().len();
        let queued = queue.stored();

        // Refused, and nothing created.
        let mut tampered = body.clone();
        let at = tampered.len() / 2;
        tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
        let signs_body =
            python_sign_headers(scheme, &secret(provider), None, &url, &tampered) != signed;
        if signs_body {
            assert_eq!(
                post(&url, &signed, &tampered).await.0,
                401,
                "{provider}: tampered"
            );
        } else {
            assert!(
                SIGN_NO_BODY.contains(&scheme),
                "{provider}: its signature does not cover the body"
            );
        }
        let wrong = python_sign_headers(scheme, "whsec_someone_else", None, &url, &body);
        assert_eq!(
            post(&url, &wrong, &body).await.0,
            401,
            "{provider}: wrong secret"
        );
        assert_eq!(post(&url, &[], &body).await.0, 401, "{provider}: unsigned");
        let an_hour_ago = chrono::Utc::now().timestamp() - 3_600;
        let stale = python_sign_headers(scheme, &secret(provider), Some(an_hour_ago), &url, &body);
        if stale != signed {
            assert_eq!(post(&url, &stale, &body).await.0, 401, "{provider}: stale");
        } else {
            assert!(
                SIGN_NO_TIME.contains(&scheme),
                "{provider}: its signature carries no time"
            );
        }
        let mut huge = body.clone();
        huge.extend(std::iter::repeat_n(b' ', 300 * 1024));
        let huge_signed = python_sign_headers(scheme, &secret(provider), None, &url, &huge);
        assert_eq!(
            post(&url, &huge_signed, &huge).await.0,
            413,
            "{provider}: oversized"
        );
        // Each refusal was answered after its handler ended: had one queued the
        // delivery, it would be counted now.
        assert_eq!(queue.stored(), queued, "{provider}: a refusal was queued");

        // Accepted five times: one lead, with what the tool sent.
        for _ in 0..5 {
            let (status, answer) = post(&url, &signed, &body).await;
            assert_eq!(status, 200, "{provider}: {answer}");
        }
        let leads = settled_leads(&stack, expected.email.as_str()).await;
        assert_eq!(leads.len(), 1, "{provider}: {leads:?}");
        let profile = &leads[0]["profile"];
        assert_eq!(profile["email"], expected.email.as_str(), "{provider}");
        assert_eq!(profile["name"], expected.name.as_str(), "{provider}");
        assert_eq!(profile["company"], json!(expected.company), "{provider}");
        assert_eq!(profile["phone"], json!(expected.phone), "{provider}");
        assert_eq!(profile["answers"], json!(expected.answers), "{provider}");
        assert_eq!(
            profile["source"].as_str().map(|s| s.starts_with(scheme)),
            Some(true),
            "{provider}"
        );
        assert_eq!(leads[0]["status"], "Submitted", "{provider}");
        assert_eq!(stack.leads().await.unwrap().len(), before + 1, "{provider}");
    }
    assert_eq!(tested, FORM_TOOLS, "every form tool was tried");
    assert_eq!(stack.dead_letters().await, 0);
}

#[tokio::test]
async fn a_form_post_with_a_long_answer_an_odd_time_zone_and_phone_is_kept_with_warnings() {
    let stack = start().await;
    let body = json!({"email": "kim.lee@vandelay.example", "name": "Kim Lee",
        "timezone": "PST", "phone": "call me",
        "answers": {"What should the demo show?": "x".repeat(7_000)}})
    .to_string();
    let signature = python_sign("skipup", "whsec_local_forms", None, body.as_bytes());
    let headers = [("x-webhook-signature".to_string(), signature)];
    let (status, answer) = post(&format!("{}/forms", stack.url()), &headers, body.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["warnings"].as_array().map(Vec::len),
        Some(3),
        "{answer}"
    );
    let id = answer["lead_id"].as_str().unwrap();
    let lead: Value = reqwest::get(format!("{}/leads/{id}", stack.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let detail = lead["timeline"][0]["detail"].as_str().unwrap();
    for note in [
        "note: timezone \"PST\" dropped",
        "note: phone \"call me\" dropped",
        "cut to 2000 characters (it had 7000)",
    ] {
        assert!(detail.contains(note), "{note} in {detail}");
    }
    assert_eq!(lead["lead"]["profile"]["timezone"], Value::Null);
    let bad_email = json!({"email": "kim.lee@", "name": "Kim"}).to_string();
    let signature = python_sign("skipup", "whsec_local_forms", None, bad_email.as_bytes());
    let headers = [("x-webhook-signature".to_string(), signature)];
    let (status, _) = post(
        &format!("{}/forms", stack.url()),
        &headers,
        bad_email.as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_delivery_without_a_usable_email_is_kept_for_an_operator_not_retried() {
    let stack = start().await;
    let provider = Provider::named("forms").unwrap();
    let url = format!("{}{}", stack.url(), provider.route());
    let body = json!({"name": "No Address", "company": "Nowhere", "submission_id": "zap_noemail"})
        .to_string();
    let signed = python_sign_headers("forms", &secret(provider), None, &url, body.as_bytes());
    assert_eq!(post(&url, &signed, body.as_bytes()).await.0, 200);
    let started = Instant::now();
    loop {
        let kept = stack.unmatched().await.unwrap();
        if let Some((key, reason, _)) = kept.first() {
            assert_eq!(key, "forms:zap_noemail");
            assert!(reason.contains("no usable email"), "{reason}");
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the delivery was not kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stack.leads().await.unwrap().is_empty());
    assert_eq!(stack.dead_letters().await, 0);
}
