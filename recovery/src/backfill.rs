//! `recovery backfill`: leads who submitted but never booked get a recovery request
//! now, through the same check `recovery-check` runs (same lead ids, same stored
//! idempotency keys, same CRM updates), paced under SkipUp's rate limit.
//!
//! From a CSV export (`--csv`), each row becomes a lead as a form post would (same
//! validation; the lead id follows from the email and the day submitted, or the
//! row's `submission_id`), so a re-run finds the leads it made and sends nothing
//! twice. From the table (`--from-table --since`), leads still waiting for their
//! check are checked now.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::StreamExt;
use serde_json::{Map, Value};
use shared::adapters::crm;
use shared::config::{Env, RecoveryConfig, intake_settings};
use shared::form::parse_form;
use shared::handlers::recovery_check::{CheckOutcome, RecoveryDeps, RecoveryPorts, check};
use shared::lead::{Lead, LeadStatus, TimelineEntry};
use shared::pacing::{Pace, PacedSkipUp};
use shared::ports::{
    Clock, CreateOutcome, LeadListing, LeadStore, Queue, QueueError, QueueMessage, Redelivery,
    SkipUpApi, SystemClock,
};
use shared::recovery::{CheckMessage, RecoverySettings};
use shared::suppression::Caps;

/// Where the leads come from.
pub enum Source {
    Csv(std::path::PathBuf),
    Table { since: NaiveDate },
}

/// How to run.
pub struct Settings {
    pub pace: Pace,
    pub dry_run: bool,
    /// Leads in flight at once (the pace still spaces the SkipUp calls).
    pub concurrency: usize,
    pub progress: bool,
}

/// One CSV row the file could not give us.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// A lead to recover, with where it came from.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The CSV line, when from a file.
    pub line: Option<u64>,
    pub lead: Lead,
    /// Fields of the row cut or dropped (the lead is kept all the same).
    pub warnings: Vec<String>,
}

/// What the CSV held: leads to consider, rows skipped as booked, rows refused.
#[derive(Debug, Default)]
pub struct CsvLeads {
    pub candidates: Vec<Candidate>,
    pub booked: usize,
    pub bad: Vec<BadRow>,
}

/// CSV columns besides the form's fields.
const SUBMITTED_AT: &str = "submitted_at";
const BOOKED_COLUMNS: [&str; 2] = ["booked", "booked_at"];

/// Reads a CSV export with a header row. Columns: the form's fields (`email`, `name`,
/// `company`, `role`, `phone`, `timezone`, `assigned_rep_email` or `rep_email`,
/// `form_id`, `submission_id`, `source`), `submitted_at` (RFC 3339, `YYYY-MM-DD
/// HH:MM:SS` in UTC, or `YYYY-MM-DD`), and optionally `booked` (true/yes/1) or
/// `booked_at` (non-empty): such rows booked already and are skipped. Other columns
/// are ignored. A bad row is reported with its line number and skipped.
pub fn read_csv(path: &Path, now: DateTime<Utc>) -> anyhow::Result<CsvLeads> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    parse_csv(file, now).with_context(|| format!("reading {}", path.display()))
}

pub fn parse_csv(input: impl std::io::Read, now: DateTime<Utc>) -> anyhow::Result<CsvLeads> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers: Vec<String> = reader
        .headers()
        .context("the file has no header row")?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    for required in ["email", "name", SUBMITTED_AT] {
        if !headers.iter().any(|h| h == required) {
            anyhow::bail!("the header row has no `{required}` column");
        }
    }
    let mut leads = CsvLeads::default();
    for record in reader.records() {
        let (line, record) = match record {
            Ok(record) => (record.position().map_or(0, |p| p.line()), record),
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                leads.bad.push(BadRow {
                    line,
                    reason: format!("not readable as CSV: {error}"),
                });
                continue;
            }
        };
        let fields: BTreeMap<&str, &str> = headers
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .filter(|(_, value)| !value.is_empty())
            .collect();
        if fields.is_empty() {
            continue;
        }
        if is_booked(&fields) {
            leads.booked += 1;
            continue;
        }
        match row_to_lead(&fields, now) {
            Ok((lead, warnings)) => leads.candidates.push(Candidate {
                line: Some(line),
                lead,
                warnings,
            }),
            Err(reason) => leads.bad.push(BadRow { line, reason }),
        }
    }
    Ok(leads)
}

fn is_booked(fields: &BTreeMap<&str, &str>) -> bool {
    fields.get(BOOKED_COLUMNS[1]).is_some()
        || fields.get(BOOKED_COLUMNS[0]).is_some_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "true" | "yes" | "y" | "1" | "booked"
            )
        })
}

fn row_to_lead(
    fields: &BTreeMap<&str, &str>,
    now: DateTime<Utc>,
) -> Result<(Lead, Vec<String>), String> {
    let submitted_at = parse_time(fields.get(SUBMITTED_AT).copied().unwrap_or(""))?;
    if submitted_at > now {
        return Err(format!("{SUBMITTED_AT} is in the future"));
    }
    let mut form = Map::new();
    for (column, value) in fields {
        let field = match *column {
            "rep_email" => "assigned_rep_email",
            SUBMITTED_AT | "booked" | "booked_at" => continue,
            other => other,
        };
        form.insert(field.to_string(), Value::String(value.to_string()));
    }
    form.entry("source")
        .or_insert_with(|| Value::String("backfill".into()));
    let body = serde_json::to_vec(&form).expect("a map serializes");
    let submission = parse_form(&body).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    // Due at once: the check may run as soon as the lead exists.
    let warnings = submission
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok((
        Lead::new(submission.profile, submitted_at, chrono::Duration::zero()),
        warnings,
    ))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if text.is_empty() {
        return Err(format!("{SUBMITTED_AT} is empty"));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|day| day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| {
            format!(
                "{SUBMITTED_AT} {text:?} is not a date (use 2026-11-20T09:30:00Z or 2026-11-20)"
            )
        })
}

/// The leads in the table from `since` to today that are still waiting for a check.
pub async fn from_table(
    listing: &dyn LeadListing,
    since: NaiveDate,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Candidate>> {
    let leads = listing
        .leads_submitted_between(since, now.date_naive())
        .await
        .context("listing leads")?;
    Ok(leads
        .into_iter()
        .filter(|lead| lead.status == LeadStatus::Submitted)
        .map(|lead| Candidate {
            line: None,
            lead,
            warnings: Vec::new(),
        })
        .collect())
}

/// What happened to one lead.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Requested,
    /// Dry run: would be requested.
    WouldRequest,
    /// Its recovery is under way or over (the status says where), or it booked.
    AlreadyDone(LeadStatus),
    /// Its own check has not come due yet (a recent submission): left to it.
    NotDue,
    /// SkipUp refused the input; the lead is RecoveryFailed.
    Failed(String),
    /// On the suppression list: the lead is Suppressed, SkipUp was not asked.
    Suppressed(String),
    /// Could not finish now (SkipUp or AWS unavailable, rate limited too long): a
    /// re-run picks it up with the same idempotency key.
    RetryLater(String),
}

/// The end-of-run summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub considered: usize,
    pub requested: usize,
    pub would_request: usize,
    pub already: BTreeMap<String, usize>,
    pub not_due: usize,
    pub failed: Vec<(String, String)>,
    pub suppressed: Vec<(String, String)>,
    pub retry_later: Vec<(String, String)>,
    pub booked_in_csv: usize,
    pub bad_rows: Vec<BadRow>,
    /// SkipUp calls sent (retries included) and how many were answered 429.
    pub skipup_calls: u64,
    pub rate_limited: u64,
    /// Calls per `pace.per` between the first and the last call, when there were two.
    pub achieved: Option<f64>,
    /// The pace asked for, and the limit it is a share of.
    pub pace: Option<Pace>,
    pub limit: Option<Pace>,
    pub elapsed: Duration,
}

impl Summary {
    fn add(&mut self, who: String, fate: Fate) {
        match fate {
            Fate::Requested => self.requested += 1,
            Fate::WouldRequest => self.would_request += 1,
            Fate::AlreadyDone(status) => *self.already.entry(status.to_string()).or_default() += 1,
            Fate::NotDue => self.not_due += 1,
            Fate::Failed(reason) => self.failed.push((who, reason)),
            Fate::Suppressed(reason) => self.suppressed.push((who, reason)),
            Fate::RetryLater(reason) => self.retry_later.push((who, reason)),
        }
    }

    /// Whether a re-run is needed.
    pub fn complete(&self) -> bool {
        self.retry_later.is_empty()
    }

    pub fn print(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "backfill summary")?;
        writeln!(out, "  leads considered     {}", self.considered)?;
        if self.would_request > 0 {
            writeln!(out, "  would be requested   {}", self.would_request)?;
        }
        writeln!(out, "  requested now        {}", self.requested)?;
        for (status, n) in &self.already {
            writeln!(out, "  already {status:<12} {n}")?;
        }
        if self.booked_in_csv > 0 {
            writeln!(out, "  booked (in the CSV)  {}", self.booked_in_csv)?;
        }
        if self.not_due > 0 {
            writeln!(out, "  not due yet          {}", self.not_due)?;
        }
        writeln!(out, "  failed               {}", self.failed.len())?;
        for (who, reason) in &self.failed {
            writeln!(out, "    {who}: {reason}")?;
        }
        if !self.suppressed.is_empty() {
            writeln!(out, "  suppressed           {}", self.suppressed.len())?;
            for (who, reason) in &self.suppressed {
                writeln!(out, "    {who}: {reason}")?;
            }
        }
        writeln!(out, "  to retry (re-run)    {}", self.retry_later.len())?;
        for (who, reason) in &self.retry_later {
            writeln!(out, "    {who}: {reason}")?;
        }
        writeln!(out, "  bad CSV rows         {}", self.bad_rows.len())?;
        for bad in &self.bad_rows {
            writeln!(out, "    line {}: {}", bad.line, bad.reason)?;
        }
        write!(
            out,
            "  SkipUp calls         {} ({} answered 429) in {:.1} s",
            self.skipup_calls,
            self.rate_limited,
            self.elapsed.as_secs_f64()
        )?;
        match (self.achieved, self.limit) {
            (Some(rate), Some(limit)) => writeln!(
                out,
                "; {rate:.1} per {} s: {:.1}% of the allowed {}",
                limit.per.as_secs_f64(),
                self.share_of_limit().unwrap_or_default() * 100.0,
                limit.requests,
            ),
            _ => writeln!(out),
        }
    }

    /// `--json`: the same counts as [`Summary::print`], each lead named by its line
    /// and id as there (never by its address).
    pub fn json(&self) -> serde_json::Value {
        let named = |list: &[(String, String)]| -> Vec<serde_json::Value> {
            list.iter()
                .map(|(lead, reason)| serde_json::json!({ "lead": lead, "reason": reason }))
                .collect()
        };
        let pace = |pace: Option<Pace>| {
            pace.map(|p| serde_json::json!({ "requests": p.requests, "per_seconds": p.per.as_secs_f64() }))
        };
        serde_json::json!({
            "complete": self.complete(),
            "considered": self.considered,
            "requested": self.requested,
            "would_request": self.would_request,
            "already": self.already,
            "booked_in_csv": self.booked_in_csv,
            "not_due": self.not_due,
            "failed": named(&self.failed),
            "suppressed": named(&self.suppressed),
            "retry_later": named(&self.retry_later),
            "bad_rows": self.bad_rows.iter().map(|b| serde_json::json!({ "line": b.line, "reason": b.reason })).collect::<Vec<_>>(),
            "skipup_calls": self.skipup_calls,
            "rate_limited": self.rate_limited,
            "achieved_per_window": self.achieved,
            "share_of_limit": self.share_of_limit(),
            "pace": pace(self.pace),
            "limit": pace(self.limit),
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }

    /// The achieved rate as a share of the limit.
    pub fn share_of_limit(&self) -> Option<f64> {
        let limit = self.limit?;
        Some(self.achieved? / f64::from(limit.requests))
    }
}

/// A queue that schedules nothing: backfilled leads are checked at once, and leads
/// not yet due are left to their own check, so nothing is ever sent here.
struct NoQueue;

#[async_trait]
impl Queue for NoQueue {
    async fn send(&self, _: &QueueMessage) -> Result<(), QueueError> {
        Err(QueueError::Rejected(
            "backfill schedules no checks".to_string(),
        ))
    }
}

/// Nothing is redelivered: a lead that must wait is retried by the run itself.
struct NoRedelivery;

#[async_trait]
impl Redelivery for NoRedelivery {
    async fn retry_after(&self, _: &str, _: Duration) {}
}

/// What a run needs.
pub struct Backfill {
    pub store: Arc<dyn LeadStore>,
    pub skipup: Arc<dyn SkipUpApi>,
    /// The recovery settings (organizer, meeting, CRM connectors).
    pub env: Env,
    pub clock: Arc<dyn Clock>,
}

/// How long one lead is retried within a run (a lease left by an interrupted run is
/// 60 s by default) before it is left for a re-run.
const RETRY_WITHIN_RUN: Duration = Duration::from_secs(120);

impl Backfill {
    /// Backfills `candidates` (and reports `csv`'s skipped rows).
    pub async fn run(
        &self,
        candidates: Vec<Candidate>,
        settings: &Settings,
        limit: Pace,
        mut summary: Summary,
    ) -> anyhow::Result<Summary> {
        let started = tokio::time::Instant::now();
        let env = self
            .env
            .clone()
            .with_defaults([("LEADS_TABLE", "backfill"), ("CHECK_QUEUE_URL", "backfill")]);
        let config = RecoveryConfig::from_env(&env)?;
        let resubmit_window = intake_settings(&env)?.resubmit_window;
        let paced = Arc::new(PacedSkipUp::new(self.skipup.clone(), settings.pace));
        let ports = RecoveryPorts {
            store: self.store.clone(),
            skipup: paced.clone(),
            checks: Arc::new(NoQueue),
            redelivery: Arc::new(NoRedelivery),
            clock: self.clock.clone(),
        };
        // The daily caps guard the public form against bots; a backfill is the
        // operator's own list, paced by --rate: only the suppression list applies.
        let uncapped = RecoverySettings {
            caps: Caps {
                per_day: 0,
                per_domain_per_day: 0,
            },
            ..config.recovery
        };
        let deps = RecoveryDeps::new(ports, uncapped, crm::connectors(config.crm)?);
        let bar = progress_bar(candidates.len() as u64, settings.progress);
        summary.considered = candidates.len();
        let fates: Vec<(String, Fate)> = futures::stream::iter(candidates)
            .map(|candidate| {
                let deps = &deps;
                let bar = &bar;
                async move {
                    let who = match candidate.line {
                        Some(line) => format!("line {line} ({})", candidate.lead.id),
                        None => candidate.lead.id.to_string(),
                    };
                    let fate = self
                        .one(deps, candidate, settings.dry_run, resubmit_window)
                        .await;
                    bar.inc(1);
                    (who, fate)
                }
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        bar.finish_and_clear();
        for (who, fate) in fates {
            summary.add(who, fate);
        }
        let stats = &paced.stats;
        summary.skipup_calls = stats.calls.load(std::sync::atomic::Ordering::Relaxed);
        summary.rate_limited = stats
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed);
        summary.achieved = stats.rate(limit.per);
        summary.pace = Some(settings.pace);
        summary.limit = Some(limit);
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    async fn one(
        &self,
        deps: &RecoveryDeps,
        candidate: Candidate,
        dry_run: bool,
        resubmit_window: chrono::Duration,
    ) -> Fate {
        let now = self.clock.now();
        let mut tries = 0;
        let lead = loop {
            match self
                .existing_or_new(&candidate, dry_run, now, resubmit_window)
                .await
            {
                Ok(lead) => break lead,
                Err(error) if tries >= 3 => return Fate::RetryLater(error),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_secs(1 << tries)).await;
                }
            }
        };
        if lead.status != LeadStatus::Submitted {
            return Fate::AlreadyDone(lead.status);
        }
        if lead.due_at > now {
            return Fate::NotDue;
        }
        if dry_run {
            return Fate::WouldRequest;
        }
        let message = CheckMessage::new(&lead);
        let deadline = tokio::time::Instant::now() + RETRY_WITHIN_RUN;
        let mut attempt = 1;
        loop {
            match check(deps, &message, attempt).await {
                Ok(CheckOutcome::Requested { .. }) => return Fate::Requested,
                Ok(CheckOutcome::Failed { reason }) => return Fate::Failed(reason),
                Ok(CheckOutcome::Suppressed { reason }) => return Fate::Suppressed(reason),
                // An earlier attempt of this run sent the request, then could not tell
                // the CRM; this one had only the CRM left to do.
                Ok(CheckOutcome::NothingToDo(_)) if attempt > 1 && self.sent(&lead).await => {
                    return Fate::Requested;
                }
                Ok(CheckOutcome::NothingToDo(status)) => return Fate::AlreadyDone(status),
                Ok(CheckOutcome::LeadMissing) => {
                    return Fate::RetryLater("the lead vanished from the table".into());
                }
                Ok(CheckOutcome::Rescheduled { .. }) => return Fate::NotDue,
                Err(failure) => {
                    let wait = failure.retry_after().unwrap_or(Duration::from_secs(5));
                    let reason = failure.reason().to_string();
                    if tokio::time::Instant::now() + wait > deadline {
                        if self.sent(&lead).await {
                            // Only the CRM is behind; the lead's next event tells it.
                            tracing::warn!(lead_id = %lead.id, %reason, "requested; the CRM was not told");
                            return Fate::Requested;
                        }
                        return Fate::RetryLater(reason);
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Whether SkipUp has accepted a request for this lead (which was waiting when
    /// this run took it).
    async fn sent(&self, lead: &Lead) -> bool {
        matches!(
            self.store.get_lead(&lead.id).await,
            Ok(Some(stored)) if stored.meeting_request_id.is_some()
        )
    }

    /// The stored lead for this candidate, creating it from a CSV row if needed (not
    /// in a dry run, which only looks). A row whose email started a lead within the
    /// re-submission window is that lead, as a form post would be.
    async fn existing_or_new(
        &self,
        candidate: &Candidate,
        dry_run: bool,
        now: DateTime<Utc>,
        resubmit_window: chrono::Duration,
    ) -> Result<Lead, String> {
        let lead = &candidate.lead;
        let Some(line) = candidate.line else {
            return Ok(lead.clone());
        };
        if dry_run {
            return match self.store.get_lead(&lead.id).await {
                Ok(found) => Ok(found.unwrap_or_else(|| lead.clone())),
                Err(error) => Err(error.to_string()),
            };
        }
        let entry = TimelineEntry {
            at: lead.submitted_at,
            event_id: format!("backfill:{}", lead.id),
            source: "backfill".into(),
            status: Some(LeadStatus::Submitted),
            detail: format!(
                "backfilled from CSV line {line} on {}{}",
                now.format("%Y-%m-%d"),
                candidate
                    .warnings
                    .iter()
                    .map(|w| format!("; note: {w}"))
                    .collect::<String>()
            ),
        };
        match self.store.create_lead(lead, &entry, resubmit_window).await {
            Ok(CreateOutcome::Created) => Ok(lead.clone()),
            Ok(CreateOutcome::Existing(existing)) => Ok(*existing),
            Err(error) => Err(error.to_string()),
        }
    }
}

fn progress_bar(len: u64, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} leads  {per_sec}  eta {eta}")
            .expect("the template is valid"),
    );
    bar
}

/// The CSV's or the table's candidates, then the run.
pub async fn backfill(
    backfill: &Backfill,
    listing: &dyn LeadListing,
    source: &Source,
    settings: &Settings,
    limit: Pace,
) -> anyhow::Result<Summary> {
    let now = SystemClock.now();
    let mut summary = Summary::default();
    let candidates = match source {
        Source::Csv(path) => {
            let csv = read_csv(path, now)?;
            summary.booked_in_csv = csv.booked;
            summary.bad_rows = csv.bad;
            csv.candidates
        }
        Source::Table { since } => from_table(listing, *since, now).await?,
    };
    backfill.run(candidates, settings, limit, summary).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn rows_become_leads_and_bad_rows_are_reported_by_line() {
        let csv = "\u{feff}Email,Name,Company,Submitted_At,Rep_Email,Booked,Notes\n\
                   dana@northwind.example,Dana Ruiz,Northwind,2026-11-20T09:30:00Z,alex@vendor.example,,x\n\
                   \n\
                   lee@contoso.example,Lee Park,,2026-11-19,,yes,\n\
                   not-an-email,Sam,,2026-11-19,,,\n\
                   kim@fabrikam.example,,,2026-11-19 10:00:00,,,\n\
                   ray@fabrikam.example,Ray,,next tuesday,,,\n\
                   zoe@fabrikam.example,Zoe,,2026-12-01,,,\n\
                   ann@x.example,\"Ann, Jr.\",,2026-11-21T08:00:00+02:00,,,\n";
        let leads = parse_csv(csv.as_bytes(), now()).unwrap();
        assert_eq!(leads.booked, 1);
        let lines: Vec<(u64, &str)> = leads
            .bad
            .iter()
            .map(|b| (b.line, b.reason.as_str()))
            .collect();
        // A row without a name is a lead all the same (only the email is required).
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0].0, 5);
        assert!(lines[0].1.contains("email"), "{lines:?}");
        assert_eq!(lines[1].0, 7);
        assert!(lines[1].1.contains("not a date"), "{lines:?}");
        assert_eq!(lines[2], (8, "submitted_at is in the future"));
        let candidates: Vec<(Option<u64>, &str, String)> = leads
            .candidates
            .iter()
            .map(|c| {
                (
                    c.line,
                    c.lead.profile.name.as_str(),
                    c.lead.submitted_at.to_rfc3339(),
                )
            })
            .collect();
        assert_eq!(
            candidates,
            [
                (
                    Some(2),
                    "Dana Ruiz",
                    "2026-11-20T09:30:00+00:00".to_string()
                ),
                (Some(6), "kim", "2026-11-19T10:00:00+00:00".to_string()),
                (Some(9), "Ann, Jr.", "2026-11-21T06:00:00+00:00".to_string()),
            ]
        );
        assert_eq!(
            leads.candidates[1].warnings,
            ["name is missing: the address stands in for it"]
        );
        let dana = &leads.candidates[0].lead;
        assert_eq!(
            dana.profile.assigned_rep_email.as_ref().map(|e| e.as_str()),
            Some("alex@vendor.example")
        );
        assert_eq!(dana.profile.source.as_deref(), Some("backfill"));
        assert_eq!(dana.due_at, dana.submitted_at, "due at once");
        // The same row read again is the same lead.
        let again = parse_csv(csv.as_bytes(), now()).unwrap();
        assert_eq!(again.candidates[0].lead.id, dana.id);
    }

    #[test]
    fn a_file_without_the_needed_columns_is_refused_whole() {
        let error = parse_csv("email,name\na@b.example,A\n".as_bytes(), now()).unwrap_err();
        assert!(error.to_string().contains("submitted_at"), "{error}");
    }
}
