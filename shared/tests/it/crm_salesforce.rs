//! The Salesforce connector on the wire (wiremock): the client-credentials exchange
//! on the My Domain, the token kept and fetched once more after a 401, the Lead found
//! by a SOQL query whose email is escaped, its Status set from the map, one completed
//! Task per status change, and the answers that are limits, setup problems or
//! permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::adapters::crm::SalesforceConnector;
use shared::crm::{
    ConnectorError, CrmConnector, SalesforceSettings, SalesforceStatusMap, StatusChange,
    StatusUpdate,
};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus};
use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DATA: &str = "/services/data/v66.0";

fn connector(server: &MockServer, create_leads: bool) -> SalesforceConnector {
    SalesforceConnector::new(SalesforceSettings {
        instance_url: server.uri(),
        client_id: "3MVG9client".into(),
        client_secret: SecretString::from("s3cret"),
        api_version: "v66.0".into(),
        status_map: SalesforceStatusMap::parse("meeting-scheduled=Meeting Booked").unwrap(),
        create_leads,
        timeout: Duration::from_millis(500),
    })
    .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn update(email: &str, status: LeadStatus, changes: Vec<StatusChange>) -> StatusUpdate {
    let profile = LeadProfile {
        company: Some("Northwind".into()),
        ..LeadProfile::new(EmailAddress::parse(email).unwrap(), "Dana Ruiz")
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

fn change(status: LeadStatus, slug: &str, when: &str) -> StatusChange {
    StatusChange {
        marker: format!("l_1/{slug}/{}", at(when).timestamp_millis()),
        status,
        at: at(when),
        text: format!("{when}  what the timeline says"),
    }
}

async fn token_endpoint(server: &MockServer, token: &str) {
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=3MVG9client"))
        .and(body_string_contains("client_secret=s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token, "signature": "sig", "scope": "api",
            "instance_url": server.uri(), "id": "https://login/id/00D/005",
            "token_type": "Bearer", "issued_at": "1764000000000"})))
        .mount(server)
        .await;
}

fn records(records: Value) -> ResponseTemplate {
    let size = records.as_array().map_or(0, Vec::len);
    ResponseTemplate::new(200)
        .set_body_json(json!({"totalSize": size, "done": true, "records": records}))
}

#[tokio::test]
async fn a_lead_found_by_its_escaped_email_gets_its_status_and_one_task_per_missing_change() {
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok1").await;
    // An address with a quote and a backslash stays inside its literal.
    let email = r"o'brien\x@northwind.example";
    let lead_query = r"SELECT Id, Status FROM Lead WHERE Email = 'o\'brien\\x@northwind.example' AND IsConverted = false ORDER BY CreatedDate DESC LIMIT 1";
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .and(query_param("q", lead_query))
        .and(header("authorization", "Bearer 00D!tok1"))
        .respond_with(records(json!([{"attributes": {"type": "Lead"}, "Id": "00Q1", "Status": "Open - Not Contacted"}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{DATA}/sobjects/Lead/00Q1")))
        .and(header("authorization", "Bearer 00D!tok1"))
        .and(body_json(json!({"Status": "Meeting Booked"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let requested = change(
        LeadStatus::MeetingRequested,
        "meeting-requested",
        "2026-11-22T10:30:00Z",
    );
    let scheduled = change(
        LeadStatus::MeetingScheduled,
        "meeting-scheduled",
        "2026-11-22T11:00:00Z",
    );
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .and(query_param(
            "q",
            "SELECT Subject FROM Task WHERE WhoId = '00Q1' AND Subject LIKE 'Lead recovery:%'",
        ))
        .respond_with(records(
            json!([{"Subject": requested.title()}, {"Subject": "Lead recovery: notes by hand"}]),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{DATA}/sobjects/Task")))
        .and(header("authorization", "Bearer 00D!tok1"))
        .and(body_json(json!({
            "WhoId": "00Q1", "Subject": scheduled.title(), "Description": scheduled.text,
            "Status": "Completed", "ActivityDate": "2026-11-22"})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "00T1", "success": true, "errors": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    connector(&server, false)
        .push(&update(
            email,
            LeadStatus::MeetingScheduled,
            vec![requested, scheduled],
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_token_is_kept_and_fetched_once_more_after_a_401() {
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok").await;
    // The session ends after the first push's query.
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .respond_with(records(
            json!([{"Id": "00Q1", "Status": "Working - Contacted"}]),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
        ))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .respond_with(records(
            json!([{"Id": "00Q1", "Status": "Working - Contacted"}]),
        ))
        .with_priority(3)
        .mount(&server)
        .await;
    let salesforce = connector(&server, false);
    let requested = update(
        "dana@northwind.example",
        LeadStatus::MeetingRequested,
        Vec::new(),
    );
    salesforce.push(&requested).await.unwrap();
    salesforce.push(&requested).await.unwrap();
    let tokens = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/services/oauth2/token")
        .count();
    assert_eq!(tokens, 2, "once at first, once after the 401");
    // A 401 with a fresh token too is the connected app's setup.
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok").await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!([{"errorCode": "INVALID_SESSION_ID"}])),
        )
        .mount(&server)
        .await;
    let error = connector(&server, false)
        .push(&requested)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Setup { .. }), "{error}");
}

#[tokio::test]
async fn refused_client_credentials_say_what_to_check() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "error_description": "invalid client credentials"})))
        .mount(&server)
        .await;
    let error = connector(&server, false)
        .push(&update(
            "dana@northwind.example",
            LeadStatus::MeetingRequested,
            Vec::new(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Setup { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("invalid_client") && message.contains("SALESFORCE_CLIENT_ID"),
        "{message}"
    );
    assert!(!message.contains("s3cret"));
}

#[tokio::test]
async fn no_lead_is_permanent_unless_leads_are_created() {
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok").await;
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .respond_with(records(json!([])))
        .mount(&server)
        .await;
    let scheduled = update(
        "dana@northwind.example",
        LeadStatus::MeetingScheduled,
        Vec::new(),
    );
    let error = connector(&server, false)
        .push(&scheduled)
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Permanent { .. }), "{error}");
    assert!(
        error.to_string().contains("SALESFORCE_CREATE_LEADS=true"),
        "{error}"
    );
    Mock::given(method("POST"))
        .and(path(format!("{DATA}/sobjects/Lead")))
        .and(body_json(
            json!({"FirstName": "Dana", "LastName": "Ruiz", "Company": "Northwind",
            "Email": "dana@northwind.example", "Status": "Meeting Booked"}),
        ))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "00Q9", "success": true, "errors": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    connector(&server, true).push(&scheduled).await.unwrap();
}

#[tokio::test]
async fn a_status_the_org_lacks_is_setup_and_limits_wait() {
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok").await;
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .respond_with(records(
            json!([{"Id": "00Q1", "Status": "Open - Not Contacted"}]),
        ))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([{
            "message": "Status: bad value for restricted picklist field: Meeting Booked",
            "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["Status"]}])))
        .mount(&server)
        .await;
    let error = connector(&server, false)
        .push(&update(
            "dana@northwind.example",
            LeadStatus::MeetingScheduled,
            Vec::new(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Setup { .. }), "{error}");
    assert!(
        error.to_string().contains("SALESFORCE_STATUS_MAP"),
        "{error}"
    );

    // The org's daily allocation: 403 REQUEST_LIMIT_EXCEEDED, waited out by the retry.
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok").await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("sforce-limit-info", "api-usage=15000/15000")
                .set_body_json(json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])),
        )
        .mount(&server)
        .await;
    let error = connector(&server, false)
        .push(&update(
            "dana@northwind.example",
            LeadStatus::MeetingScheduled,
            Vec::new(),
        ))
        .await
        .unwrap_err();
    match &error {
        ConnectorError::Transient {
            retry_after,
            message,
            ..
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(300)));
            assert!(message.contains("api-usage=15000/15000"), "{message}");
        }
        other => panic!("{other}"),
    }
    let queries = server.received_requests().await.unwrap().len() - 1;
    assert_eq!(
        queries, 1,
        "the daily limit is not tried again within the push"
    );
}

#[tokio::test]
async fn a_task_whose_create_failed_with_a_5xx_is_looked_for_again_before_it_is_made() {
    let server = MockServer::start().await;
    token_endpoint(&server, "00D!tok").await;
    Mock::given(method("GET"))
        .and(path(format!("{DATA}/query")))
        .respond_with(records(
            json!([{"Id": "00Q1", "Status": "Working - Contacted"}]),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{DATA}/sobjects/Task")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{DATA}/sobjects/Task")))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "00T1", "success": true, "errors": []})),
        )
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let one = change(
        LeadStatus::MeetingRequested,
        "meeting-requested",
        "2026-11-22T10:30:00Z",
    );
    connector(&server, false)
        .push(&update(
            "dana@northwind.example",
            LeadStatus::MeetingRequested,
            vec![one],
        ))
        .await
        .unwrap();
}
