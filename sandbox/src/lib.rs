//! A SkipUp double for local runs and tests. It serves the parts of
//! `https://api.skipup.ai/api/v1` the pipeline uses and checks each request against
//! SkipUp's contract on the raw JSON (bearer key, body fields, 5,000-character
//! description, organizer membership, timeframe not in the past), with SkipUp's
//! behaviours: 24-hour idempotency per key, a rate limit (120 per minute by default)
//! answered with 429 and `Retry-After`, and injected transient faults (500, 503, and
//! answers slower than the client waits, after which the request still takes effect).
//!
//! Every request it accepted or refused is recorded, so tests can assert on what the
//! pipeline sent. Each accepted request then starts a simulated conversation that
//! sends signed webhooks back to the registered endpoints ([`conversation`]).

pub mod conversation;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

pub use conversation::{Conversation, ConversationConfig, Delivery, Outcome};

/// Knobs of the double.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub api_key: String,
    /// Active workspace members at start: the only valid organizers.
    pub members: Vec<String>,
    /// Requests allowed per `rate_window` per API key.
    pub rate_limit: usize,
    pub rate_window: Duration,
    /// Share of requests answered with a transient fault, 0.0 to 1.0.
    pub fault_rate: f64,
    /// How long a "slow" fault takes to answer.
    pub slow_delay: Duration,
    /// Extra latency on every answer.
    pub latency: Duration,
    pub seed: u64,
    /// The conversations that follow each accepted request.
    pub conversation: ConversationConfig,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            api_key: "sk_test_sandbox".into(),
            members: vec!["owner@vendor.example".into()],
            rate_limit: 120,
            rate_window: Duration::from_secs(60),
            fault_rate: 0.0,
            slow_delay: Duration::from_secs(3),
            latency: Duration::ZERO,
            seed: 7,
            conversation: ConversationConfig::default(),
        }
    }
}

/// One `POST /meeting_requests` the double answered, with what it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub idempotency_key: Option<String>,
    pub body: Value,
    pub status: u16,
    /// The id of the request created by this call (not for replays).
    pub created: Option<String>,
}

#[derive(Default)]
struct Data {
    members: Vec<String>,
    meeting_requests: HashMap<String, Value>,
    idempotency: HashMap<String, (Instant, u16, Value)>,
    window: VecDeque<Instant>,
    endpoints: Vec<Value>,
    recorded: Vec<Recorded>,
    violations: Vec<String>,
    next_id: u64,
    conversations: Vec<Conversation>,
    /// Conversations whose webhooks are still being delivered.
    playing: usize,
    deliveries: Vec<Delivery>,
    /// Recent delivery failures per endpoint URL.
    failures: HashMap<String, VecDeque<Instant>>,
}

struct Inner {
    config: SandboxConfig,
    rng: Mutex<fastrand::Rng>,
    data: Mutex<Data>,
    http: reqwest::Client,
}

/// A running double. Dropping it stops the server.
pub struct Sandbox {
    inner: Arc<Inner>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sandbox {
    /// Serves on `address` (port 0 for any free one).
    pub async fn start(config: SandboxConfig, address: SocketAddr) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            data: Mutex::new(Data {
                members: config.members.clone(),
                ..Data::default()
            }),
            config,
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/api/v1/meeting_requests", post(create_meeting_request))
            .route("/api/v1/meeting_requests/{id}", get(get_meeting_request))
            .route(
                "/api/v1/webhook_endpoints",
                get(list_webhook_endpoints).post(create_webhook_endpoint),
            )
            .route("/api/v1/workspace_members", get(list_members))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "sandbox server stopped");
            }
        });
        Ok(Self {
            inner,
            address,
            server,
        })
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:4010/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.address)
    }

    pub fn api_key(&self) -> &str {
        &self.inner.config.api_key
    }

    /// Replaces the active workspace members (e.g. to deactivate an organizer).
    pub fn set_members(&self, members: &[&str]) {
        self.inner.lock().members = members.iter().map(|m| m.to_string()).collect();
    }

    /// Every `POST /meeting_requests` answered so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner.lock().recorded.clone()
    }

    /// Meeting requests created, by participant email.
    pub fn created_per_participant(&self) -> HashMap<String, usize> {
        let data = self.inner.lock();
        let mut counts = HashMap::new();
        for request in data.meeting_requests.values() {
            for email in request["participant_emails"]
                .as_array()
                .into_iter()
                .flatten()
            {
                *counts
                    .entry(email.as_str().unwrap_or_default().to_string())
                    .or_insert(0) += 1;
            }
        }
        counts
    }

    /// Contract violations seen (each also answered with an error).
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().violations.clone()
    }

    /// The conversations started so far, in order.
    pub fn conversations(&self) -> Vec<Conversation> {
        self.inner.lock().conversations.clone()
    }

    /// How many conversations are still sending webhooks.
    pub fn conversations_playing(&self) -> usize {
        self.inner.lock().playing
    }

    /// Every webhook delivery that ended (delivered, or given up).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.lock().deliveries.clone()
    }

    /// The secret that signs webhook deliveries.
    pub fn webhook_secret(&self) -> &str {
        &self.inner.config.conversation.webhook_secret
    }

    /// Registered webhook endpoints, as `GET /webhook_endpoints` lists them.
    pub fn endpoints(&self) -> Vec<Value> {
        self.inner.lock().endpoints.clone()
    }

    /// Disables the endpoints at `url`, as SkipUp does after too many failures.
    pub fn disable_endpoint(&self, url: &str, reason: &str) {
        self.inner.lock().disable(url, reason);
    }

    /// Answers by status code.
    pub fn status_counts(&self) -> HashMap<u16, usize> {
        let mut counts = HashMap::new();
        for r in &self.inner.lock().recorded {
            *counts.entry(r.status).or_insert(0) += 1;
        }
        counts
    }
}

impl Data {
    fn disable(&mut self, url: &str, reason: &str) {
        let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for endpoint in self.endpoints.iter_mut().filter(|e| e["url"] == url) {
            endpoint["enabled"] = json!(false);
            endpoint["disabled_at"] = json!(at);
            endpoint["disabled_reason"] = json!(reason);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves a meeting request along with its conversation; returns it as it is now.
    fn advance(&self, id: &str, event_type: &str) -> Value {
        let mut data = self.lock();
        let Some(request) = data.meeting_requests.get_mut(id) else {
            return json!({ "id": id });
        };
        let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match event_type {
            "meeting_request.booked" => {
                request["status"] = json!("booked");
                request["booked_at"] = json!(at);
            }
            "meeting_request.cancelled" => {
                request["status"] = json!("cancelled");
                request["cancelled_at"] = json!(at);
            }
            _ => {}
        }
        request["updated_at"] = json!(at);
        request.clone()
    }

    /// URLs of the enabled endpoints subscribed to `event_type` (no list: all).
    fn subscribed(&self, event_type: &str) -> Vec<String> {
        self.lock()
            .endpoints
            .iter()
            .filter(|e| e["enabled"] == true)
            .filter(|e| {
                e["events"]
                    .as_array()
                    .is_none_or(|list| list.is_empty() || list.iter().any(|t| t == event_type))
            })
            .filter_map(|e| e["url"].as_str().map(str::to_string))
            .collect()
    }

    fn endpoint_enabled(&self, url: &str) -> bool {
        self.lock()
            .endpoints
            .iter()
            .any(|e| e["url"] == url && e["enabled"] == true)
    }

    /// Counts a failed delivery; the 10th within 24 hours disables the endpoint.
    fn endpoint_failed(&self, url: &str, now: Instant) {
        let mut data = self.lock();
        let failures = data.failures.entry(url.to_string()).or_default();
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(24 * 3600))
        {
            failures.pop_front();
        }
        if failures.len() >= 10 {
            data.disable(url, "too_many_failures");
        }
    }

    /// The refusal of a request without the right bearer key, if any. SkipUp
    /// answers 401 with either body shape; this one is the plain string.
    fn unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        let expected = format!("Bearer {}", self.config.api_key);
        let message = match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(value) if value == expected => return None,
            Some(_) => "Invalid or expired API key",
            None => "Missing authorization token",
        };
        Some(error_text(StatusCode::UNAUTHORIZED, message))
    }

    /// Sliding-window rate limit: `Err(seconds until a slot frees)` when over.
    fn take_rate_slot(&self) -> Result<(), u64> {
        let now = Instant::now();
        let window = self.config.rate_window;
        let mut data = self.lock();
        while data
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            data.window.pop_front();
        }
        if data.window.len() >= self.config.rate_limit {
            let oldest = *data.window.front().expect("window is full");
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        data.window.push_back(now);
        Ok(())
    }

    fn fault(&self) -> Option<Fault> {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if rng.f64() >= self.config.fault_rate {
            return None;
        }
        Some(match rng.u8(0..10) {
            0..=3 => Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
            4..=6 => Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
            _ => Fault::Slow,
        })
    }

    /// Common gate of every route: latency, key, rate limit, faults.
    async fn gate(&self, headers: &HeaderMap) -> Gate {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        if let Some(refusal) = self.unauthorized(headers) {
            return Gate::Refuse(refusal);
        }
        if let Err(retry_after) = self.take_rate_slot() {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Rate limit exceeded",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
            return Gate::Refuse(response);
        }
        match self.fault() {
            Some(Fault::Status(status)) => {
                Gate::Refuse(error(status, "server_error", "injected fault"))
            }
            Some(Fault::Slow) => Gate::Proceed { slow: true },
            None => Gate::Proceed { slow: false },
        }
    }
}

enum Gate {
    /// Go on; a slow request answers only after `slow_delay`, having taken effect.
    Proceed {
        slow: bool,
    },
    Refuse(Response),
}

enum Fault {
    Status(StatusCode),
    Slow,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": kind, "message": message } })),
    )
        .into_response()
}

fn error_text(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn is_email(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
    })
}

/// The SkipUp contract for a new meeting request; `Err` is the 422 message.
fn validate(body: &Value, members: &[String], now: DateTime<Utc>) -> Result<Vec<String>, String> {
    let organizer = body["organizer_email"]
        .as_str()
        .ok_or("organizer_email is required")?;
    if !members.iter().any(|m| m.eq_ignore_ascii_case(organizer)) {
        return Err(format!(
            "organizer_email {organizer} is not an active member of this workspace"
        ));
    }
    let participants: Vec<String> = match (body.get("participants"), body.get("participant_emails"))
    {
        (Some(_), Some(_)) => {
            return Err("send participants or participant_emails, not both".into());
        }
        (Some(Value::Array(list)), None) => list
            .iter()
            .map(|p| {
                if !is_email(&p["email"]) {
                    return Err("each participant needs a valid email".to_string());
                }
                if let Some(tz) = p.get("timezone").filter(|t| !t.is_null())
                    && !tz.as_str().is_some_and(|t| t.contains('/') || t == "UTC")
                {
                    return Err("participant timezone must be an IANA name".to_string());
                }
                Ok(p["email"].as_str().unwrap_or_default().to_lowercase())
            })
            .collect::<Result<_, _>>()?,
        (None, Some(Value::Array(list))) if list.iter().all(is_email) => list
            .iter()
            .map(|e| e.as_str().unwrap_or_default().to_lowercase())
            .collect(),
        _ => return Err("participants must be a non-empty list".into()),
    };
    if participants.is_empty() {
        return Err("participants must be a non-empty list".into());
    }
    if let Some(introduction) = body.get("include_introduction")
        && !introduction.is_boolean()
    {
        return Err("include_introduction must be a boolean".into());
    }
    if let Some(context) = body.get("context") {
        for field in ["title", "purpose", "description"] {
            if context
                .get(field)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(format!("context.{field} must be a string"));
            }
        }
        if let Some(description) = context["description"].as_str()
            && description.chars().count() > 5_000
        {
            return Err("context.description is longer than 5000 characters".into());
        }
        if let Some(minutes) = context.get("duration_minutes").filter(|v| !v.is_null())
            && !minutes.as_u64().is_some_and(|m| (1..=1440).contains(&m))
        {
            return Err("context.duration_minutes must be a positive whole number".into());
        }
        if let Some(timeframe) = context.get("timeframe").filter(|v| !v.is_null()) {
            let parse = |key: &str| {
                timeframe[key]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or(format!("context.timeframe.{key} must be an ISO 8601 time"))
            };
            let (start, end) = (parse("start")?, parse("end")?);
            if end <= start {
                return Err("context.timeframe.end must be after start".into());
            }
            if end <= now {
                return Err("context.timeframe is in the past".into());
            }
            if start < now - chrono::Duration::minutes(1) {
                return Err("context.timeframe.start is in the past".into());
            }
        }
    }
    Ok(participants)
}

const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

async fn create_meeting_request(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let slow = match inner.gate(&headers).await {
        Gate::Proceed { slow } => slow,
        Gate::Refuse(response) => {
            let status = response.status().as_u16();
            inner.lock().recorded.push(Recorded {
                idempotency_key: idempotency_key(&headers),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                status,
                created: None,
            });
            return response;
        }
    };
    let (status, answer, conversation) = create(&inner, &headers, &body);
    let created = conversation.as_ref().map(|c| c.meeting_request_id.clone());
    if let Some(conversation) = conversation {
        let player = inner.clone();
        tokio::spawn(async move {
            conversation::play(player.clone(), conversation).await;
            player.lock().playing -= 1;
        });
    }
    if slow {
        tokio::time::sleep(inner.config.slow_delay).await;
    }
    inner.lock().recorded.push(Recorded {
        idempotency_key: idempotency_key(&headers),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
        created,
    });
    (status, Json(answer)).into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Creates the request (or replays the answer to its key); a new request comes with
/// the conversation to play.
fn create(
    inner: &Inner,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Value, Option<Conversation>) {
    let key = idempotency_key(headers);
    let now = Instant::now();
    let mut data = inner.lock();
    if let Some(key) = &key {
        data.idempotency
            .retain(|_, (at, _, _)| now.duration_since(*at) < IDEMPOTENCY_TTL);
        if let Some((_, status, answer)) = data.idempotency.get(key) {
            return (
                StatusCode::from_u16(*status).expect("stored status"),
                answer.clone(),
                None,
            );
        }
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let result = match (&parsed, json_body) {
        (Some(value), true) if value.is_object() => validate(value, &data.members, Utc::now()),
        _ => Err("the body must be a JSON object sent as application/json".into()),
    };
    let (status, answer, created) = match result {
        Err(message) => {
            if !message.contains("not an active member") {
                data.violations.push(message.clone());
            }
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": { "type": "validation_error", "message": message } }),
                None,
            )
        }
        Ok(participants) => {
            data.next_id += 1;
            let id = format!("mr_SANDBOX{:018}", data.next_id);
            let body = parsed.expect("validated");
            let context = &body["context"];
            let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let request = json!({
                "id": id,
                "organizer_email": body["organizer_email"],
                "participant_emails": participants,
                "status": "active",
                "title": context["title"],
                "purpose": context["purpose"],
                "description": context["description"],
                "include_introduction": body["include_introduction"],
                "duration_minutes": context["duration_minutes"],
                "timeframe": context["timeframe"],
                "created_at": at,
                "updated_at": at,
                "booked_at": null,
                "cancelled_at": null,
                "paused_at": null,
            });
            data.meeting_requests.insert(id.clone(), request.clone());
            let conversation = Conversation::plan(
                &inner.config.conversation,
                inner.config.seed,
                &id,
                &participants[0],
            );
            data.conversations.push(conversation.clone());
            data.playing += 1;
            (
                StatusCode::ACCEPTED,
                json!({ "data": request }),
                Some(conversation),
            )
        }
    };
    if let Some(key) = key {
        data.idempotency
            .insert(key, (now, status.as_u16(), answer.clone()));
    }
    (status, answer, created)
}

async fn get_meeting_request(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Gate::Refuse(response) = inner.gate(&headers).await {
        return response;
    }
    match inner.lock().meeting_requests.get(&id) {
        Some(request) => Json(json!({ "data": request })).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Couldn't find the requested record",
        ),
    }
}

#[derive(Deserialize)]
struct MemberQuery {
    email: Option<String>,
}

async fn list_members(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<MemberQuery>,
) -> Response {
    if let Gate::Refuse(response) = inner.gate(&headers).await {
        return response;
    }
    let members: Vec<Value> = inner
        .lock()
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            query
                .email
                .as_ref()
                .is_none_or(|e| e.eq_ignore_ascii_case(m))
        })
        .map(|(i, m)| {
            json!({ "id": format!("mem_{i:04}"), "email": m, "name": m, "role": "member",
                    "deactivated_at": null, "created_at": "2026-01-01T00:00:00Z" })
        })
        .collect();
    Json(json!({ "data": members, "meta": { "limit": 25, "has_more": false } })).into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_webhook_endpoints(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    if let Gate::Refuse(response) = inner.gate(&headers).await {
        return response;
    }
    let limit = query.limit.unwrap_or(25).clamp(1, 100);
    let data = inner.lock();
    let start = query
        .cursor
        .and_then(|c| data.endpoints.iter().position(|e| e["id"] == c.as_str()))
        .map_or(0, |i| i + 1);
    let page: Vec<Value> = data
        .endpoints
        .iter()
        .skip(start)
        .take(limit)
        .cloned()
        .collect();
    let has_more = start + page.len() < data.endpoints.len();
    let next_cursor = has_more
        .then(|| page.last().map(|e| e["id"].clone()))
        .flatten();
    Json(json!({
        "data": page,
        "meta": { "limit": limit, "has_more": has_more, "next_cursor": next_cursor }
    }))
    .into_response()
}

async fn create_webhook_endpoint(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Gate::Refuse(response) = inner.gate(&headers).await {
        return response;
    }
    let Some(url) = body["url"].as_str().filter(|u| u.starts_with("http")) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "url is required",
        );
    };
    let mut data = inner.lock();
    data.next_id += 1;
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let endpoint = json!({
        "id": format!("we_SANDBOX{:018}", data.next_id),
        "url": url,
        "description": body["description"],
        "enabled": true,
        "events": body["events"],
        "disabled_at": null,
        "disabled_reason": null,
        "created_at": at,
        "updated_at": at,
    });
    data.endpoints.push(endpoint.clone());
    // SkipUp does not document where an endpoint's secret comes from; the double
    // hands out its one signing secret here.
    let mut answer = endpoint;
    answer["secret"] = json!(inner.config.conversation.webhook_secret);
    (StatusCode::CREATED, Json(json!({ "data": answer }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn valid() -> Value {
        json!({
            "organizer_email": "owner@vendor.example",
            "participants": [{"email": "dana@northwind.example", "name": "Dana", "timezone": "America/Chicago"}],
            "include_introduction": true,
            "context": {"title": "Demo", "purpose": "p", "description": "d", "duration_minutes": 30,
                        "timeframe": {"start": "2026-11-22T12:00:00Z", "end": "2026-12-06T12:00:00Z"}}
        })
    }

    type Mutation = fn(&mut Value);

    fn members() -> Vec<String> {
        vec!["owner@vendor.example".into()]
    }

    #[tokio::test]
    async fn the_121st_request_within_a_minute_is_refused_with_retry_after() {
        let sandbox = Sandbox::start(SandboxConfig::default(), ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let inner = &sandbox.inner;
        for _ in 0..120 {
            assert_eq!(inner.take_rate_slot(), Ok(()));
        }
        let retry_after = inner.take_rate_slot().unwrap_err();
        assert!((59..=60).contains(&retry_after), "{retry_after}");
    }

    #[test]
    fn a_valid_request_passes_the_contract() {
        assert_eq!(
            validate(&valid(), &members(), now()),
            Ok(vec!["dana@northwind.example".into()])
        );
    }

    #[test]
    fn the_contract_refuses_what_skipup_refuses() {
        let cases: Vec<(Mutation, &str)> = vec![
            (
                |b| b["organizer_email"] = json!("rep@vendor.example"),
                "not an active member",
            ),
            (
                |b| b["context"]["description"] = json!("x".repeat(5001)),
                "longer than 5000",
            ),
            (
                |b| b["context"]["timeframe"]["end"] = json!("2026-11-01T00:00:00Z"),
                "end must be after start",
            ),
            (
                |b| {
                    b["context"]["timeframe"] =
                        json!({"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"})
                },
                "in the past",
            ),
            (|b| b["participant_emails"] = json!(["x@y.io"]), "not both"),
            (|b| b["participants"] = json!([]), "non-empty"),
            (
                |b| b["participants"][0]["timezone"] = json!("CET+1"),
                "IANA",
            ),
        ];
        for (mutate, expected) in cases {
            let mut body = valid();
            mutate(&mut body);
            let message = validate(&body, &members(), now()).unwrap_err();
            assert!(message.contains(expected), "{message}");
        }
    }
}
