//! The `webhook-ingest` binary itself, driven through a Lambda Runtime API emulator
//! with API Gateway HTTP API events and talking to SQS on `moto_server`. Deliveries
//! are signed at test time by the Python reference signer (`scripts/sign_webhook.py`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::Value;
use testkit::lambda::{FunctionProcess, Outcome, RuntimeApi};
use testkit::moto::{free_port, moto};
use testkit::sign::{python_sign, python_sign_headers};

const BINARY: &str = env!("CARGO_BIN_EXE_webhook-ingest");
const TEMPLATE: &str = include_str!("../fixtures/apigw-v2-skipup-booked.json");
const SKIPUP_BODY: &str =
    include_str!("../../../../shared/fixtures/payloads/skipup-booked-data.json");
const SKIPCALLS_BODY: &str =
    include_str!("../../../../shared/fixtures/payloads/skipcalls-call-completed-default.json");
const SKODE_BODY: &str =
    include_str!("../../../../shared/fixtures/payloads/skode-lead-created.json");

const SKIPUP_SECRET: &str = "whsec_binary_test_skipup";
const SKIPCALLS_SECRET: &str = "binary_test_skipcalls";
const SKODE_SECRET: &str = "whsec_binary_test_skode";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn secrets_env(queue_url: &str, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CRM_QUEUE_URL", queue_url.to_string()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("SKIPUP_WEBHOOK_SECRETS", SKIPUP_SECRET.to_string()),
        ("SKIPCALLS_WEBHOOK_SECRETS", SKIPCALLS_SECRET.to_string()),
        ("SKODE_WEBHOOK_SECRETS", SKODE_SECRET.to_string()),
    ]
}

/// An API Gateway HTTP API event for `path`, with `body` and `headers`.
fn http_event(path: &str, body: &[u8], headers: &[(&str, &str)], base64: bool) -> Value {
    let mut event: Value = serde_json::from_str(TEMPLATE).unwrap();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["routeKey"] = format!("POST {path}").into();
    let map = event["headers"].as_object_mut().unwrap();
    map.remove("x-webhook-signature");
    map.insert("content-length".into(), body.len().to_string().into());
    for (name, value) in headers {
        map.insert((*name).into(), (*value).into());
    }
    event["isBase64Encoded"] = base64.into();
    event["body"] = if base64 {
        python_base64(body).into()
    } else {
        String::from_utf8(body.to_vec()).unwrap().into()
    };
    event
}

fn python_base64(body: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", "import base64,sys; sys.stdout.write(base64.b64encode(sys.stdin.buffer.read()).decode())"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

fn skipup_event(body: &[u8], timestamp: i64, secret: &str) -> Value {
    let signature = python_sign("skipup", secret, Some(timestamp), body);
    http_event(
        "/webhooks/skipup",
        body,
        &[("x-webhook-signature", &signature)],
        false,
    )
}

/// The status and decoded JSON body of an API Gateway response.
fn answer(outcome: Outcome) -> (u16, Value) {
    let Outcome::Response(response) = outcome else {
        panic!("the function reported an error: {outcome:?}");
    };
    let status = response["statusCode"].as_u64().expect("statusCode") as u16;
    let body = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap();
    (status, body)
}

#[tokio::test]
async fn the_binary_accepts_signed_deliveries_and_refuses_every_bad_one() {
    let queue_url = moto().create_fifo_queue("ingest-binary").await;
    let runtime = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(
        Path::new(BINARY),
        &runtime,
        &secrets_env(&queue_url, moto().endpoint()),
    );
    let t = now();
    let skipup = SKIPUP_BODY.as_bytes();

    // Accepted: one delivery per provider, signed by the reference code.
    let (status, body) = answer(runtime.invoke(skipup_event(skipup, t, SKIPUP_SECRET)).await);
    assert_eq!(
        (status, body["event_id"].as_str()),
        (200, Some("evt_01JBOOKED00000000000000001"))
    );
    let calls_sig = python_sign(
        "skipcalls",
        SKIPCALLS_SECRET,
        None,
        SKIPCALLS_BODY.as_bytes(),
    );
    let calls = http_event(
        "/webhooks/skipcalls",
        SKIPCALLS_BODY.as_bytes(),
        &[("x-webhook-signature", &format!("sha256={calls_sig}"))],
        false,
    );
    assert_eq!(answer(runtime.invoke(calls).await).0, 200);
    let skode_sig = python_sign("skode", SKODE_SECRET, None, SKODE_BODY.as_bytes());
    let skode = http_event(
        "/webhooks/skode",
        SKODE_BODY.as_bytes(),
        &[("x-skode-signature", &skode_sig)],
        true,
    );
    assert_eq!(answer(runtime.invoke(skode).await).0, 200);

    // Refused with a 4xx, nothing queued.
    let tampered = skipup_event(skipup, t, SKIPUP_SECRET);
    let mut tampered_body = tampered.clone();
    tampered_body["body"] = SKIPUP_BODY.replace("booked", "cancelled").into();
    let mut unsigned = tampered.clone();
    unsigned["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-webhook-signature");
    let mut empty_v1 = tampered.clone();
    empty_v1["headers"]["x-webhook-signature"] = format!("t={t},v1=").into();
    let oversized = skipup_event(&vec![b' '; 256 * 1024 + 1], t, SKIPUP_SECRET);
    let cases = [
        ("tampered body", tampered_body, 401),
        ("stale", skipup_event(skipup, t - 600, SKIPUP_SECRET), 401),
        ("future", skipup_event(skipup, t + 600, SKIPUP_SECRET), 401),
        (
            "wrong secret",
            skipup_event(skipup, t, "not-the-secret"),
            401,
        ),
        ("unsigned", unsigned, 401),
        ("empty v1", empty_v1, 401),
        ("oversized", oversized, 413),
    ];
    for (name, event, expected) in cases {
        let (status, body) = answer(runtime.invoke(event).await);
        assert_eq!(status, expected, "{name}: {body}");
        assert!(body["error"].is_string(), "{name}: a short JSON error");
    }

    let messages = moto().drain_queue(&queue_url).await;
    let mut dedup_ids: Vec<_> = messages
        .iter()
        .map(|m| {
            m.attributes.as_ref().unwrap()[&MessageSystemAttributeName::MessageDeduplicationId]
                .clone()
        })
        .collect();
    dedup_ids.sort();
    assert_eq!(
        dedup_ids,
        [
            "skipcalls:CALL_COMPLETED:call_8d2f61",
            "skipup:evt_01JBOOKED00000000000000001",
            "skode:evt_5d1b0c",
        ]
    );

    // The function's logs are JSON lines and carry no secret, signature or address.
    let logs = function.logs();
    assert!(logs.contains("\"webhook queued\""), "{logs}");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    for secret_thing in [
        SKIPUP_SECRET,
        SKIPCALLS_SECRET,
        SKODE_SECRET,
        &calls_sig,
        &skode_sig,
    ] {
        assert!(
            !logs.contains(secret_thing),
            "logs leak a secret or signature"
        );
    }
    assert!(
        !logs.contains("dana.ruiz@northwind.example"),
        "logs leak an address"
    );
}

/// A flood of forged deliveries is refused every time, but logged only up to the
/// sampling budget: the first 20 of each minute.
#[tokio::test]
async fn a_flood_of_refusals_is_logged_sampled() {
    let queue_url = moto().create_fifo_queue("ingest-flood").await;
    let runtime = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(
        Path::new(BINARY),
        &runtime,
        &secrets_env(&queue_url, moto().endpoint()),
    );
    let forged = skipup_event(SKIPUP_BODY.as_bytes(), now(), "not-the-secret");
    let started = std::time::Instant::now();
    for _ in 0..30 {
        assert_eq!(answer(runtime.invoke(forged.clone()).await).0, 401);
    }
    // The budget is per minute of the function's own clock: the flood fits in one
    // window unless the machine took over a minute for it, and then in a few; with
    // each window's budget the bound, the outcome holds at any speed.
    let windows = 1 + (started.elapsed().as_secs() / 60) as usize;
    let budget = shared::sampling::REFUSALS_PER_WINDOW as usize;
    let logs = function.logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"webhook refused\""))
        .collect();
    assert!(
        refused.len() >= budget && refused.len() <= (budget * windows).min(30),
        "{} lines in {windows} window(s): {logs}",
        refused.len()
    );
    assert!(
        refused[..budget]
            .iter()
            .all(|l| l.contains("\"unlogged_before\":0"))
    );
}

#[tokio::test]
async fn with_the_queue_unreachable_a_valid_delivery_gets_503() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let runtime = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(
        Path::new(BINARY),
        &runtime,
        &secrets_env(&format!("{dead}/000000000000/crm.fifo"), &dead),
    );
    let (status, body) = answer(
        runtime
            .invoke(skipup_event(SKIPUP_BODY.as_bytes(), now(), SKIPUP_SECRET))
            .await,
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "queue_unavailable");
    let logs = function.logs();
    assert!(logs.contains("answered 503 so the sender retries"));
    // The cold start's warm-up call failed or ran out of time too, and only warned:
    // the function started all the same.
    assert!(
        logs.lines()
            .any(|line| line.contains("WARN") && line.contains("warm-up call")),
        "{logs}"
    );
}

#[tokio::test]
async fn a_provider_without_secrets_is_refused_and_named_at_start() {
    let queue_url = moto().create_fifo_queue("ingest-unconfigured").await;
    let runtime = RuntimeApi::start().await;
    let mut env = secrets_env(&queue_url, moto().endpoint());
    env.retain(|(k, _)| *k != "SKODE_WEBHOOK_SECRETS");
    let function = FunctionProcess::spawn(Path::new(BINARY), &runtime, &env);
    let skode_sig = python_sign("skode", SKODE_SECRET, None, SKODE_BODY.as_bytes());
    let event = http_event(
        "/webhooks/skode",
        SKODE_BODY.as_bytes(),
        &[("x-skode-signature", &skode_sig)],
        false,
    );
    let (status, body) = answer(runtime.invoke(event).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("provider_not_configured"))
    );
    let logs = function.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"skode\"") && l.contains("no webhook secret configured")),
        "{logs}"
    );
    assert!(moto().drain_queue(&queue_url).await.is_empty());
}

#[tokio::test]
async fn a_missing_queue_url_stops_the_cold_start_with_its_name() {
    let runtime = RuntimeApi::start().await;
    let mut function = FunctionProcess::spawn(
        Path::new(BINARY),
        &runtime,
        &[("SKIPUP_WEBHOOK_SECRETS", SKIPUP_SECRET.to_string())],
    );
    let status = function
        .wait_exit(Duration::from_secs(20))
        .expect("the function exits");
    assert!(!status.success());
    assert!(
        function.logs().contains("CRM_QUEUE_URL is not set"),
        "{}",
        function.logs()
    );
}

#[tokio::test]
async fn the_binary_takes_a_typeform_response_base64_encoded_and_refuses_a_forgery() {
    const TYPEFORM_BODY: &str =
        include_str!("../../../../shared/fixtures/typeform/form-response.json");
    const TYPEFORM_SECRET: &str = "whsec_binary_test_typeform";
    let queue_url = moto().create_fifo_queue("ingest-binary-typeform").await;
    let runtime = RuntimeApi::start().await;
    let mut env = secrets_env(&queue_url, moto().endpoint());
    env.push(("TYPEFORM_WEBHOOK_SECRETS", TYPEFORM_SECRET.to_string()));
    let _function = FunctionProcess::spawn(Path::new(BINARY), &runtime, &env);
    let body = TYPEFORM_BODY.as_bytes();
    let url = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/typeform";
    let event = |secret: &str, base64: bool| {
        let headers = python_sign_headers("typeform", secret, None, url, body);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http_event("/webhooks/typeform", body, &headers, base64)
    };
    let (status, answer_body) = answer(runtime.invoke(event(TYPEFORM_SECRET, true)).await);
    assert_eq!(status, 200, "{answer_body}");
    assert_eq!(answer_body["event_id"], "01JD8ZK4QW3N7XRB5T2M9CFHEA");
    let (status, _) = answer(runtime.invoke(event("whsec_forged", false)).await);
    assert_eq!(status, 401);
    let messages = moto().drain_queue(&queue_url).await;
    assert_eq!(messages.len(), 1);
    let queued: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(queued["provider"], "typeform");
    assert_eq!(queued["recognized"], true);
    assert_eq!(queued["subject"]["value"], "taylor.nguyen@soylent.example");
}
