//! The sample events in `events/` (for `cargo lambda invoke --data-file` and the
//! README) are what each function really receives: each parses as its function's
//! event type, and the queue messages in them are what the producers send.

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::DateTime;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde_json::Value;
use shared::inbound::{InboundEvent, Provider};
use shared::recovery::CheckMessage;

fn sample(name: &str) -> String {
    let path = testkit::workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_function_has_a_sample_event() {
    let mut names: Vec<String> = std::fs::read_dir(testkit::workspace_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let functions = std::fs::read_dir(testkit::workspace_root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    for function in functions {
        assert!(
            names.iter().any(|n| n.starts_with(&function)),
            "no sample event for {function} in events/: {names:?}"
        );
    }
}

#[test]
fn the_http_samples_are_http_api_requests_to_their_routes() {
    for (name, path) in [
        ("form-intake.json", "/forms"),
        ("webhook-ingest-skipup.json", "/webhooks/skipup"),
    ] {
        let request: ApiGatewayV2httpRequest = serde_json::from_str(&sample(name)).unwrap();
        assert_eq!(request.raw_path.as_deref(), Some(path), "{name}");
        assert!(request.body.is_some(), "{name}");
    }
}

#[test]
fn the_recovery_check_sample_carries_a_check_message() {
    let event: SqsEvent = serde_json::from_str(&sample("recovery-check.json")).unwrap();
    let body = event.records[0].body.as_deref().unwrap();
    let message: CheckMessage = serde_json::from_str(body).unwrap();
    assert_eq!(message.lead_id.as_str(), "l_3f9a2c71b0d84e5f6a7b8c9d");
}

#[test]
fn the_apply_events_sample_carries_what_webhook_ingest_enqueues() {
    let delivered = sample("../shared/fixtures/payloads/skipup-booked-data.json");
    let expected = InboundEvent::from_delivery(
        Provider::SKIPUP,
        delivered.as_bytes(),
        DateTime::parse_from_rfc3339("2026-11-22T09:58:42.123Z")
            .unwrap()
            .to_utc(),
    );
    let hint = format!(
        "the sample's body should be {}, group {}, dedup id {}",
        serde_json::to_string(&expected).unwrap(),
        expected.group_id(),
        expected.dedup_id()
    );
    let event: SqsEvent = serde_json::from_str(&sample("apply-events.json")).unwrap();
    let record = &event.records[0];
    let queued: InboundEvent = serde_json::from_str(record.body.as_deref().unwrap()).expect(&hint);
    assert_eq!(queued, expected, "{hint}");
    assert_eq!(
        record.attributes.get("MessageDeduplicationId"),
        Some(&expected.dedup_id()),
        "{hint}"
    );
    assert_eq!(
        record.attributes.get("MessageGroupId"),
        Some(&expected.group_id()),
        "grouped per lead as webhook-ingest groups it"
    );
}

#[test]
fn the_webhook_health_sample_is_a_scheduled_event() {
    let event: Value = serde_json::from_str(&sample("webhook-health.json")).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
}
