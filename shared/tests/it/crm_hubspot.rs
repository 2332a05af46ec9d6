//! The HubSpot connector on the wire (wiremock): each call with HubSpot's documented
//! path, bearer token and body; the contact created when missing; one note per status
//! change found by its marker across pages; the property created once by setup; and
//! the answers that are rate limits, setup problems or permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::adapters::crm::{HubSpotConnector, PropertySetup};
use shared::crm::{ConnectorError, CrmConnector, HubSpotSettings, StatusChange, StatusUpdate};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus};
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EMAIL: &str = "dana.ruiz@northwind.example";
const TOKEN: &str = "pat-na1-test";

fn connector(server: &MockServer, create_contacts: bool) -> HubSpotConnector {
    HubSpotConnector::new(HubSpotSettings {
        base_url: server.uri(),
        access_token: SecretString::from(TOKEN),
        status_property: "lead_recovery_status".into(),
        create_contacts,
        timeout: Duration::from_millis(500),
    })
    .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn change(status: LeadStatus, slug: &str, when: &str, text: &str) -> StatusChange {
    StatusChange {
        marker: format!("l_1/{slug}/{}", at(when).timestamp_millis()),
        status,
        at: at(when),
        text: text.into(),
    }
}

fn update(status: LeadStatus, changes: Vec<StatusChange>) -> StatusUpdate {
    let profile = LeadProfile {
        company: Some("Northwind".into()),
        ..LeadProfile::new(EmailAddress::parse(EMAIL).unwrap(), "Dana Ruiz")
    };
    let mut lead = Lead::new(
        profile,
        at("2026-11-22T10:00:00Z"),
        chrono::Duration::minutes(30),
    );
    lead.status = status;
    let mut update = StatusUpdate::of(&lead);
    update.changes = changes;
    update
}

fn contact_path() -> String {
    format!("/crm/v3/objects/contacts/{EMAIL}")
}

async fn patch_answers(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("PATCH"))
        .and(path(contact_path()))
        .and(query_param("idProperty", "email"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(answer)
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_status_lands_in_the_property_and_only_missing_changes_get_a_note() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(contact_path()))
        .and(query_param("idProperty", "email"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"properties": {"lead_recovery_status": "meeting-scheduled"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "501", "properties": {}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Two pages of associated notes: ours for the first change, and a rep's.
    let notes = "/crm/v4/objects/contacts/501/associations/notes";
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("limit", "500"))
        .and(query_param("after", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [{"toObjectId": 9002, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 202}]}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("limit", "500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [{"toObjectId": 9001, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 202}]}],
            "paging": {"next": {"after": "p2"}}})))
        .expect(1)
        .mount(&server)
        .await;
    let requested = change(
        LeadStatus::MeetingRequested,
        "meeting-requested",
        "2026-11-22T10:30:00Z",
        "SkipUp accepted meeting request mr_1",
    );
    let scheduled = change(
        LeadStatus::MeetingScheduled,
        "meeting-scheduled",
        "2026-11-22T11:00:00Z",
        "calcom booking booked for 2026-11-25T15:00:00Z (b1) <b>",
    );
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes/batch/read"))
        .and(body_json(json!({"properties": ["hs_note_body"], "inputs": [{"id": "9001"}, {"id": "9002"}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETE", "results": [
            {"id": "9001", "properties": {"hs_note_body": format!("<p>old</p><p>{}</p>", requested.tag())}},
            {"id": "9002", "properties": {"hs_note_body": "called, left a voicemail"}}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_partial_json(json!({
            "properties": {"hs_timestamp": "2026-11-22T11:00:00.000Z"},
            "associations": [{"to": {"id": "501"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "9003"})))
        .expect(1)
        .mount(&server)
        .await;
    connector(&server, true)
        .push(&update(
            LeadStatus::MeetingScheduled,
            vec![requested, scheduled.clone()],
        ))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let note: Value = requests
        .iter()
        .find(|r| r.url.path() == "/crm/v3/objects/notes")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    let body = note["properties"]["hs_note_body"].as_str().unwrap();
    assert!(body.contains(&scheduled.tag()), "{body}");
    assert!(body.contains("Lead recovery: Meeting Scheduled"), "{body}");
    assert!(
        body.contains("(b1) &lt;b&gt;"),
        "the timeline's text, escaped: {body}"
    );
}

#[tokio::test]
async fn a_contact_that_does_not_exist_is_created_with_name_company_and_status() {
    let server = MockServer::start().await;
    patch_answers(
        &server,
        ResponseTemplate::new(404)
            .set_body_json(json!({"status": "error", "message": "Resource not found", "category": "OBJECT_NOT_FOUND"})),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"properties": {
            "email": EMAIL, "firstname": "Dana", "lastname": "Ruiz", "company": "Northwind",
            "lead_recovery_status": "meeting-requested"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "777"})))
        .expect(1)
        .mount(&server)
        .await;
    connector(&server, true)
        .push(&update(LeadStatus::MeetingRequested, Vec::new()))
        .await
        .unwrap();
    // Turned off, the missing contact is a permanent failure that says so.
    let error = connector(&server, false)
        .push(&update(LeadStatus::MeetingRequested, Vec::new()))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Permanent { .. }), "{error}");
    assert!(
        error.to_string().contains("HUBSPOT_CREATE_CONTACTS=false"),
        "{error}"
    );
}

#[tokio::test]
async fn a_contact_created_meanwhile_409_is_set_again() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(contact_path()))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    patch_answers(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"id": "12345"})),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "status": "error", "message": "Contact already exists. Existing ID: 12345", "category": "CONFLICT"})))
        .expect(1)
        .mount(&server)
        .await;
    connector(&server, true)
        .push(&update(LeadStatus::FollowUpSent, Vec::new()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_property_or_option_says_how_to_fix_it_and_is_retried() {
    // HubSpot's documented answer for a property that does not exist.
    let missing = json!({"status": "error",
        "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"lead_recovery_status\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"lead_recovery_status\"}]",
        "correlationId": "c1", "category": "VALIDATION_ERROR"});
    let invalid = json!({"status": "error",
        "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"meeting-scheduled was not one of the allowed options: [a, b]\",\"error\":\"INVALID_OPTION\",\"name\":\"lead_recovery_status\"}]",
        "category": "VALIDATION_ERROR"});
    for (answer, says) in [
        (missing, "recovery setup hubspot"),
        (invalid, "has no option `meeting-scheduled`"),
    ] {
        let server = MockServer::start().await;
        patch_answers(&server, ResponseTemplate::new(400).set_body_json(answer)).await;
        let error = connector(&server, true)
            .push(&update(LeadStatus::MeetingScheduled, Vec::new()))
            .await
            .unwrap_err();
        assert!(matches!(error, ConnectorError::Setup { .. }), "{error}");
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[tokio::test]
async fn setup_creates_the_property_once_and_names_missing_options() {
    let server = MockServer::start().await;
    let property = "/crm/v3/properties/contacts/lead_recovery_status";
    Mock::given(method("GET"))
        .and(path(property))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/contacts"))
        .and(body_partial_json(
            json!({"name": "lead_recovery_status", "type": "enumeration",
            "fieldType": "select", "groupName": "contactinformation"}),
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"name": "lead_recovery_status"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let hubspot = connector(&server, true);
    assert_eq!(
        hubspot.setup_property().await.unwrap(),
        PropertySetup::Created
    );
    let requests = server.received_requests().await.unwrap();
    let created: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
    let values: Vec<&str> = created["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert!(o["label"].is_string() && o["displayOrder"].is_number());
            o["value"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        values,
        [
            "booked-directly",
            "meeting-requested",
            "follow-up-sent",
            "meeting-scheduled",
            "re-enter-nurture",
            "recovery-failed",
            "suppressed"
        ]
    );
    // Now it exists: nothing is created again; options it lacks are named.
    let options: Vec<Value> = values
        .iter()
        .map(|v| json!({"label": v, "value": v}))
        .collect();
    Mock::given(method("GET"))
        .and(path(property))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "lead_recovery_status", "options": options})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    assert_eq!(
        hubspot.setup_property().await.unwrap(),
        PropertySetup::Exists
    );
    Mock::given(method("GET"))
        .and(path(property))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": "lead_recovery_status",
            "options": [{"label": "x", "value": "meeting-scheduled"}]})),
        )
        .with_priority(3)
        .mount(&server)
        .await;
    match hubspot.setup_property().await.unwrap() {
        PropertySetup::MissingOptions(missing) => {
            assert_eq!(missing.len(), 6);
            assert!(!missing.contains(&"meeting-scheduled".to_string()));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rate_limits_wait_as_hubspot_says() {
    // The rolling window names its length: longer than a push waits, so it is left
    // to the retry, after that long.
    let server = MockServer::start().await;
    patch_answers(
        &server,
        ResponseTemplate::new(429)
            .insert_header("x-hubspot-ratelimit-interval-milliseconds", "10000")
            .insert_header("x-hubspot-ratelimit-max", "100")
            .insert_header("x-hubspot-ratelimit-remaining", "0")
            .set_body_json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})),
    )
    .await;
    let error = connector(&server, true)
        .push(&update(LeadStatus::MeetingScheduled, Vec::new()))
        .await
        .unwrap_err();
    match error {
        ConnectorError::Transient { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(10)))
        }
        other => panic!("{other}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // The daily limit: the longest a retry can wait.
    let server = MockServer::start().await;
    patch_answers(
        &server,
        ResponseTemplate::new(429).set_body_json(json!({"status": "error",
            "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"})),
    )
    .await;
    let error = connector(&server, true)
        .push(&update(LeadStatus::MeetingScheduled, Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectorError::Transient { retry_after: Some(wait), .. } if wait == Duration::from_secs(900)),
        "{error}"
    );
    // A short window is waited out within the push, and the call made again.
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-hubspot-ratelimit-interval-milliseconds", "50"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    patch_answers(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"id": "1"})),
    )
    .await;
    connector(&server, true)
        .push(&update(LeadStatus::MeetingScheduled, Vec::new()))
        .await
        .unwrap();
}

#[tokio::test]
async fn auth_server_errors_and_timeouts_are_classified() {
    for (answer, expect) in [
        (
            ResponseTemplate::new(401).set_body_json(json!({"category": "INVALID_AUTHENTICATION"})),
            "setup",
        ),
        (
            ResponseTemplate::new(403).set_body_json(json!({"category": "MISSING_SCOPES"})),
            "setup",
        ),
        (ResponseTemplate::new(503), "transient"),
        (
            ResponseTemplate::new(200).set_delay(Duration::from_secs(2)),
            "transient",
        ),
        (
            ResponseTemplate::new(422).set_body_json(json!({"message": "bad"})),
            "permanent",
        ),
    ] {
        let server = MockServer::start().await;
        patch_answers(&server, answer).await;
        let error = connector(&server, true)
            .push(&update(LeadStatus::MeetingScheduled, Vec::new()))
            .await
            .unwrap_err();
        let class = match error {
            ConnectorError::Setup { .. } => "setup",
            ConnectorError::Transient { .. } => "transient",
            ConnectorError::Permanent { .. } => "permanent",
        };
        assert_eq!(class, expect);
        let tries = server.received_requests().await.unwrap().len();
        // A 5xx and a timeout are tried three times within the push: setting a
        // property is safe to repeat.
        assert_eq!(tries, if expect == "transient" { 3 } else { 1 });
    }
}

#[tokio::test]
async fn a_note_whose_create_failed_with_a_5xx_is_looked_for_again_before_it_is_made() {
    let server = MockServer::start().await;
    patch_answers(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"id": "501"})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/crm/v4/objects/contacts/501/associations/notes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "9"})))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let one = change(
        LeadStatus::MeetingRequested,
        "meeting-requested",
        "2026-11-22T10:30:00Z",
        "x",
    );
    connector(&server, true)
        .push(&update(LeadStatus::MeetingRequested, vec![one]))
        .await
        .unwrap();
}
