//! Draws the README's example of `recovery report --format svg` (docs/report-chart.svg)
//! from two weeks of made-up leads: the same chart code as the command, on data that
//! shows every part of it. `cargo run -p recovery --example report_chart`

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use shared::lead::{EmailAddress, Lead, LeadProfile, LeadStatus};
use shared::report::Report;

fn main() -> std::io::Result<()> {
    let mut random = fastrand::Rng::with_seed(11);
    let first = NaiveDate::from_ymd_opt(2026, 11, 2).expect("a date");
    let last = first + TimeDelta::days(13);
    let mut leads = Vec::new();
    for day in first.iter_days().take_while(|d| *d <= last) {
        let weekend = matches!(day.format("%a").to_string().as_str(), "Sat" | "Sun");
        let count = if weekend {
            random.usize(3..8)
        } else {
            random.usize(14..30)
        };
        for n in 0..count {
            let submitted = Utc.from_utc_datetime(&day.and_hms_opt(8, 0, 0).expect("a time"))
                + TimeDelta::minutes(random.i64(0..600));
            let email = EmailAddress::parse(&format!("lead{n}@{day}.example")).expect("an email");
            let profile = LeadProfile {
                submission_id: Some(format!("{day}-{n}")),
                ..LeadProfile::new(email, format!("Lead {n}"))
            };
            let mut lead = Lead::new(profile, submitted, TimeDelta::minutes(30));
            let requested = submitted + TimeDelta::minutes(31);
            match random.f64() {
                x if x < 0.12 => lead.move_to(
                    LeadStatus::BookedDirectly,
                    submitted + TimeDelta::minutes(12),
                ),
                x if x < 0.15 => lead.move_to(LeadStatus::RecoveryFailed, requested),
                x => {
                    lead.move_to(LeadStatus::MeetingRequested, requested);
                    if random.bool() {
                        lead.move_to(LeadStatus::FollowUpSent, requested + TimeDelta::hours(26));
                    }
                    let later = requested + TimeDelta::minutes(random.i64(90..4000));
                    if x < 0.55 {
                        lead.move_to(LeadStatus::MeetingScheduled, later);
                    } else if x < 0.85 {
                        lead.move_to(LeadStatus::ReEnterNurture, later);
                    }
                }
            }
            leads.push(lead);
        }
    }
    let report = Report::of(&leads, first, last);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report-chart.svg");
    std::fs::create_dir_all(path.parent().expect("a folder"))?;
    std::fs::write(&path, recovery::report::svg(&report))?;
    println!("wrote {}", path.display());
    Ok(())
}
