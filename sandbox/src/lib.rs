//! Doubles for local runs and tests: SkipUp (this module), and HubSpot's and
//! Salesforce's CRM APIs ([`hubspot`], [`salesforce`]), which share [`FaultConfig`].
//!
//! The SkipUp double serves the parts of
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
//!
//! A request can also be moved by the API, through the same gate (key, rate limit,
//! faults) and honouring `Idempotency-Key` per route like create does:
//!
//! - `POST /meeting_requests/{id}/cancel`, optional body `{"notify": bool}` (default
//!   false; any other body is 422 `validation_error`): from `active` or `paused` only,
//!   200 `{"data": request}` with status `cancelled` and `cancelled_at` set; a booked or
//!   cancelled request is 422 `invalid_request` ("Cannot cancel a request that is
//!   already booked"). Its conversation stops: no follow-up and no booking after it,
//!   and a `meeting_request.cancelled` webhook goes out instead. [`Sandbox::cancels`]
//!   counts the cancellations per request, [`Sandbox::sent_after_cancel`] lists the
//!   follow-up and booked webhooks sent after one (which should be none).
//! - `POST /meeting_requests/{id}/pause` (from `active` only) and `.../resume` (from
//!   `paused` only), 200 `{"data": request}` or 422 `invalid_request`. A paused
//!   conversation sends nothing and books nothing until it is resumed or cancelled.
//! - An unknown id is 404 `not_found`.
//!
//! `GET /meeting_requests/{id}` always shows the request's true state, whether or not
//! its webhooks arrived: with [`ConversationConfig::drop_webhooks`] some events are
//! never sent at all (as if SkipUp gave up on them) while the state still changes,
//! and [`Sandbox::dropped`] lists them.

pub mod conversation;
mod faults;
pub mod hubspot;
pub mod salesforce;

use std::collections::{HashMap, HashSet, VecDeque};
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
pub use faults::FaultConfig;
pub use hubspot::{HubSpotConfig, HubSpotDouble};
pub use salesforce::{SalesforceConfig, SalesforceDouble};

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

/// What the API did to one meeting request by cancelling it (200 answers that
/// changed its state; replays and refusals do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancellation {
    /// Cancellations performed: at most 1, since a cancelled request stays cancelled.
    pub count: usize,
    /// Whether a cancellation asked SkipUp to notify the participants.
    pub notify: bool,
}

/// One `POST /meeting_requests/{id}/cancel|pause|resume` the double answered.
#[derive(Debug, Clone)]
pub struct ActionCall {
    pub meeting_request_id: String,
    /// `cancel`, `pause` or `resume`.
    pub action: String,
    pub idempotency_key: Option<String>,
    /// The body as JSON (`Null` when there was none or it was not JSON).
    pub body: Value,
    pub status: u16,
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
    /// Stored answers by (route, key).
    idempotency: HashMap<(String, String), (Instant, u16, Value)>,
    window: VecDeque<Instant>,
    endpoints: Vec<Value>,
    recorded: Vec<Recorded>,
    violations: Vec<String>,
    next_id: u64,
    conversations: Vec<Conversation>,
    /// Meeting requests whose conversations ended (the others are still playing).
    ended: HashSet<String>,
    /// Steps each conversation waited through while its request was paused.
    paused_steps: HashMap<String, usize>,
    deliveries: Vec<Delivery>,
    /// Recent delivery failures per endpoint URL.
    failures: HashMap<String, VecDeque<Instant>>,
    /// Cancellations by the API, with where the send log stood at the cancellation.
    cancels: HashMap<String, (Cancellation, usize)>,
    /// Every delivery attempt made, in order: (meeting request, event type).
    sends: Vec<(String, String)>,
    /// Events never sent: (meeting request, event type).
    dropped: Vec<(String, String)>,
    actions: Vec<ActionCall>,
}

struct Inner {
    config: SandboxConfig,
    /// Which held conversations may go on ([`ConversationConfig::held`]).
    released: tokio::sync::watch::Sender<Released>,
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
            released: tokio::sync::watch::Sender::new(Released::default()),
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/api/v1/meeting_requests", post(create_meeting_request))
            .route("/api/v1/meeting_requests/{id}", get(get_meeting_request))
            .route(
                "/api/v1/meeting_requests/{id}/cancel",
                post(cancel_meeting_request),
            )
            .route(
                "/api/v1/meeting_requests/{id}/pause",
                post(pause_meeting_request),
            )
            .route(
                "/api/v1/meeting_requests/{id}/resume",
                post(resume_meeting_request),
            )
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
        let data = self.inner.lock();
        data.conversations.len() - data.ended.len()
    }

    /// How many steps the conversation of request `mr` spent waiting while paused:
    /// evidence that time passed for it without it moving.
    pub fn paused_steps(&self, mr: &str) -> usize {
        self.inner.lock().paused_steps.get(mr).copied().unwrap_or(0)
    }

    /// Lets the conversation with `participant` go on (with
    /// [`ConversationConfig::held`]): it plays to its end, one step per `step`.
    pub fn release(&self, participant: &str) {
        self.advance(participant, usize::MAX);
    }

    /// Lets the held conversation with `participant` take `steps` more steps (a step
    /// delivers one webhook, or waits once while paused), then hold again.
    pub fn advance(&self, participant: &str, steps: usize) {
        self.inner.released.send_modify(|r| {
            let allowed = r.steps.entry(participant.to_string()).or_default();
            *allowed = allowed.saturating_add(steps);
        });
    }

    /// Lets every conversation go on, those to come included.
    pub fn release_all(&self) {
        self.inner.released.send_modify(|r| r.all = true);
    }

    /// Whether the conversation with `participant` started and has ended: every
    /// webhook it was to send was delivered or given up.
    pub fn finished(&self, participant: &str) -> bool {
        let data = self.inner.lock();
        data.conversations
            .iter()
            .any(|c| c.participant == participant && data.ended.contains(&c.meeting_request_id))
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

    /// How many cancellations the API performed, per meeting request.
    pub fn cancels(&self) -> HashMap<String, usize> {
        self.inner
            .lock()
            .cancels
            .iter()
            .map(|(id, (c, _))| (id.clone(), c.count))
            .collect()
    }

    /// The API's cancellations per meeting request, with whether they asked to notify.
    pub fn cancellations(&self) -> HashMap<String, Cancellation> {
        self.inner
            .lock()
            .cancels
            .iter()
            .map(|(id, (c, _))| (id.clone(), *c))
            .collect()
    }

    /// Every `cancel`, `pause` and `resume` call answered so far, in order.
    pub fn actions(&self) -> Vec<ActionCall> {
        self.inner.lock().actions.clone()
    }

    /// The `follow_up_sent` and `booked` webhooks sent (delivery attempts made) for a
    /// request after the API cancelled it, as (meeting request, event type), from the
    /// log of every attempt. SkipUp sends none, so this stays empty.
    pub fn sent_after_cancel(&self) -> Vec<(String, String)> {
        let data = self.inner.lock();
        data.sends
            .iter()
            .enumerate()
            .filter(|(i, (mr, event_type))| {
                !conversation::may_follow_a_cancel(event_type)
                    && data.cancels.get(mr).is_some_and(|(_, at)| i >= at)
            })
            .map(|(_, send)| send.clone())
            .collect()
    }

    /// The webhook events never sent to anyone (`drop_webhooks`), as (meeting request,
    /// event type), in the order they happened.
    pub fn dropped(&self) -> Vec<(String, String)> {
        self.inner.lock().dropped.clone()
    }

    /// Every webhook delivery attempt made so far, as (meeting request, event type).
    pub fn sends(&self) -> Vec<(String, String)> {
        self.inner.lock().sends.clone()
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

/// Why a conversation cannot go on for now.
pub(crate) enum Halt {
    /// Paused: wait for a resume (or a cancellation).
    Paused,
    /// The API cancelled the request, which is now as given.
    CancelledByApi(Value),
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Data {
    fn halted(&self, id: &str) -> Option<Halt> {
        let request = self.meeting_requests.get(id)?;
        if self.cancels.contains_key(id) {
            return Some(Halt::CancelledByApi(request.clone()));
        }
        (request["status"] == "paused").then_some(Halt::Paused)
    }

    fn disable(&mut self, url: &str, reason: &str) {
        let at = now_text();
        for endpoint in self.endpoints.iter_mut().filter(|e| e["url"] == url) {
            endpoint["enabled"] = json!(false);
            endpoint["disabled_at"] = json!(at);
            endpoint["disabled_reason"] = json!(reason);
        }
    }
}

/// How far the held conversations may go.
#[derive(Debug, Default)]
struct Released {
    all: bool,
    /// Steps allowed, by participant.
    steps: HashMap<String, usize>,
}

impl Inner {
    /// Waits until the conversation with `participant` may take its step `step`
    /// (counted from 0).
    pub(crate) async fn until_released(&self, participant: &str, step: usize) {
        if !self.config.conversation.held {
            return;
        }
        let mut released = self.released.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = released
            .wait_for(|r| r.all || r.steps.get(participant).is_some_and(|n| *n > step))
            .await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the conversation of request `id` cannot go on now, if it cannot.
    pub(crate) fn halted(&self, id: &str) -> Option<Halt> {
        self.lock().halted(id)
    }

    /// Makes `event_type` happen to request `id` (a booking books it, a cancellation
    /// cancels it) unless the request is paused or was cancelled by the API; returns
    /// the request as it is now. A request its conversation already ended stays as it is.
    pub(crate) fn happen(&self, id: &str, event_type: &str) -> Result<Value, Halt> {
        let mut data = self.lock();
        if let Some(halt) = data.halted(id) {
            return Err(halt);
        }
        let Some(request) = data.meeting_requests.get_mut(id) else {
            return Ok(json!({ "id": id }));
        };
        if request["status"] != "active" {
            return Ok(request.clone());
        }
        let at = now_text();
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
        Ok(request.clone())
    }

    /// Notes that `event_type` of request `id` will never be sent.
    pub(crate) fn record_dropped(&self, id: &str, event_type: &str) {
        self.lock()
            .dropped
            .push((id.to_string(), event_type.to_string()));
    }

    /// Whether to make a delivery attempt of `event_type` about `mr` to `url`: not to a
    /// disabled endpoint, and nothing but `created` and `cancelled` once the API
    /// cancelled the request. An attempt allowed is logged as sent.
    pub(crate) fn begin_attempt(&self, mr: &str, event_type: &str, url: &str) -> bool {
        let mut data = self.lock();
        let enabled = data
            .endpoints
            .iter()
            .any(|e| e["url"] == url && e["enabled"] == true);
        if !enabled
            || (data.cancels.contains_key(mr) && !conversation::may_follow_a_cancel(event_type))
        {
            return false;
        }
        data.sends.push((mr.to_string(), event_type.to_string()));
        true
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

/// The answer stored for `key` on `route`, if any (answers older than 24 h are gone).
fn replay(data: &mut Data, route: &str, key: Option<&str>, now: Instant) -> Option<(u16, Value)> {
    let key = key?;
    data.idempotency
        .retain(|_, (at, _, _)| now.duration_since(*at) < IDEMPOTENCY_TTL);
    data.idempotency
        .get(&(route.to_string(), key.to_string()))
        .map(|(_, status, answer)| (*status, answer.clone()))
}

fn store(
    data: &mut Data,
    route: &str,
    key: Option<String>,
    now: Instant,
    status: u16,
    answer: &Value,
) {
    if let Some(key) = key {
        data.idempotency
            .insert((route.to_string(), key), (now, status, answer.clone()));
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

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
        let request = answer["data"].clone();
        tokio::spawn(async move {
            // Counted out when the conversation ends, even if it panics.
            struct Ended(Arc<Inner>, String);
            impl Drop for Ended {
                fn drop(&mut self) {
                    self.0.lock().ended.insert(std::mem::take(&mut self.1));
                }
            }
            let ended = Ended(player, conversation.meeting_request_id.clone());
            conversation::play(ended.0.clone(), conversation, request).await;
        });
    }
    // Recorded as it takes effect: a slow answer is late for the client, not for
    // what the double says happened (a client's retry may be answered first).
    inner.lock().recorded.push(Recorded {
        idempotency_key: idempotency_key(&headers),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
        created,
    });
    if slow {
        tokio::time::sleep(inner.config.slow_delay).await;
    }
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
    const ROUTE: &str = "POST /api/v1/meeting_requests";
    let key = idempotency_key(headers);
    let now = Instant::now();
    let mut data = inner.lock();
    if let Some((status, answer)) = replay(&mut data, ROUTE, key.as_deref(), now) {
        return (
            StatusCode::from_u16(status).expect("stored status"),
            answer,
            None,
        );
    }
    let json_body = is_json(headers);
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
            let at = now_text();
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
            (
                StatusCode::ACCEPTED,
                json!({ "data": request }),
                Some(conversation),
            )
        }
    };
    store(&mut data, ROUTE, key, now, status.as_u16(), &answer);
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

/// What the API can do to an existing meeting request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Cancel,
    Pause,
    Resume,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

async fn cancel_meeting_request(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    act(inner, headers, id, body, Action::Cancel).await
}

async fn pause_meeting_request(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    act(inner, headers, id, body, Action::Pause).await
}

async fn resume_meeting_request(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    act(inner, headers, id, body, Action::Resume).await
}

/// Answers a cancel, pause or resume the way create is answered: the gate first, then
/// the change (which a slow fault answers late, having made it); every answer recorded.
async fn act(
    inner: Arc<Inner>,
    headers: HeaderMap,
    id: String,
    body: axum::body::Bytes,
    action: Action,
) -> Response {
    let record = |inner: &Inner, status: u16| {
        inner.lock().actions.push(ActionCall {
            meeting_request_id: id.clone(),
            action: action.name().to_string(),
            idempotency_key: idempotency_key(&headers),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            status,
        });
    };
    let slow = match inner.gate(&headers).await {
        Gate::Proceed { slow } => slow,
        Gate::Refuse(response) => {
            record(&inner, response.status().as_u16());
            return response;
        }
    };
    let (status, answer) = apply(&inner, &headers, &id, &body, action);
    // Recorded as it takes effect, before a slow answer's wait.
    record(&inner, status.as_u16());
    if slow {
        tokio::time::sleep(inner.config.slow_delay).await;
    }
    (status, Json(answer)).into_response()
}

/// The `notify` of a cancel body: none (or only whitespace) is `false`; otherwise it
/// must be a JSON object sent as JSON whose one possible field is a boolean `notify`.
fn cancel_notify(headers: &HeaderMap, body: &[u8]) -> Result<bool, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let Some(Value::Object(fields)) = serde_json::from_slice(body)
        .ok()
        .filter(|_| is_json(headers))
    else {
        return Err("the body must be a JSON object sent as application/json".into());
    };
    if let Some(other) = fields.keys().find(|k| *k != "notify") {
        return Err(format!("unknown parameter {other}"));
    }
    match fields.get("notify") {
        None => Ok(false),
        Some(Value::Bool(notify)) => Ok(*notify),
        Some(_) => Err("notify must be a boolean".into()),
    }
}

/// Cancels, pauses or resumes request `id` (or replays the answer to the key).
fn apply(
    inner: &Inner,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    action: Action,
) -> (StatusCode, Value) {
    let route = format!("POST /api/v1/meeting_requests/{id}/{}", action.name());
    let key = idempotency_key(headers);
    let now = Instant::now();
    let mut data = inner.lock();
    if let Some((status, answer)) = replay(&mut data, &route, key.as_deref(), now) {
        return (StatusCode::from_u16(status).expect("stored status"), answer);
    }
    let (status, answer) = change(&mut data, headers, id, body, action);
    store(&mut data, &route, key, now, status.as_u16(), &answer);
    (status, answer)
}

fn refusal(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({ "error": { "type": kind, "message": message } }),
    )
}

fn change(
    data: &mut Data,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    action: Action,
) -> (StatusCode, Value) {
    let Some(status) = data
        .meeting_requests
        .get(id)
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
    else {
        return refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            "Couldn't find the requested record",
        );
    };
    let notify = match action {
        Action::Cancel => match cancel_notify(headers, body) {
            Ok(notify) => notify,
            Err(message) => {
                data.violations.push(message.clone());
                return refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_error",
                    &message,
                );
            }
        },
        Action::Pause | Action::Resume => false,
    };
    let refused = match (action, status.as_str()) {
        (Action::Cancel, "active" | "paused") => None,
        (Action::Cancel, other) => Some(format!("Cannot cancel a request that is already {other}")),
        (Action::Pause, "active") => None,
        (Action::Pause, "paused") => Some("Cannot pause a request that is already paused".into()),
        (Action::Pause, other) => Some(format!("Cannot pause a request that is {other}")),
        (Action::Resume, "paused") => None,
        (Action::Resume, _) => Some("Cannot resume a request that is not paused".into()),
    };
    if let Some(message) = refused {
        return refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            &message,
        );
    }
    let at = now_text();
    let sent_so_far = data.sends.len();
    let request = data.meeting_requests.get_mut(id).expect("found above");
    match action {
        Action::Cancel => {
            request["status"] = json!("cancelled");
            request["cancelled_at"] = json!(at);
            request["paused_at"] = Value::Null;
        }
        Action::Pause => {
            request["status"] = json!("paused");
            request["paused_at"] = json!(at);
        }
        Action::Resume => {
            request["status"] = json!("active");
            request["paused_at"] = Value::Null;
        }
    }
    request["updated_at"] = json!(at);
    let answer = json!({ "data": request });
    if action == Action::Cancel {
        let (cancellation, _) = data
            .cancels
            .entry(id.to_string())
            .or_insert((Cancellation::default(), sent_so_far));
        cancellation.count += 1;
        cancellation.notify |= notify;
        for conversation in data
            .conversations
            .iter_mut()
            .filter(|c| c.meeting_request_id == id)
        {
            conversation.cancelled_by_api = true;
        }
    }
    (StatusCode::OK, answer)
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
    let at = now_text();
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

    #[test]
    fn a_cancel_body_is_nothing_or_a_boolean_notify() {
        let mut json_headers = HeaderMap::new();
        json_headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let notify = |body: &str| cancel_notify(&json_headers, body.as_bytes());
        assert_eq!(notify(""), Ok(false));
        assert_eq!(notify(" \n"), Ok(false));
        assert_eq!(notify("{}"), Ok(false));
        assert_eq!(notify(r#"{"notify": true}"#), Ok(true));
        assert_eq!(notify(r#"{"notify": false}"#), Ok(false));
        for refused in [
            r#"{"notify": "true"}"#,
            r#"{"notify": 1}"#,
            r#"{"notify": null}"#,
            r#"{"notify": true, "reason": "x"}"#,
            "[]",
            "null",
            "notify=true",
        ] {
            assert!(notify(refused).is_err(), "{refused}");
        }
        assert!(cancel_notify(&HeaderMap::new(), br#"{"notify": true}"#).is_err());
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
