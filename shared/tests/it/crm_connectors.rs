//! The CRM connectors against an HTTP mock server: Skode's read-then-patch of the
//! status field and tags, the signed outbound webhook, and which answers are retried.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::adapters::crm::{STATUS_CHANGED, SkodeConnector, WebhookConnector};
use shared::crm::{ConnectorError, CrmConnector, SkodeSettings, StatusUpdate, WebhookSettings};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus};
use shared::signature::{SecretSet, TimestampedSignature, WebhookSecret};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn update(status: LeadStatus, skode_id: Option<&str>) -> StatusUpdate {
    let profile = LeadProfile {
        company: Some("Northwind".into()),
        submission_id: Some("s1".into()),
        source: Some("skode".into()),
        skode_lead_id: skode_id.map(str::to_string),
        ..LeadProfile::new(
            EmailAddress::parse("dana.ruiz@northwind.example").unwrap(),
            "Dana Ruiz",
        )
    };
    let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut lead = Lead::new(profile, at, chrono::Duration::minutes(30));
    lead.status = status;
    lead.meeting_request_id = Some("mr_01JAXQ7K3M8D2V5R9T4W6Y1B0C".into());
    StatusUpdate::of(&lead)
}

fn skode(server: &MockServer) -> SkodeConnector {
    SkodeConnector::new(SkodeSettings {
        base_url: format!("{}/v1", server.uri()),
        api_key: SecretString::from("sk_live_skode"),
        status_field: "recovery_status".into(),
        tag_prefix: "recovery-".into(),
        pause_tag: "nurture-paused".into(),
        timeout: Duration::from_millis(500),
    })
    .unwrap()
}

async fn patched_body(server: &MockServer) -> Value {
    let requests = server.received_requests().await.unwrap();
    let patch = requests
        .iter()
        .find(|r| r.method.as_str() == "PATCH")
        .expect("a PATCH was sent");
    serde_json::from_slice(&patch.body).unwrap()
}

#[tokio::test]
async fn skode_gets_the_status_field_and_its_own_tags_without_losing_the_others() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/leads/lead_7c1e2a"))
        .and(header("authorization", "Bearer sk_live_skode"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "id": "lead_7c1e2a",
            "tags": ["vip", "recovery-meeting-requested"],
            "custom_fields": {"segment": "enterprise"}
        }})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v1/leads/lead_7c1e2a"))
        .and(header("authorization", "Bearer sk_live_skode"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    skode(&server)
        .push(&update(LeadStatus::FollowUpSent, Some("lead_7c1e2a")))
        .await
        .unwrap();
    assert_eq!(
        patched_body(&server).await,
        json!({
            "custom_fields": {"segment": "enterprise", "recovery_status": "Follow-up Sent"},
            "tags": ["vip", "recovery-follow-up-sent", "nurture-paused"]
        })
    );
}

#[tokio::test]
async fn re_entering_nurture_lifts_the_pause_tag() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "lead_7c1e2a", "tags": ["recovery-meeting-scheduled", "nurture-paused", "q4"]
        })))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    skode(&server)
        .push(&update(LeadStatus::ReEnterNurture, Some("lead_7c1e2a")))
        .await
        .unwrap();
    assert_eq!(
        patched_body(&server).await["tags"],
        json!(["q4", "recovery-re-enter-nurture"])
    );
}

#[tokio::test]
async fn a_lead_that_did_not_come_from_skode_is_left_alone() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    skode(&server)
        .push(&update(LeadStatus::MeetingScheduled, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn skode_answers_are_classified_transient_setup_or_permanent() {
    use Class::*;
    #[derive(Debug, PartialEq)]
    enum Class {
        Transient,
        Setup,
        Permanent,
    }
    let cases = [
        (429, Transient),
        (500, Transient),
        (503, Transient),
        (401, Setup),
        (403, Setup),
        (302, Permanent),
        (404, Permanent),
        (422, Permanent),
    ];
    for (status, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("retry-after", "7")
                    .set_body_json(
                        json!({"error": "x", "message": "lead dana.ruiz@northwind.example"}),
                    ),
            )
            .mount(&server)
            .await;
        let error = skode(&server)
            .push(&update(LeadStatus::MeetingScheduled, Some("lead_1")))
            .await
            .unwrap_err();
        assert!(!error.to_string().contains("dana.ruiz"), "{error}");
        let class = match error {
            ConnectorError::Transient { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                Transient
            }
            ConnectorError::Setup { .. } => Setup,
            ConnectorError::Permanent { .. } => Permanent,
        };
        assert_eq!(class, expected, "HTTP {status}");
    }
}

#[tokio::test]
async fn a_skode_answer_that_is_not_a_lead_stops_before_any_patch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let error = skode(&server)
        .push(&update(LeadStatus::MeetingScheduled, Some("lead_1")))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Permanent { .. }), "{error}");
}

#[tokio::test]
async fn a_redirected_webhook_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/old"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/new"))
        .mount(&server)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let gone = webhook(format!("{}/old", server.uri()))
        .push(&update(LeadStatus::MeetingScheduled, None))
        .await;
    assert!(matches!(gone, Err(ConnectorError::Permanent { .. })));
}

#[tokio::test]
async fn a_skode_that_does_not_answer_in_time_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let error = skode(&server)
        .push(&update(LeadStatus::MeetingScheduled, Some("lead_1")))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Transient { .. }), "{error}");
}

fn webhook(url: String) -> WebhookConnector {
    WebhookConnector::new(WebhookSettings {
        url,
        secret: WebhookSecret::new("whsec_outbound").unwrap(),
        timeout: Duration::from_millis(500),
    })
    .unwrap()
}

#[tokio::test]
async fn the_outbound_webhook_is_signed_like_skipup_and_names_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/recovery"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let update = update(LeadStatus::MeetingScheduled, None);
    webhook(format!("{}/hooks/recovery", server.uri()))
        .push(&update)
        .await
        .unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    let signature = request.headers.get("x-webhook-signature").unwrap();
    let verifier = TimestampedSignature::new(SecretSet::parse("whsec_outbound"), 300);
    verifier
        .verify(
            Some(signature.as_bytes()),
            &request.body,
            Utc::now().timestamp(),
        )
        .unwrap();
    let wrong = TimestampedSignature::new(SecretSet::parse("whsec_other"), 300);
    assert!(
        wrong
            .verify(
                Some(signature.as_bytes()),
                &request.body,
                Utc::now().timestamp()
            )
            .is_err()
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], STATUS_CHANGED);
    assert_eq!(body["id"], json!(update.id));
    assert_eq!(
        request.headers.get("idempotency-key").unwrap(),
        update.id.as_str()
    );
    assert_eq!(body["data"]["status"], "Meeting Scheduled");
    assert_eq!(body["data"]["email"], "dana.ruiz@northwind.example");
    assert_eq!(body["data"]["lead_id"], json!(update.lead_id.as_str()));
}

#[tokio::test]
async fn an_outbound_webhook_receiver_that_fails_or_is_gone_is_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&server)
        .await;
    let update = update(LeadStatus::ReEnterNurture, None);
    let down = webhook(format!("{}/down", server.uri()))
        .push(&update)
        .await;
    assert!(matches!(down, Err(ConnectorError::Transient { .. })));
    let gone = webhook(format!("{}/gone", server.uri()))
        .push(&update)
        .await;
    assert!(matches!(gone, Err(ConnectorError::Permanent { .. })));
    let port = testkit::moto::free_port();
    let refused = webhook(format!("http://127.0.0.1:{port}/x"))
        .push(&update)
        .await;
    assert!(matches!(refused, Err(ConnectorError::Transient { .. })));
}
