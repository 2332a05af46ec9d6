//! A Salesforce double: the org's My Domain as the Salesforce CRM connector uses it,
//! checked against Salesforce's documented contract.
//!
//! - `POST /services/oauth2/token`, form-encoded `grant_type=client_credentials`,
//!   `client_id`, `client_secret`: `{access_token, instance_url, id, token_type,
//!   issued_at, signature}` (no `expires_in`), or 400 `invalid_client`. A token
//!   stops working after [`SalesforceConfig::token_lifetime`] (401 `INVALID_SESSION_ID`).
//! - `GET /services/data/{version}/query?q=`: the SOQL the connector sends, parsed
//!   with SOQL's string-literal rules (a quote or backslash not escaped is 400
//!   `MALFORMED_QUERY`), run on the double's Leads and Tasks.
//! - `PATCH /services/data/{version}/sobjects/Lead/{id}` `{"Status"}`: 204, or 400
//!   `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST` for a value not in the org's picklist.
//! - `POST .../sobjects/Lead` (LastName and Company required) and `POST
//!   .../sobjects/Task` (an existing `WhoId`, a Subject of at most 255 characters, a
//!   Description of at most 32,000, a Task status): 201 `{id, success, errors}`.
//!
//! Every answer carries `Sforce-Limit-Info: api-usage=N/LIMIT`. Over the rolling
//! limit (the org's allocation) the answer is 403 `REQUEST_LIMIT_EXCEEDED`
//! "TotalRequests Limit exceeded."; the injected rate-limit fault is the same code
//! for the concurrent-request limit ("ConcurrentPerOrgLongTxn Limit exceeded."),
//! which passes in moments. Salesforce answers no 429.

#![allow(
    clippy::result_large_err,
    reason = "a refusal is the response the handler returns at once"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::faults::{Fault, FaultConfig, Faults, Server, Violations};

/// The Lead Status values of a new org.
pub const STANDARD_LEAD_STATUSES: [&str; 4] = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];

const TASK_STATUSES: [&str; 5] = [
    "Not Started",
    "In Progress",
    "Completed",
    "Waiting on someone else",
    "Deferred",
];

/// Knobs of the Salesforce double.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `v66.0`: other versions in a path are refused.
    pub api_version: String,
    /// The org's Lead Status picklist.
    pub lead_statuses: Vec<String>,
    pub token_lifetime: Duration,
    /// Requests allowed per day, as `Sforce-Limit-Info` reports.
    pub daily_limit: usize,
    pub faults: FaultConfig,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            client_id: "3MVG9local.client.id".into(),
            client_secret: "local-client-secret".into(),
            api_version: "v66.0".into(),
            lead_statuses: STANDARD_LEAD_STATUSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            token_lifetime: Duration::from_secs(7200),
            daily_limit: 15_000,
            faults: FaultConfig::default(),
        }
    }
}

/// A Lead as the double keeps it.
#[derive(Debug, Clone)]
pub struct SfLead {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: String,
    pub company: String,
    pub status: String,
    pub is_converted: bool,
    pub created: u64,
}

/// A Task as the double keeps it.
#[derive(Debug, Clone)]
pub struct SfTask {
    pub id: String,
    pub who_id: String,
    pub subject: String,
    pub description: String,
    pub status: String,
    pub activity_date: String,
}

#[derive(Default)]
struct Data {
    next: u64,
    leads: Vec<SfLead>,
    tasks: Vec<SfTask>,
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    used: usize,
    answers: HashMap<u16, usize>,
}

impl Data {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:015}", self.next)
    }
}

struct Inner {
    config: SalesforceConfig,
    base: Mutex<String>,
    faults: Faults,
    violations: Violations,
    data: Mutex<Data>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running Salesforce double. Dropping it stops the server.
pub struct SalesforceDouble {
    inner: Arc<Inner>,
    server: Server,
}

impl SalesforceDouble {
    pub async fn start(config: SalesforceConfig, address: SocketAddr) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            faults: Faults::new(config.faults.clone()),
            violations: Violations::default(),
            data: Mutex::new(Data::default()),
            base: Mutex::new(String::new()),
            config,
        });
        let app = Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/data/{version}/query", axum::routing::get(query))
            .route("/services/data/{version}/sobjects/{object}", post(create))
            .route(
                "/services/data/{version}/sobjects/Lead/{id}",
                patch(update_lead),
            )
            .fallback(unknown_route)
            .with_state(inner.clone());
        let server = Server::start(app, address).await?;
        *inner.base.lock().unwrap_or_else(|p| p.into_inner()) =
            format!("http://{}", server.address);
        Ok(Self { inner, server })
    }

    /// `http://127.0.0.1:{port}`: what `SALESFORCE_INSTANCE_URL` is set to.
    pub fn instance_url(&self) -> String {
        format!("http://{}", self.server.address)
    }

    pub fn client_id(&self) -> &str {
        &self.inner.config.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.inner.config.client_secret
    }

    /// A Lead that exists before the pipeline runs; returns its id.
    pub fn add_lead(&self, email: &str, last_name: &str, company: &str) -> String {
        let mut data = self.inner.lock();
        let id = data.id("00Q");
        let created = data.next;
        data.leads.push(SfLead {
            id: id.clone(),
            email: email.to_string(),
            first_name: None,
            last_name: last_name.to_string(),
            company: company.to_string(),
            status: STANDARD_LEAD_STATUSES[0].to_string(),
            is_converted: false,
            created,
        });
        id
    }

    pub fn leads(&self) -> Vec<SfLead> {
        self.inner.lock().leads.clone()
    }

    pub fn lead(&self, email: &str) -> Option<SfLead> {
        self.inner
            .lock()
            .leads
            .iter()
            .find(|l| l.email.eq_ignore_ascii_case(email))
            .cloned()
    }

    /// The Tasks on the Lead with that email, oldest first.
    pub fn tasks_of(&self, email: &str) -> Vec<SfTask> {
        let Some(lead) = self.lead(email) else {
            return Vec::new();
        };
        self.inner
            .lock()
            .tasks
            .iter()
            .filter(|t| t.who_id == lead.id)
            .cloned()
            .collect()
    }

    /// Ends every session now (as an admin revoking them, or the org's timeout).
    pub fn expire_sessions(&self) {
        self.inner.lock().tokens.clear();
    }

    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().tokens_issued
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.list()
    }

    pub fn status_counts(&self) -> HashMap<u16, usize> {
        self.inner.lock().answers.clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{ "message": message, "errorCode": code, "fields": [] }])),
    )
        .into_response()
}

/// Counts the answer and adds `Sforce-Limit-Info`.
fn finish(inner: &Inner, mut response: Response) -> Response {
    let mut data = inner.lock();
    data.used += 1;
    *data.answers.entry(response.status().as_u16()).or_default() += 1;
    let info = format!("api-usage={}/{}", data.used, inner.config.daily_limit);
    response.headers_mut().insert(
        "sforce-limit-info",
        HeaderValue::from_str(&info).expect("ascii"),
    );
    response
}

/// The REST gate: the version, the session, the limit, the faults. `Ok(slow)`.
async fn gate(inner: &Inner, headers: &HeaderMap, version: &str) -> Result<bool, Response> {
    if version != inner.config.api_version {
        inner.violations.record(format!(
            "API version {version}, not {}",
            inner.config.api_version
        ));
        return Err(error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let live = inner
        .lock()
        .tokens
        .get(token)
        .is_some_and(|until| Instant::now() < *until);
    if !live {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
    }
    let limited = |message| error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", message);
    if inner.faults.take_slot().is_err() {
        return Err(limited("TotalRequests Limit exceeded."));
    }
    match inner.faults.roll() {
        Some(Fault::RateLimited) => Err(limited("ConcurrentPerOrgLongTxn Limit exceeded.")),
        Some(Fault::ServerError(code)) => Err(error(
            StatusCode::from_u16(code).expect("a 5xx"),
            "SERVER_UNAVAILABLE",
            "injected fault",
        )),
        Some(Fault::Slow) => Ok(true),
        None => Ok(false),
    }
}

async fn guarded(
    inner: &Inner,
    headers: &HeaderMap,
    version: &str,
    handle: impl FnOnce(&Inner) -> Response,
) -> Response {
    let (response, slow) = match gate(inner, headers, version).await {
        Err(refusal) => (refusal, false),
        Ok(slow) => (handle(inner), slow),
    };
    // Counted as it takes effect, before a slow answer's wait.
    let response = finish(inner, response);
    if slow {
        tokio::time::sleep(inner.faults.config().slow_delay).await;
    }
    response
}

async fn token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: String) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let fields: HashMap<String, String> = serde_urlencoded_pairs(&body);
    if !form {
        inner
            .violations
            .record("POST /services/oauth2/token: not form-encoded");
    }
    let field = |k: &str| fields.get(k).map(String::as_str);
    let response = if field("grant_type") != Some("client_credentials") {
        inner
            .violations
            .record("POST /services/oauth2/token: grant_type is not client_credentials");
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type",
            "error_description": "grant type not supported"})),
        )
            .into_response()
    } else if !form
        || field("client_id") != Some(inner.config.client_id.as_str())
        || field("client_secret") != Some(inner.config.client_secret.as_str())
    {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client",
            "error_description": "invalid client credentials"})),
        )
            .into_response()
    } else {
        let base = inner.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut data = inner.lock();
        data.tokens_issued += 1;
        let value = format!("00Dlocal!{:08}{}", data.tokens_issued, fastrand::u64(..));
        data.tokens
            .insert(value.clone(), Instant::now() + inner.config.token_lifetime);
        Json(json!({
            "access_token": value,
            "signature": "local",
            "scope": "api",
            "instance_url": base,
            "id": format!("{base}/id/00Dlocal/005local"),
            "token_type": "Bearer",
            "issued_at": chrono::Utc::now().timestamp_millis().to_string(),
        }))
        .into_response()
    };
    let mut data = inner.lock();
    *data.answers.entry(response.status().as_u16()).or_default() += 1;
    response
}

/// `a=1&b=2` decoded (the token endpoint's form).
fn serde_urlencoded_pairs(body: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn query(
    State(inner): State<Arc<Inner>>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    guarded(&inner, &headers, &version, |inner| {
        let Some(soql) = params.get("q") else {
            inner.violations.record("GET query: no q");
            return error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "q is required");
        };
        let parsed = match Soql::parse(soql) {
            Ok(parsed) => parsed,
            Err(why) => {
                inner.violations.record(format!("GET query: {why}: {soql}"));
                return error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &why);
            }
        };
        let data = inner.lock();
        let mut rows: Vec<(u64, Map<String, Value>)> = match parsed.object.as_str() {
            "Lead" => data
                .leads
                .iter()
                .map(|l| {
                    let mut row = Map::new();
                    row.insert("Id".into(), json!(l.id));
                    row.insert("Email".into(), json!(l.email));
                    row.insert("Status".into(), json!(l.status));
                    row.insert("IsConverted".into(), json!(l.is_converted));
                    (l.created, row)
                })
                .collect(),
            "Task" => data
                .tasks
                .iter()
                .map(|t| {
                    let mut row = Map::new();
                    row.insert("Id".into(), json!(t.id));
                    row.insert("WhoId".into(), json!(t.who_id));
                    row.insert("Subject".into(), json!(t.subject));
                    (0, row)
                })
                .collect(),
            other => {
                inner.violations.record(format!("GET query: object {other}"));
                return error(StatusCode::BAD_REQUEST, "INVALID_TYPE", "sObject type is not supported");
            }
        };
        rows.retain(|(_, row)| parsed.conditions.iter().all(|c| c.holds(row)));
        if parsed.newest_first {
            rows.sort_by_key(|row| std::cmp::Reverse(row.0));
        }
        if let Some(limit) = parsed.limit {
            rows.truncate(limit);
        }
        let records: Vec<Value> = rows
            .into_iter()
            .map(|(_, row)| {
                let mut record = Map::new();
                record.insert("attributes".into(), json!({ "type": parsed.object,
                    "url": format!("/services/data/{version}/sobjects/{}/{}", parsed.object, row["Id"].as_str().unwrap_or_default()) }));
                for field in &parsed.fields {
                    record.insert(field.clone(), row.get(field).cloned().unwrap_or(Value::Null));
                }
                Value::Object(record)
            })
            .collect();
        Json(json!({ "totalSize": records.len(), "done": true, "records": records })).into_response()
    })
    .await
}

async fn update_lead(
    State(inner): State<Arc<Inner>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, &version, |inner| {
        let body = match json_object(inner, &headers, &body, "PATCH sobjects/Lead") {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        if let Some(refusal) = check_status(inner, &body) {
            return refusal;
        }
        let mut data = inner.lock();
        let Some(lead) = data.leads.iter_mut().find(|l| l.id == id) else {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Provided external ID field does not exist or is not accessible",
            );
        };
        if let Some(status) = body.get("Status").and_then(Value::as_str) {
            lead.status = status.to_string();
        }
        StatusCode::NO_CONTENT.into_response()
    })
    .await
}

fn check_status(inner: &Inner, body: &Map<String, Value>) -> Option<Response> {
    let status = body.get("Status")?.as_str().unwrap_or_default();
    (!inner.config.lead_statuses.iter().any(|s| s == status)).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            &format!("Status: bad value for restricted picklist field: {status}"),
        )
    })
}

async fn create(
    State(inner): State<Arc<Inner>>,
    Path((version, object)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    guarded(&inner, &headers, &version, |inner| {
        let route = format!("POST sobjects/{object}");
        let body = match json_object(inner, &headers, &body, &route) {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let missing = |fields: &[&str]| {
            let missing: Vec<&str> = fields
                .iter()
                .copied()
                .filter(|f| text(f).is_none_or(|v| v.trim().is_empty()))
                .collect();
            (!missing.is_empty()).then(|| {
                inner
                    .violations
                    .record(format!("{route}: missing {missing:?}"));
                error(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_FIELD_MISSING",
                    &format!("Required fields are missing: {missing:?}"),
                )
            })
        };
        let created = |id: String| {
            (
                StatusCode::CREATED,
                Json(json!({ "id": id, "success": true, "errors": [] })),
            )
                .into_response()
        };
        match object.as_str() {
            "Lead" => {
                if let Some(refusal) =
                    missing(&["LastName", "Company"]).or_else(|| check_status(inner, &body))
                {
                    return refusal;
                }
                let mut data = inner.lock();
                let id = data.id("00Q");
                let created_at = data.next;
                data.leads.push(SfLead {
                    id: id.clone(),
                    email: text("Email").unwrap_or_default(),
                    first_name: text("FirstName"),
                    last_name: text("LastName").unwrap_or_default(),
                    company: text("Company").unwrap_or_default(),
                    status: text("Status").unwrap_or_else(|| STANDARD_LEAD_STATUSES[0].into()),
                    is_converted: false,
                    created: created_at,
                });
                created(id)
            }
            "Task" => {
                if let Some(refusal) = missing(&["WhoId", "Subject", "Status"]) {
                    return refusal;
                }
                let subject = text("Subject").unwrap_or_default();
                let description = text("Description").unwrap_or_default();
                let status = text("Status").unwrap_or_default();
                let date = text("ActivityDate").unwrap_or_default();
                let refuse = |why: String| {
                    inner.violations.record(format!("{route}: {why}"));
                    error(StatusCode::BAD_REQUEST, "STRING_TOO_LONG", &why)
                };
                if subject.chars().count() > 255 {
                    return refuse("Subject is longer than 255 characters".into());
                }
                if description.chars().count() > 32_000 {
                    return refuse("Description is longer than 32,000 characters".into());
                }
                if !TASK_STATUSES.contains(&status.as_str()) {
                    return refuse(format!("Status `{status}` is not a Task status"));
                }
                if !date.is_empty() && chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err()
                {
                    return refuse(format!("ActivityDate `{date}` is not YYYY-MM-DD"));
                }
                let mut data = inner.lock();
                let who = text("WhoId").unwrap_or_default();
                if !data.leads.iter().any(|l| l.id == who) {
                    inner
                        .violations
                        .record(format!("{route}: WhoId {who} is no Lead"));
                    return error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                    );
                }
                let id = data.id("00T");
                data.tasks.push(SfTask {
                    id: id.clone(),
                    who_id: who,
                    subject,
                    description,
                    status,
                    activity_date: date,
                });
                created(id)
            }
            other => {
                inner.violations.record(format!("{route}: object {other}"));
                error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                )
            }
        }
    })
    .await
}

fn json_object(
    inner: &Inner,
    headers: &HeaderMap,
    body: &[u8],
    route: &str,
) -> Result<Map<String, Value>, Response> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) if json_type => Ok(map),
        _ => {
            inner.violations.record(format!(
                "{route}: not a JSON object with Content-Type application/json"
            ));
            Err(error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "not a JSON object",
            ))
        }
    }
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
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// The SOQL this double understands: `SELECT f, g FROM Object WHERE a = 'x' AND b =
/// false AND c LIKE 'p%' [ORDER BY CreatedDate DESC] [LIMIT n]`.
#[derive(Debug)]
struct Soql {
    fields: Vec<String>,
    object: String,
    conditions: Vec<Condition>,
    newest_first: bool,
    limit: Option<usize>,
}

#[derive(Debug)]
enum Condition {
    Equals(String, Value),
    /// A LIKE pattern with only a trailing `%`.
    StartsWith(String, String),
}

impl Condition {
    fn holds(&self, row: &Map<String, Value>) -> bool {
        match self {
            // Email and text comparisons are case-insensitive in SOQL.
            Condition::Equals(field, Value::String(v)) => row
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|have| have.eq_ignore_ascii_case(v)),
            Condition::Equals(field, v) => row.get(field) == Some(v),
            Condition::StartsWith(field, prefix) => row
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|have| have.to_lowercase().starts_with(&prefix.to_lowercase())),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Comma,
    Equals,
}

fn tokens(soql: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = soql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => out.push(Token::Comma),
            '=' => out.push(Token::Equals),
            '\'' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a string literal is not closed".into()),
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('\\') => text.push('\\'),
                            Some('\'') => text.push('\''),
                            Some('"') => text.push('"'),
                            Some('n') => text.push('\n'),
                            Some('r') => text.push('\r'),
                            Some('t') => text.push('\t'),
                            Some('b') => text.push('\u{8}'),
                            Some('f') => text.push('\u{c}'),
                            Some('u') => {
                                let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                                let c = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or("a \\u escape needs four hex digits")?;
                                text.push(c);
                            }
                            other => {
                                return Err(format!(
                                    "invalid escape \\{}",
                                    other.map(String::from).unwrap_or_default()
                                ));
                            }
                        },
                        Some(c) => text.push(c),
                    }
                }
                out.push(Token::Text(text));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '%' || c == '@' => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '.' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(out)
}

/// Takes the next token when it is the keyword `word`.
fn keyword(at: &mut std::iter::Peekable<std::slice::Iter<'_, Token>>, word: &str) -> bool {
    match at.peek() {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
            at.next();
            true
        }
        _ => false,
    }
}

impl Soql {
    fn parse(soql: &str) -> Result<Self, String> {
        let tokens = tokens(soql)?;
        let mut at = tokens.iter().peekable();
        if !keyword(&mut at, "SELECT") {
            return Err("expected SELECT".into());
        }
        let mut fields = Vec::new();
        loop {
            match at.next() {
                Some(Token::Word(w)) => fields.push(w.clone()),
                _ => return Err("expected a field".into()),
            }
            if at.peek() == Some(&&Token::Comma) {
                at.next();
            } else {
                break;
            }
        }
        if !keyword(&mut at, "FROM") {
            return Err("expected FROM".into());
        }
        let object = match at.next() {
            Some(Token::Word(w)) => w.clone(),
            _ => return Err("expected an object".into()),
        };
        let mut conditions = Vec::new();
        if keyword(&mut at, "WHERE") {
            loop {
                let field = match at.next() {
                    Some(Token::Word(w)) => w.clone(),
                    _ => return Err("expected a field in WHERE".into()),
                };
                let condition = match at.next() {
                    Some(Token::Equals) => match at.next() {
                        Some(Token::Text(t)) => Condition::Equals(field, json!(t)),
                        Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => {
                            Condition::Equals(field, json!(false))
                        }
                        Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => {
                            Condition::Equals(field, json!(true))
                        }
                        _ => return Err("expected a value after =".into()),
                    },
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("LIKE") => match at.next() {
                        Some(Token::Text(t))
                            if t.ends_with('%') && !t[..t.len() - 1].contains(['%', '_']) =>
                        {
                            Condition::StartsWith(field, t[..t.len() - 1].to_string())
                        }
                        _ => return Err("this double takes LIKE 'prefix%' only".into()),
                    },
                    _ => return Err("expected = or LIKE".into()),
                };
                conditions.push(condition);
                if !keyword(&mut at, "AND") {
                    break;
                }
            }
        }
        let mut newest_first = false;
        if keyword(&mut at, "ORDER") {
            if !keyword(&mut at, "BY")
                || !keyword(&mut at, "CreatedDate")
                || !keyword(&mut at, "DESC")
            {
                return Err("this double takes ORDER BY CreatedDate DESC only".into());
            }
            newest_first = true;
        }
        let mut limit = None;
        if keyword(&mut at, "LIMIT") {
            limit = match at.next() {
                Some(Token::Word(n)) => Some(n.parse().map_err(|_| "LIMIT needs a number")?),
                _ => return Err("LIMIT needs a number".into()),
            };
        }
        if at.next().is_some() {
            return Err("unexpected text after the query".into());
        }
        Ok(Soql {
            fields,
            object,
            conditions,
            newest_first,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_literals_follow_the_escaping_rules() {
        let q = Soql::parse(r"SELECT Id FROM Lead WHERE Email = 'o\'brien\\x@y.example' LIMIT 1")
            .unwrap();
        assert!(
            matches!(&q.conditions[0], Condition::Equals(f, v) if f == "Email" && v == r"o'brien\x@y.example")
        );
        // An unescaped quote ends the literal: what follows is not SOQL this double runs.
        assert!(Soql::parse("SELECT Id FROM Lead WHERE Email = 'o'brien@y.example'").is_err());
        assert!(Soql::parse(r"SELECT Id FROM Lead WHERE Email = 'a\q'").is_err());
    }
}
