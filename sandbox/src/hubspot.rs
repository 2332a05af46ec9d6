//! A HubSpot double: the parts of `https://api.hubapi.com` the HubSpot CRM connector
//! uses, checked against HubSpot's documented contract.
//!
//! - Every request needs `Authorization: Bearer <the private app token>` (else 401
//!   `INVALID_AUTHENTICATION`).
//! - `PATCH /crm/v3/objects/contacts/{email}?idProperty=email` with `{"properties"}`:
//!   404 `OBJECT_NOT_FOUND` for an unknown email, 400 `VALIDATION_ERROR` with
//!   `PROPERTY_DOESNT_EXIST` for a property that does not exist and `INVALID_OPTION`
//!   for a value that is not one of an enumeration's options; else 200, the contact.
//! - `POST /crm/v3/objects/contacts`: 201, or 409 `CONFLICT` "Contact already exists.
//!   Existing ID: N" when the email is taken.
//! - `GET /crm/v3/properties/contacts/{name}` (404 when missing) and `POST
//!   /crm/v3/properties/contacts` (name, label, type, fieldType, groupName, and options
//!   for an enumeration; 409 when it exists). Only `email`, `firstname`, `lastname`
//!   and `company` exist at start, besides [`HubSpotConfig::properties`].
//! - `POST /crm/v3/objects/notes` with `hs_timestamp`, `hs_note_body` (at most 65,536
//!   characters) and one association to an existing contact of type 202
//!   (`HUBSPOT_DEFINED`): 201.
//! - `GET /crm/v4/objects/contacts/{id}/associations/notes?limit&after`, paged, and
//!   `POST /crm/v3/objects/notes/batch/read` (at most 100 inputs).
//!
//! The rolling limit (100 requests per 10 s by default) and the injected rate-limit
//! fault answer 429 with `policyName: TEN_SECONDLY_ROLLING` and the
//! `X-HubSpot-RateLimit-*` headers (no `Retry-After`, as HubSpot sends none).

#![allow(
    clippy::result_large_err,
    reason = "a refusal is the response the handler returns at once"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::faults::{Fault, FaultConfig, Faults, Server, Violations};

/// Knobs of the HubSpot double.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    pub access_token: String,
    /// Enumeration properties that exist at start: (name, option values).
    pub properties: Vec<(String, Vec<String>)>,
    /// Notes per page of the associations listing at most (HubSpot: 500).
    pub page_size: usize,
    pub faults: FaultConfig,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            access_token: "pat-local-hubspot".into(),
            properties: Vec::new(),
            page_size: 500,
            faults: FaultConfig::default(),
        }
    }
}

/// A contact as the double keeps it.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: u64,
    pub properties: Map<String, Value>,
}

/// A note as the double keeps it.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    pub contact_id: u64,
    pub timestamp: String,
    pub body: String,
}

const BUILT_IN: [&str; 4] = ["email", "firstname", "lastname", "company"];

#[derive(Default)]
struct Data {
    next_id: u64,
    contacts: Vec<Contact>,
    notes: Vec<Note>,
    /// Enumeration properties: name -> option values.
    properties: HashMap<String, Vec<String>>,
    answers: HashMap<u16, usize>,
}

struct Inner {
    config: HubSpotConfig,
    faults: Faults,
    violations: Violations,
    data: Mutex<Data>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running HubSpot double. Dropping it stops the server.
pub struct HubSpotDouble {
    inner: Arc<Inner>,
    server: Server,
}

impl HubSpotDouble {
    pub async fn start(config: HubSpotConfig, address: SocketAddr) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            faults: Faults::new(config.faults.clone()),
            violations: Violations::default(),
            data: Mutex::new(Data {
                next_id: 1001,
                properties: config.properties.iter().cloned().collect(),
                ..Data::default()
            }),
            config,
        });
        let app = Router::new()
            .route("/crm/v3/objects/contacts", post(create_contact))
            .route("/crm/v3/objects/contacts/{id}", patch(update_contact))
            .route("/crm/v3/properties/contacts", post(create_property))
            .route("/crm/v3/properties/contacts/{name}", get(get_property))
            .route("/crm/v3/objects/notes", post(create_note))
            .route("/crm/v3/objects/notes/batch/read", post(read_notes))
            .route(
                "/crm/v4/objects/contacts/{id}/associations/notes",
                get(list_notes),
            )
            .fallback(unknown_route)
            .with_state(inner.clone());
        let server = Server::start(app, address).await?;
        Ok(Self { inner, server })
    }

    /// `http://127.0.0.1:{port}`: what `HUBSPOT_BASE_URL` is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.address)
    }

    pub fn access_token(&self) -> &str {
        &self.inner.config.access_token
    }

    /// A contact that exists before the pipeline runs (as most do).
    pub fn add_contact(&self, email: &str) -> u64 {
        let mut data = self.inner.lock();
        data.next_id += 1;
        let id = data.next_id;
        let mut properties = Map::new();
        properties.insert("email".into(), json!(email.to_ascii_lowercase()));
        data.contacts.push(Contact { id, properties });
        id
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.inner.lock().contacts.clone()
    }

    pub fn contact(&self, email: &str) -> Option<Contact> {
        let email = email.to_ascii_lowercase();
        self.inner
            .lock()
            .contacts
            .iter()
            .find(|c| c.properties["email"] == json!(email))
            .cloned()
    }

    /// The notes on the contact with that email, oldest first.
    pub fn notes_of(&self, email: &str) -> Vec<Note> {
        let Some(contact) = self.contact(email) else {
            return Vec::new();
        };
        self.inner
            .lock()
            .notes
            .iter()
            .filter(|n| n.contact_id == contact.id)
            .cloned()
            .collect()
    }

    /// Whether the enumeration property exists, with its options.
    pub fn property(&self, name: &str) -> Option<Vec<String>> {
        self.inner.lock().properties.get(name).cloned()
    }

    /// Requests that broke HubSpot's contract (each was answered with an error).
    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.list()
    }

    /// How many answers of each status code the double gave.
    pub fn status_counts(&self) -> HashMap<u16, usize> {
        self.inner.lock().answers.clone()
    }
}

fn error(status: StatusCode, category: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({
        "status": "error",
        "message": message,
        "correlationId": "00000000-0000-4000-8000-000000000000",
        "category": category,
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, Json(body)).into_response()
}

/// Common gate: the token, the rate window, the faults. `Ok(slow)` to go on.
async fn gate(inner: &Inner, headers: &HeaderMap) -> Result<bool, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(inner.config.access_token.as_str()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
            Value::Null,
        ));
    }
    let config = inner.faults.config();
    let limited = |remaining: usize| {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITS",
            "You have reached your ten_secondly_rolling limit.",
            json!({ "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING" }),
        );
        rate_headers(response.headers_mut(), config, remaining);
        response
    };
    if inner.faults.take_slot().is_err() {
        return Err(limited(0));
    }
    match inner.faults.roll() {
        Some(Fault::RateLimited) => Err(limited(0)),
        Some(Fault::ServerError(code)) => Err(error(
            StatusCode::from_u16(code).expect("a 5xx"),
            "INTERNAL_ERROR",
            "injected fault",
            Value::Null,
        )),
        Some(Fault::Slow) => Ok(true),
        None => Ok(false),
    }
}

fn rate_headers(headers: &mut HeaderMap, config: &FaultConfig, remaining: usize) {
    let number = |n: u128| HeaderValue::from_str(&n.to_string()).expect("digits");
    headers.insert(
        "x-hubspot-ratelimit-interval-milliseconds",
        number(config.rate_window.as_millis()),
    );
    headers.insert("x-hubspot-ratelimit-max", number(config.rate_limit as u128));
    headers.insert("x-hubspot-ratelimit-remaining", number(remaining as u128));
}

/// Runs `handle` behind the gate, counting the answer; a slow request answers late.
async fn guarded(
    inner: &Inner,
    headers: &HeaderMap,
    handle: impl FnOnce(&Inner) -> Response,
) -> Response {
    let (response, slow) = match gate(inner, headers).await {
        Err(refusal) => (refusal, false),
        Ok(slow) => (handle(inner), slow),
    };
    // Counted as it takes effect, before a slow answer's wait.
    *inner
        .lock()
        .answers
        .entry(response.status().as_u16())
        .or_default() += 1;
    if slow {
        tokio::time::sleep(inner.faults.config().slow_delay).await;
    }
    response
}

fn json_body(
    inner: &Inner,
    headers: &HeaderMap,
    body: &[u8],
    route: &str,
) -> Result<Value, Response> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if json_type && value.is_object() => Ok(value),
        _ => {
            inner.violations.record(format!(
                "{route}: not a JSON object with Content-Type application/json"
            ));
            Err(error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "Invalid input JSON",
                Value::Null,
            ))
        }
    }
}

/// Checks each property exists and each enumeration value is an option.
fn check_properties(data: &Data, properties: &Map<String, Value>) -> Result<(), Response> {
    for (name, value) in properties {
        if BUILT_IN.contains(&name.as_str()) {
            continue;
        }
        let Some(options) = data.properties.get(name) else {
            let detail = format!("Property \"{name}\" does not exist");
            return Err(error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":{},\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"{name}\"}}]",
                    json!(detail)
                ),
                json!({ "errors": [{ "message": detail, "code": "PROPERTY_DOESNT_EXIST",
                                     "context": { "propertyName": [name] } }] }),
            ));
        };
        let value = value.as_str().unwrap_or_default();
        if !options.iter().any(|o| o == value) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":\"{value} was not one of the allowed options: [{}]\",\"error\":\"INVALID_OPTION\",\"name\":\"{name}\"}}]",
                    options.join(", ")
                ),
                Value::Null,
            ));
        }
    }
    Ok(())
}

fn contact_json(contact: &Contact) -> Value {
    json!({ "id": contact.id.to_string(), "properties": contact.properties,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "archived": false })
}

fn properties_of(inner: &Inner, body: &Value, route: &str) -> Result<Map<String, Value>, Response> {
    match body.get("properties") {
        Some(Value::Object(properties)) => Ok(properties.clone()),
        _ => {
            inner
                .violations
                .record(format!("{route}: no `properties` object"));
            Err(error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "properties is required",
                Value::Null,
            ))
        }
    }
}

async fn update_contact(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let route = "PATCH /crm/v3/objects/contacts/{id}";
        let body = match json_body(inner, &headers, &body, route) {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let properties = match properties_of(inner, &body, route) {
            Ok(p) => p,
            Err(refusal) => return refusal,
        };
        let by_email = query.get("idProperty").map(String::as_str) == Some("email");
        if !by_email && id.contains('@') {
            inner.violations.record(format!(
                "{route}: an email as the id without idProperty=email"
            ));
        }
        let mut data = inner.lock();
        if let Err(refusal) = check_properties(&data, &properties) {
            return refusal;
        }
        let wanted = id.to_ascii_lowercase();
        let found = data.contacts.iter_mut().find(|c| {
            if by_email {
                c.properties["email"] == json!(wanted)
            } else {
                c.id.to_string() == wanted
            }
        });
        match found {
            None => error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                "Resource not found",
                Value::Null,
            ),
            Some(contact) => {
                contact.properties.extend(properties);
                (StatusCode::OK, Json(contact_json(contact))).into_response()
            }
        }
    })
    .await
}

async fn create_contact(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let route = "POST /crm/v3/objects/contacts";
        let body = match json_body(inner, &headers, &body, route) {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let mut properties = match properties_of(inner, &body, route) {
            Ok(p) => p,
            Err(refusal) => return refusal,
        };
        let mut data = inner.lock();
        if let Err(refusal) = check_properties(&data, &properties) {
            return refusal;
        }
        let Some(email) = properties.get("email").and_then(Value::as_str) else {
            inner
                .violations
                .record(format!("{route}: a contact without an email"));
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "email is required",
                Value::Null,
            );
        };
        let email = email.to_ascii_lowercase();
        if let Some(existing) = data
            .contacts
            .iter()
            .find(|c| c.properties["email"] == json!(email))
        {
            return error(
                StatusCode::CONFLICT,
                "CONFLICT",
                &format!("Contact already exists. Existing ID: {}", existing.id),
                Value::Null,
            );
        }
        properties.insert("email".into(), json!(email));
        data.next_id += 1;
        let contact = Contact {
            id: data.next_id,
            properties,
        };
        let answer = contact_json(&contact);
        data.contacts.push(contact);
        (StatusCode::CREATED, Json(answer)).into_response()
    })
    .await
}

async fn get_property(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let data = inner.lock();
        match data.properties.get(&name) {
            None => error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                &format!("Unable to find property {name}"),
                Value::Null,
            ),
            Some(options) => {
                let options: Vec<Value> = options
                    .iter()
                    .map(|v| json!({ "label": v, "value": v, "hidden": false }))
                    .collect();
                Json(
                    json!({ "name": name, "type": "enumeration", "fieldType": "select",
                             "groupName": "contactinformation", "options": options }),
                )
                .into_response()
            }
        }
    })
    .await
}

async fn create_property(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let route = "POST /crm/v3/properties/contacts";
        let body = match json_body(inner, &headers, &body, route) {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let text = |key: &str| body.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
        let missing: Vec<&str> = ["name", "label", "type", "fieldType", "groupName"]
            .into_iter()
            .filter(|k| text(k).is_none())
            .collect();
        let options: Option<Vec<String>> = body.get("options").and_then(Value::as_array).map(|o| {
            o.iter()
                .filter(|o| o.get("label").and_then(Value::as_str).is_some())
                .filter_map(|o| o.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        });
        let enumeration = text("type") == Some("enumeration");
        let options_ok = !enumeration
            || options.as_ref().is_some_and(|o| {
                !o.is_empty() && o.len() == body["options"].as_array().map_or(0, Vec::len)
            });
        if !missing.is_empty() || !options_ok || text("fieldType") != Some("select") {
            inner.violations.record(format!(
                "{route}: missing {missing:?}, or an enumeration without labelled options, or not a select"
            ));
            return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid property", Value::Null);
        }
        let name = text("name").expect("checked").to_string();
        let mut data = inner.lock();
        if data.properties.contains_key(&name) || BUILT_IN.contains(&name.as_str()) {
            return error(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                &format!("A property named '{name}' already exists."),
                Value::Null,
            );
        }
        data.properties.insert(name.clone(), options.unwrap_or_default());
        (StatusCode::CREATED, Json(body.clone())).into_response()
    })
    .await
}

async fn create_note(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let route = "POST /crm/v3/objects/notes";
        let body = match json_body(inner, &headers, &body, route) {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let refuse = |why: &str| {
            inner.violations.record(format!("{route}: {why}"));
            error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                why,
                Value::Null,
            )
        };
        let properties = &body["properties"];
        let Some(timestamp) = properties["hs_timestamp"].as_str() else {
            return refuse("hs_timestamp is required");
        };
        if chrono::DateTime::parse_from_rfc3339(timestamp).is_err() {
            return refuse("hs_timestamp is not a UTC timestamp");
        }
        let Some(note) = properties["hs_note_body"].as_str() else {
            return refuse("hs_note_body is required");
        };
        if note.chars().count() > 65_536 {
            return refuse("hs_note_body is longer than 65,536 characters");
        }
        let associations = body["associations"].as_array().cloned().unwrap_or_default();
        let [association] = associations.as_slice() else {
            return refuse("a note of this pipeline has exactly one association");
        };
        let typed = association["types"].as_array().is_some_and(|types| {
            types.iter().any(|t| {
                t["associationCategory"] == "HUBSPOT_DEFINED" && t["associationTypeId"] == 202
            })
        });
        if !typed {
            return refuse("the association is not HUBSPOT_DEFINED type 202 (note to contact)");
        }
        let to = match &association["to"]["id"] {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        let mut data = inner.lock();
        let Some(contact_id) = to.filter(|id| data.contacts.iter().any(|c| c.id == *id)) else {
            return refuse("the association is not to an existing contact");
        };
        data.next_id += 1;
        let id = data.next_id;
        data.notes.push(Note {
            id,
            contact_id,
            timestamp: timestamp.to_string(),
            body: note.to_string(),
        });
        (
            StatusCode::CREATED,
            Json(json!({ "id": id.to_string(), "properties": properties, "archived": false })),
        )
            .into_response()
    })
    .await
}

async fn list_notes(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(500)
            .clamp(1, inner.config.page_size.max(1));
        let after: usize = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let data = inner.lock();
        let Some(contact) = data.contacts.iter().find(|c| c.id.to_string() == id) else {
            return error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                "Resource not found",
                Value::Null,
            );
        };
        let ids: Vec<u64> = data
            .notes
            .iter()
            .filter(|n| n.contact_id == contact.id)
            .map(|n| n.id)
            .collect();
        let page: Vec<Value> = ids
            .iter()
            .skip(after)
            .take(limit)
            .map(|id| {
                json!({ "toObjectId": id, "associationTypes": [
                { "category": "HUBSPOT_DEFINED", "typeId": 202, "label": null }] })
            })
            .collect();
        let mut answer = json!({ "results": page });
        if after + limit < ids.len() {
            answer["paging"] = json!({ "next": { "after": (after + limit).to_string() } });
        }
        Json(answer).into_response()
    })
    .await
}

async fn read_notes(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, |inner| {
        let route = "POST /crm/v3/objects/notes/batch/read";
        let body = match json_body(inner, &headers, &body, route) {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if inputs.is_empty() || inputs.len() > 100 {
            inner
                .violations
                .record(format!("{route}: {} inputs (1 to 100)", inputs.len()));
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "1 to 100 inputs",
                Value::Null,
            );
        }
        let wanted: Vec<String> = body["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let data = inner.lock();
        let results: Vec<Value> = inputs
            .iter()
            .filter_map(|i| i["id"].as_str())
            .filter_map(|id| data.notes.iter().find(|n| n.id.to_string() == id))
            .map(|note| {
                let mut properties = Map::new();
                if wanted.iter().any(|w| w == "hs_note_body") {
                    properties.insert("hs_note_body".into(), json!(note.body));
                }
                properties.insert("hs_timestamp".into(), json!(note.timestamp));
                json!({ "id": note.id.to_string(), "properties": properties, "archived": false })
            })
            .collect();
        Json(json!({ "status": "COMPLETE", "results": results })).into_response()
    })
    .await
}

async fn unknown_route(
    State(inner): State<Arc<Inner>>,
    request: axum::extract::Request,
) -> Response {
    inner.violations.record(format!(
        "{} {}: not a route of this API",
        request.method(),
        request.uri().path()
    ));
    error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "not found",
        Value::Null,
    )
}
