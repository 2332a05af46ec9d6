//! Narrow async traits the handlers depend on. Production adapters live in
//! [`crate::adapters`]; fakes for tests sit behind the `test-util` feature.

use std::error::Error as StdError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::connectors::fields::normalize_phone;
use crate::lead::{BookingState, EmailAddress, Lead, LeadId, TimelineEntry};
use crate::skipup::{
    CreateMeetingRequest, CreatedWebhookEndpoint, MeetingRequest, NewWebhookEndpoint, SkipUpError,
    WebhookEndpoint, WorkspaceMember,
};

/// One message for a queue. FIFO queues need `group_id` and `dedup_id`; standard
/// queues may carry a delay (at most 900 seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub delay_seconds: Option<u32>,
}

/// Why a message was not enqueued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or answered with a server error: try again.
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The queue refused this message (too large, bad attribute, missing queue).
    #[error("queue refused the message: {0}")]
    Rejected(String),
}

/// Durable hand-off to the next stage. `send` returns only once the message is stored.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError>;
}

/// The current time, replaceable in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Why the lead store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lead changed since it was read (optimistic concurrency): read it again.
    #[error("the lead changed concurrently")]
    Conflict,
    #[error("lead store unavailable: {0}")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// An item that does not map to a lead: a bug or a manual edit.
    #[error("corrupt lead item: {0}")]
    Corrupt(String),
}

/// What `create_lead` found.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// The same submission, or the same email within the re-submission window.
    Existing(Box<Lead>),
}

/// A way to find a lead other than its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pointer {
    MeetingRequest(String),
    SkodeLead(String),
    /// A normalized phone number (`+` and digits), written at intake.
    Phone(String),
    /// The lead the address last started (its email claim).
    Email(EmailAddress),
}

impl Pointer {
    /// What kind of pointer, for logs (never its value).
    pub fn kind(&self) -> &'static str {
        match self {
            Pointer::MeetingRequest(_) => "meeting_request",
            Pointer::SkodeLead(_) => "skode_lead",
            Pointer::Phone(_) => "phone",
            Pointer::Email(_) => "email",
        }
    }

    /// The pointers a new lead gets besides its email claim.
    pub fn for_new_lead(lead: &Lead) -> Vec<Pointer> {
        let p = &lead.profile;
        p.skode_lead_id
            .clone()
            .map(Pointer::SkodeLead)
            .into_iter()
            .chain(
                p.phone
                    .as_deref()
                    .and_then(normalize_phone)
                    .map(Pointer::Phone),
            )
            .collect()
    }
}

/// The system of record for leads and their timelines.
#[async_trait]
pub trait LeadStore: Send + Sync {
    /// Stores a new lead and its first timeline entry, unless the same id exists or
    /// its email already started a lead less than `resubmit_window` ago; then returns
    /// that lead and writes nothing.
    async fn create_lead(
        &self,
        lead: &Lead,
        entry: &TimelineEntry,
        resubmit_window: chrono::Duration,
    ) -> Result<CreateOutcome, StoreError>;

    async fn get_lead(&self, id: &LeadId) -> Result<Option<Lead>, StoreError>;

    /// Replaces the lead if its stored version is still `lead.version` (the stored
    /// copy gets `lead.version + 1`), appending `entry` to its timeline and adding
    /// `pointer`, all or nothing. [`StoreError::Conflict`] when it changed meanwhile,
    /// or when the timeline already holds `entry` (same time and event id).
    async fn save_lead(
        &self,
        lead: &Lead,
        entry: Option<&TimelineEntry>,
        pointer: Option<&Pointer>,
    ) -> Result<(), StoreError>;

    async fn find_lead(&self, pointer: &Pointer) -> Result<Option<LeadId>, StoreError>;

    /// Counts lead `id` against the counter `key`, which counts at most `limit` leads
    /// and is kept until `expires_at`: `true` when the lead counts (now, or already
    /// did: a retried check is not counted twice), `false` when the counter is full.
    async fn count_against(
        &self,
        key: &str,
        id: &LeadId,
        limit: u32,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The lead's timeline, oldest first.
    async fn timeline(&self, id: &LeadId) -> Result<Vec<TimelineEntry>, StoreError>;

    /// Remembers a booking made by an address that has no lead yet, until
    /// `expires_at`; a state lower than the one remembered changes nothing.
    async fn remember_booking(
        &self,
        email: &EmailAddress,
        key: &str,
        state: BookingState,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The bookings remembered for `email` that have not expired at `now`.
    async fn remembered_bookings(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, BookingState)>, StoreError>;

    /// Up to `limit` leads reconciliation must look at: every lead whose SkipUp
    /// cancellation is decided but not confirmed, then those whose recovery waits on
    /// SkipUp (Meeting Requested, Follow-up Sent) and has been quiet since before
    /// `quiet_before`, quietest first. Reads only those leads, never the whole table.
    async fn quiet_recoveries(
        &self,
        quiet_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<LeadId>, StoreError>;
}

/// Every lead, for the funnel report and the local stack's API.
#[async_trait]
pub trait LeadListing: Send + Sync {
    /// All leads, oldest submission first.
    async fn list_leads(&self) -> Result<Vec<Lead>, StoreError>;

    /// The leads submitted from `from` to `to` (UTC days, both included), oldest
    /// submission first.
    async fn leads_submitted_between(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<Lead>, StoreError> {
        let mut leads = self.list_leads().await?;
        leads.retain(|lead| (from..=to).contains(&lead.submitted_at.date_naive()));
        Ok(leads)
    }
}

/// Provider events already processed (kept for a while), and events no lead matched
/// (kept for an operator, never dropped).
#[async_trait]
pub trait EventLog: Send + Sync {
    async fn seen(&self, key: &str) -> Result<bool, StoreError>;
    async fn mark_seen(&self, key: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError>;
    async fn keep_unmatched(
        &self,
        key: &str,
        reason: &str,
        event_json: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The SkipUp API, as the handlers use it.
#[async_trait]
pub trait SkipUpApi: Send + Sync {
    async fn create_meeting_request(
        &self,
        idempotency_key: &str,
        request: &CreateMeetingRequest,
    ) -> Result<MeetingRequest, SkipUpError>;
    async fn get_meeting_request(&self, id: &str) -> Result<MeetingRequest, SkipUpError>;
    /// `POST /meeting_requests/{id}/cancel` with `{"notify": notify}`: SkipUp stops the
    /// conversation. A request already booked or cancelled answers 422.
    async fn cancel_meeting_request(
        &self,
        id: &str,
        idempotency_key: &str,
        notify: bool,
    ) -> Result<MeetingRequest, SkipUpError>;
    /// Every endpoint, following cursors across pages.
    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, SkipUpError>;
    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> Result<CreatedWebhookEndpoint, SkipUpError>;
    /// The active member with this address, if any.
    async fn find_workspace_member(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<WorkspaceMember>, SkipUpError>;
}

/// Delays the next delivery of a queue message that failed (SQS: its visibility).
#[async_trait]
pub trait Redelivery: Send + Sync {
    async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration);
}

/// Could not send an alert.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct AlertError(pub String);

/// Where operators are told that something needs them (SNS in AWS).
#[async_trait]
pub trait Alerts: Send + Sync {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), AlertError>;
}
