//! Telling the team's CRM where each lead's recovery stands. Connectors (Skode, a
//! signed outbound webhook) sit behind one port, each optional; [`CrmConnectors::reconcile`]
//! brings the CRM up to the lead's current status and records what it was told, so a
//! push that failed is made again by the next event or check of that lead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use secrecy::SecretString;

use crate::lead::{Lead, LeadId, LeadStatus};
use crate::metrics;
use crate::ports::{LeadStore, StoreError};
use crate::signature::WebhookSecret;
use crate::update::{Change, update_lead};

/// A lead's recovery status, as a connector sends it on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusUpdate {
    /// Stable for a (lead, status) pair, so a receiver can deduplicate repeats.
    pub id: String,
    pub lead_id: LeadId,
    pub status: LeadStatus,
    pub email: String,
    pub name: String,
    pub company: Option<String>,
    pub skode_lead_id: Option<String>,
    pub meeting_request_id: Option<String>,
    pub status_reason: Option<String>,
    pub changed_at: DateTime<Utc>,
}

impl StatusUpdate {
    pub fn of(lead: &Lead) -> Self {
        Self {
            id: format!("{}:{}", lead.id, status_slug(lead.status)),
            lead_id: lead.id.clone(),
            status: lead.status,
            email: lead.profile.email.as_str().to_string(),
            name: lead.profile.name.clone(),
            company: lead.profile.company.clone(),
            skode_lead_id: lead.profile.skode_lead_id.clone(),
            meeting_request_id: lead.meeting_request_id.clone(),
            status_reason: lead.status_reason.clone(),
            changed_at: lead.updated_at,
        }
    }
}

/// A status as a tag or id fragment: `meeting-scheduled`.
pub fn status_slug(status: LeadStatus) -> &'static str {
    match status {
        LeadStatus::Submitted => "submitted",
        LeadStatus::BookedDirectly => "booked-directly",
        LeadStatus::MeetingRequested => "meeting-requested",
        LeadStatus::FollowUpSent => "follow-up-sent",
        LeadStatus::MeetingScheduled => "meeting-scheduled",
        LeadStatus::ReEnterNurture => "re-enter-nurture",
        LeadStatus::RecoveryFailed => "recovery-failed",
        LeadStatus::Suppressed => "suppressed",
    }
}

/// Skode's API, unless `SKODE_BASE_URL` says otherwise.
pub const SKODE_BASE_URL: &str = "https://api.skodeai.com/v1";

/// Which CRM connectors to run, and how: settings only (the adapters build them).
#[derive(Debug, Default)]
pub struct CrmSettings {
    pub skode: Option<SkodeSettings>,
    pub webhook: Option<WebhookSettings>,
}

/// Settings of the Skode connector (`SKODE_API_KEY` turns it on).
#[derive(Debug, Clone)]
pub struct SkodeSettings {
    /// Default `https://api.skodeai.com/v1`.
    pub base_url: String,
    pub api_key: SecretString,
    /// The custom field that holds the recovery status (default `recovery_status`).
    pub status_field: String,
    /// Tags this connector owns start with this (default `recovery-`).
    pub tag_prefix: String,
    /// Tag that pauses other nurture sequences from "Follow-up Sent" (as the source
    /// document maps it) and once a meeting is booked (default `nurture-paused`).
    pub pause_tag: String,
    pub timeout: Duration,
}

/// Settings of the outbound webhook (`CRM_WEBHOOK_URL` turns it on).
#[derive(Debug)]
pub struct WebhookSettings {
    pub url: String,
    /// Signs each delivery: `X-Webhook-Signature: t=..,v1=..`, as SkipUp signs.
    pub secret: WebhookSecret,
    pub timeout: Duration,
}

/// Why a connector could not deliver an update.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Worth trying again (timeout, 429, 5xx).
    #[error("{connector}: {message}")]
    Transient {
        connector: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail the same way again (bad key, unknown lead, refused body).
    #[error("{connector}: {message}")]
    Permanent {
        connector: &'static str,
        message: String,
    },
}

/// One CRM the pipeline keeps current.
#[async_trait]
pub trait CrmConnector: Send + Sync {
    fn name(&self) -> &'static str;
    /// Sends the update. Must be idempotent: the same update may be pushed again.
    async fn push(&self, update: &StatusUpdate) -> Result<(), ConnectorError>;
}

/// Why reconciling must be tried again later.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(ConnectorError),
}

/// The configured connectors (possibly none).
#[derive(Clone, Default)]
pub struct CrmConnectors {
    connectors: Vec<Arc<dyn CrmConnector>>,
}

impl std::fmt::Debug for CrmConnectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CrmConnectors").field(&self.names()).finish()
    }
}

impl CrmConnectors {
    pub fn new(connectors: Vec<Arc<dyn CrmConnector>>) -> Self {
        Self { connectors }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.connectors.iter().map(|c| c.name()).collect()
    }

    /// Pushes the lead's status to every connector unless the CRM already has it.
    /// A transient failure is returned (the caller arranges a retry); a permanent one
    /// is logged and counted, and the status is recorded as told so it is not retried
    /// forever. When the lead moved on while its status was being pushed, a concurrent
    /// push of the newer status may have landed first: the newer one is pushed again,
    /// so the CRM ends on the lead's latest status. Returns the last status pushed.
    pub async fn reconcile(
        &self,
        store: &dyn LeadStore,
        id: &LeadId,
        function: &str,
    ) -> Result<Option<LeadStatus>, ReconcileError> {
        if self.connectors.is_empty() {
            return Ok(None);
        }
        let mut overtaken = false;
        let mut pushed = None;
        for _ in 0..MAX_ROUNDS {
            let Some(lead) = store.get_lead(id).await? else {
                return Ok(pushed);
            };
            let told = lead.crm_status == Some(lead.status) && !overtaken;
            if lead.status == LeadStatus::Submitted || told {
                return Ok(pushed);
            }
            let update = StatusUpdate::of(&lead);
            self.push(&update, function).await?;
            pushed = Some(update.status);
            let mut recorded = false;
            update_lead(store, id, |lead| {
                recorded = lead.status == update.status;
                (recorded && lead.crm_status != Some(update.status)).then(|| {
                    lead.crm_status = Some(update.status);
                    Change::default()
                })
            })
            .await?;
            tracing::info!(lead_id = %id, status = update.status.as_str(), "CRM updated");
            if recorded {
                return Ok(pushed);
            }
            overtaken = true;
        }
        Ok(pushed)
    }

    async fn push(&self, update: &StatusUpdate, function: &str) -> Result<(), ReconcileError> {
        for connector in &self.connectors {
            match connector.push(update).await {
                Ok(()) => {}
                Err(error @ ConnectorError::Transient { .. }) => {
                    metrics::count(function, &[("CrmPushRetries", 1.0)]);
                    return Err(ReconcileError::Connector(error));
                }
                Err(error @ ConnectorError::Permanent { .. }) => {
                    tracing::error!(lead_id = %update.lead_id, %error, "the CRM refused the update; not retried");
                    metrics::count(function, &[("CrmPushFailures", 1.0)]);
                }
            }
        }
        Ok(())
    }
}

/// Pushes per reconcile before leaving the rest to the lead's next event.
const MAX_ROUNDS: usize = 4;

impl ReconcileError {
    /// How long to wait before the retry: the connector's Retry-After if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ReconcileError::Connector(ConnectorError::Transient { retry_after, .. }) => {
                *retry_after
            }
            _ => None,
        }
    }
}
