//! Fakes for tests: a queue that is down, a clock that stands still, a recorded
//! redelivery, a scripted SkipUp and a recording CRM connector.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::lead::EmailAddress;
use crate::ports::{Clock, Queue, QueueError, QueueMessage, Redelivery, SkipUpApi};
use crate::skipup::{
    CreateMeetingRequest, CreatedWebhookEndpoint, MeetingRequest, NewWebhookEndpoint, SkipUpError,
    WebhookEndpoint, WorkspaceMember,
};

/// A queue whose every send fails as if SQS were unreachable.
#[derive(Debug, Default)]
pub struct UnreachableQueue;

#[async_trait]
impl Queue for UnreachableQueue {
    async fn send(&self, _message: &QueueMessage) -> Result<(), QueueError> {
        Err(QueueError::Unavailable("connection refused".into()))
    }
}

/// A clock fixed at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl FixedClock {
    pub fn at_unix(seconds: i64) -> Self {
        Self(DateTime::from_timestamp(seconds, 0).expect("a valid unix time"))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Remembers each requested redelivery delay, by receipt handle.
#[derive(Debug, Default)]
pub struct RecordedRedelivery {
    pub delays: std::sync::Mutex<Vec<(String, std::time::Duration)>>,
}

#[async_trait]
impl Redelivery for RecordedRedelivery {
    async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration) {
        self.delays
            .lock()
            .unwrap()
            .push((receipt_handle.to_string(), delay));
    }
}

/// A SkipUp whose answers to `create_meeting_request` are scripted in order (then
/// 202 with a fresh id), whose members are a fixed list, and which records calls.
#[derive(Debug, Default)]
pub struct ScriptedSkipUp {
    pub answers: std::sync::Mutex<std::collections::VecDeque<Result<(), SkipUpError>>>,
    pub calls: std::sync::Mutex<Vec<(String, CreateMeetingRequest)>>,
    pub members: std::sync::Mutex<Vec<String>>,
    pub member_lookups: std::sync::atomic::AtomicUsize,
    /// What `GET /meeting_requests/{id}` answers, by id (else 404).
    pub statuses: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Errors the next `GET /meeting_requests/{id}` calls answer, before `statuses`.
    pub get_failures: std::sync::Mutex<std::collections::VecDeque<SkipUpError>>,
    /// Answers to the next cancellations (`Ok(())` cancels); then each cancels.
    pub cancel_answers: std::sync::Mutex<std::collections::VecDeque<Result<(), SkipUpError>>>,
    /// Every cancellation asked for: (meeting request id, idempotency key, notify).
    pub cancels: std::sync::Mutex<Vec<(String, String, bool)>>,
}

impl ScriptedSkipUp {
    pub fn with_members(members: &[&str]) -> Self {
        let fake = Self::default();
        *fake.members.lock().unwrap() = members.iter().map(|m| m.to_string()).collect();
        fake
    }

    /// Queues the next answers: `Ok(())` is a 202.
    pub fn then(&self, answers: impl IntoIterator<Item = Result<(), SkipUpError>>) -> &Self {
        self.answers.lock().unwrap().extend(answers);
        self
    }

    pub fn calls(&self) -> Vec<(String, CreateMeetingRequest)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl SkipUpApi for ScriptedSkipUp {
    async fn create_meeting_request(
        &self,
        idempotency_key: &str,
        request: &CreateMeetingRequest,
    ) -> Result<MeetingRequest, SkipUpError> {
        let mut calls = self.calls.lock().unwrap();
        calls.push((idempotency_key.to_string(), request.clone()));
        let n = calls.len();
        drop(calls);
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(()))
            .map(|()| MeetingRequest {
                id: format!("mr_FAKE{n:04}"),
                status: "active".into(),
                organizer_email: Some(request.organizer_email.clone()),
                participant_emails: Some(
                    request
                        .participants
                        .iter()
                        .map(|p| p.email.clone())
                        .collect(),
                ),
                created_at: None,
                booked_at: None,
                cancelled_at: None,
            })
    }

    async fn get_meeting_request(&self, id: &str) -> Result<MeetingRequest, SkipUpError> {
        if let Some(error) = self.get_failures.lock().unwrap().pop_front() {
            return Err(error);
        }
        match self.statuses.lock().unwrap().get(id) {
            Some(status) => Ok(MeetingRequest {
                id: id.to_string(),
                status: status.clone(),
                organizer_email: None,
                participant_emails: None,
                created_at: None,
                booked_at: None,
                cancelled_at: None,
            }),
            None => Err(SkipUpError::NotFound {
                message: id.to_string(),
            }),
        }
    }

    async fn cancel_meeting_request(
        &self,
        id: &str,
        idempotency_key: &str,
        notify: bool,
    ) -> Result<MeetingRequest, SkipUpError> {
        self.cancels
            .lock()
            .unwrap()
            .push((id.to_string(), idempotency_key.to_string(), notify));
        self.cancel_answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(()))?;
        self.statuses
            .lock()
            .unwrap()
            .insert(id.to_string(), "cancelled".into());
        self.get_meeting_request(id).await
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, SkipUpError> {
        Ok(Vec::new())
    }

    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> Result<CreatedWebhookEndpoint, SkipUpError> {
        Ok(CreatedWebhookEndpoint {
            endpoint: WebhookEndpoint {
                id: "we_FAKE".into(),
                url: endpoint.url.clone(),
                description: Some(endpoint.description.clone()),
                enabled: true,
                events: endpoint.events.clone(),
                disabled_at: None,
                disabled_reason: None,
            },
            secret: None,
        })
    }

    async fn find_workspace_member(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<WorkspaceMember>, SkipUpError> {
        self.member_lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .members
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.as_str() == email.as_str())
            .map(|m| WorkspaceMember {
                id: "mem_FAKE".into(),
                email: m.clone(),
                name: None,
                role: None,
                deactivated_at: None,
            }))
    }
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A CRM connector that records every update and fails as scripted first.
#[derive(Default)]
pub struct RecordingConnector {
    /// Asks for the status changes, as a CRM that keeps a note per change does.
    keeps_notes: bool,
    failures: std::sync::Mutex<std::collections::VecDeque<bool>>,
    pushed: std::sync::Mutex<Vec<crate::crm::StatusUpdate>>,
    before_push: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for RecordingConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingConnector")
            .field("pushed", &self.pushed())
            .finish()
    }
}

impl RecordingConnector {
    /// One that asks for the status changes, as a CRM keeping a note per change does.
    pub fn keeping_notes() -> Self {
        Self {
            keeps_notes: true,
            ..Self::default()
        }
    }

    /// The next pushes fail, transiently (`true`) or permanently (`false`), in order.
    pub fn fail_next(&self, transient: impl IntoIterator<Item = bool>) {
        self.failures.lock().unwrap().extend(transient);
    }

    /// Runs `action` once, just before the next push is delivered (to interleave a
    /// concurrent change).
    pub fn before_next_push(&self, action: impl FnOnce() + Send + 'static) {
        *self.before_push.lock().unwrap() = Some(Box::new(action));
    }

    /// The statuses delivered so far, in order.
    pub fn pushed(&self) -> Vec<crate::lead::LeadStatus> {
        self.pushed
            .lock()
            .unwrap()
            .iter()
            .map(|u| u.status)
            .collect()
    }

    /// The updates delivered so far, in order.
    pub fn updates(&self) -> Vec<crate::crm::StatusUpdate> {
        self.pushed.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::crm::CrmConnector for RecordingConnector {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn keeps_notes(&self) -> bool {
        self.keeps_notes
    }

    async fn push(
        &self,
        update: &crate::crm::StatusUpdate,
    ) -> Result<(), crate::crm::ConnectorError> {
        use crate::crm::ConnectorError;
        let action = self.before_push.lock().unwrap().take();
        if let Some(action) = action {
            action();
        }
        match self.failures.lock().unwrap().pop_front() {
            Some(true) => Err(ConnectorError::Transient {
                connector: "recording",
                message: "HTTP 503".into(),
                retry_after: None,
            }),
            Some(false) => Err(ConnectorError::Permanent {
                connector: "recording",
                message: "HTTP 404".into(),
            }),
            None => {
                self.pushed.lock().unwrap().push(update.clone());
                Ok(())
            }
        }
    }
}
