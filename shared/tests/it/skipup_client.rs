//! The SkipUp client against an HTTP mock server: exact request headers and bodies,
//! every documented status, both error body shapes, cursors, and a timeout.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;
use shared::adapters::skipup::SkipUpClient;
use shared::lead::EmailAddress;
use shared::ports::SkipUpApi;
use shared::skipup::{
    CreateMeetingRequest, ErrorClass, MeetingContext, NewWebhookEndpoint, Participant, SkipUpError,
    SkipUpSettings, Timeframe,
};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk_live_test_key";
const IDEMPOTENCY_KEY: &str = "lead:l_0123456789abcdef01234567:recovery:2026-11-22";

fn client(server: &MockServer) -> SkipUpClient {
    client_at(&server.uri())
}

fn client_at(base: &str) -> SkipUpClient {
    SkipUpClient::new(SkipUpSettings {
        base_url: format!("{base}/api/v1/"),
        api_key: SecretString::from(KEY),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
    })
    .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn request() -> CreateMeetingRequest {
    CreateMeetingRequest {
        organizer_email: "owner@vendor.example".into(),
        participants: vec![Participant {
            email: "dana@northwind.example".into(),
            name: Some("Dana Ruiz".into()),
            timezone: Some("America/Chicago".into()),
        }],
        include_introduction: true,
        context: MeetingContext {
            title: "Product demo: Northwind".into(),
            purpose: "Book the demo".into(),
            description: "Dana asked for a demo.".into(),
            duration_minutes: 30,
            timeframe: Timeframe {
                start: at("2026-11-22T12:00:00Z"),
                end: at("2026-12-06T12:00:00Z"),
            },
        },
    }
}

fn accepted() -> ResponseTemplate {
    answered(202)
}

fn answered(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"data": {
        "id": "mr_01JAXAMPLE0000000000000001", "status": "active",
        "organizer_email": "owner@vendor.example",
        "participant_emails": ["dana@northwind.example"],
        "created_at": "2026-11-22T10:00:00Z", "booked_at": null, "cancelled_at": null
    }}))
}

async fn create(server: &MockServer) -> Result<String, SkipUpError> {
    client(server)
        .create_meeting_request(IDEMPOTENCY_KEY, &request())
        .await
        .map(|mr| mr.id)
}

async fn answer_with(template: ResponseTemplate) -> SkipUpError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/meeting_requests"))
        .respond_with(template)
        .mount(&server)
        .await;
    create(&server).await.unwrap_err()
}

#[tokio::test]
async fn a_meeting_request_is_posted_with_exact_headers_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/meeting_requests"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("idempotency-key", IDEMPOTENCY_KEY))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_json(json!({
            "organizer_email": "owner@vendor.example",
            "participants": [{"email": "dana@northwind.example", "name": "Dana Ruiz", "timezone": "America/Chicago"}],
            "include_introduction": true,
            "context": {
                "title": "Product demo: Northwind",
                "purpose": "Book the demo",
                "description": "Dana asked for a demo.",
                "duration_minutes": 30,
                "timeframe": {"start": "2026-11-22T12:00:00Z", "end": "2026-12-06T12:00:00Z"}
            }
        })))
        .respond_with(accepted())
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        create(&server).await.unwrap(),
        "mr_01JAXAMPLE0000000000000001"
    );
}

#[tokio::test]
async fn authentication_and_scope_errors_are_configuration_errors_with_either_body() {
    let e = answer_with(
        ResponseTemplate::new(401).set_body_json(json!({"error": "Invalid or expired API key"})),
    )
    .await;
    assert_eq!(
        e,
        SkipUpError::Unauthorized {
            message: "Invalid or expired API key".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::Configuration);
    let e = answer_with(ResponseTemplate::new(401).set_body_json(
        json!({"error": {"type": "authentication_error", "message": "Invalid or missing API key."}}),
    ))
    .await;
    assert_eq!(
        e,
        SkipUpError::Unauthorized {
            message: "Invalid or missing API key.".into()
        }
    );
    let e = answer_with(ResponseTemplate::new(403).set_body_json(
        json!({"error": {"type": "forbidden", "message": "API key missing required scope: meeting_requests.write"}}),
    ))
    .await;
    assert_eq!(e.class(), ErrorClass::Configuration);
    assert!(e.to_string().contains("meeting_requests.write"));
}

#[tokio::test]
async fn a_422_keeps_skipups_message_and_is_an_input_error() {
    let e = answer_with(ResponseTemplate::new(422).set_body_json(
        json!({"error": {"type": "validation_error", "message": "organizer_email is not an active member of this workspace"}}),
    ))
    .await;
    assert_eq!(
        e,
        SkipUpError::Invalid {
            kind: "validation_error".into(),
            message: "organizer_email is not an active member of this workspace".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::Input);
}

#[tokio::test]
async fn a_429_carries_retry_after_when_sent() {
    let e = answer_with(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "12")
            .set_body_json(json!({"error": {"type": "rate_limited", "message": "slow down"}})),
    )
    .await;
    assert_eq!(
        e.class(),
        ErrorClass::Transient {
            retry_after: Some(Duration::from_secs(12))
        }
    );
    let e = answer_with(ResponseTemplate::new(429)).await;
    assert_eq!(e.class(), ErrorClass::Transient { retry_after: None });
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    for status in [500, 502, 503] {
        let e =
            answer_with(ResponseTemplate::new(status).set_body_string("<html>oops</html>")).await;
        assert!(
            matches!(e, SkipUpError::Server { status: s, .. } if s == status),
            "{e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Transient { retry_after: None });
    }
    let e = answer_with(accepted().set_delay(Duration::from_secs(2))).await;
    assert_eq!(e, SkipUpError::Timeout);
}

#[tokio::test]
async fn an_unreachable_skipup_is_transient() {
    let nobody = format!("http://127.0.0.1:{}", testkit::moto::free_port());
    let e = client_at(&nobody)
        .create_meeting_request(IDEMPOTENCY_KEY, &request())
        .await
        .unwrap_err();
    assert!(
        matches!(e, SkipUpError::Network(_) | SkipUpError::Timeout),
        "{e:?}"
    );
    assert!(matches!(e.class(), ErrorClass::Transient { .. }));
}

#[tokio::test]
async fn a_meeting_request_is_fetched_by_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/api/v1/meeting_requests/mr_01JAXAMPLE0000000000000001",
        ))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(answered(200))
        .expect(1)
        .mount(&server)
        .await;
    let mr = client(&server)
        .get_meeting_request("mr_01JAXAMPLE0000000000000001")
        .await
        .unwrap();
    assert_eq!(mr.status, "active");
    let e = client(&server)
        .get_meeting_request("mr_missing")
        .await
        .unwrap_err();
    assert!(matches!(e, SkipUpError::NotFound { .. }));
}

fn endpoint(id: &str, enabled: bool) -> serde_json::Value {
    json!({"id": id, "url": format!("https://hooks.example.com/{id}"), "description": null,
           "enabled": enabled, "events": ["meeting_request.booked"],
           "disabled_at": if enabled { None } else { Some("2026-11-20T00:00:00Z") },
           "disabled_reason": if enabled { None } else { Some("too_many_failures") },
           "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z"})
}

#[tokio::test]
async fn webhook_endpoints_are_listed_across_every_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/webhook_endpoints"))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [endpoint("we_1", true), endpoint("we_2", false)],
            "meta": {"limit": 100, "has_more": true, "next_cursor": "we_2"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/webhook_endpoints"))
        .and(query_param("cursor", "we_2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [endpoint("we_3", true)],
            "meta": {"has_more": false}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let all = client(&server).list_webhook_endpoints().await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["we_1", "we_2", "we_3"]
    );
    assert_eq!(all[1].disabled_reason.as_deref(), Some("too_many_failures"));
}

#[tokio::test]
async fn a_webhook_endpoint_is_created_with_the_recovery_events() {
    let server = MockServer::start().await;
    let body = json!({"url": "https://hooks.example.com/skipup", "description": "lead recovery",
                      "events": ["meeting_request.created", "meeting_request.booked"]});
    Mock::given(method("POST"))
        .and(path("/api/v1/webhook_endpoints"))
        .and(body_json(body.clone()))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"data": endpoint("we_9", true)})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let created = client(&server)
        .create_webhook_endpoint(&serde_json::from_value::<NewWebhookEndpoint>(body).unwrap())
        .await
        .unwrap();
    assert_eq!(created.endpoint.id, "we_9");
    assert!(
        created.secret.is_none(),
        "SkipUp's example carries no secret"
    );
}

#[tokio::test]
async fn a_workspace_member_is_found_by_exact_email() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/workspace_members"))
        .and(query_param("email", "alex+sales@vendor.example"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "mem_1", "email": "alex+sales@vendor.example", "name": "Alex", "role": "member",
                      "deactivated_at": null, "created_at": "2026-01-01T00:00:00Z"}],
            "meta": {"limit": 25, "has_more": false}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/workspace_members"))
        .and(query_param("email", "gone@vendor.example"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [], "meta": {"has_more": false}})),
        )
        .mount(&server)
        .await;
    let client = client(&server);
    let alex = EmailAddress::parse("alex+sales@vendor.example").unwrap();
    assert_eq!(
        client
            .find_workspace_member(&alex)
            .await
            .unwrap()
            .unwrap()
            .id,
        "mem_1"
    );
    let gone = EmailAddress::parse("gone@vendor.example").unwrap();
    assert_eq!(client.find_workspace_member(&gone).await.unwrap(), None);
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_key_and_the_prospect() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/meeting_requests"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/collect", elsewhere.uri()).as_str()),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accepted())
        .expect(0)
        .mount(&elsewhere)
        .await;
    let error = create(&server).await.unwrap_err();
    assert!(
        matches!(error, SkipUpError::Unexpected { status: 307, .. }),
        "{error:?}"
    );
}
