//! The lead lifecycle: which event moves a lead to which status. A lead's final status
//! follows from the set of events it received, not from their order: an event that
//! arrives late or twice never moves a lead backwards.
//!
//! ```text
//! Submitted ─▶ Meeting Requested ─▶ Follow-up Sent ─▶ Re-enter Nurture ─▶ Meeting Scheduled
//!     │            (created)           (follow_up_sent)    (cancelled)            (booked)
//!     ├─▶ BookedDirectly   a booking elsewhere before any outreach: nobody is contacted
//!     ├─▶ RecoveryFailed   SkipUp refused the request for good (recovery-check)
//!     └─▶ Suppressed       the lead must not be contacted
//! ```
//! Along the recovery track a status only moves up. SkipUp's booked and cancelled are
//! both terminal for a request, so they never both happen to one; ranking booked
//! highest makes Meeting Scheduled win over everything once it happened. Outside
//! SkipUp ([`outside`]): a booking before outreach makes the lead BookedDirectly, and
//! after outreach Meeting Scheduled (SkipUp's conversation is stopped); a
//! disqualification suppresses any lead not yet Meeting Scheduled.

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
    /// The SkipUp webhook type of this event.
    pub fn skipup_type(self) -> &'static str {
        match self {
            LeadEvent::MeetingRequestCreated => "meeting_request.created",
            LeadEvent::FollowedUp => "meeting_request.follow_up_sent",
            LeadEvent::Booked | LeadEvent::BookedOnTheirOwn => "meeting_request.booked",
            LeadEvent::Cancelled => "meeting_request.cancelled",
        }
    }

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

/// Position on the recovery track; `None` for statuses off it.
fn rank(status: LeadStatus) -> Option<u8> {
    match status {
        LeadStatus::Submitted => Some(0),
        LeadStatus::MeetingRequested => Some(1),
        LeadStatus::FollowUpSent => Some(2),
        LeadStatus::ReEnterNurture => Some(3),
        LeadStatus::MeetingScheduled => Some(4),
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
        // A suppressed lead that SkipUp booked anyway (before our cancellation reached
        // it) has a meeting: a booking outranks a disqualification.
        (None, _)
            if current == LeadStatus::Suppressed && target == LeadStatus::MeetingScheduled =>
        {
            Some(target)
        }
        _ => None,
    }
}

/// A signal from outside SkipUp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// A booking's events, merged into the lead: `new` when this event told something
    /// new of a booking, `standing` when any booking of theirs still stands.
    Booking { new: bool, standing: bool },
    /// The CRM or an operator says: do not contact this lead.
    Disqualified,
}

/// What an outside signal does to a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    pub status: Option<LeadStatus>,
    /// Back to Submitted: schedule a fresh check after the recovery delay.
    pub recheck: bool,
    /// Stop SkipUp's conversation (once).
    pub stop_skipup: bool,
}

/// The booking and disqualification rules (design.md, "Lead lifecycle"), for a lead in
/// `current` whose SkipUp outreach began (`outreach`) or not.
pub fn outside(current: LeadStatus, outreach: bool, signal: Outside) -> Verdict {
    use LeadStatus::*;
    let to = |status| Verdict {
        status: Some(status),
        ..Verdict::default()
    };
    match signal {
        Outside::Booking { new: false, .. } => Verdict::default(),
        // Anything known of a booking made after outreach means they booked: a
        // cancellation implies the booking it cancels.
        Outside::Booking { .. } if outreach => match current {
            MeetingScheduled => Verdict::default(),
            _ => Verdict {
                stop_skipup: true,
                ..to(MeetingScheduled)
            },
        },
        Outside::Booking { standing, .. } => match current {
            Submitted if standing => to(BookedDirectly),
            BookedDirectly if !standing => Verdict {
                recheck: true,
                ..to(Submitted)
            },
            _ => Verdict::default(),
        },
        Outside::Disqualified => match current {
            MeetingScheduled | Suppressed => Verdict::default(),
            _ => Verdict {
                stop_skipup: outreach,
                ..to(Suppressed)
            },
        },
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
            (MeetingScheduled,  [None,                   None,               None,                   None,                 None]),
            (ReEnterNurture,    [None,                   None,               Some(MeetingScheduled), None,                 None]),
            (BookedDirectly,    [None,                   None,               None,                   None,                 None]),
            (RecoveryFailed,    [None,                   None,               None,                   None,                 None]),
            (Suppressed,        [None,                   None,               Some(MeetingScheduled), None,                 None]),
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

    /// One lead's signals, folded in a given order through the rules.
    #[derive(Clone, Copy, Debug)]
    enum Signal {
        SkipUp(LeadEvent),
        /// (booking, state) with 0 = booked, 1 = cancelled
        Booking(usize, bool),
        Disqualified,
    }

    fn fold(start: LeadStatus, outreach: bool, order: &[Signal]) -> LeadStatus {
        let mut status = start;
        let mut bookings = [None::<bool>; 2];
        for signal in order {
            let next = match *signal {
                Signal::SkipUp(event) => transition(status, event),
                Signal::Booking(i, cancelled) => {
                    let new = bookings[i].is_none_or(|known| cancelled && !known);
                    if new {
                        bookings[i] = Some(cancelled);
                    }
                    let standing = bookings.contains(&Some(false));
                    outside(status, outreach, Outside::Booking { new, standing }).status
                }
                Signal::Disqualified => outside(status, outreach, Outside::Disqualified).status,
            };
            status = next.unwrap_or(status);
        }
        status
    }

    fn permutations(items: &[Signal]) -> Vec<Vec<Signal>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                all.push(tail);
            }
        }
        all
    }

    /// Every subset of `pool`, each in every order (and with its first signal twice).
    fn assert_order_independent(
        start: LeadStatus,
        outreach: bool,
        pool: &[Signal],
        skip: impl Fn(&[Signal]) -> bool,
    ) {
        for mask in 1u32..(1 << pool.len()) {
            let set: Vec<Signal> = (0..pool.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| pool[i])
                .collect();
            if skip(&set) {
                continue;
            }
            let mut ends = std::collections::HashSet::new();
            for order in permutations(&set) {
                ends.insert(fold(start, outreach, &order));
                let mut repeated = order.clone();
                repeated.push(order[0]);
                ends.insert(fold(start, outreach, &repeated));
            }
            assert_eq!(ends.len(), 1, "{set:?} from {start:?} ends in {ends:?}");
        }
    }

    #[test]
    fn after_outreach_the_final_status_follows_from_the_set_of_signals() {
        let pool = [
            Signal::SkipUp(FollowedUp),
            Signal::SkipUp(Booked),
            Signal::SkipUp(Cancelled),
            Signal::Booking(0, false),
            Signal::Booking(0, true),
            Signal::Disqualified,
        ];
        // SkipUp's booked and cancelled are both terminal: never both for one request.
        let impossible = |set: &[Signal]| {
            set.iter().any(|s| matches!(s, Signal::SkipUp(Booked)))
                && set.iter().any(|s| matches!(s, Signal::SkipUp(Cancelled)))
        };
        assert_order_independent(MeetingRequested, true, &pool, impossible);
    }

    #[test]
    fn before_outreach_the_final_status_follows_from_the_set_of_signals() {
        let pool = [
            Signal::Booking(0, false),
            Signal::Booking(0, true),
            Signal::Booking(1, false),
            Signal::Disqualified,
        ];
        assert_order_independent(Submitted, false, &pool, |_| false);
        assert_order_independent(RecoveryFailed, false, &pool, |_| false);
    }

    #[test]
    fn the_outside_rules() {
        let booked = Outside::Booking {
            new: true,
            standing: true,
        };
        let none_left = Outside::Booking {
            new: true,
            standing: false,
        };
        let old_news = Outside::Booking {
            new: false,
            standing: true,
        };
        assert_eq!(
            outside(Submitted, false, booked).status,
            Some(BookedDirectly)
        );
        assert_eq!(outside(BookedDirectly, false, booked), Verdict::default());
        assert_eq!(
            outside(BookedDirectly, false, none_left),
            Verdict {
                status: Some(Submitted),
                recheck: true,
                stop_skipup: false
            }
        );
        for open in [MeetingRequested, FollowUpSent, ReEnterNurture, Suppressed] {
            for signal in [booked, none_left] {
                assert_eq!(
                    outside(open, true, signal),
                    Verdict {
                        status: Some(MeetingScheduled),
                        recheck: false,
                        stop_skipup: true
                    },
                    "{open:?}"
                );
            }
        }
        assert_eq!(outside(MeetingScheduled, true, booked), Verdict::default());
        assert_eq!(
            outside(MeetingRequested, true, old_news),
            Verdict::default()
        );
        assert_eq!(
            outside(FollowUpSent, true, Outside::Disqualified),
            Verdict {
                status: Some(Suppressed),
                recheck: false,
                stop_skipup: true
            }
        );
        assert_eq!(
            outside(BookedDirectly, false, Outside::Disqualified),
            Verdict {
                status: Some(Suppressed),
                recheck: false,
                stop_skipup: false
            }
        );
        assert_eq!(
            outside(MeetingScheduled, true, Outside::Disqualified),
            Verdict::default()
        );
    }
}
