//! Telling the team's CRM where each lead's recovery stands. Connectors (Skode,
//! HubSpot, Salesforce, a signed outbound webhook) sit behind one port, each
//! optional; [`CrmConnectors::reconcile`] brings the CRM up to the lead's current
//! status and records what it was told, so a push that failed is made again by the
//! next event or check of that lead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use secrecy::SecretString;

use crate::lead::{Lead, LeadId, LeadStatus, TimelineEntry};
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
    /// Every status change of the lead, oldest first, for the connectors that keep a
    /// note or task per change ([`CrmConnector::keeps_notes`]); empty for the others.
    /// Not part of the outbound webhook's payload.
    #[serde(skip)]
    pub changes: Vec<StatusChange>,
}

/// One status change of a lead, told as its timeline tells it: what a CRM's note or
/// task says.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// Stable for this change (`{lead id}/{status}/{milliseconds}`): a connector finds
    /// by it the notes it already made, so a retried push makes none twice.
    pub marker: String,
    pub status: LeadStatus,
    pub at: DateTime<Utc>,
    /// The timeline entries since the change before, this one last, one per line.
    pub text: String,
}

impl StatusChange {
    /// How a note or task names the change, with its marker: `Lead recovery: Meeting
    /// Scheduled [lead-recovery l_…/meeting-scheduled/1764…]`.
    pub fn title(&self) -> String {
        format!("Lead recovery: {} {}", self.status.as_str(), self.tag())
    }

    /// The marker as a note or task carries it: `[lead-recovery l_…/…/…]`.
    pub fn tag(&self) -> String {
        format!("{MARKER_OPEN}{}]", self.marker)
    }
}

const MARKER_OPEN: &str = "[lead-recovery ";

/// The marker in a note or task of ours (see [`StatusChange::tag`]).
pub fn marker_in(text: &str) -> Option<&str> {
    let start = text.find(MARKER_OPEN)? + MARKER_OPEN.len();
    let end = text[start..].find(']')?;
    Some(&text[start..start + end])
}

/// A change's text keeps at most this many timeline entries (the latest).
const CHANGE_ENTRIES: usize = 12;

/// The lead's status changes after Submitted, read from its timeline. Entries that
/// changed no status (a call summary, a booking while Submitted, a cancellation we
/// asked for) are told with the change that follows them.
pub fn status_changes(lead_id: &LeadId, timeline: &[TimelineEntry]) -> Vec<StatusChange> {
    let mut changes = Vec::new();
    let mut context: Vec<String> = Vec::new();
    let mut current = None;
    for entry in timeline {
        context.push(format!(
            "{}  {}",
            entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            entry.detail
        ));
        let Some(status) = entry.status.filter(|s| Some(*s) != current) else {
            continue;
        };
        current = Some(status);
        if status == LeadStatus::Submitted {
            continue;
        }
        let skip = context.len().saturating_sub(CHANGE_ENTRIES);
        changes.push(StatusChange {
            marker: format!(
                "{lead_id}/{}/{}",
                status_slug(status),
                entry.at.timestamp_millis()
            ),
            status,
            at: entry.at,
            text: context.drain(..).skip(skip).collect::<Vec<_>>().join("\n"),
        });
    }
    changes
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
            changes: Vec::new(),
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
    pub hubspot: Option<HubSpotSettings>,
    pub salesforce: Option<SalesforceSettings>,
    pub webhook: Option<WebhookSettings>,
}

/// HubSpot's API, unless `HUBSPOT_BASE_URL` says otherwise.
pub const HUBSPOT_BASE_URL: &str = "https://api.hubapi.com";

/// Settings of the HubSpot connector (`HUBSPOT_ACCESS_TOKEN` turns it on).
#[derive(Debug, Clone)]
pub struct HubSpotSettings {
    /// Default `https://api.hubapi.com`.
    pub base_url: String,
    /// A private app's access token (`pat-...`).
    pub access_token: SecretString,
    /// The contact property that holds the status (default `lead_recovery_status`),
    /// an enumeration of the statuses' slugs (`recovery setup hubspot` creates it).
    pub status_property: String,
    /// Create the contact when none has the lead's email (default true).
    pub create_contacts: bool,
    pub timeout: Duration,
}

/// The Salesforce REST API version used unless `SALESFORCE_API_VERSION` says otherwise.
pub const SALESFORCE_API_VERSION: &str = "v66.0";

/// Settings of the Salesforce connector (`SALESFORCE_INSTANCE_URL` turns it on).
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// The org's My Domain, `https://yourorg.my.salesforce.com`: the token endpoint
    /// and the REST API both live there.
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `v66.0` unless set.
    pub api_version: String,
    /// Our statuses to the org's Lead Status picklist values.
    pub status_map: SalesforceStatusMap,
    /// Create a Lead when none has the email (default false: a permanent failure).
    pub create_leads: bool,
    pub timeout: Duration,
}

/// Our statuses to an org's Lead Status values (`SALESFORCE_STATUS_MAP`).
#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceStatusMap(Vec<(LeadStatus, String)>);

impl SalesforceStatusMap {
    /// The defaults, for a new org's picklist: a recovery under way is "Working -
    /// Contacted", a lead back in nurture "Open - Not Contacted", a failed or
    /// suppressed one "Closed - Not Converted" (conversion is the team's own step).
    pub fn defaults() -> Self {
        use LeadStatus::*;
        let working = "Working - Contacted";
        Self(
            [
                (BookedDirectly, working),
                (MeetingRequested, working),
                (FollowUpSent, working),
                (MeetingScheduled, working),
                (ReEnterNurture, "Open - Not Contacted"),
                (RecoveryFailed, "Closed - Not Converted"),
                (Suppressed, "Closed - Not Converted"),
            ]
            .into_iter()
            .map(|(s, v)| (s, v.to_string()))
            .collect(),
        )
    }

    /// `meeting-scheduled=Meeting Booked;re-enter-nurture=Nurture`: the defaults
    /// with the named statuses (their slugs) replaced. Values may hold spaces,
    /// commas and dashes; `;` separates the pairs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut map = Self::defaults();
        for pair in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (slug, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not status=value"))?;
            let (slug, value) = (slug.trim(), value.trim());
            let entry = map
                .0
                .iter_mut()
                .find(|(s, _)| status_slug(*s) == slug)
                .ok_or_else(|| {
                    format!(
                        "`{slug}` is not a status the CRM is told of (one of: {})",
                        Self::defaults()
                            .0
                            .iter()
                            .map(|(s, _)| status_slug(*s))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if value.is_empty() || value.len() > 255 {
                return Err(format!(
                    "`{slug}` needs a picklist value of 1 to 255 characters"
                ));
            }
            entry.1 = value.to_string();
        }
        Ok(map)
    }

    /// Every picklist value the map uses.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, v)| v.as_str())
    }

    /// The picklist value for `status` (Submitted is never pushed).
    pub fn value(&self, status: LeadStatus) -> Option<&str> {
        self.0
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, v)| v.as_str())
    }
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
    /// Will fail the same way again (unknown lead, refused body).
    #[error("{connector}: {message}")]
    Permanent {
        connector: &'static str,
        message: String,
    },
    /// Refused until someone fixes the CRM's setup: a token revoked or without a
    /// scope (401, 403), a missing property, a status the org does not know. Retried
    /// (every [`SETUP_RETRY`]), counted as `CrmSetupFailures` and alarmed, so the
    /// statuses still arrive once it is fixed; `message` says what to fix.
    #[error("{connector}: {message}")]
    Setup {
        connector: &'static str,
        message: String,
    },
}

/// How long a push refused for the CRM's setup waits before its retry.
pub const SETUP_RETRY: Duration = Duration::from_secs(900);

/// One CRM the pipeline keeps current.
#[async_trait]
pub trait CrmConnector: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the connector keeps a note per status change, and so needs
    /// [`StatusUpdate::changes`] (read from the lead's timeline for it).
    fn keeps_notes(&self) -> bool {
        false
    }
    /// Sends the update. Must be idempotent: the same update may be pushed again, and
    /// a connector that keeps notes makes each change's note once.
    async fn push(&self, update: &StatusUpdate) -> Result<(), ConnectorError>;
}

/// Why reconciling must be tried again later.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(ConnectorError),
    /// Another push of this lead holds it until then: try again shortly.
    #[error("another push to the CRM holds this lead")]
    Busy { until: DateTime<Utc> },
}

/// How long one push to CRMs that keep notes may hold a lead: longer than the calls
/// of every connector at their timeout take.
pub const CRM_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

/// When a push that found the lead held tries again.
const BUSY_RETRY: Duration = Duration::from_secs(5);

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
    ///
    /// With a connector that keeps a note per change, the push holds the lead (a
    /// lease, [`CRM_LEASE`]) so that two pushes of one lead never run at once and make
    /// the same note twice; a push that finds the lead held is [`ReconcileError::Busy`].
    pub async fn reconcile(
        &self,
        store: &dyn LeadStore,
        id: &LeadId,
        function: &str,
    ) -> Result<Option<LeadStatus>, ReconcileError> {
        if self.connectors.is_empty() {
            return Ok(None);
        }
        let leased = self.connectors.iter().any(|c| c.keeps_notes());
        let mut holding = false;
        let result = self.rounds(store, id, function, leased, &mut holding).await;
        if holding {
            // Released as the status is recorded; here only when a round failed.
            let released = update_lead(store, id, |lead| {
                lead.crm_lease_until.take()?;
                Some(Change::default())
            })
            .await;
            if let Err(error) = released {
                tracing::warn!(lead_id = %id, %error, "CRM lease not released; it expires on its own");
            }
        }
        result
    }

    async fn rounds(
        &self,
        store: &dyn LeadStore,
        id: &LeadId,
        function: &str,
        leased: bool,
        holding: &mut bool,
    ) -> Result<Option<LeadStatus>, ReconcileError> {
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
            if leased && !*holding {
                let now = Utc::now();
                let mut busy = None;
                update_lead(store, id, |lead| {
                    busy = lead.crm_lease_until.filter(|until| *until > now);
                    if busy.is_some() {
                        return None;
                    }
                    lead.crm_lease_until = Some(now + CRM_LEASE);
                    Some(Change::default())
                })
                .await?;
                if let Some(until) = busy {
                    return Err(ReconcileError::Busy { until });
                }
                *holding = true;
            }
            let mut update = StatusUpdate::of(&lead);
            if leased {
                update.changes = status_changes(id, &store.timeline(id).await?);
            }
            self.push(&update, function).await?;
            pushed = Some(update.status);
            let mut recorded = false;
            update_lead(store, id, |lead| {
                recorded = lead.status == update.status;
                let release = recorded && lead.crm_lease_until.is_some();
                if release {
                    lead.crm_lease_until = None;
                }
                (release || (recorded && lead.crm_status != Some(update.status))).then(|| {
                    lead.crm_status = Some(update.status);
                    Change::default()
                })
            })
            .await?;
            tracing::info!(lead_id = %id, status = update.status.as_str(), "CRM updated");
            if recorded {
                *holding = false;
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
                Err(error @ ConnectorError::Setup { .. }) => {
                    tracing::error!(lead_id = %update.lead_id, %error, "the CRM refuses the pipeline until its setup is fixed; retried");
                    metrics::count(function, &[("CrmSetupFailures", 1.0)]);
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
            ReconcileError::Connector(ConnectorError::Setup { .. }) => Some(SETUP_RETRY),
            ReconcileError::Busy { .. } => Some(BUSY_RETRY),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(second: i64, status: Option<LeadStatus>, detail: &str) -> TimelineEntry {
        TimelineEntry {
            at: Utc.timestamp_opt(1_764_000_000 + second, 0).unwrap(),
            event_id: format!("e{second}"),
            source: "test".into(),
            status,
            detail: detail.into(),
        }
    }

    #[test]
    fn each_status_change_after_submitted_is_told_with_what_came_before_it() {
        use LeadStatus::*;
        let id = LeadId::parse("l_0123456789abcdef01234567").unwrap();
        let timeline = [
            entry(0, Some(Submitted), "submitted"),
            entry(1, None, "CALL_COMPLETED; wants a demo"),
            entry(2, Some(MeetingRequested), "SkipUp accepted mr_1"),
            // The same status again is no change.
            entry(3, Some(MeetingRequested), "created (late)"),
            entry(4, Some(BookedDirectly), "calcom booking booked"),
            entry(
                5,
                Some(Submitted),
                "booking cancelled; a fresh check is due",
            ),
            entry(6, Some(MeetingRequested), "SkipUp accepted mr_2"),
        ];
        let changes = status_changes(&id, &timeline);
        let statuses: Vec<LeadStatus> = changes.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [MeetingRequested, BookedDirectly, MeetingRequested]
        );
        assert_eq!(
            changes[0].marker,
            "l_0123456789abcdef01234567/meeting-requested/1764000002000"
        );
        assert!(changes[0].text.contains("CALL_COMPLETED; wants a demo"));
        assert!(changes[0].text.ends_with("SkipUp accepted mr_1"));
        assert!(changes[1].text.contains("created (late)"));
        // Back at Submitted is not pushed, and is told with the next change.
        assert!(changes[2].text.contains("a fresh check is due"));
        assert_ne!(changes[0].marker, changes[2].marker);
        assert_eq!(
            marker_in(&changes[1].title()),
            Some(changes[1].marker.as_str())
        );
    }

    #[test]
    fn a_change_keeps_its_latest_entries_only() {
        let id = LeadId::parse("l_0123456789abcdef01234567").unwrap();
        let mut timeline: Vec<TimelineEntry> = (0..40)
            .map(|i| entry(i, None, &format!("call {i}")))
            .collect();
        timeline.push(entry(40, Some(LeadStatus::MeetingScheduled), "booked"));
        let text = &status_changes(&id, &timeline)[0].text;
        assert_eq!(text.lines().count(), CHANGE_ENTRIES);
        assert!(
            text.contains("call 39") && !text.contains("call 28"),
            "{text}"
        );
    }

    #[test]
    fn a_status_map_names_what_it_cannot_read() {
        let map =
            SalesforceStatusMap::parse(" meeting-scheduled = Meeting Booked, Demo ;").unwrap();
        assert_eq!(
            map.value(LeadStatus::MeetingScheduled),
            Some("Meeting Booked, Demo")
        );
        assert_eq!(
            map.value(LeadStatus::Suppressed),
            Some("Closed - Not Converted")
        );
        assert_eq!(map.value(LeadStatus::Submitted), None);
        assert!(
            SalesforceStatusMap::parse("booked=x")
                .unwrap_err()
                .contains("one of:")
        );
        assert!(
            SalesforceStatusMap::parse("suppressed")
                .unwrap_err()
                .contains("status=value")
        );
        assert!(SalesforceStatusMap::parse("suppressed=").is_err());
    }
}
