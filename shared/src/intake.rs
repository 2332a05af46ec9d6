//! Intake: record a lead once and schedule its delayed check. Shared by `POST /forms`
//! and Skode's `lead.created`, so both entries behave the same.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::connectors::FormSubmission;
use crate::lead::{Lead, LeadStatus, TimelineEntry};
use crate::lifecycle::{Outside, outside};
use crate::ports::{Clock, CreateOutcome, LeadStore, Queue, QueueError, StoreError};
use crate::recovery::CheckMessage;
use crate::update::{Change, update_lead};

/// Defaults: check after 1800 s; the same email within 24 h is the same lead.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    pub delay: chrono::Duration,
    pub resubmit_window: chrono::Duration,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            delay: chrono::Duration::seconds(1800),
            resubmit_window: chrono::Duration::hours(24),
        }
    }
}

pub struct IntakeDeps {
    pub store: Arc<dyn LeadStore>,
    pub checks: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub settings: IntakeSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IntakeOutcome {
    /// A new lead, its check scheduled.
    Scheduled(Lead),
    /// The same submission, or the same email within the window: nothing new scheduled.
    Duplicate(Lead),
}

impl IntakeOutcome {
    pub fn lead(&self) -> &Lead {
        match self {
            IntakeOutcome::Scheduled(lead) | IntakeOutcome::Duplicate(lead) => lead,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Records the lead (unless it is a duplicate) and schedules its check. A lead whose
/// check could not be scheduled earlier (the queue was down) is scheduled now, so a
/// retried submission repairs it instead of being dropped as a duplicate.
///
/// The submission's warnings (fields cut or dropped) go on the lead's first timeline
/// entry, and into the log by field name only.
pub async fn submit(
    deps: &IntakeDeps,
    submission: FormSubmission,
    event_id: &str,
    source: &str,
) -> Result<IntakeOutcome, IntakeError> {
    let now = deps.clock.now();
    let FormSubmission { profile, warnings } = submission;
    let lead = Lead::new(profile, now, deps.settings.delay);
    if !warnings.is_empty() {
        // Field names only; an answer's question may be anything the sender chose.
        let fields: Vec<&str> = warnings
            .iter()
            .map(|w| {
                if w.field.starts_with("answer ") {
                    "answer"
                } else {
                    w.field.as_str()
                }
            })
            .collect();
        tracing::warn!(lead_id = %lead.id, ?fields, source, "submission kept with fields cut or dropped");
    }
    let notes = warnings
        .iter()
        .map(|w| format!("; note: {w}"))
        .collect::<String>();
    let entry = TimelineEntry {
        at: lead.submitted_at,
        event_id: event_id.to_string(),
        source: source.to_string(),
        status: Some(LeadStatus::Submitted),
        detail: format!(
            "submitted; recovery check due at {}{notes}",
            lead.due_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    };
    match deps
        .store
        .create_lead(&lead, &entry, deps.settings.resubmit_window)
        .await?
    {
        CreateOutcome::Created => {
            let lead = booked_before(deps, lead, now).await?;
            Ok(IntakeOutcome::Scheduled(schedule(deps, lead, now).await?))
        }
        CreateOutcome::Existing(existing) => {
            // A submission retried after a failure past the lead's creation still
            // finds the bookings made before it.
            let existing = if existing.status == LeadStatus::Submitted {
                booked_before(deps, *existing, now).await?
            } else {
                *existing
            };
            Ok(IntakeOutcome::Duplicate(
                schedule_if_unscheduled(deps, existing, now).await?,
            ))
        }
    }
}

/// Applies the bookings its address made before the lead existed (remembered by
/// apply-events): a booking that stands makes the new lead BookedDirectly.
async fn booked_before(
    deps: &IntakeDeps,
    lead: Lead,
    now: DateTime<Utc>,
) -> Result<Lead, IntakeError> {
    let bookings = deps
        .store
        .remembered_bookings(&lead.profile.email, now)
        .await?;
    if bookings.is_empty() {
        return Ok(lead);
    }
    let names = bookings
        .iter()
        .map(|(key, state)| format!("{key} {}", state.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let updated = update_lead(&*deps.store, &lead.id, |lead| {
        let signal = lead.merge_bookings(&bookings);
        if matches!(signal, Outside::Booking { new: false, .. }) {
            return None;
        }
        let verdict = outside(lead.status, lead.outreach_began(), signal);
        let at = lead.updated_at + chrono::TimeDelta::milliseconds(1);
        if let Some(status) = verdict.status {
            lead.move_to(status, at);
        }
        lead.updated_at = at;
        Some(Change {
            entry: Some(TimelineEntry {
                at,
                event_id: format!("intake:{}:booked-before", lead.id),
                source: "intake".into(),
                status: verdict.status,
                detail: format!("booked before the form: {names}"),
            }),
            pointer: None,
        })
    })
    .await?;
    Ok(updated.unwrap_or(lead))
}

/// Schedules the check of a lead at Submitted whose check is not scheduled (a fresh
/// one after a cancelled booking, or one the queue refused earlier).
pub async fn schedule_if_unscheduled(
    deps: &IntakeDeps,
    lead: Lead,
    now: DateTime<Utc>,
) -> Result<Lead, IntakeError> {
    if lead.status == LeadStatus::Submitted && lead.check_scheduled_at.is_none() {
        schedule(deps, lead, now).await
    } else {
        Ok(lead)
    }
}

async fn schedule(
    deps: &IntakeDeps,
    mut lead: Lead,
    now: DateTime<Utc>,
) -> Result<Lead, IntakeError> {
    deps.checks
        .send(&CheckMessage::new(&lead).to_queue_message(now))
        .await?;
    lead.check_scheduled_at = Some(now);
    lead.updated_at = now;
    // The mark only spares a duplicate check later; a lost race costs nothing.
    match deps.store.save_lead(&lead, None, None).await {
        Ok(()) => lead.version += 1,
        Err(error) => tracing::warn!(lead_id = %lead.id, %error, "check scheduled but not marked"),
    }
    Ok(lead)
}
