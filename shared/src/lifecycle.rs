//! The lead lifecycle: which event moves a lead to which status. Transitions are
//! monotonic, so an event that arrives late or twice never moves a lead backwards.
//!
//! ```text
//! Submitted ─▶ Meeting Requested ─▶ Follow-up Sent ─▶ Meeting Scheduled ─▶ Re-enter Nurture
//!     │            (created)           (follow_up_sent)      (booked)           (cancelled)
//!     ├─▶ BookedDirectly   a booking signal before the check: nobody is contacted
//!     ├─▶ RecoveryFailed   SkipUp refused the request for good (recovery-check)
//!     └─▶ Suppressed       the lead must not be contacted
//! ```
//! Along the recovery track a status only moves forward (`cancelled` after `booked` is
//! forward: the meeting was booked, then cancelled). BookedDirectly, RecoveryFailed and
//! Suppressed are final: no SkipUp event changes them.

use crate::lead::LeadStatus;

/// What happened to a lead, as far as its status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadEvent {
    /// `meeting_request.created` (or SkipUp's 202).
    MeetingRequestCreated,
    /// `meeting_request.follow_up_sent`.
    FollowedUp,
    /// `meeting_request.booked`.
    Booked,
    /// `meeting_request.cancelled`.
    Cancelled,
    /// The prospect booked without us (before any outreach).
    BookedOnTheirOwn,
}

impl LeadEvent {
    /// The event a SkipUp webhook type stands for, if it affects the status.
    pub fn from_skipup_type(event_type: &str) -> Option<Self> {
        match event_type {
            "meeting_request.created" => Some(LeadEvent::MeetingRequestCreated),
            "meeting_request.follow_up_sent" => Some(LeadEvent::FollowedUp),
            "meeting_request.booked" => Some(LeadEvent::Booked),
            "meeting_request.cancelled" => Some(LeadEvent::Cancelled),
            _ => None,
        }
    }
}

/// Position on the recovery track; `None` for statuses off it (final).
fn rank(status: LeadStatus) -> Option<u8> {
    match status {
        LeadStatus::Submitted => Some(0),
        LeadStatus::MeetingRequested => Some(1),
        LeadStatus::FollowUpSent => Some(2),
        LeadStatus::MeetingScheduled => Some(3),
        LeadStatus::ReEnterNurture => Some(4),
        LeadStatus::BookedDirectly | LeadStatus::RecoveryFailed | LeadStatus::Suppressed => None,
    }
}

/// The status `event` moves a lead in `current` to, or `None` when it changes nothing.
pub fn transition(current: LeadStatus, event: LeadEvent) -> Option<LeadStatus> {
    let target = match event {
        LeadEvent::MeetingRequestCreated => LeadStatus::MeetingRequested,
        LeadEvent::FollowedUp => LeadStatus::FollowUpSent,
        LeadEvent::Booked => LeadStatus::MeetingScheduled,
        LeadEvent::Cancelled => LeadStatus::ReEnterNurture,
        LeadEvent::BookedOnTheirOwn => {
            return (current == LeadStatus::Submitted).then_some(LeadStatus::BookedDirectly);
        }
    };
    match (rank(current), rank(target)) {
        (Some(from), Some(to)) if to > from => Some(target),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LeadEvent::*;
    use LeadStatus::*;

    /// Every (current status, event) pair and its result.
    #[test]
    fn the_lifecycle_table() {
        #[rustfmt::skip]
        let table: [(LeadStatus, [Option<LeadStatus>; 5]); 8] = [
            // current          created                  follow_up_sent      booked                  cancelled             booked on their own
            (Submitted,         [Some(MeetingRequested), Some(FollowUpSent), Some(MeetingScheduled), Some(ReEnterNurture), Some(BookedDirectly)]),
            (MeetingRequested,  [None,                   Some(FollowUpSent), Some(MeetingScheduled), Some(ReEnterNurture), None]),
            (FollowUpSent,      [None,                   None,               Some(MeetingScheduled), Some(ReEnterNurture), None]),
            (MeetingScheduled,  [None,                   None,               None,                   Some(ReEnterNurture), None]),
            (ReEnterNurture,    [None,                   None,               None,                   None,                 None]),
            (BookedDirectly,    [None,                   None,               None,                   None,                 None]),
            (RecoveryFailed,    [None,                   None,               None,                   None,                 None]),
            (Suppressed,        [None,                   None,               None,                   None,                 None]),
        ];
        let events = [
            MeetingRequestCreated,
            FollowedUp,
            Booked,
            Cancelled,
            BookedOnTheirOwn,
        ];
        for (current, expected) in table {
            for (event, want) in events.into_iter().zip(expected) {
                assert_eq!(transition(current, event), want, "{current:?} + {event:?}");
            }
        }
    }

    #[test]
    fn a_follow_up_after_booking_does_not_change_the_status() {
        assert_eq!(transition(MeetingScheduled, FollowedUp), None);
    }

    #[test]
    fn any_order_of_the_same_events_ends_in_the_same_status() {
        let events = [
            MeetingRequestCreated,
            FollowedUp,
            Booked,
            Booked,
            FollowedUp,
        ];
        let mut orders = vec![events.to_vec()];
        let mut reversed = events.to_vec();
        reversed.reverse();
        orders.push(reversed);
        orders.push(vec![Booked, MeetingRequestCreated, FollowedUp, Booked]);
        for order in orders {
            let end = order.iter().fold(Submitted, |status, event| {
                transition(status, *event).unwrap_or(status)
            });
            assert_eq!(end, MeetingScheduled, "{order:?}");
        }
    }

    #[test]
    fn skipup_event_types_map_to_events() {
        assert_eq!(
            LeadEvent::from_skipup_type("meeting_request.booked"),
            Some(Booked)
        );
        assert_eq!(
            LeadEvent::from_skipup_type("meeting_request.organizer_changed"),
            None
        );
    }
}
