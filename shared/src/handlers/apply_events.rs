//! `apply-events`, the event consumer: applies verified webhook deliveries from the
//! events FIFO queue (`CRM_QUEUE_URL`) to leads, each read once through its connector.
//! Each event is applied once (processed-event markers, and the lead's own list of
//! applied events inside the versioned write), through the monotonic lifecycle, with
//! one timeline entry; an event no lead matches is kept for an operator, never dropped.
//! Bookings made outside SkipUp and disqualifications follow the booking rules of
//! [`crate::lifecycle::outside`]; when they stop a recovery, SkipUp's conversation is
//! cancelled once ([`settle`]).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{SubsecRound, TimeDelta};
use tracing::Instrument;

use super::MessageFailure;
use crate::connectors::{
    Booking, BookingChange, CallOutcome, Connectors, Conversation, CrmLeadChange, Event,
    FormSubmission, Provider,
};
use crate::crm::{CrmConnectors, ReconcileError};
use crate::inbound::{InboundEvent, MAX_KEPT_EVENT_BYTES};
use crate::intake::{IntakeDeps, IntakeOutcome, IntakeSettings, schedule_if_unscheduled, submit};
use crate::lead::{BookingState, EmailAddress, Lead, LeadId, LeadStatus, TimelineEntry};
use crate::lifecycle::{LeadEvent, Outside, outside, transition};
use crate::metrics;
use crate::pacing::{Pace, PacedSkipUp};
use crate::ports::{Clock, EventLog, LeadStore, Pointer, Queue, SkipUpApi, StoreError};
use crate::recovery::stop_conversation;
use crate::recovery::{CheckMessage, MAX_SQS_DELAY_SECS, backoff};
use crate::update::{Change, update_lead};

/// Function name in metrics.
const FUNCTION: &str = "apply-events";

pub struct ApplyDeps {
    /// Each connector's parse settings (the field mapping of form tools).
    pub connectors: Connectors,
    pub store: Arc<dyn LeadStore>,
    pub events: Arc<dyn EventLog>,
    /// Skode `lead.created` starts the same intake as `POST /forms`.
    pub intake: IntakeDeps,
    /// How long a processed event id is remembered: well beyond the providers'
    /// retries (SkipUp about 40 minutes, Skode up to 24 hours).
    pub seen_for: TimeDelta,
    /// Skode lead statuses that mean the prospect booked on their own.
    pub skode_booked_statuses: Vec<String>,
    /// Skode lead statuses that mean: do not contact (`SKODE_SUPPRESS_STATUSES`).
    pub skode_suppress_statuses: Vec<String>,
    /// The CRM connectors, brought up to each touched lead's status.
    pub crm: CrmConnectors,
    /// SkipUp (paced, sharing the rate limit): to stop a conversation, and for
    /// reconciliation.
    pub skipup: Arc<dyn SkipUpApi>,
}

/// What `apply-events` decides with (from [`crate::config::ApplyConfig`]).
#[derive(Debug)]
pub struct ApplySettings {
    /// Each connector's parse settings (the field mapping of form tools).
    pub connectors: Connectors,
    pub intake: IntakeSettings,
    /// `EVENT_DEDUPE_SECONDS` (default and least 90 days): how long a processed event id is kept.
    pub seen_for: TimeDelta,
    /// `SKODE_BOOKED_STATUSES` (default `meeting_booked,meeting_scheduled`).
    pub skode_booked_statuses: Vec<String>,
    /// `SKODE_SUPPRESS_STATUSES` (default
    /// `lost,unqualified,disqualified,customer,do_not_contact`).
    pub skode_suppress_statuses: Vec<String>,
    /// `RECONCILE_REQUESTS_PER_MINUTE` (default 60, half of SkipUp's limit): the pace
    /// of this function's SkipUp calls, leaving the rest to the checks.
    pub skipup_pace: Pace,
}

/// The outside world the consumer talks to, built once per process.
pub struct ApplyPorts {
    pub store: Arc<dyn LeadStore>,
    pub events: Arc<dyn EventLog>,
    /// The checks queue (intake, fresh checks, CRM retries).
    pub checks: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    /// SkipUp as the client reaches it; paced here at `skipup_pace`.
    pub skipup: Arc<dyn SkipUpApi>,
    pub crm: CrmConnectors,
}

impl ApplyDeps {
    pub fn new(ports: ApplyPorts, settings: ApplySettings) -> Self {
        Self {
            connectors: settings.connectors,
            store: ports.store.clone(),
            events: ports.events,
            intake: IntakeDeps {
                store: ports.store,
                checks: ports.checks,
                clock: ports.clock,
                settings: settings.intake,
            },
            seen_for: settings.seen_for,
            skode_booked_statuses: settings.skode_booked_statuses,
            skode_suppress_statuses: settings.skode_suppress_statuses,
            crm: ports.crm,
            skipup: Arc::new(PacedSkipUp::new(ports.skipup, settings.skipup_pace)),
        }
    }
}

/// What syncing one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// Processed before: nothing done.
    Duplicate,
    /// Appended to the lead's timeline, moving its status when `status` is set.
    Applied {
        lead_id: LeadId,
        status: Option<LeadStatus>,
    },
    /// Late or repeated: the lifecycle says it changes nothing.
    NoChange { lead_id: LeadId },
    /// A Skode `lead.created` went through intake.
    LeadCreated { lead_id: LeadId },
    /// No lead matched, or the shape was not understood: kept for an operator.
    Kept { reason: String },
    /// A booking by an address with no lead yet: remembered for the re-submission
    /// window, so the form that follows starts as BookedDirectly.
    Remembered,
    /// An event type the pipeline does not act on.
    Ignored,
}

impl ApplyOutcome {
    /// The lead the event touched, if any.
    pub fn lead_id(&self) -> Option<&LeadId> {
        match self {
            ApplyOutcome::Applied { lead_id, .. }
            | ApplyOutcome::NoChange { lead_id }
            | ApplyOutcome::LeadCreated { lead_id } => Some(lead_id),
            _ => None,
        }
    }
}

/// Handles one FIFO batch. Once a message fails, every later one fails too, so
/// their order within a message group is kept.
pub async fn handle(deps: &ApplyDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut failed = false;
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        if failed {
            response.add_failure(message_id);
            continue;
        }
        let span = tracing::info_span!("sync", message_id = %message_id);
        let result = async {
            let event: InboundEvent = serde_json::from_str(record.body.as_deref().unwrap_or(""))
                .map_err(|e| MessageFailure::poison(format!("malformed CRM message: {e}")))?;
            apply_event(deps, &event).await
        }
        .instrument(span.clone())
        .await;
        let _entered = span.enter();
        match result {
            Ok(outcome) => tracing::info!(?outcome, "event synced"),
            Err(retry) => {
                tracing::warn!(reason = %retry.reason(), "event will be retried");
                failed = true;
                response.add_failure(message_id);
            }
        }
    }
    response
}

fn retry(error: StoreError) -> MessageFailure {
    MessageFailure::after(backoff(1), error)
}

/// Applies one event.
pub async fn apply_event(
    deps: &ApplyDeps,
    event: &InboundEvent,
) -> Result<ApplyOutcome, MessageFailure> {
    // The provider's id bounded (hashed when long or unprintable): it becomes
    // DynamoDB keys (the processed marker, the timeline entry's sort key, at most
    // 1,024 bytes), so no id can make a message that fails forever.
    let key = event.dedup_id();
    if deps.events.seen(&key).await.map_err(retry)? {
        return Ok(ApplyOutcome::Duplicate);
    }
    let parsed = deps.connectors.parse(event.provider, &event.payload);
    let outcome = match parsed.event {
        Ok(Event::Conversation(conversation)) => {
            on_conversation(deps, event, &key, conversation).await?
        }
        Ok(Event::Call(call)) => on_call(deps, event, &key, call).await?,
        Ok(Event::CrmLead(change)) => on_crm_lead(deps, event, &key, change).await?,
        Ok(Event::Form(form)) => on_form(deps, event, &key, form).await?,
        Ok(Event::Booking(booking)) => on_booking(deps, event.provider, &key, booking).await?,
        Ok(Event::Ignored) => ApplyOutcome::Ignored,
        Err(unrecognized) => ApplyOutcome::Kept {
            reason: format!("payload shape not recognized: {}", unrecognized.0),
        },
    };
    match &outcome {
        ApplyOutcome::Kept { reason } => {
            let kept = event.fitted(MAX_KEPT_EVENT_BYTES);
            let json = serde_json::to_string(&kept).expect("an inbound event serializes");
            let expires = deps.intake.clock.now() + TimeDelta::days(30);
            deps.events
                .keep_unmatched(&key, reason, &json, expires)
                .await
                .map_err(retry)?;
            tracing::warn!(event = %key, %reason, "event kept for an operator");
            metrics::count(FUNCTION, &[("UnmatchedEvents", 1.0)]);
        }
        ApplyOutcome::Applied {
            status: Some(status),
            ..
        } => metrics::count(FUNCTION, &[(status_metric(*status), 1.0)]),
        _ => {}
    }
    if let Some(lead_id) = outcome.lead_id() {
        settle(deps, lead_id).await?;
    }
    deps.events
        .mark_seen(&key, deps.intake.clock.now() + deps.seen_for)
        .await
        .map_err(retry)?;
    Ok(outcome)
}

/// Finishes what a change to the lead started, each step idempotent and read from the
/// lead, so a retried message completes it: the fresh check of a lead back at
/// Submitted, the cancellation of its SkipUp conversation, and its CRM status.
pub async fn settle(deps: &ApplyDeps, lead_id: &LeadId) -> Result<(), MessageFailure> {
    let Some(lead) = deps.store.get_lead(lead_id).await.map_err(retry)? else {
        return Ok(());
    };
    if lead.status == LeadStatus::Submitted && lead.check_scheduled_at.is_none() {
        schedule_if_unscheduled(&deps.intake, lead.clone(), deps.intake.clock.now())
            .await
            .map_err(|e| MessageFailure::after(backoff(1), e))?;
    }
    if lead.cancel_pending() {
        let now = deps.intake.clock.now();
        stop_conversation(&*deps.store, &*deps.skipup, &lead, now, FUNCTION)
            .await
            .map_err(|e| super::stop_failure(e, FUNCTION, backoff(2)))?;
    }
    tell_crm(deps, lead_id).await
}

/// Brings the CRM up to the lead's status. A CRM that is down must not hold back the
/// lead's events (nor, in a FIFO group, the events behind them), so its retry is
/// handed to the checks queue, whose consumer reconciles every lead it is given.
async fn tell_crm(deps: &ApplyDeps, lead_id: &LeadId) -> Result<(), MessageFailure> {
    match deps.crm.reconcile(&*deps.store, lead_id, FUNCTION).await {
        Ok(_) => Ok(()),
        Err(ReconcileError::Store(error)) => Err(retry(error)),
        Err(error) => {
            let now = deps.intake.clock.now();
            let delay = error
                .retry_after()
                .unwrap_or(CRM_RETRY_DELAY)
                .min(Duration::from_secs(MAX_SQS_DELAY_SECS.into()));
            let check = CheckMessage {
                v: 1,
                lead_id: lead_id.clone(),
                due_at: now,
            };
            let mut message = check.to_queue_message(now);
            message.delay_seconds =
                Some(u32::try_from(delay.as_secs()).unwrap_or(MAX_SQS_DELAY_SECS));
            deps.intake
                .checks
                .send(&message)
                .await
                .map_err(|e| MessageFailure::after(backoff(1), e))?;
            tracing::warn!(lead_id = %lead_id, %error, delay_secs = delay.as_secs(), "CRM not updated; retried from the checks queue");
            Ok(())
        }
    }
}

/// When a CRM that failed transiently is tried again, without a Retry-After.
const CRM_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Metric name of a status (no spaces).
fn status_metric(status: LeadStatus) -> &'static str {
    match status {
        LeadStatus::Submitted => "Submitted",
        LeadStatus::BookedDirectly => "BookedDirectly",
        LeadStatus::MeetingRequested => "MeetingRequested",
        LeadStatus::FollowUpSent => "FollowUpSent",
        LeadStatus::MeetingScheduled => "MeetingScheduled",
        LeadStatus::ReEnterNurture => "ReEnterNurture",
        LeadStatus::RecoveryFailed => "RecoveryFailed",
        LeadStatus::Suppressed => "Suppressed",
    }
}

async fn find_first(
    store: &dyn LeadStore,
    pointers: impl IntoIterator<Item = Pointer>,
) -> Result<Option<LeadId>, MessageFailure> {
    for pointer in pointers {
        if let Some(id) = store.find_lead(&pointer).await.map_err(retry)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// What an event does to a lead: a new status and a pointer to add, or `None` when it
/// changes nothing and is left off the timeline.
type Decision = Option<(Option<LeadStatus>, Option<Pointer>)>;

/// Applies `decide`'s verdict (at most once per event key) with one timeline entry
/// from `source`. `decide` may edit the lead beyond its status (bookings, a
/// cancellation to make); its edits are saved only with a decision.
async fn apply(
    deps: &ApplyDeps,
    source: &str,
    key: &str,
    id: &LeadId,
    mut decide: impl FnMut(&mut Lead) -> Decision + Send,
    detail: impl Fn(&Lead) -> String + Send + Sync,
) -> Result<ApplyOutcome, MessageFailure> {
    let mut applied = None;
    let now = deps.intake.clock.now().trunc_subsecs(3);
    let lead = update_lead(&*deps.store, id, |lead| {
        applied = None;
        if lead.has_applied(key) {
            return None;
        }
        let (status, pointer) = decide(lead)?;
        // The timeline is in the order changes were applied, which is not always
        // the order the events were received in.
        let at = now.max(lead.updated_at + TimeDelta::milliseconds(1));
        if let Some(status) = status {
            lead.move_to(status, at);
        }
        if let Some(Pointer::MeetingRequest(mr)) = &pointer {
            lead.meeting_request_id = Some(mr.clone());
        }
        if source == Provider::SKIPUP.as_str() || source == RECONCILE {
            lead.skipup_heard_at = Some(at);
        }
        lead.remember_applied(key);
        lead.updated_at = at;
        applied = Some(status);
        Some(Change {
            entry: Some(TimelineEntry {
                at,
                event_id: key.to_string(),
                source: source.to_string(),
                status,
                detail: detail(lead),
            }),
            pointer,
        })
    })
    .await
    .map_err(retry)?;
    Ok(match (lead, applied) {
        (None, _) => ApplyOutcome::Kept {
            reason: "the lead disappeared".into(),
        },
        (Some(_), Some(status)) => ApplyOutcome::Applied {
            lead_id: id.clone(),
            status,
        },
        (Some(_), None) => ApplyOutcome::NoChange {
            lead_id: id.clone(),
        },
    })
}

/// The source of changes made by reconciliation.
pub(crate) const RECONCILE: &str = "reconcile";

async fn on_conversation(
    deps: &ApplyDeps,
    event: &InboundEvent,
    key: &str,
    conversation: Conversation,
) -> Result<ApplyOutcome, MessageFailure> {
    let event_type = conversation.event_type.as_str();
    let organizer_changed = event_type == "meeting_request.organizer_changed";
    let lead_event = LeadEvent::from_skipup_type(event_type);
    if lead_event.is_none() && !organizer_changed {
        return Ok(ApplyOutcome::Ignored);
    }
    let mr_id = conversation.meeting_request_id;
    let email = conversation
        .email
        .as_deref()
        .and_then(|e| EmailAddress::parse(e).ok());
    let pointers =
        std::iter::once(Pointer::MeetingRequest(mr_id.clone())).chain(email.map(Pointer::Email));
    let Some(id) = find_first(&*deps.store, pointers).await? else {
        return Ok(ApplyOutcome::Kept {
            reason: "no lead for this meeting request or participant".into(),
        });
    };
    let source = event.provider.as_str();
    match lead_event {
        Some(lead_event) => apply_conversation(deps, source, key, &id, &mr_id, lead_event).await,
        None => {
            let organizer = conversation
                .organizer_email
                .as_deref()
                .and_then(|e| EmailAddress::parse(e).ok());
            change_organizer(deps, source, key, &id, &mr_id, organizer).await
        }
    }
}

/// Applies one SkipUp conversation event (a webhook, or what reconciliation read).
pub(crate) async fn apply_conversation(
    deps: &ApplyDeps,
    source: &str,
    key: &str,
    id: &LeadId,
    mr_id: &str,
    lead_event: LeadEvent,
) -> Result<ApplyOutcome, MessageFailure> {
    let event_type = lead_event.skipup_type();
    apply(
        deps,
        source,
        key,
        id,
        |lead| {
            // The `cancelled` that follows our own cancellation is recorded, and
            // changes nothing else.
            if lead_event == LeadEvent::Cancelled && cancelled_by_us(lead, mr_id) {
                return Some((None, None));
            }
            let ours = lead.meeting_request_id.as_deref() == Some(mr_id);
            // Outreach begins when a check takes the lead; its webhooks can overtake
            // SkipUp's answer to the check, so they may not name a known request yet.
            let outreach = lead.recovery.is_some() || lead.meeting_request_id.is_some();
            let effective = match lead_event {
                // A booking through a request that is not ours, before any outreach.
                LeadEvent::Booked if !ours && !outreach => LeadEvent::BookedOnTheirOwn,
                other => other,
            };
            let status = transition(lead.status, effective);
            // Remember a request we learn of first through its webhook.
            let learned = lead.meeting_request_id.is_none()
                && status.is_some_and(|s| s != LeadStatus::BookedDirectly);
            let pointer = learned.then(|| Pointer::MeetingRequest(mr_id.to_string()));
            (status.is_some() || pointer.is_some()).then_some((status, pointer))
        },
        |lead| {
            let how = if source == RECONCILE {
                ", read from SkipUp by reconciliation (its webhook did not arrive)"
            } else {
                ""
            };
            if lead_event == LeadEvent::Cancelled && cancelled_by_us(lead, mr_id) {
                format!("{event_type} ({mr_id}): the cancellation we asked for{how}")
            } else {
                format!("{event_type} ({mr_id}){how}")
            }
        },
    )
    .await
}

fn cancelled_by_us(lead: &Lead, mr_id: &str) -> bool {
    lead.skipup_cancel
        .as_ref()
        .is_some_and(|c| c.meeting_request_id == mr_id)
}

/// `meeting_request.organizer_changed`: the lead's organizer follows SkipUp's.
async fn change_organizer(
    deps: &ApplyDeps,
    source: &str,
    key: &str,
    id: &LeadId,
    mr_id: &str,
    organizer: Option<EmailAddress>,
) -> Result<ApplyOutcome, MessageFailure> {
    apply(
        deps,
        source,
        key,
        id,
        |lead| {
            if lead.meeting_request_id.as_deref() != Some(mr_id) {
                return None;
            }
            if organizer.is_some() {
                lead.organizer_email = organizer.clone();
            }
            Some((None, None))
        },
        // The timeline names the role, not the address.
        |lead| {
            let who = match &organizer {
                None => "not named in the event",
                Some(o) if lead.profile.assigned_rep_email.as_ref() == Some(o) => {
                    "the assigned rep"
                }
                Some(_) => "another workspace member",
            };
            format!("meeting_request.organizer_changed ({mr_id}): the organizer is now {who}")
        },
    )
    .await
}

/// A booking made outside SkipUp: merged into the lead's bookings, then the booking
/// rules. A booking whose address has no lead yet is remembered for the lead to come.
async fn on_booking(
    deps: &ApplyDeps,
    provider: Provider,
    key: &str,
    booking: Booking,
) -> Result<ApplyOutcome, MessageFailure> {
    let booking_key = format!("{provider}:{}", booking.booking_id);
    let state = match booking.change {
        BookingChange::Booked => BookingState::Booked,
        BookingChange::Rescheduled => BookingState::Rescheduled,
        BookingChange::Cancelled => BookingState::Cancelled,
    };
    let mut bookings = vec![(booking_key, state)];
    if let Some(old) = &booking.replaces {
        bookings.push((format!("{provider}:{old}"), BookingState::Replaced));
    }
    let pointer = || Pointer::Email(booking.email.clone());
    let mut lead_id = find_first(&*deps.store, [pointer()]).await?;
    if lead_id.is_none() {
        let expires = deps.intake.clock.now() + deps.intake.settings.resubmit_window;
        for (key, state) in &bookings {
            deps.store
                .remember_booking(&booking.email, key, *state, expires)
                .await
                .map_err(retry)?;
        }
        // A form may have started the lead meanwhile; intake reads what is remembered
        // after it creates a lead, so one of the two sees the other.
        lead_id = find_first(&*deps.store, [pointer()]).await?;
    }
    let Some(id) = lead_id else {
        tracing::info!(email = %booking.email.log_tag(), "booking before its lead; remembered");
        return Ok(ApplyOutcome::Remembered);
    };
    let what = match booking.change {
        BookingChange::Booked => "booked",
        BookingChange::Rescheduled => "rescheduled",
        BookingChange::Cancelled => "cancelled",
    };
    let when = booking
        .start_at
        .map(|at| {
            format!(
                " for {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    let detail = format!("{provider} booking {what}{when} ({})", booking.booking_id);
    apply_outside(
        deps,
        provider.as_str(),
        key,
        &id,
        |lead| lead.merge_bookings(&bookings),
        detail,
    )
    .await
}

/// Applies a booking or a disqualification by the rules of [`outside`]: a new status,
/// a fresh check after the recovery delay, the decision to stop SkipUp (carried out
/// by [`settle`]). A booking that tells nothing new is left off the timeline.
pub(crate) async fn apply_outside(
    deps: &ApplyDeps,
    source: &str,
    key: &str,
    id: &LeadId,
    mut signal: impl FnMut(&mut Lead) -> Outside + Send,
    detail: String,
) -> Result<ApplyOutcome, MessageFailure> {
    let now = deps.intake.clock.now().trunc_subsecs(3);
    let delay = deps.intake.settings.delay;
    let reason = detail.clone();
    apply(
        deps,
        source,
        key,
        id,
        |lead| {
            let signal = signal(lead);
            if matches!(signal, Outside::Booking { new: false, .. }) {
                return None;
            }
            let verdict = outside(lead.status, lead.outreach_began(), signal);
            if verdict.recheck {
                lead.due_at = now + delay;
                lead.check_scheduled_at = None;
                lead.recovery = None;
            }
            if let Some(mr) = lead
                .meeting_request_id
                .clone()
                .filter(|_| verdict.stop_skipup)
            {
                lead.arm_cancel(&mr, &reason, now);
            }
            if verdict.status == Some(LeadStatus::Suppressed) {
                lead.status_reason = Some(reason.clone());
            }
            // What changes no status (a booking of a lead already booked, a
            // disqualification of one Meeting Scheduled) is still worth a line.
            Some((verdict.status, None))
        },
        move |lead| {
            if lead.status == LeadStatus::Submitted && lead.check_scheduled_at.is_none() {
                format!("{detail}; no booking of theirs stands: a fresh check is due")
            } else {
                detail.clone()
            }
        },
    )
    .await
}

/// Stops a lead's recovery for good: the operator's `recovery suppress`, with the same
/// rules as a CRM's disqualification, then [`settle`]d.
pub async fn suppress(
    deps: &ApplyDeps,
    id: &LeadId,
    reason: &str,
) -> Result<ApplyOutcome, MessageFailure> {
    let key = format!(
        "operator:suppress:{}",
        deps.intake.clock.now().timestamp_millis()
    );
    let outcome = apply_outside(
        deps,
        "operator",
        &key,
        id,
        |_| Outside::Disqualified,
        format!("suppressed by an operator: {reason}"),
    )
    .await?;
    if let Some(lead_id) = outcome.lead_id() {
        settle(deps, lead_id).await?;
    }
    Ok(outcome)
}

async fn on_call(
    deps: &ApplyDeps,
    event: &InboundEvent,
    key: &str,
    call: CallOutcome,
) -> Result<ApplyOutcome, MessageFailure> {
    let pointer = match (call.phone, call.email) {
        (Some(phone), _) => Some(Pointer::Phone(phone)),
        (None, Some(email)) => EmailAddress::parse(&email).ok().map(Pointer::Email),
        (None, None) => None,
    };
    let Some(id) = find_first(&*deps.store, pointer).await? else {
        return Ok(ApplyOutcome::Kept {
            reason: "no lead with this phone number or email".into(),
        });
    };
    // A call's outcome goes on the timeline without moving the status.
    let source = event.provider.as_str();
    apply(
        deps,
        source,
        key,
        &id,
        |_| Some((None, None)),
        |_| call.detail.clone(),
    )
    .await
}

/// A form submission (a form tool, or Skode `lead.created`) goes through intake.
async fn on_form(
    deps: &ApplyDeps,
    event: &InboundEvent,
    key: &str,
    form: Box<FormSubmission>,
) -> Result<ApplyOutcome, MessageFailure> {
    let outcome = submit(&deps.intake, *form, key, event.provider.as_str())
        .await
        .map_err(|e| MessageFailure::after(backoff(1), e))?;
    if matches!(outcome, IntakeOutcome::Scheduled(_)) {
        metrics::count(FUNCTION, &[("LeadsSubmitted", 1.0)]);
    }
    Ok(ApplyOutcome::LeadCreated {
        lead_id: outcome.lead().id.clone(),
    })
}

/// A lead changed in the CRM: a booked status is a booking made without us, a status in
/// `SKODE_SUPPRESS_STATUSES` a disqualification.
async fn on_crm_lead(
    deps: &ApplyDeps,
    event: &InboundEvent,
    key: &str,
    change: CrmLeadChange,
) -> Result<ApplyOutcome, MessageFailure> {
    let pointers = change
        .crm_lead_id
        .map(Pointer::SkodeLead)
        .into_iter()
        .chain(
            change
                .email
                .as_deref()
                .and_then(|e| EmailAddress::parse(e).ok())
                .map(Pointer::Email),
        );
    let Some(id) = find_first(&*deps.store, pointers).await? else {
        return Ok(ApplyOutcome::Kept {
            reason: "no lead for this Skode lead".into(),
        });
    };
    let status = change.status.unwrap_or_default();
    let listed = |statuses: &[String]| statuses.iter().any(|b| b.eq_ignore_ascii_case(&status));
    let source = event.provider.as_str();
    let detail = format!("lead.updated in Skode: status {status}");
    if listed(&deps.skode_suppress_statuses) {
        return apply_outside(deps, source, key, &id, |_| Outside::Disqualified, detail).await;
    }
    if !listed(&deps.skode_booked_statuses) {
        return Ok(ApplyOutcome::NoChange { lead_id: id });
    }
    // A booked status is a booking like any other, one per Skode lead.
    let booking = vec![(format!("skode:{}", id), BookingState::Booked)];
    apply_outside(
        deps,
        source,
        key,
        &id,
        |lead| lead.merge_bookings(&booking),
        detail,
    )
    .await
}
