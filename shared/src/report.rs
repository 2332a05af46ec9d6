//! The recovery funnel: how many leads reached each stage, the booking rate and the
//! median time to book, over all leads and per day of submission.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
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
    /// Got at least one follow-up from SkipUp (now in "Follow-up Sent" or past it).
    pub follow_up_sent: usize,
    pub scheduled: usize,
    pub re_entered_nurture: usize,
    pub failed: usize,
    pub suppressed: usize,
    /// Scheduled out of requested, 0 when nothing was requested.
    pub booking_rate: f64,
    /// Median time from submission to "Meeting Scheduled", in seconds, over the
    /// scheduled leads whose booking time is known.
    pub median_seconds_to_book: Option<i64>,
}

impl Funnel {
    pub fn of<'a>(leads: impl IntoIterator<Item = &'a Lead>) -> Self {
        let mut funnel = Funnel::default();
        let mut to_book = Vec::new();
        for lead in leads {
            funnel.submitted += 1;
            let followed_up = lead.status == LeadStatus::FollowUpSent
                || lead.reached_at(LeadStatus::FollowUpSent).is_some();
            match lead.status {
                LeadStatus::Submitted => funnel.waiting += 1,
                LeadStatus::BookedDirectly => funnel.booked_directly += 1,
                LeadStatus::MeetingRequested | LeadStatus::FollowUpSent => funnel.requested += 1,
                LeadStatus::MeetingScheduled => {
                    funnel.requested += 1;
                    funnel.scheduled += 1;
                    if let Some(at) = lead.reached_at(LeadStatus::MeetingScheduled) {
                        to_book.push(at - lead.submitted_at);
                    }
                }
                LeadStatus::ReEnterNurture => {
                    funnel.requested += 1;
                    funnel.re_entered_nurture += 1;
                }
                LeadStatus::RecoveryFailed => funnel.failed += 1,
                LeadStatus::Suppressed => funnel.suppressed += 1,
            }
            if followed_up {
                funnel.follow_up_sent += 1;
            }
        }
        if funnel.requested > 0 {
            funnel.booking_rate = funnel.scheduled as f64 / funnel.requested as f64;
        }
        funnel.median_seconds_to_book = median(&mut to_book).map(|d| d.num_seconds());
        funnel
    }
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut [TimeDelta]) -> Option<TimeDelta> {
    values.sort();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2),
    }
}

/// The funnel of one day's submissions (UTC).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub funnel: Funnel,
}

/// The funnel over a range of days: every day in the range (empty days too), and the
/// whole range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<Day>,
    pub total: Funnel,
}

impl Report {
    /// The report of the leads submitted from `from` to `to`, both included; leads
    /// outside the range are left out.
    pub fn of(leads: &[Lead], from: NaiveDate, to: NaiveDate) -> Self {
        let mut by_day: BTreeMap<NaiveDate, Vec<&Lead>> = from
            .iter_days()
            .take_while(|day| *day <= to)
            .map(|day| (day, Vec::new()))
            .collect();
        for lead in leads {
            if let Some(day) = by_day.get_mut(&lead.submitted_at.date_naive()) {
                day.push(lead);
            }
        }
        let total = Funnel::of(by_day.values().flatten().copied());
        let days = by_day
            .into_iter()
            .map(|(day, leads)| Day {
                day,
                funnel: Funnel::of(leads),
            })
            .collect();
        Self {
            from,
            to,
            days,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::{EmailAddress, LeadProfile};

    fn lead(status: LeadStatus) -> Lead {
        let profile = LeadProfile::new(EmailAddress::parse("a@b.example").unwrap(), "A");
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
        assert_eq!(Funnel::of(&[]).median_seconds_to_book, None);
    }

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        text.parse().unwrap()
    }

    /// A lead submitted at `submitted` that went through `path` at the given times.
    fn history(submitted: &str, path: &[(LeadStatus, &str)]) -> Lead {
        let mut lead = lead(LeadStatus::Submitted);
        lead.submitted_at = at(submitted);
        for (status, when) in path {
            lead.move_to(*status, at(when));
        }
        lead
    }

    #[test]
    fn follow_ups_count_once_reached_and_time_to_book_is_the_median_from_submission() {
        use LeadStatus::*;
        let leads = [
            // Followed up, then booked 3 h after submitting.
            history(
                "2026-11-20T10:00:00Z",
                &[
                    (MeetingRequested, "2026-11-20T10:30:00Z"),
                    (FollowUpSent, "2026-11-20T12:00:00Z"),
                    (MeetingScheduled, "2026-11-20T13:00:00Z"),
                ],
            ),
            // Booked after 1 h.
            history(
                "2026-11-20T11:00:00Z",
                &[
                    (MeetingRequested, "2026-11-20T11:30:00Z"),
                    (MeetingScheduled, "2026-11-20T12:00:00Z"),
                ],
            ),
            // Followed up, then gave up.
            history(
                "2026-11-21T09:00:00Z",
                &[
                    (MeetingRequested, "2026-11-21T09:30:00Z"),
                    (FollowUpSent, "2026-11-21T10:00:00Z"),
                    (ReEnterNurture, "2026-11-21T11:00:00Z"),
                ],
            ),
            // Booked after 5 h.
            history(
                "2026-11-21T09:00:00Z",
                &[
                    (MeetingRequested, "2026-11-21T09:30:00Z"),
                    (MeetingScheduled, "2026-11-21T14:00:00Z"),
                ],
            ),
        ];
        let funnel = Funnel::of(&leads);
        assert_eq!(funnel.follow_up_sent, 2);
        assert_eq!(funnel.scheduled, 3);
        assert_eq!(funnel.median_seconds_to_book, Some(3 * 3600));
        assert_eq!(
            Funnel::of(&leads[..2]).median_seconds_to_book,
            Some(2 * 3600),
            "the mean of the two middle values"
        );
        // Reaching a status twice keeps the first time.
        let mut again = leads[1].clone();
        again.move_to(MeetingScheduled, at("2026-11-25T00:00:00Z"));
        assert_eq!(
            again.reached_at(MeetingScheduled),
            Some(at("2026-11-20T12:00:00Z"))
        );
    }

    #[test]
    fn the_report_has_every_day_of_the_range_and_leaves_out_the_rest() {
        use LeadStatus::*;
        let leads = [
            history(
                "2026-11-19T23:59:59Z",
                &[(BookedDirectly, "2026-11-20T00:10:00Z")],
            ),
            history(
                "2026-11-20T00:00:00Z",
                &[(BookedDirectly, "2026-11-20T00:10:00Z")],
            ),
            history(
                "2026-11-22T08:00:00Z",
                &[(MeetingRequested, "2026-11-22T08:30:00Z")],
            ),
            history("2026-11-23T00:00:00Z", &[]),
        ];
        let day = |d: &str| d.parse::<NaiveDate>().unwrap();
        let report = Report::of(&leads, day("2026-11-20"), day("2026-11-22"));
        let days: Vec<(String, usize)> = report
            .days
            .iter()
            .map(|d| (d.day.to_string(), d.funnel.submitted))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-11-20".to_string(), 1),
                ("2026-11-21".to_string(), 0),
                ("2026-11-22".to_string(), 1)
            ]
        );
        assert_eq!(report.total.submitted, 2);
        assert_eq!(report.total.booked_directly, 1);
        assert_eq!(report.total.requested, 1);
    }
}
