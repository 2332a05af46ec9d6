//! The lead store on one DynamoDB table (`LEADS_TABLE`), keys `pk` and `sk` (strings).
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | lead | `LEAD#{lead_id}` | `LEAD` | profile, `status`, dates (RFC 3339), recovery, `applied_events`, `version`, `day` (GSI `by_day`) |
//! | timeline entry | `LEAD#{lead_id}` | `T#{at}#{event_id}` | `at`, `event_id`, `source`, `status`, `detail` |
//! | email claim | `EMAIL#{email}` | `CLAIM` | `lead_id`, `claimed_at` (epoch s), `expires_at` (TTL) |
//! | the address's newest lead | `EMAIL#{email}` | `LATEST` | `lead_id` (no TTL: bookings and `suppress` find a lead long after its claim expired) |
//! | pointer | `MR#{meeting_request_id}`, `SKODE#{skode_lead_id}` or `PHONE#{+digits}` | `POINTER` | `lead_id` |
//! | processed event | `EVENT#{provider}:{event_id}` | `SEEN` | `expires_at` (TTL) |
//! | booking before its lead | `BOOKING#{email}` | `{tool}:{booking id}` | `state`, `rank`, `expires_at` (TTL) |
//! | unmatched event | `UNMATCHED#{provider}:{event_id}` | `EVENT` | `reason`, `event` (JSON), `expires_at` (TTL) |
//! | daily cap counter | `CAP#{key}` (`recoveries:{day}[:{domain}]`) | `COUNT` | `leads` (string set of lead ids), `expires_at` (TTL) |
//!
//! A lead whose recovery waits on SkipUp also carries `open` and `open_since`, the keys
//! of the sparse GSI `open_recoveries` that reconciliation queries.
//!
//! A new lead, its first timeline entry and its email claim are written in one
//! transaction; so is every later change with its timeline entry and pointer, under a
//! condition on the lead's `version`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::lead::{
    BookingState, EmailAddress, Lead, LeadId, LeadProfile, LeadStatus, Recovery, SkipUpCancel,
    TimeZoneName, TimelineEntry, Waiting,
};
use crate::ports::{CreateOutcome, EventLog, LeadListing, LeadStore, Pointer, StoreError};

type Item = HashMap<String, AttributeValue>;

/// Name of the GSI over lead items by submission day (`day`, then `submitted_at`).
pub const BY_DAY_INDEX: &str = "by_day";

/// Name of the sparse GSI over open recoveries (`open`, then `open_since`).
pub const OPEN_RECOVERIES_INDEX: &str = "open_recoveries";

/// The `open` values: the index is small (what waits on SkipUp only), so one
/// partition each.
fn waiting_key(what: Waiting) -> &'static str {
    match what {
        Waiting::Cancel => "CANCEL",
        Waiting::Recovery => "OPEN",
    }
}

#[derive(Debug, Clone)]
pub struct DynamoLeadStore {
    client: Client,
    table: String,
}

impl DynamoLeadStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Every event kept because no lead matched it, as (key, reason, event JSON):
    /// a scan of the whole table, for an operator or a test, never for a function.
    pub async fn unmatched_events(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :unmatched)")
            .expression_attribute_values(":unmatched", s("UNMATCHED#"));
        let mut kept = Vec::new();
        for item in self.scan_all(scan).await? {
            let item = Reader(&item);
            let key = item.req("pk")?;
            kept.push((
                key.trim_start_matches("UNMATCHED#").to_string(),
                item.req("reason")?,
                item.req("event")?,
            ));
        }
        kept.sort();
        Ok(kept)
    }

    /// Every item `scan` finds, page after page.
    async fn scan_all(&self, scan: ScanFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = scan
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// Opens the connection to DynamoDB at cold start (a `GetItem` of a key that never
    /// exists, allowed by the functions' policies); see [`super::aws::warm_up`].
    pub async fn warm_up(&self) {
        let call = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S("WARM-UP".into()))
            .key("sk", AttributeValue::S("WARM-UP".into()))
            .send();
        super::aws::warm_up("dynamodb", async {
            call.await.map_err(DisplayErrorContext)
        })
        .await;
    }

    fn put(&self, item: Item, condition: Option<(&str, Item)>) -> TransactWriteItem {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some((expression, values)) = condition {
            put = put.condition_expression(expression);
            if !values.is_empty() {
                put = put.set_expression_attribute_values(Some(values));
            }
        }
        TransactWriteItem::builder()
            .put(put.build().expect("table and item are set"))
            .build()
    }

    /// Points `pointer` (a phone number, a Skode lead id) at the new lead unless it
    /// points at a lead of another address: whoever types someone else's number must
    /// not get that person's calls. The same address's newer lead takes it over. Best
    /// effort: the lead is stored already, and events fall back to the email.
    async fn claim_pointer(&self, pointer: &Pointer, lead: &Lead) {
        let mut item = pointer_item(pointer, &lead.id);
        item.insert("email".into(), s(lead.profile.email.as_str()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR email = :email")
            .expression_attribute_values(":email", s(lead.profile.email.as_str()))
            .send()
            .await
            .map_err(write_error);
        match result {
            Ok(_) => {}
            Err(StoreError::Conflict) => tracing::warn!(
                lead_id = %lead.id, pointer = pointer.kind(),
                "the pointer belongs to a lead of another address: kept there"
            ),
            Err(error) => tracing::warn!(
                lead_id = %lead.id, pointer = pointer.kind(), %error,
                "pointer not written; events fall back to the email"
            ),
        }
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(unavailable)
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn time(at: DateTime<Utc>) -> AttributeValue {
    s(at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn unavailable<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(error).to_string().into())
}

/// A failed condition (in a transaction or a single write) is a conflict.
fn write_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.as_service_error().and_then(|e| e.code()) {
        Some("ConditionalCheckFailedException" | "TransactionCanceledException") => {
            StoreError::Conflict
        }
        _ => unavailable(error),
    }
}

fn lead_key(id: &LeadId) -> String {
    format!("LEAD#{id}")
}

/// `(pk, sk)` of the item a pointer is read from.
fn pointer_key(pointer: &Pointer) -> (String, &'static str) {
    match pointer {
        Pointer::MeetingRequest(id) => (format!("MR#{id}"), "POINTER"),
        Pointer::SkodeLead(id) => (format!("SKODE#{id}"), "POINTER"),
        Pointer::Phone(phone) => (format!("PHONE#{phone}"), "POINTER"),
        Pointer::Email(email) => (format!("EMAIL#{email}"), "LATEST"),
    }
}

fn pointer_item(pointer: &Pointer, id: &LeadId) -> Item {
    let (pk, sk) = pointer_key(pointer);
    HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s(sk)),
        ("lead_id".to_string(), s(id.as_str())),
    ])
}

fn lead_to_item(lead: &Lead, version: u64) -> Item {
    let p = &lead.profile;
    let mut item: Item = [
        ("pk", s(lead_key(&lead.id))),
        ("sk", s("LEAD")),
        ("lead_id", s(lead.id.as_str())),
        ("status", s(lead.status.as_str())),
        ("email", s(p.email.as_str())),
        ("name", s(&p.name)),
        ("submitted_at", time(lead.submitted_at)),
        ("day", s(lead.submitted_at.format("%Y-%m-%d").to_string())),
        ("due_at", time(lead.due_at)),
        ("updated_at", time(lead.updated_at)),
        ("version", n(version)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let optional = [
        ("company", p.company.clone()),
        ("role", p.role.clone()),
        ("phone", p.phone.clone()),
        ("timezone", p.timezone.clone().map(String::from)),
        (
            "assigned_rep_email",
            p.assigned_rep_email.clone().map(String::from),
        ),
        ("form_id", p.form_id.clone()),
        ("submission_id", p.submission_id.clone()),
        ("source", p.source.clone()),
        ("skode_lead_id", p.skode_lead_id.clone()),
        ("status_reason", lead.status_reason.clone()),
        (
            "crm_status",
            lead.crm_status.map(|s| s.as_str().to_string()),
        ),
        ("meeting_request_id", lead.meeting_request_id.clone()),
        (
            "organizer_email",
            lead.organizer_email.clone().map(String::from),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            item.insert(key.into(), s(value));
        }
    }
    if let Some(at) = lead.check_scheduled_at {
        item.insert("check_scheduled_at".into(), time(at));
    }
    if !p.answers.is_empty() {
        let answers = p
            .answers
            .iter()
            .map(|(q, a)| {
                AttributeValue::M(HashMap::from([("q".into(), s(q)), ("a".into(), s(a))]))
            })
            .collect();
        item.insert("answers".into(), AttributeValue::L(answers));
    }
    if !lead.reached.is_empty() {
        let reached = lead
            .reached
            .iter()
            .map(|(status, at)| (status.as_str().to_string(), time(*at)))
            .collect();
        item.insert("reached".into(), AttributeValue::M(reached));
    }
    if !lead.applied_events.is_empty() {
        let keys = lead.applied_events.iter().map(s).collect();
        item.insert("applied_events".into(), AttributeValue::L(keys));
    }
    if !lead.bookings.is_empty() {
        let bookings = lead
            .bookings
            .iter()
            .map(|(key, state)| (key.clone(), s(state.as_str())))
            .collect();
        item.insert("bookings".into(), AttributeValue::M(bookings));
    }
    if let Some(c) = &lead.skipup_cancel {
        item.insert("cancel_meeting_request_id".into(), s(&c.meeting_request_id));
        item.insert("cancel_reason".into(), s(&c.reason));
        item.insert("cancel_decided_at".into(), time(c.decided_at));
        if let Some(done) = c.done_at {
            item.insert("cancel_done_at".into(), time(done));
        }
    }
    if let Some(heard) = lead.skipup_heard_at {
        item.insert("skipup_heard_at".into(), time(heard));
    }
    if let Some(until) = lead.crm_lease_until {
        item.insert("crm_lease_until".into(), time(until));
    }
    // The sparse `open_recoveries` index holds only the leads reconciliation has to
    // look at (recoveries waiting on SkipUp, cancellations not yet confirmed), so it
    // reads those and never the rest of the table.
    if let Some((what, since)) = lead.waiting_on_skipup() {
        item.insert("open".into(), s(waiting_key(what)));
        item.insert("open_since".into(), time(since));
    }
    if let Some(r) = &lead.recovery {
        item.insert("recovery_key".into(), s(&r.idempotency_key));
        item.insert("recovery_started_at".into(), time(r.started_at));
        item.insert("recovery_attempts".into(), n(r.attempts));
        if let Some(until) = r.lease_until {
            item.insert("recovery_lease_until".into(), time(until));
        }
    }
    item
}

/// Reads attributes of one item, naming the first one that is missing or bad.
struct Reader<'a>(&'a Item);

impl Reader<'_> {
    fn opt(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(|v| v.as_s().ok()).cloned()
    }

    fn req(&self, key: &str) -> Result<String, StoreError> {
        self.opt(key)
            .ok_or_else(|| StoreError::Corrupt(format!("attribute {key} is missing")))
    }

    fn parse<T>(
        &self,
        key: &str,
        value: String,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, StoreError> {
        parse(&value).map_err(|e| StoreError::Corrupt(format!("attribute {key}: {e}")))
    }

    fn time_opt(&self, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt(key)
            .map(|v| self.parse(key, v, parse_time))
            .transpose()
    }

    fn time(&self, key: &str) -> Result<DateTime<Utc>, StoreError> {
        let value = self.req(key)?;
        self.parse(key, value, parse_time)
    }

    fn email_opt(&self, key: &str) -> Result<Option<EmailAddress>, StoreError> {
        self.opt(key)
            .map(|v| self.parse(key, v, |v| EmailAddress::parse(v).map_err(String::from)))
            .transpose()
    }

    fn number(&self, key: &str) -> Result<u64, StoreError> {
        match self.0.get(key).and_then(|v| v.as_n().ok()) {
            Some(v) => v
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("attribute {key} is not a number"))),
            None => Err(StoreError::Corrupt(format!("attribute {key} is missing"))),
        }
    }
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

/// The `reached` map, oldest first.
fn reached(item: &Item) -> Result<Vec<(LeadStatus, DateTime<Utc>)>, StoreError> {
    let Some(AttributeValue::M(map)) = item.get("reached") else {
        return Ok(Vec::new());
    };
    let corrupt = |key: &str| StoreError::Corrupt(format!("attribute reached.{key} is invalid"));
    let mut reached = map
        .iter()
        .map(|(status, at)| {
            let status = status.parse::<LeadStatus>().map_err(|_| corrupt(status))?;
            let at = at
                .as_s()
                .ok()
                .and_then(|at| parse_time(at).ok())
                .ok_or_else(|| corrupt(status.as_str()))?;
            Ok((status, at))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    reached.sort_by_key(|(_, at)| *at);
    Ok(reached)
}

fn item_to_lead(item: &Item) -> Result<Lead, StoreError> {
    let r = Reader(item);
    let answers = match item.get("answers") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|v| v.as_m().ok())
            .filter_map(|m| {
                let q = m.get("q")?.as_s().ok()?;
                let a = m.get("a")?.as_s().ok()?;
                Some((q.clone(), a.clone()))
            })
            .collect(),
        _ => Vec::new(),
    };
    let timezone = r
        .opt("timezone")
        .map(|v| {
            r.parse("timezone", v, |v| {
                TimeZoneName::parse(v).map_err(String::from)
            })
        })
        .transpose()?;
    let profile = LeadProfile {
        email: r
            .email_opt("email")?
            .ok_or_else(|| StoreError::Corrupt("attribute email is missing".into()))?,
        name: r.req("name")?,
        company: r.opt("company"),
        role: r.opt("role"),
        phone: r.opt("phone"),
        timezone,
        assigned_rep_email: r.email_opt("assigned_rep_email")?,
        form_id: r.opt("form_id"),
        submission_id: r.opt("submission_id"),
        answers,
        source: r.opt("source"),
        skode_lead_id: r.opt("skode_lead_id"),
    };
    let recovery = match r.opt("recovery_key") {
        Some(key) => Some(Recovery {
            idempotency_key: key,
            started_at: r.time("recovery_started_at")?,
            attempts: u32::try_from(r.number("recovery_attempts")?).unwrap_or(u32::MAX),
            lease_until: r.time_opt("recovery_lease_until")?,
        }),
        None => None,
    };
    let id = r.req("lead_id")?;
    let status = r.req("status")?;
    Ok(Lead {
        id: r.parse("lead_id", id, |v| LeadId::parse(v).map_err(String::from))?,
        profile,
        status: r.parse("status", status, |v| v.parse::<LeadStatus>())?,
        status_reason: r.opt("status_reason"),
        crm_status: r
            .opt("crm_status")
            .map(|v| r.parse("crm_status", v, |v| v.parse::<LeadStatus>()))
            .transpose()?,
        reached: reached(item)?,
        submitted_at: r.time("submitted_at")?,
        due_at: r.time("due_at")?,
        check_scheduled_at: r.time_opt("check_scheduled_at")?,
        recovery,
        meeting_request_id: r.opt("meeting_request_id"),
        organizer_email: r.email_opt("organizer_email")?,
        updated_at: r.time("updated_at")?,
        applied_events: match item.get("applied_events") {
            Some(AttributeValue::L(list)) => {
                list.iter().filter_map(|v| v.as_s().ok().cloned()).collect()
            }
            _ => Vec::new(),
        },
        bookings: bookings(item)?,
        skipup_cancel: match r.opt("cancel_meeting_request_id") {
            Some(meeting_request_id) => Some(SkipUpCancel {
                meeting_request_id,
                reason: r.opt("cancel_reason").unwrap_or_default(),
                decided_at: r.time("cancel_decided_at")?,
                done_at: r.time_opt("cancel_done_at")?,
            }),
            None => None,
        },
        skipup_heard_at: r.time_opt("skipup_heard_at")?,
        crm_lease_until: r.time_opt("crm_lease_until")?,
        version: r.number("version")?,
    })
}

/// The `bookings` map, in key order.
fn bookings(item: &Item) -> Result<Vec<(String, BookingState)>, StoreError> {
    let Some(AttributeValue::M(map)) = item.get("bookings") else {
        return Ok(Vec::new());
    };
    let mut bookings = map
        .iter()
        .map(|(key, state)| {
            state
                .as_s()
                .ok()
                .and_then(|v| BookingState::parse(v))
                .map(|state| (key.clone(), state))
                .ok_or_else(|| StoreError::Corrupt(format!("attribute bookings.{key} is invalid")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    bookings.sort();
    Ok(bookings)
}

fn entry_to_item(id: &LeadId, entry: &TimelineEntry) -> Item {
    let at = entry.at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut item: Item = [
        ("pk", s(lead_key(id))),
        ("sk", s(format!("T#{at}#{}", entry.event_id))),
        ("at", s(at)),
        ("event_id", s(&entry.event_id)),
        ("source", s(&entry.source)),
        ("detail", s(&entry.detail)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(status) = entry.status {
        item.insert("status".into(), s(status.as_str()));
    }
    item
}

fn item_to_entry(item: &Item) -> Result<TimelineEntry, StoreError> {
    let r = Reader(item);
    let status = r
        .opt("status")
        .map(|v| r.parse("status", v, |v| v.parse::<LeadStatus>()))
        .transpose()?;
    Ok(TimelineEntry {
        at: r.time("at")?,
        event_id: r.req("event_id")?,
        source: r.req("source")?,
        status,
        detail: r.req("detail")?,
    })
}

/// A timeline entry is appended once: the same time and event id again is a conflict.
fn new_entry() -> Option<(&'static str, Item)> {
    Some(("attribute_not_exists(pk)", HashMap::new()))
}

/// Claims are kept a day past the window, then expire by TTL.
const CLAIM_GRACE_SECS: i64 = 86_400;

#[async_trait]
impl LeadStore for DynamoLeadStore {
    async fn create_lead(
        &self,
        lead: &Lead,
        entry: &TimelineEntry,
        resubmit_window: chrono::Duration,
    ) -> Result<CreateOutcome, StoreError> {
        let email_key = format!("EMAIL#{}", lead.profile.email);
        let now = lead.submitted_at.timestamp();
        let claim: Item = [
            ("pk", s(&email_key)),
            ("sk", s("CLAIM")),
            ("lead_id", s(lead.id.as_str())),
            ("claimed_at", n(now)),
            (
                "expires_at",
                n(now + resubmit_window.num_seconds() + CLAIM_GRACE_SECS),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let window_start = (lead.submitted_at - resubmit_window).timestamp();
        let latest = pointer_item(&Pointer::Email(lead.profile.email.clone()), &lead.id);
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.put(latest, None))
            .transact_items(self.put(
                claim,
                Some((
                    "attribute_not_exists(pk) OR claimed_at <= :window_start",
                    HashMap::from([(":window_start".into(), n(window_start))]),
                )),
            ))
            .transact_items(self.put(
                lead_to_item(lead, lead.version),
                Some(("attribute_not_exists(pk)", HashMap::new())),
            ))
            .transact_items(self.put(entry_to_item(&lead.id, entry), new_entry()))
            .send()
            .await;
        match result.map_err(write_error) {
            Ok(_) => {
                for pointer in Pointer::for_new_lead(lead) {
                    self.claim_pointer(&pointer, lead).await;
                }
                Ok(CreateOutcome::Created)
            }
            Err(StoreError::Conflict) => {
                // The email claim is fresh, or the lead exists: find which lead.
                let claimed = match self.get_item(email_key, "CLAIM").await? {
                    Some(item) => {
                        let r = Reader(&item);
                        let claimed_at = r.number("claimed_at")? as i64;
                        let id = r.req("lead_id")?;
                        (claimed_at > window_start)
                            .then(|| LeadId::parse(&id).map_err(|e| StoreError::Corrupt(e.into())))
                            .transpose()?
                    }
                    None => None,
                };
                let id = claimed.unwrap_or_else(|| lead.id.clone());
                match self.get_lead(&id).await? {
                    Some(existing) => Ok(CreateOutcome::Existing(Box::new(existing))),
                    // Claimed and released in between: let the caller try again.
                    None => Err(StoreError::Conflict),
                }
            }
            Err(other) => Err(other),
        }
    }

    async fn get_lead(&self, id: &LeadId) -> Result<Option<Lead>, StoreError> {
        self.get_item(lead_key(id), "LEAD")
            .await?
            .map(|item| item_to_lead(&item))
            .transpose()
    }

    async fn save_lead(
        &self,
        lead: &Lead,
        entry: Option<&TimelineEntry>,
        pointer: Option<&Pointer>,
    ) -> Result<(), StoreError> {
        let condition = (
            "version = :expected",
            HashMap::from([(":expected".to_string(), n(lead.version))]),
        );
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(self.put(lead_to_item(lead, lead.version + 1), Some(condition)));
        if let Some(entry) = entry {
            transaction =
                transaction.transact_items(self.put(entry_to_item(&lead.id, entry), new_entry()));
        }
        if let Some(pointer) = pointer {
            transaction =
                transaction.transact_items(self.put(pointer_item(pointer, &lead.id), None));
        }
        transaction.send().await.map(|_| ()).map_err(write_error)
    }

    /// One conditional `UpdateItem`: the lead joins the counter's set when the set
    /// is not full or already holds it (so a retry does not count it twice).
    async fn count_against(
        &self,
        key: &str,
        id: &LeadId,
        limit: u32,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("CAP#{key}")))
            .key("sk", s("COUNT"))
            .update_expression("ADD leads :lead SET expires_at = :expires")
            .condition_expression(
                "attribute_not_exists(leads) OR size(leads) < :limit OR contains(leads, :id)",
            )
            .expression_attribute_values(":lead", AttributeValue::Ss(vec![id.to_string()]))
            .expression_attribute_values(":id", s(id.to_string()))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":expires", n(expires_at.timestamp()))
            .send()
            .await;
        match result.map_err(write_error) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn find_lead(&self, pointer: &Pointer) -> Result<Option<LeadId>, StoreError> {
        let (pk, sk) = pointer_key(pointer);
        let mut item = self.get_item(pk.clone(), sk).await?;
        // Leads stored before the `LATEST` pointer existed have only their claim.
        if item.is_none() && matches!(pointer, Pointer::Email(_)) {
            item = self.get_item(pk, "CLAIM").await?;
        }
        match item {
            Some(item) => {
                let id = Reader(&item).req("lead_id")?;
                LeadId::parse(&id)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(e.into()))
            }
            None => Ok(None),
        }
    }

    async fn remember_booking(
        &self,
        email: &EmailAddress,
        key: &str,
        state: BookingState,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rank = state as u8;
        let item = HashMap::from([
            ("pk".to_string(), s(format!("BOOKING#{email}"))),
            ("sk".to_string(), s(key)),
            ("state".to_string(), s(state.as_str())),
            ("rank".to_string(), n(rank)),
            ("expires_at".to_string(), n(expires_at.timestamp())),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #rank <= :rank")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_values(":rank", n(rank))
            .send()
            .await;
        match result.map_err(write_error) {
            // What is remembered already says more.
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn remembered_bookings(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, BookingState)>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("BOOKING#{email}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        // TTL deletes lazily (and not at all in a local emulator): filter here too.
        let mut bookings = Vec::new();
        for item in page.items() {
            let r = Reader(item);
            if (r.number("expires_at")? as i64) <= now.timestamp() {
                continue;
            }
            let state = r.req("state")?;
            let state = BookingState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("booking state {state:?}")))?;
            bookings.push((r.req("sk")?, state));
        }
        Ok(bookings)
    }

    async fn quiet_recoveries(
        &self,
        quiet_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<LeadId>, StoreError> {
        let mut ids = Vec::new();
        // Unconfirmed cancellations whatever their age, then quiet recoveries.
        for (what, before) in [
            (Waiting::Cancel, None),
            (Waiting::Recovery, Some(quiet_before)),
        ] {
            let mut start: Option<Item> = None;
            while ids.len() < limit {
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(OPEN_RECOVERIES_INDEX)
                    .expression_attribute_names("#open", "open")
                    .expression_attribute_values(":open", s(waiting_key(what)))
                    .limit(i32::try_from(limit - ids.len()).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take());
                query = match before {
                    Some(before) => query
                        .key_condition_expression("#open = :open AND open_since < :before")
                        .expression_attribute_values(
                            ":before",
                            s(before.to_rfc3339_opts(SecondsFormat::Millis, true)),
                        ),
                    None => query.key_condition_expression("#open = :open"),
                };
                let page = query.send().await.map_err(unavailable)?;
                for item in page.items() {
                    let id = Reader(item).req("lead_id")?;
                    ids.push(LeadId::parse(&id).map_err(|e| StoreError::Corrupt(e.into()))?);
                }
                match page.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        Ok(ids)
    }

    async fn timeline(&self, id: &LeadId) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :t)")
                .expression_attribute_values(":pk", s(lead_key(id)))
                .expression_attribute_values(":t", s("T#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                entries.push(item_to_entry(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(entries),
            }
        }
    }
}

#[async_trait]
impl LeadListing for DynamoLeadStore {
    /// Reads the sparse `by_day` index, which holds the lead items only.
    async fn list_leads(&self) -> Result<Vec<Lead>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .index_name(BY_DAY_INDEX);
        let mut leads = self
            .scan_all(scan)
            .await?
            .iter()
            .map(item_to_lead)
            .collect::<Result<Vec<_>, _>>()?;
        leads.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id)));
        Ok(leads)
    }

    /// One query of the `by_day` index per day, so the cost follows the range.
    async fn leads_submitted_between(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<Lead>, StoreError> {
        let mut leads = Vec::new();
        for day in from.iter_days().take_while(|day| *day <= to) {
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(BY_DAY_INDEX)
                    .key_condition_expression("#day = :day")
                    .expression_attribute_names("#day", "day")
                    .expression_attribute_values(":day", s(day.format("%Y-%m-%d").to_string()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in page.items() {
                    leads.push(item_to_lead(item)?);
                }
                match page.last_evaluated_key() {
                    Some(key) if !key.is_empty() => start = Some(key.clone()),
                    _ => break,
                }
            }
        }
        Ok(leads)
    }
}

/// Creates the leads table as `template.yaml` declares it (keys, the `by_day` index,
/// on-demand billing) and turns on TTL; for the local stack and tests.
pub async fn create_leads_table(client: &Client, table: &str) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and type are set")
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("day"))
        .attribute_definitions(attribute("submitted_at"))
        .attribute_definitions(attribute("open"))
        .attribute_definitions(attribute("open_since"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_DAY_INDEX)
                .key_schema(key("day", KeyType::Hash))
                .key_schema(key("submitted_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("index name and keys are set"),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(OPEN_RECOVERIES_INDEX)
                .key_schema(key("open", KeyType::Hash))
                .key_schema(key("open_since", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .non_key_attributes("lead_id")
                        .build(),
                )
                .build()
                .expect("index name and keys are set"),
        )
        .send()
        .await
        .map_err(unavailable)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .expect("TTL attribute is set"),
        )
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

impl DynamoLeadStore {
    async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

#[async_trait]
impl EventLog for DynamoLeadStore {
    async fn seen(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .get_item(format!("EVENT#{key}"), "SEEN")
            .await?
            .is_some())
    }

    async fn mark_seen(&self, key: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.put_item(HashMap::from([
            ("pk".to_string(), s(format!("EVENT#{key}"))),
            ("sk".to_string(), s("SEEN")),
            ("expires_at".to_string(), n(expires_at.timestamp())),
        ]))
        .await
    }

    async fn keep_unmatched(
        &self,
        key: &str,
        reason: &str,
        event_json: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.put_item(HashMap::from([
            ("pk".to_string(), s(format!("UNMATCHED#{key}"))),
            ("sk".to_string(), s("EVENT")),
            ("reason".to_string(), s(reason)),
            ("event".to_string(), s(event_json)),
            ("expires_at".to_string(), n(expires_at.timestamp())),
        ]))
        .await
    }
}
