//! The lead: who submitted a demo form, what they told us, and where their recovery
//! stands. Inputs are parsed at the edge into types that are valid by construction.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A normalized email address (trimmed, lowercase). Valid by construction.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > 254 {
            return Err("is longer than 254 characters");
        }
        let (local, domain) = email.split_once('@').ok_or("is not an email address")?;
        let valid_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || !c.is_ascii());
        let valid_local = !local.is_empty()
            && local.len() <= 64
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '@');
        if valid_local && valid_domain {
            Ok(Self(email))
        } else {
            Err("is not an email address")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible tag for logs, where the address must not appear.
    pub fn log_tag(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..6])
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Redacted: addresses are personal data and `Debug` output ends up in logs.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress(#{})", self.log_tag())
    }
}

/// A lead's id: `l_` and 24 hex digits, derived so that the same submission always
/// maps to the same lead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(String);

impl LeadId {
    fn derive(material: &str) -> Self {
        Self(format!(
            "l_{}",
            &hex::encode(Sha256::digest(material.as_bytes()))[..24]
        ))
    }

    /// From the form tool's own submission id (scoped by form), when it sends one.
    pub fn from_submission(form_id: Option<&str>, submission_id: &str) -> Self {
        Self::derive(&format!(
            "submission:{}:{submission_id}",
            form_id.unwrap_or("")
        ))
    }

    /// From the normalized email and the UTC day of submission: a repeated post the
    /// same day is the same lead; the re-submission window covers the rest.
    pub fn from_email(email: &EmailAddress, submitted_at: DateTime<Utc>) -> Self {
        Self::derive(&format!(
            "email:{}:{}",
            email.as_str(),
            submitted_at.format("%Y-%m-%d")
        ))
    }

    /// Accepts an id read back from storage or a message.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let valid = raw.len() == 26
            && raw.starts_with("l_")
            && raw[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err("is not a lead id")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a lead's recovery stands. The names are the CRM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeadStatus {
    Submitted,
    BookedDirectly,
    #[serde(rename = "Meeting Requested")]
    MeetingRequested,
    #[serde(rename = "Follow-up Sent")]
    FollowUpSent,
    #[serde(rename = "Meeting Scheduled")]
    MeetingScheduled,
    #[serde(rename = "Re-enter Nurture")]
    ReEnterNurture,
    RecoveryFailed,
    Suppressed,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 8] = [
        LeadStatus::Submitted,
        LeadStatus::BookedDirectly,
        LeadStatus::MeetingRequested,
        LeadStatus::FollowUpSent,
        LeadStatus::MeetingScheduled,
        LeadStatus::ReEnterNurture,
        LeadStatus::RecoveryFailed,
        LeadStatus::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Submitted => "Submitted",
            LeadStatus::BookedDirectly => "BookedDirectly",
            LeadStatus::MeetingRequested => "Meeting Requested",
            LeadStatus::FollowUpSent => "Follow-up Sent",
            LeadStatus::MeetingScheduled => "Meeting Scheduled",
            LeadStatus::ReEnterNurture => "Re-enter Nurture",
            LeadStatus::RecoveryFailed => "RecoveryFailed",
            LeadStatus::Suppressed => "Suppressed",
        }
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeadStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown lead status {s:?}"))
    }
}

/// An IANA time zone name, checked against the tz database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_string()))
            .map_err(|_| "is not an IANA time zone name (like Europe/Berlin)")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeZoneName> for String {
    fn from(value: TimeZoneName) -> Self {
        value.0
    }
}

/// What the prospect told us, as stored on the lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadProfile {
    pub email: EmailAddress,
    pub name: String,
    pub company: Option<String>,
    pub role: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<TimeZoneName>,
    pub assigned_rep_email: Option<EmailAddress>,
    pub form_id: Option<String>,
    pub submission_id: Option<String>,
    /// Free-form question and answer pairs, in the order the form sent them.
    pub answers: Vec<(String, String)>,
    pub source: Option<String>,
    /// The Skode lead this one came from, for CRM updates.
    pub skode_lead_id: Option<String>,
}

impl LeadProfile {
    /// Who the lead is and nothing more; a caller sets the optional fields it knows
    /// (`LeadProfile { company, ..LeadProfile::new(email, name) }`).
    pub fn new(email: EmailAddress, name: impl Into<String>) -> Self {
        Self {
            email,
            name: name.into(),
            company: None,
            role: None,
            phone: None,
            timezone: None,
            assigned_rep_email: None,
            form_id: None,
            submission_id: None,
            answers: vec![],
            source: None,
            skode_lead_id: None,
        }
    }

    /// The id this submission maps to: the submission id when the form sends one,
    /// else the normalized email and day.
    pub fn lead_id(&self, submitted_at: DateTime<Utc>) -> LeadId {
        match &self.submission_id {
            Some(submission) => LeadId::from_submission(self.form_id.as_deref(), submission),
            None => LeadId::from_email(&self.email, submitted_at),
        }
    }
}

/// A recovery in progress or done: the idempotency key is fixed at the first attempt
/// and reused by every retry, even after midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub idempotency_key: String,
    pub started_at: DateTime<Utc>,
    pub attempts: u32,
    /// Another check may not start before this instant (guards concurrent checks).
    pub lease_until: Option<DateTime<Utc>>,
}

/// Where one booking made outside SkipUp stands, as far as its events tell. States
/// only move up (`Booked` < `Rescheduled` < `Replaced` < `Cancelled`), so the state of
/// a booking follows from the set of its events, whatever their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingState {
    Booked,
    /// Moved to another time under the same id: still standing.
    Rescheduled,
    /// Superseded by a booking with a new id (a reschedule that issues one).
    Replaced,
    Cancelled,
}

impl BookingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Booked => "booked",
            BookingState::Rescheduled => "rescheduled",
            BookingState::Replaced => "replaced",
            BookingState::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            BookingState::Booked,
            BookingState::Rescheduled,
            BookingState::Replaced,
            BookingState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// Whether the prospect still has this meeting.
    pub fn stands(self) -> bool {
        matches!(self, BookingState::Booked | BookingState::Rescheduled)
    }
}

/// Our request that SkipUp stop a lead's conversation: asked for once, in the same
/// write that decided it, and marked done when SkipUp confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipUpCancel {
    pub meeting_request_id: String,
    /// Why (a booking elsewhere, a disqualification), for the timeline.
    pub reason: String,
    pub decided_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

/// What a lead waits on SkipUp for (see [`Lead::waiting_on_skipup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Waiting {
    /// Our cancellation is decided and not yet confirmed: retried at every run.
    Cancel,
    /// The recovery is open: asked about once SkipUp has been quiet for a while.
    Recovery,
}

/// The system of record for one lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub profile: LeadProfile,
    pub status: LeadStatus,
    /// Why the lead is RecoveryFailed or Suppressed.
    pub status_reason: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub check_scheduled_at: Option<DateTime<Utc>>,
    pub recovery: Option<Recovery>,
    pub meeting_request_id: Option<String>,
    pub organizer_email: Option<EmailAddress>,
    pub updated_at: DateTime<Utc>,
    /// Keys of the last provider events applied to this lead, newest last, so that a
    /// redelivered event is recognized inside the same versioned write.
    pub applied_events: Vec<String>,
    /// The status the team's CRM was last told of (by the CRM connectors).
    pub crm_status: Option<LeadStatus>,
    /// While a push to CRMs that keep a note per change is under way: until when it
    /// holds the lead, so that a concurrent push does not make the same note twice.
    #[serde(default)]
    pub crm_lease_until: Option<DateTime<Utc>>,
    /// When the lead first reached each status after Submitted, in that order (the
    /// funnel report's follow-ups and time to book).
    pub reached: Vec<(LeadStatus, DateTime<Utc>)>,
    /// Bookings made outside SkipUp, by `{tool}:{booking id}`, each at the highest
    /// state its events reached.
    pub bookings: Vec<(String, BookingState)>,
    /// Set once we decided to stop the lead's SkipUp conversation.
    pub skipup_cancel: Option<SkipUpCancel>,
    /// While a recovery is open (Meeting Requested, Follow-up Sent): when SkipUp was
    /// last heard from or asked about it. Reconciliation asks about the quiet ones.
    pub skipup_heard_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency: bumped by every save.
    pub version: u64,
}

/// How many applied event keys a lead remembers.
pub const APPLIED_EVENTS_KEPT: usize = 32;

impl Lead {
    /// Moves the lead to `status`, remembering when it first got there.
    pub fn move_to(&mut self, status: LeadStatus, at: DateTime<Utc>) {
        self.status = status;
        if self.reached_at(status).is_none() {
            self.reached.push((status, at));
        }
    }

    /// When the lead first reached `status` (as recorded since milestones were kept).
    pub fn reached_at(&self, status: LeadStatus) -> Option<DateTime<Utc>> {
        self.reached
            .iter()
            .find(|(reached, _)| *reached == status)
            .map(|(_, at)| *at)
    }

    pub fn has_applied(&self, event_key: &str) -> bool {
        self.applied_events.iter().any(|k| k == event_key)
    }

    pub fn remember_applied(&mut self, event_key: &str) {
        self.applied_events.push(event_key.to_string());
        let excess = self
            .applied_events
            .len()
            .saturating_sub(APPLIED_EVENTS_KEPT);
        self.applied_events.drain(..excess);
    }
}

impl Lead {
    /// Merges what one event says of a booking; `false` when it tells nothing new.
    pub fn record_booking(&mut self, key: &str, state: BookingState) -> bool {
        match self.bookings.iter_mut().find(|(k, _)| k == key) {
            Some((_, known)) if *known >= state => false,
            Some((_, known)) => {
                *known = state;
                true
            }
            None => {
                self.bookings.push((key.to_string(), state));
                true
            }
        }
    }

    /// Whether any booking of theirs still stands.
    pub fn has_standing_booking(&self) -> bool {
        self.bookings.iter().any(|(_, state)| state.stands())
    }

    /// Whether SkipUp may be talking to the prospect: a request is known, and the lead
    /// is not waiting for a (fresh) check nor was taken over by a booking before its
    /// request started.
    pub fn outreach_began(&self) -> bool {
        self.meeting_request_id.is_some()
            && !matches!(
                self.status,
                LeadStatus::Submitted | LeadStatus::BookedDirectly
            )
    }

    /// Whether the recovery waits on SkipUp (the statuses reconciliation looks at).
    pub fn recovery_open(&self) -> bool {
        matches!(
            self.status,
            LeadStatus::MeetingRequested | LeadStatus::FollowUpSent
        )
    }

    /// Whether a decided SkipUp cancellation is not confirmed yet.
    pub fn cancel_pending(&self) -> bool {
        self.skipup_cancel
            .as_ref()
            .is_some_and(|c| c.done_at.is_none())
    }

    /// For reconciliation: what this lead waits on SkipUp for, and since when (an
    /// unconfirmed cancellation since it was decided, an open recovery since SkipUp
    /// was last heard from or asked), or `None` when it does not.
    pub fn waiting_on_skipup(&self) -> Option<(Waiting, DateTime<Utc>)> {
        if let Some(cancel) = self.skipup_cancel.as_ref().filter(|c| c.done_at.is_none()) {
            return Some((Waiting::Cancel, cancel.decided_at));
        }
        self.recovery_open().then(|| {
            (
                Waiting::Recovery,
                self.skipup_heard_at.unwrap_or(self.updated_at),
            )
        })
    }

    /// Decides to stop SkipUp's conversation about `mr_id` (once per request).
    pub fn arm_cancel(&mut self, mr_id: &str, reason: &str, now: DateTime<Utc>) {
        if self
            .skipup_cancel
            .as_ref()
            .is_none_or(|c| c.meeting_request_id != mr_id)
        {
            self.skipup_cancel = Some(SkipUpCancel {
                meeting_request_id: mr_id.to_string(),
                reason: reason.to_string(),
                decided_at: now,
                done_at: None,
            });
        }
    }

    /// Merges what one event says of some bookings into the lead: the signal the
    /// booking rules read.
    pub fn merge_bookings(
        &mut self,
        bookings: &[(String, BookingState)],
    ) -> crate::lifecycle::Outside {
        let mut new = false;
        for (key, state) in bookings {
            new |= self.record_booking(key, *state);
        }
        crate::lifecycle::Outside::Booking {
            new,
            standing: self.has_standing_booking(),
        }
    }
}

impl Lead {
    /// Times are kept to the millisecond, the precision they are stored with.
    pub fn new(profile: LeadProfile, submitted_at: DateTime<Utc>, delay: chrono::Duration) -> Self {
        use chrono::SubsecRound;
        let submitted_at = submitted_at.trunc_subsecs(3);
        Self {
            id: profile.lead_id(submitted_at),
            profile,
            status: LeadStatus::Submitted,
            status_reason: None,
            submitted_at,
            due_at: submitted_at + delay,
            check_scheduled_at: None,
            recovery: None,
            meeting_request_id: None,
            organizer_email: None,
            updated_at: submitted_at,
            applied_events: Vec::new(),
            crm_status: None,
            crm_lease_until: None,
            reached: Vec::new(),
            bookings: Vec::new(),
            skipup_cancel: None,
            skipup_heard_at: None,
            version: 0,
        }
    }
}

/// One line of a lead's history: what changed, why, and which event caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// The event that caused it: a provider event id, or ours (`intake`, `check:...`).
    pub event_id: String,
    pub source: String,
    pub status: Option<LeadStatus>,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            EmailAddress::parse("  Dana.Ruiz@Northwind.Example ")
                .unwrap()
                .as_str(),
            "dana.ruiz@northwind.example"
        );
        for bad in [
            "", "dana", "dana@", "@x.io", "a b@x.io", "a@x", "a@.x.io", "a@x..io", "a@x.io.",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_email_never_appears_in_debug_output() {
        let email = EmailAddress::parse("dana@northwind.example").unwrap();
        assert!(!format!("{email:?}").contains("dana"));
    }

    #[test]
    fn the_same_email_on_the_same_day_is_the_same_lead() {
        let email = EmailAddress::parse("dana@northwind.example").unwrap();
        let morning = LeadId::from_email(&email, at("2026-11-22T08:00:00Z"));
        let evening = LeadId::from_email(
            &EmailAddress::parse("DANA@northwind.example").unwrap(),
            at("2026-11-22T23:59:00Z"),
        );
        assert_eq!(morning, evening);
        assert_ne!(
            morning,
            LeadId::from_email(&email, at("2026-11-23T00:00:00Z"))
        );
        assert_eq!(LeadId::parse(morning.as_str()), Ok(morning));
    }

    #[test]
    fn a_submission_id_is_scoped_by_its_form() {
        assert_eq!(
            LeadId::from_submission(Some("demo"), "s1"),
            LeadId::from_submission(Some("demo"), "s1")
        );
        assert_ne!(
            LeadId::from_submission(Some("demo"), "s1"),
            LeadId::from_submission(Some("pricing"), "s1")
        );
    }

    #[test]
    fn lead_ids_are_checked_when_read_back() {
        assert!(LeadId::parse("l_0123456789abcdef01234567").is_ok());
        assert!(LeadId::parse("l_0123").is_err());
        assert!(LeadId::parse("x_0123456789abcdef01234567").is_err());
    }

    #[test]
    fn statuses_round_trip_through_their_crm_names() {
        for status in LeadStatus::ALL {
            assert_eq!(status.as_str().parse::<LeadStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("Booked".parse::<LeadStatus>().is_err());
    }

    #[test]
    fn time_zones_are_checked_against_the_tz_database() {
        assert_eq!(
            TimeZoneName::parse("America/Chicago").unwrap().as_str(),
            "America/Chicago"
        );
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert!(TimeZoneName::parse("CET+1").is_err());
    }
}
