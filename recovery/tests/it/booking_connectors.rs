//! Every booking connector through the local stack over HTTP, as a scheduling tool
//! would post to a deployed stack: a delivery signed by the reference signer
//! (`scripts/sign_webhook.py`, independent of the Rust verifiers) is accepted and
//! queued once, as the booking its connector reads; tampered, wrongly signed, unsigned,
//! stale (Calendly signs a time), Cal.com's `no-secret-provided` and oversized
//! deliveries are refused and queue nothing. What the pipeline then does with a
//! booking is not asserted here.
//!
//! The stack runs no consumers, so whatever `webhook-ingest` queued stays in the CRM
//! queue for the test to read.

use recovery::stack::{Options, Stack, local_defaults};
use serde_json::Value;
use shared::config::Env;
use shared::connectors::{Connectors, Event, Provider};
use shared::inbound::{InboundEvent, Payload, Subject};
use skipup_sandbox::SandboxConfig;
use testkit::sign::python_sign_headers;

async fn start() -> Stack {
    Stack::start(Options {
        port: 0,
        env: Env::from_pairs(local_defaults()),
        sandbox: SandboxConfig::default(),
        hubspot: None,
        salesforce: None,
        retry_scale: 60.0,
        workers: 0,
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
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Everything queued since the last call, as the consumer would read it.
async fn queued(stack: &Stack) -> Vec<InboundEvent> {
    stack
        .drain_crm_queue()
        .await
        .into_iter()
        .map(|m| serde_json::from_str(m.body.as_deref().unwrap_or_default()).unwrap())
        .collect()
}

#[tokio::test]
async fn every_booking_connector_queues_a_signed_delivery_and_refuses_the_rest() {
    let stack = start().await;
    let connectors = Connectors::from_env(&Env::empty()).unwrap();
    let mut tested = Vec::new();
    for provider in Provider::all() {
        let connector = provider.connector();
        let body = connector.sample("http1").body;
        let parsed = connectors.parse(provider, &Payload::from_body(&body));
        let Ok(Event::Booking(expected)) = parsed.event else {
            continue;
        };
        tested.push(provider.as_str());
        let url = format!("{}{}", stack.url(), provider.route());
        let scheme = provider.as_str();
        let signed = python_sign_headers(scheme, &secret(provider), None, &url, &body);
        assert!(
            !signed.is_empty(),
            "{provider}: the signer knows the scheme"
        );

        // Refused, and nothing queued.
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
            assert_eq!(scheme, "bookings", "only the bearer route signs no body");
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
        if scheme == "calendly" {
            assert_ne!(stale, signed, "Calendly signs the time");
            let (status, answer) = post(&url, &stale, &body).await;
            assert_eq!(status, 401, "{provider}: stale");
            assert!(
                answer["message"].as_str().unwrap_or("").contains("older"),
                "{answer}"
            );
        } else {
            assert_eq!(stale, signed, "{provider} signs no time");
        }
        if scheme == "calcom" {
            let headers = [(
                "X-Cal-Signature-256".to_string(),
                "no-secret-provided".to_string(),
            )];
            let (status, answer) = post(&url, &headers, &body).await;
            assert_eq!(status, 401, "{provider}: no secret set in Cal.com");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no secret"),
                "{answer}"
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
        let refused = queued(&stack).await;
        assert!(
            refused.is_empty(),
            "{provider}: a refusal was queued: {refused:?}"
        );

        // Accepted: queued once, as the booking the connector reads.
        let (status, answer) = post(&url, &signed, &body).await;
        assert_eq!(status, 200, "{provider}: {answer}");
        assert_eq!(answer["status"], "queued", "{provider}: {answer}");
        let event_id = parsed.event_id.clone().expect("a booking has an event id");
        assert_eq!(answer["event_id"], event_id.as_str(), "{provider}");
        let messages = queued(&stack).await;
        assert_eq!(messages.len(), 1, "{provider}: {messages:?}");
        let message = &messages[0];
        assert_eq!(message.provider, provider);
        assert!(message.recognized, "{provider}");
        assert_eq!(message.event_id, event_id);
        assert_eq!(message.event_type, parsed.event_type, "{provider}");
        assert_eq!(
            message.subject,
            Subject::Email(expected.email.as_str().to_string()),
            "{provider}"
        );
        assert!(
            expected.booking_id.contains("http1") && event_id.contains("http1"),
            "{provider}: fresh ids"
        );
    }
    assert_eq!(tested, ["calendly", "calcom", "savvycal", "bookings"]);
}
