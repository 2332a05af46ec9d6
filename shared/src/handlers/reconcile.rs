//! Reconciliation: when SkipUp's webhooks are lost (an endpoint disabled after ten
//! failures in a day, events SkipUp gave up on), a recovery would wait at Meeting
//! Requested or Follow-up Sent for good. On a schedule, every open recovery SkipUp has
//! been quiet about for `RECONCILE_AFTER_SECONDS` is asked of SkipUp
//! (`GET /meeting_requests/{id}`, paced with the rest of the pipeline's calls) and
//! what it says is applied like the webhook would have been: booked becomes Meeting
//! Scheduled, cancelled (not by us) Re-enter Nurture, once (the real webhook arriving
//! later changes nothing). The leads to ask come from the sparse `open_recoveries`
//! index, so a run costs what the open recoveries cost, not what the table holds.

use chrono::{SubsecRound, TimeDelta};

use super::MessageFailure;
use super::apply_events::{ApplyDeps, ApplyOutcome, RECONCILE, apply_conversation, settle};
use crate::lead::LeadId;
use crate::lifecycle::LeadEvent;
use crate::metrics;
use crate::recovery::{backoff, stop_conversation};
use crate::skipup::{ErrorClass, SkipUpError};
use crate::update::{Change, update_lead};

/// `RECONCILE_AFTER_SECONDS` (default 21,600: six hours) and how many leads one run
/// asks about at most (`RECONCILE_BATCH`, default 100; the rest wait for the next run).
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    pub after: TimeDelta,
    pub batch: usize,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            after: TimeDelta::seconds(21_600),
            batch: 100,
        }
    }
}

/// What one run found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReconcileReport {
    pub dry_run: bool,
    /// Quiet recoveries asked of SkipUp.
    pub asked: usize,
    /// Found booked (Meeting Scheduled) or cancelled (Re-enter Nurture) and applied
    /// (in a dry run: would have been).
    pub booked: usize,
    pub cancelled: usize,
    /// Still active or paused at SkipUp: asked again after another quiet period.
    pub open: usize,
    /// Cancellations decided earlier and not confirmed (their message failed for
    /// good), carried out now.
    pub stopped: usize,
    /// SkipUp did not know the request, or answered with an error.
    pub failed: usize,
    /// Each lead asked about, with what SkipUp said.
    pub leads: Vec<(LeadId, String)>,
}

/// Metric and timeline source.
const FUNCTION: &str = "reconcile";

/// One run. Stops at the first sign our SkipUp credentials are refused (no lead
/// could be asked about), and before `until` (the invocation's deadline, less a
/// margin) so that what is left waits for the next run; other errors cost only their
/// lead. First it carries out cancellations decided earlier whose confirmation is
/// missing (their message ended in a dead-letter queue, or a check failed after
/// deciding), then asks about quiet recoveries.
pub async fn reconcile(
    deps: &ApplyDeps,
    settings: &ReconcileSettings,
    dry_run: bool,
    until: Option<std::time::Instant>,
) -> Result<ReconcileReport, MessageFailure> {
    let now = deps.intake.clock.now().trunc_subsecs(3);
    let ids = deps
        .store
        .quiet_recoveries(now - settings.after, settings.batch)
        .await
        .map_err(|e| MessageFailure::after(backoff(1), e))?;
    let mut report = ReconcileReport {
        dry_run,
        ..ReconcileReport::default()
    };
    for id in ids {
        if until.is_some_and(|until| std::time::Instant::now() >= until) {
            tracing::info!(
                asked = report.asked,
                "reconciliation stopped at its deadline; the rest next run"
            );
            break;
        }
        let lead = match deps.store.get_lead(&id).await {
            Ok(Some(lead)) if lead.cancel_pending() => {
                if !dry_run {
                    match stop_conversation(&*deps.store, &*deps.skipup, &lead, now, FUNCTION).await
                    {
                        Ok(()) => {
                            report.stopped += 1;
                            // A request SkipUp had booked moved the lead: its CRM hears.
                            if let Err(error) = settle(deps, &id).await {
                                tracing::warn!(lead_id = %id, reason = %error.reason(), "stopped; CRM not yet told");
                            }
                        }
                        Err(error) => {
                            tracing::warn!(lead_id = %id, %error, "SkipUp conversation not stopped yet; next run");
                            report.failed += 1;
                        }
                    }
                }
                continue;
            }
            Ok(Some(lead)) if lead.recovery_open() => lead,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(lead_id = %id, %error, "lead not read; asked next run");
                report.failed += 1;
                continue;
            }
        };
        let Some(mr_id) = lead.meeting_request_id.clone() else {
            // Nothing to ask about; not again before another quiet period.
            if !dry_run {
                heard(deps, &id).await;
            }
            continue;
        };
        report.asked += 1;
        let status = match deps.skipup.get_meeting_request(&mr_id).await {
            Ok(request) => request.status,
            Err(error) if error.class() == ErrorClass::Configuration => {
                metrics::count(FUNCTION, &[("SkipUpAuthFailures", 1.0)]);
                return Err(MessageFailure::after(backoff(1), error));
            }
            Err(error) => {
                let not_found = matches!(error, SkipUpError::NotFound { .. });
                tracing::warn!(lead_id = %id, %error, "SkipUp did not say how the request stands");
                report.failed += 1;
                report.leads.push((id.clone(), format!("error: {error}")));
                // An unknown request is not asked about again until the next quiet
                // period; an error is retried next run.
                if not_found && !dry_run {
                    heard(deps, &id).await;
                }
                continue;
            }
        };
        report.leads.push((id.clone(), status.clone()));
        let event = match status.as_str() {
            "booked" => LeadEvent::Booked,
            "cancelled" => LeadEvent::Cancelled,
            _ => {
                report.open += 1;
                if !dry_run {
                    heard(deps, &id).await;
                }
                continue;
            }
        };
        match event {
            LeadEvent::Booked => report.booked += 1,
            _ => report.cancelled += 1,
        }
        if dry_run {
            continue;
        }
        let key = format!("{RECONCILE}:{mr_id}:{status}");
        let outcome = apply_conversation(deps, RECONCILE, &key, &id, &mr_id, event).await;
        match outcome {
            Ok(ApplyOutcome::Applied {
                status: Some(_), ..
            }) => {
                metrics::count(FUNCTION, &[("ReconciledLeads", 1.0)]);
                tracing::info!(lead_id = %id, %status, "reconciled with SkipUp");
                if let Err(error) = settle(deps, &id).await {
                    tracing::warn!(lead_id = %id, reason = %error.reason(), "reconciled; CRM not yet told");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(lead_id = %id, reason = %error.reason(), "not reconciled; asked next run");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// Marks a recovery as just asked about, so the next runs skip it for a quiet period.
async fn heard(deps: &ApplyDeps, id: &LeadId) {
    let now = deps.intake.clock.now().trunc_subsecs(3);
    let result = update_lead(&*deps.store, id, |lead| {
        lead.skipup_heard_at = Some(now);
        Some(Change::default())
    })
    .await;
    if let Err(error) = result {
        tracing::warn!(lead_id = %id, %error, "not marked as asked; asked again next run");
    }
}
