//! The recovery funnel: how many leads reached each stage, and the booking rate.

use serde::Serialize;

use crate::lead::{Lead, LeadStatus};

/// Counts of leads by where their recovery stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Funnel {
    pub submitted: usize,
    /// Still waiting for their check (or for it to finish).
    pub waiting: usize,
    pub booked_directly: usize,
    /// Reached "Meeting Requested" or any later recovery status.
    pub requested: usize,
    /// Now in "Follow-up Sent".
    pub follow_up_sent: usize,
    pub scheduled: usize,
    pub re_entered_nurture: usize,
    pub failed: usize,
    pub suppressed: usize,
    /// Scheduled out of requested, 0 when nothing was requested.
    pub booking_rate: f64,
}

impl Funnel {
    pub fn of<'a>(leads: impl IntoIterator<Item = &'a Lead>) -> Self {
        let mut funnel = Funnel::default();
        for lead in leads {
            funnel.submitted += 1;
            match lead.status {
                LeadStatus::Submitted => funnel.waiting += 1,
                LeadStatus::BookedDirectly => funnel.booked_directly += 1,
                LeadStatus::MeetingRequested => funnel.requested += 1,
                LeadStatus::FollowUpSent => {
                    funnel.requested += 1;
                    funnel.follow_up_sent += 1;
                }
                LeadStatus::MeetingScheduled => {
                    funnel.requested += 1;
                    funnel.scheduled += 1;
                }
                LeadStatus::ReEnterNurture => {
                    funnel.requested += 1;
                    funnel.re_entered_nurture += 1;
                }
                LeadStatus::RecoveryFailed => funnel.failed += 1,
                LeadStatus::Suppressed => funnel.suppressed += 1,
            }
        }
        if funnel.requested > 0 {
            funnel.booking_rate = funnel.scheduled as f64 / funnel.requested as f64;
        }
        funnel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::{EmailAddress, LeadProfile};

    fn lead(status: LeadStatus) -> Lead {
        let profile = LeadProfile {
            email: EmailAddress::parse("a@b.example").unwrap(),
            name: "A".into(),
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
        };
        let mut lead = Lead::new(profile, chrono::Utc::now(), chrono::Duration::zero());
        lead.status = status;
        lead
    }

    #[test]
    fn the_funnel_counts_every_recovery_status_as_requested_and_rates_bookings() {
        use LeadStatus::*;
        let leads: Vec<Lead> = [
            Submitted,
            BookedDirectly,
            MeetingRequested,
            FollowUpSent,
            MeetingScheduled,
            MeetingScheduled,
            ReEnterNurture,
            RecoveryFailed,
        ]
        .into_iter()
        .map(lead)
        .collect();
        let funnel = Funnel::of(&leads);
        assert_eq!(funnel.submitted, 8);
        assert_eq!(funnel.requested, 5);
        assert_eq!(funnel.scheduled, 2);
        assert_eq!(
            (funnel.waiting, funnel.booked_directly, funnel.failed),
            (1, 1, 1)
        );
        assert!((funnel.booking_rate - 0.4).abs() < 1e-9);
        assert_eq!(Funnel::of(&[]).booking_rate, 0.0);
    }
}
