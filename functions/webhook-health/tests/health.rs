//! `webhook-health` against the SkipUp sandbox over HTTP (endpoints across pages,
//! some disabled) with the alert published to SNS on `moto_server`, and the binary
//! itself driven through the Lambda Runtime API emulator with the sample event.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use shared::adapters::fakes::FixedClock;
use shared::adapters::skipup::SkipUpClient;
use shared::adapters::sns::SnsAlerts;
use shared::handlers::webhook_health::{HealthDeps, HealthError, handle};
use shared::ports::{Alerts, SkipUpApi, SystemClock};
use shared::skipup::{NewWebhookEndpoint, SkipUpError, SkipUpSettings};
use skipup_sandbox::{Sandbox, SandboxConfig};
use testkit::lambda::{FunctionProcess, Outcome, RuntimeApi};
use testkit::moto::moto;

const SAMPLE_EVENT: &str = include_str!("../../../events/webhook-health.json");

async fn sandbox() -> Sandbox {
    let config = SandboxConfig {
        rate_limit: 10_000,
        ..SandboxConfig::default()
    };
    Sandbox::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

fn client(sandbox: &Sandbox, key: &str) -> SkipUpClient {
    SkipUpClient::new(SkipUpSettings {
        base_url: sandbox.base_url(),
        api_key: SecretString::from(key),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// The function's dependencies: SkipUp at `skipup`, alerts to `alerts`, the
/// default alert window, the real clock.
fn deps_with(skipup: SkipUpClient, alerts: Option<Arc<dyn Alerts>>) -> HealthDeps {
    HealthDeps {
        skipup: Arc::new(skipup),
        alerts,
        alert_window: chrono::TimeDelta::minutes(30),
        clock: Arc::new(SystemClock),
    }
}

/// 105 endpoints (two pages of 100), the 3rd and the 103rd disabled.
async fn endpoints(sandbox: &Sandbox) -> Vec<String> {
    let skipup = client(sandbox, sandbox.api_key());
    let mut urls = Vec::new();
    for i in 1..=105 {
        let url = format!("https://hooks{i}.example/webhooks/skipup");
        skipup
            .create_webhook_endpoint(&NewWebhookEndpoint {
                url: url.clone(),
                description: format!("endpoint {i}"),
                events: vec!["meeting_request.booked".into()],
            })
            .await
            .unwrap();
        urls.push(url);
    }
    sandbox.disable_endpoint(&urls[2], "too_many_failures");
    sandbox.disable_endpoint(&urls[102], "manually_disabled");
    urls
}

/// An SNS topic whose messages land in an SQS queue the test can read.
async fn topic_with_queue() -> (String, String) {
    let sdk = moto().sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(testkit::unique_name("alerts"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue = moto().create_queue("alerts-inbox").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .unwrap();
    (topic, queue)
}

#[tokio::test]
async fn every_page_is_read_and_each_disabled_endpoint_is_reported_and_alerted() {
    let sandbox = sandbox().await;
    let urls = endpoints(&sandbox).await;
    let (topic, queue) = topic_with_queue().await;
    let alerts: Arc<dyn Alerts> = Arc::new(SnsAlerts::new(
        aws_sdk_sns::Client::new(&moto().sdk_config().await),
        topic,
    ));
    let deps = deps_with(client(&sandbox, sandbox.api_key()), Some(alerts));
    let report = handle(&deps).await.unwrap();
    assert_eq!(report.endpoints.len(), 105, "both pages");
    let disabled: Vec<(&str, Option<&str>)> = report
        .disabled()
        .iter()
        .map(|e| (e.url.as_str(), e.disabled_reason.as_deref()))
        .collect();
    assert_eq!(
        disabled,
        [
            (urls[2].as_str(), Some("too_many_failures")),
            (urls[102].as_str(), Some("manually_disabled")),
        ]
    );
    let messages = moto().drain_queue(&queue).await;
    assert_eq!(messages.len(), 1, "one alert per run");
    let envelope: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(envelope["Subject"], "SkipUp webhook endpoint disabled");
    let text = envelope["Message"].as_str().unwrap();
    assert!(text.contains(&format!("{} (", urls[2])), "{text}");
    assert!(text.contains("too_many_failures"), "{text}");
    assert!(
        text.contains(&urls[102]) && text.contains("manually_disabled"),
        "{text}"
    );
    assert!(!text.contains(&urls[0]), "only the disabled ones: {text}");
}

#[tokio::test]
async fn all_enabled_sends_no_alert_and_a_refused_key_is_an_error() {
    let sandbox = sandbox().await;
    let (topic, queue) = topic_with_queue().await;
    let skipup = client(&sandbox, sandbox.api_key());
    skipup
        .create_webhook_endpoint(&NewWebhookEndpoint {
            url: "https://hooks.example/webhooks/skipup".into(),
            description: "prod".into(),
            events: vec![],
        })
        .await
        .unwrap();
    let alerts: Arc<dyn Alerts> = Arc::new(SnsAlerts::new(
        aws_sdk_sns::Client::new(&moto().sdk_config().await),
        topic,
    ));
    let deps = deps_with(skipup, Some(alerts.clone()));
    let report = handle(&deps).await.unwrap();
    assert_eq!((report.endpoints.len(), report.disabled().len()), (1, 0));
    assert!(moto().drain_queue(&queue).await.is_empty());

    let revoked = deps_with(client(&sandbox, "sk_revoked"), Some(alerts));
    match handle(&revoked).await {
        Err(HealthError::SkipUp(SkipUpError::Unauthorized { .. })) => {}
        other => panic!("expected a refused key, got {other:?}"),
    }
}

#[tokio::test]
async fn an_endpoint_that_stays_disabled_is_alerted_once_not_every_run() {
    let sandbox = sandbox().await;
    endpoints(&sandbox).await;
    let (topic, queue) = topic_with_queue().await;
    let alerts: Arc<dyn Alerts> = Arc::new(SnsAlerts::new(
        aws_sdk_sns::Client::new(&moto().sdk_config().await),
        topic,
    ));
    // Two hours after SkipUp disabled them: still reported and counted, not alerted.
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(2);
    let deps = HealthDeps {
        clock: Arc::new(FixedClock(later)),
        ..deps_with(client(&sandbox, sandbox.api_key()), Some(alerts))
    };
    let report = handle(&deps).await.unwrap();
    assert_eq!(report.disabled().len(), 2);
    assert!(moto().drain_queue(&queue).await.is_empty(), "no alert");
}

#[tokio::test]
async fn an_alert_that_cannot_be_sent_fails_the_run() {
    let sandbox = sandbox().await;
    endpoints(&sandbox).await;
    let deps = deps_with(
        client(&sandbox, sandbox.api_key()),
        Some(Arc::new(SnsAlerts::new(
            aws_sdk_sns::Client::new(&moto().sdk_config().await),
            "arn:aws:sns:us-east-1:123456789012:no-such-topic",
        ))),
    );
    assert!(matches!(handle(&deps).await, Err(HealthError::Alert(_))));
}

#[tokio::test]
async fn the_binary_answers_the_sample_scheduled_event() {
    let sandbox = sandbox().await;
    let urls = endpoints(&sandbox).await;
    let runtime = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_webhook-health")),
        &runtime,
        &[
            ("SKIPUP_BASE_URL", sandbox.base_url()),
            ("SKIPUP_API_KEY", sandbox.api_key().to_string()),
            ("AWS_ENDPOINT_URL", moto().endpoint().to_string()),
        ],
    );
    let event: Value = serde_json::from_str(SAMPLE_EVENT).unwrap();
    let answer = match runtime.invoke(event).await {
        Outcome::Response(answer) => answer,
        Outcome::Error(error) => panic!("{error}\n{}", function.logs()),
    };
    assert_eq!(answer["endpoints"], 105);
    assert_eq!(answer["disabled"].as_array().unwrap().len(), 2);
    let logs = function.logs();
    assert!(
        logs.contains(&urls[2]) && logs.contains("too_many_failures"),
        "the disabled endpoint's URL and reason are logged: {logs}"
    );
    assert!(
        logs.contains("\"WebhookEndpointsDisabled\":2.0")
            || logs.contains("\"WebhookEndpointsDisabled\":2"),
        "the metric line: {logs}"
    );
}
