//! SkipUp's REST API (`/api/v1`) as the pipeline sees it: meeting requests, webhook
//! endpoints, workspace members, and its errors. Every answer is classified once, in
//! [`SkipUpError::class`]: configuration errors (401, 403) and input errors (422) are
//! permanent; rate limits, server errors and timeouts are transient. The HTTPS client
//! is an adapter: [`crate::adapters::skipup::SkipUpClient`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Default production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.skipup.ai/api/v1";
/// SkipUp's documented limit on `context.description`.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

/// The webhook events a recovery listens to.
pub const RECOVERY_EVENTS: [&str; 5] = [
    "meeting_request.created",
    "meeting_request.follow_up_sent",
    "meeting_request.booked",
    "meeting_request.cancelled",
    "meeting_request.organizer_changed",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeframe {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingContext {
    pub title: String,
    pub purpose: String,
    pub description: String,
    pub duration_minutes: u32,
    pub timeframe: Timeframe,
}

/// Body of `POST /meeting_requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateMeetingRequest {
    pub organizer_email: String,
    pub participants: Vec<Participant>,
    pub include_introduction: bool,
    pub context: MeetingContext,
}

/// A meeting request as SkipUp returns it; only `id` and `status` are always present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingRequest {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub organizer_email: Option<String>,
    #[serde(default)]
    pub participant_emails: Option<Vec<String>>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub booked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    pub enabled: bool,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub disabled_at: Option<String>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

/// SkipUp's answer to `POST /webhook_endpoints`: the endpoint, and its signing secret
/// when SkipUp returns one (not documented; else it is in SkipUp's dashboard).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedWebhookEndpoint {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    #[serde(default)]
    pub secret: Option<SecretString>,
}

/// Body of `POST /webhook_endpoints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWebhookEndpoint {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceMember {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub deactivated_at: Option<String>,
}

/// What went wrong talking to SkipUp. Messages are SkipUp's own, which carry no secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkipUpError {
    #[error("SkipUp refused the API key (401): {message}")]
    Unauthorized { message: String },
    #[error("the SkipUp API key lacks a scope (403): {message}")]
    Forbidden { message: String },
    #[error("SkipUp refused the request (422 {kind}): {message}")]
    Invalid { kind: String, message: String },
    #[error("not found at SkipUp (404): {message}")]
    NotFound { message: String },
    #[error("rate limited by SkipUp (429)")]
    RateLimited { retry_after: Option<Duration> },
    #[error("SkipUp server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("SkipUp did not answer in time")]
    Timeout,
    #[error("could not reach SkipUp: {0}")]
    Network(String),
    #[error("unexpected answer from SkipUp ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

/// How a caller should react to a [`SkipUpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Our setup is wrong (key, scope): retrying will not help and the lead must not
    /// be burned; alarm.
    Configuration,
    /// This input is wrong: do not retry it unchanged.
    Input,
    /// Try again later, after `retry_after` when SkipUp said so.
    Transient { retry_after: Option<Duration> },
}

impl SkipUpError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SkipUpError::Unauthorized { .. } | SkipUpError::Forbidden { .. } => {
                ErrorClass::Configuration
            }
            SkipUpError::Invalid { .. } | SkipUpError::NotFound { .. } => ErrorClass::Input,
            SkipUpError::Unexpected { status, .. } if (400..500).contains(status) => {
                ErrorClass::Input
            }
            SkipUpError::RateLimited { retry_after } => ErrorClass::Transient {
                retry_after: *retry_after,
            },
            SkipUpError::Server { .. }
            | SkipUpError::Timeout
            | SkipUpError::Network(_)
            | SkipUpError::Unexpected { .. } => ErrorClass::Transient { retry_after: None },
        }
    }
}

/// Connection settings for [`crate::adapters::skipup::SkipUpClient`].
#[derive(Debug, Clone)]
pub struct SkipUpSettings {
    pub base_url: String,
    pub api_key: SecretString,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}
