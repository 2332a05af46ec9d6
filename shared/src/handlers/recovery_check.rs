//! `recovery-check`: for each due lead that has not booked, ask SkipUp for one
//! meeting request, exactly once (stored idempotency key, a lease against concurrent
//! checks). Failed messages are reported per item; transient ones come back after a
//! backoff, permanent input errors end the lead as RecoveryFailed.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::crm::CrmConnectors;
use crate::lead::{EmailAddress, Lead, LeadId, LeadStatus, Recovery, TimelineEntry};
use crate::lifecycle::{LeadEvent, transition};
use crate::metrics;
use crate::ports::{Clock, LeadStore, Pointer, Queue, Redelivery, SkipUpApi, StoreError};
use crate::recovery::{
    CheckMessage, MemberCache, RecoverySettings, backoff, build_meeting_request, idempotency_key,
    stop_conversation,
};
use crate::skipup::{ErrorClass, MeetingRequest, SkipUpError};
use crate::update::{Change, update_lead};

/// Function name in metrics.
const FUNCTION: &str = "recovery-check";

pub struct RecoveryDeps {
    pub store: Arc<dyn LeadStore>,
    pub skipup: Arc<dyn SkipUpApi>,
    /// The checks queue, to send early messages back with the remaining delay.
    pub checks: Arc<dyn Queue>,
    pub redelivery: Arc<dyn Redelivery>,
    pub clock: Arc<dyn Clock>,
    pub settings: RecoverySettings,
    pub members: MemberCache,
    /// The CRM connectors: told of Meeting Requested and RecoveryFailed from here.
    pub crm: CrmConnectors,
}

/// The outside world a check talks to, wired once per function.
pub struct RecoveryPorts {
    pub store: Arc<dyn LeadStore>,
    pub skipup: Arc<dyn SkipUpApi>,
    pub checks: Arc<dyn Queue>,
    pub redelivery: Arc<dyn Redelivery>,
    pub clock: Arc<dyn Clock>,
}

impl RecoveryDeps {
    pub fn new(ports: RecoveryPorts, settings: RecoverySettings, crm: CrmConnectors) -> Self {
        Self {
            store: ports.store,
            skipup: ports.skipup,
            checks: ports.checks,
            redelivery: ports.redelivery,
            clock: ports.clock,
            members: MemberCache::new(settings.member_cache),
            settings,
            crm,
        }
    }
}

/// What a check did with its message.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// No such lead: logged and dropped.
    LeadMissing,
    /// Received before `due_at`: sent again with the remaining delay.
    Rescheduled { delay_secs: u32 },
    /// Booked, suppressed, already requested or failed: nothing to do.
    NothingToDo(LeadStatus),
    /// SkipUp accepted the meeting request.
    Requested { meeting_request_id: String },
    /// SkipUp refused the input for good: the lead is RecoveryFailed.
    Failed { reason: String },
    /// On the suppression list, or over a daily cap: the lead is Suppressed.
    Suppressed { reason: String },
}

use super::MessageFailure;

/// Handles one SQS batch; failed messages are listed for redelivery, the rest are
/// deleted by Lambda.
pub async fn handle(deps: &RecoveryDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("check", message_id = %message_id);
        let result = process(deps, &record).instrument(span.clone()).await;
        let _entered = span.enter();
        match result {
            Ok(outcome) => tracing::info!(?outcome, "check done"),
            Err(retry) => {
                tracing::warn!(reason = %retry.reason(), after_secs = retry.retry_after().map(|d| d.as_secs()), "check will be retried");
                if let (Some(handle), Some(after)) = (&record.receipt_handle, retry.retry_after()) {
                    deps.redelivery.retry_after(handle, after).await;
                }
                response.add_failure(message_id);
            }
        }
    }
    response
}

async fn process(deps: &RecoveryDeps, record: &SqsMessage) -> Result<CheckOutcome, MessageFailure> {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let message: CheckMessage = serde_json::from_str(record.body.as_deref().unwrap_or(""))
        .map_err(|e| MessageFailure::poison(format!("malformed check message: {e}")))?;
    check(deps, &message, receive_count).await
}

fn store_retry(receive_count: u32) -> impl Fn(StoreError) -> MessageFailure {
    move |e| MessageFailure::after(backoff(receive_count), e)
}

/// Checks one lead: the decision of `recovery-check` for one message, then the CRM
/// brought up to the lead's status (a CRM that could not be told retries the message,
/// which then finds nothing to do but the CRM).
pub async fn check(
    deps: &RecoveryDeps,
    message: &CheckMessage,
    receive_count: u32,
) -> Result<CheckOutcome, MessageFailure> {
    let outcome = decide(deps, message, receive_count).await?;
    if matches!(outcome, CheckOutcome::Requested { .. }) {
        metrics::count(FUNCTION, &[("RecoveryRequested", 1.0)]);
    }
    if matches!(
        outcome,
        CheckOutcome::Requested { .. }
            | CheckOutcome::Failed { .. }
            | CheckOutcome::Suppressed { .. }
            | CheckOutcome::NothingToDo(_)
    ) {
        deps.crm
            .reconcile(&*deps.store, &message.lead_id, FUNCTION)
            .await
            .map_err(|e| {
                MessageFailure::after(e.retry_after().unwrap_or_else(|| backoff(receive_count)), e)
            })?;
    }
    Ok(outcome)
}

async fn decide(
    deps: &RecoveryDeps,
    message: &CheckMessage,
    receive_count: u32,
) -> Result<CheckOutcome, MessageFailure> {
    let now = deps.clock.now();
    let Some(lead) = deps
        .store
        .get_lead(&message.lead_id)
        .await
        .map_err(store_retry(receive_count))?
    else {
        tracing::warn!(lead_id = %message.lead_id, "lead not found; check dropped");
        return Ok(CheckOutcome::LeadMissing);
    };
    if now < lead.due_at {
        let again = CheckMessage::new(&lead).to_queue_message(now);
        let delay_secs = again.delay_seconds.unwrap_or(0);
        deps.checks
            .send(&again)
            .await
            .map_err(|e| MessageFailure::after(backoff(receive_count), e))?;
        return Ok(CheckOutcome::Rescheduled { delay_secs });
    }
    // A cancellation a check decided on an earlier attempt is finished first.
    stop_conversation(&*deps.store, &*deps.skipup, &lead, now, FUNCTION)
        .await
        .map_err(|e| super::stop_failure(e, FUNCTION, backoff(receive_count)))?;
    if lead.status != LeadStatus::Submitted {
        return Ok(CheckOutcome::NothingToDo(lead.status));
    }
    if let Some(reason) = guard(deps, &lead, now)
        .await
        .map_err(store_retry(receive_count))?
    {
        tracing::info!(lead_id = %lead.id, %reason, "lead not contacted");
        metrics::count(FUNCTION, &[("RecoverySuppressed", 1.0)]);
        record_end(deps, &lead.id, LeadStatus::Suppressed, &reason, now)
            .await
            .map_err(store_retry(receive_count))?;
        return Ok(CheckOutcome::Suppressed { reason });
    }
    let lead = begin(deps, &lead.id, now, receive_count).await?;
    let Some(lead) = lead else {
        return Ok(CheckOutcome::LeadMissing);
    };
    if lead.status != LeadStatus::Submitted {
        return Ok(CheckOutcome::NothingToDo(lead.status));
    }
    let key = lead
        .recovery
        .as_ref()
        .map(|r| r.idempotency_key.clone())
        .expect("begin() fixed the idempotency key");
    match request(deps, &lead, &key, now).await {
        Ok((meeting_request, organizer)) => {
            let lead = record_requested(deps, &lead.id, &meeting_request, &organizer, now)
                .await
                .map_err(store_retry(receive_count))?;
            if let Some(lead) = lead {
                stop_conversation(&*deps.store, &*deps.skipup, &lead, now, FUNCTION)
                    .await
                    .map_err(|e| super::stop_failure(e, FUNCTION, backoff(receive_count)))?;
            }
            Ok(CheckOutcome::Requested {
                meeting_request_id: meeting_request.id,
            })
        }
        Err(error) => {
            let class = error.class();
            if class == ErrorClass::Input {
                let reason = error.to_string();
                metrics::count(FUNCTION, &[("RecoveryFailed", 1.0)]);
                record_end(deps, &lead.id, LeadStatus::RecoveryFailed, &reason, now)
                    .await
                    .map_err(store_retry(receive_count))?;
                return Ok(CheckOutcome::Failed { reason });
            }
            release(deps, &lead.id).await;
            match class {
                ErrorClass::Configuration => {
                    tracing::error!(%error, "SkipUp refused our credentials; the lead is kept for a retry");
                    metrics::count(FUNCTION, &[("SkipUpAuthFailures", 1.0)]);
                    Err(MessageFailure::after(backoff(receive_count), error))
                }
                ErrorClass::Transient { retry_after } => Err(MessageFailure::after(
                    retry_after.unwrap_or_else(|| backoff(receive_count)),
                    error,
                )),
                ErrorClass::Input => unreachable!("handled above"),
            }
        }
    }
}

/// Takes the lead for this attempt: fixes its idempotency key at the first attempt
/// and holds a lease, so a concurrent check of the same lead backs off.
async fn begin(
    deps: &RecoveryDeps,
    id: &LeadId,
    now: DateTime<Utc>,
    receive_count: u32,
) -> Result<Option<Lead>, MessageFailure> {
    let mut busy_until = None;
    let lead = update_lead(&*deps.store, id, |lead| {
        busy_until = None;
        if lead.status != LeadStatus::Submitted {
            return None;
        }
        // A lead back at Submitted after an earlier request (cancelled when a booking
        // overtook it) asks anew, under a key of its own: the day's key would replay it.
        let key = match &lead.meeting_request_id {
            Some(earlier) => format!("{}:after:{earlier}", idempotency_key(&lead.id, now)),
            None => idempotency_key(&lead.id, now),
        };
        let recovery = lead.recovery.get_or_insert(Recovery {
            idempotency_key: key,
            started_at: now,
            attempts: 0,
            lease_until: None,
        });
        if let Some(until) = recovery.lease_until.filter(|until| *until > now) {
            busy_until = Some(until);
            return None;
        }
        recovery.attempts += 1;
        recovery.lease_until = Some(now + deps.settings.lease);
        lead.updated_at = now;
        Some(Change::default())
    })
    .await
    .map_err(store_retry(receive_count))?;
    if let Some(until) = busy_until {
        let wait = (until - now).to_std().unwrap_or_default() + Duration::from_secs(1);
        return Err(MessageFailure::after(wait, "another check holds this lead"));
    }
    Ok(lead)
}

/// The assigned rep if an active workspace member, else the default organizer.
async fn organizer(deps: &RecoveryDeps, lead: &Lead) -> Result<EmailAddress, SkipUpError> {
    match &lead.profile.assigned_rep_email {
        Some(rep) if rep != &deps.settings.default_organizer => {
            if deps.members.is_member(&*deps.skipup, rep).await? {
                Ok(rep.clone())
            } else {
                tracing::info!(lead_id = %lead.id, rep = %rep.log_tag(), "assigned rep is not a SkipUp member; using the default organizer");
                Ok(deps.settings.default_organizer.clone())
            }
        }
        _ => Ok(deps.settings.default_organizer.clone()),
    }
}

/// Creates the meeting request; a 422 with the rep as organizer is tried once more
/// with the default organizer, under its own key (SkipUp may replay the cached 422
/// for the first one).
async fn request(
    deps: &RecoveryDeps,
    lead: &Lead,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(MeetingRequest, EmailAddress), SkipUpError> {
    let organizer = organizer(deps, lead).await?;
    let body = build_meeting_request(lead, &organizer, now, &deps.settings.request);
    match deps.skipup.create_meeting_request(key, &body).await {
        Err(error)
            if error.class() == ErrorClass::Input
                && organizer != deps.settings.default_organizer =>
        {
            tracing::warn!(lead_id = %lead.id, %error, "SkipUp refused the rep as organizer; trying the default organizer");
            let fallback = build_meeting_request(
                lead,
                &deps.settings.default_organizer,
                now,
                &deps.settings.request,
            );
            deps.skipup
                .create_meeting_request(&format!("{key}:default-organizer"), &fallback)
                .await
                .map(|mr| (mr, deps.settings.default_organizer.clone()))
        }
        other => other.map(|mr| (mr, organizer)),
    }
}

async fn record_requested(
    deps: &RecoveryDeps,
    id: &LeadId,
    meeting_request: &MeetingRequest,
    organizer: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<Option<Lead>, StoreError> {
    let mr_id = meeting_request.id.clone();
    // The timeline names the role, not the address.
    let who = if organizer == &deps.settings.default_organizer {
        "the default organizer"
    } else {
        "the assigned rep"
    };
    update_lead(&*deps.store, id, |lead| {
        if lead.meeting_request_id.as_deref() == Some(mr_id.as_str()) {
            return None;
        }
        // A booking signal may have moved the lead meanwhile: keep its status, but
        // still remember the request so its webhooks find the lead.
        let status = transition(lead.status, LeadEvent::MeetingRequestCreated);
        if let Some(status) = status {
            lead.move_to(status, now);
        }
        lead.meeting_request_id = Some(mr_id.clone());
        lead.organizer_email = Some(organizer.clone());
        lead.skipup_heard_at = Some(now);
        // A booking or a disqualification overtook the request: SkipUp must stop.
        if matches!(
            lead.status,
            LeadStatus::BookedDirectly | LeadStatus::Suppressed
        ) {
            let reason = format!("the lead became {} while its request was made", lead.status);
            lead.arm_cancel(&mr_id, &reason, now);
        }
        if let Some(recovery) = &mut lead.recovery {
            recovery.lease_until = None;
        }
        lead.updated_at = now;
        Some(Change {
            entry: Some(TimelineEntry {
                at: now,
                event_id: format!("skipup:{mr_id}:accepted"),
                source: FUNCTION.into(),
                status,
                detail: format!("SkipUp accepted meeting request {mr_id}; organizer: {who}"),
            }),
            pointer: Some(Pointer::MeetingRequest(mr_id.clone())),
        })
    })
    .await
}

/// Why `lead` must not be emailed: its address is suppressed, or a daily cap is
/// full (the lead is counted against each cap it passes).
async fn guard(
    deps: &RecoveryDeps,
    lead: &Lead,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let email = &lead.profile.email;
    if let Some(reason) = deps.settings.suppression.reason(email) {
        return Ok(Some(reason));
    }
    // A day's counters outlive the day by one, for operators looking at them.
    let expires_at = now + chrono::Duration::days(2);
    for cap in deps.settings.caps.for_email(email, now) {
        if !deps
            .store
            .count_against(&cap.key, &lead.id, cap.limit, expires_at)
            .await?
        {
            return Ok(Some(cap.reason));
        }
    }
    Ok(None)
}

/// Ends a lead still Submitted as `status` (RecoveryFailed or Suppressed), with the
/// reason on the lead and its timeline.
async fn record_end(
    deps: &RecoveryDeps,
    id: &LeadId,
    status: LeadStatus,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tag = if status == LeadStatus::Suppressed {
        "suppressed"
    } else {
        "failed"
    };
    update_lead(&*deps.store, id, |lead| {
        if lead.status != LeadStatus::Submitted {
            return None;
        }
        lead.move_to(status, now);
        lead.status_reason = Some(reason.to_string());
        if let Some(recovery) = &mut lead.recovery {
            recovery.lease_until = None;
        }
        lead.updated_at = now;
        Some(Change {
            entry: Some(TimelineEntry {
                at: now,
                event_id: format!("check:{}:{tag}", lead.id),
                source: FUNCTION.into(),
                status: Some(status),
                detail: reason.to_string(),
            }),
            pointer: None,
        })
    })
    .await
    .map(|_| ())
}

/// Lets the next attempt start at once; if this fails the lease simply runs out.
async fn release(deps: &RecoveryDeps, id: &LeadId) {
    let result = update_lead(&*deps.store, id, |lead| {
        let recovery = lead.recovery.as_mut()?;
        recovery.lease_until.take()?;
        Some(Change::default())
    })
    .await;
    if let Err(error) = result {
        tracing::warn!(lead_id = %id, %error, "lease not released; it expires on its own");
    }
}
