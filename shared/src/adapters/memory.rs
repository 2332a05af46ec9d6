//! In-process queue and lead store for the local stack and handler tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::lead::{BookingState, EmailAddress, Lead, LeadId, TimelineEntry, Waiting};
use crate::ports::{
    CreateOutcome, EventLog, LeadListing, LeadStore, Pointer, Queue, QueueError, QueueMessage,
    StoreError,
};

/// A queue in memory. Like an SQS FIFO queue it drops a message whose dedup id it has
/// already seen (for the life of the process here, not five minutes).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<QueueMessage>,
    seen: HashSet<String>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a message body as it is, without deduplication (tests, replays).
    pub fn send_raw(&self, body: String) {
        self.lock().messages.push_back(QueueMessage {
            body,
            group_id: None,
            dedup_id: None,
            delay_seconds: None,
        });
    }

    /// Takes every waiting message, oldest first.
    pub fn drain(&self) -> Vec<QueueMessage> {
        self.lock().messages.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let mut state = self.lock();
        if let Some(dedup) = &message.dedup_id
            && !state.seen.insert(dedup.clone())
        {
            return Ok(());
        }
        state.messages.push_back(message.clone());
        Ok(())
    }
}

/// Leads in memory, with the same conditional semantics as the DynamoDB adapter.
#[derive(Debug, Default)]
pub struct MemoryLeadStore {
    state: Mutex<LeadState>,
}

#[derive(Debug, Default)]
struct LeadState {
    leads: HashMap<LeadId, Lead>,
    timelines: HashMap<LeadId, Vec<TimelineEntry>>,
    /// Which lead an email last started, and when.
    claims: HashMap<EmailAddress, (LeadId, DateTime<Utc>)>,
    pointers: HashMap<Pointer, LeadId>,
    seen: HashSet<String>,
    unmatched: Vec<(String, String, String)>,
    /// The leads each cap counter counted.
    counters: HashMap<String, HashSet<LeadId>>,
    /// Bookings of addresses without a lead yet: (state, expires at) by key.
    remembered: HashMap<EmailAddress, HashMap<String, (BookingState, DateTime<Utc>)>>,
}

impl MemoryLeadStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events kept because no lead matched them: `(key, reason, event JSON)`.
    pub fn unmatched(&self) -> Vec<(String, String, String)> {
        self.lock().unmatched.clone()
    }

    /// Every lead, for reports and tests.
    pub fn all_leads(&self) -> Vec<Lead> {
        let state = self.lock();
        let mut leads: Vec<Lead> = state.leads.values().cloned().collect();
        leads.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at).then(a.id.cmp(&b.id)));
        leads
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeadState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl LeadStore for MemoryLeadStore {
    async fn create_lead(
        &self,
        lead: &Lead,
        entry: &TimelineEntry,
        resubmit_window: chrono::Duration,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.lock();
        let email = &lead.profile.email;
        let claimed = state
            .claims
            .get(email)
            .filter(|(_, at)| *at > lead.submitted_at - resubmit_window)
            .map(|(id, _)| id.clone());
        let existing = claimed
            .or_else(|| state.leads.contains_key(&lead.id).then(|| lead.id.clone()))
            .and_then(|id| state.leads.get(&id).cloned());
        if let Some(existing) = existing {
            return Ok(CreateOutcome::Existing(Box::new(existing)));
        }
        state
            .claims
            .insert(email.clone(), (lead.id.clone(), lead.submitted_at));
        // As in DynamoDB: a pointer of another address's lead is not taken over.
        for pointer in Pointer::for_new_lead(lead) {
            let foreign = state.pointers.get(&pointer).is_some_and(|owner| {
                state
                    .leads
                    .get(owner)
                    .is_some_and(|l| l.profile.email != *email)
            });
            if !foreign {
                state.pointers.insert(pointer, lead.id.clone());
            }
        }
        state.leads.insert(lead.id.clone(), lead.clone());
        state.timelines.insert(lead.id.clone(), vec![entry.clone()]);
        Ok(CreateOutcome::Created)
    }

    async fn get_lead(&self, id: &LeadId) -> Result<Option<Lead>, StoreError> {
        Ok(self.lock().leads.get(id).cloned())
    }

    async fn save_lead(
        &self,
        lead: &Lead,
        entry: Option<&TimelineEntry>,
        pointer: Option<&Pointer>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.leads.get(&lead.id) {
            Some(stored) if stored.version == lead.version => {}
            _ => return Err(StoreError::Conflict),
        }
        if let Some(entry) = entry {
            let timeline = state.timelines.get(&lead.id);
            if timeline.is_some_and(|t| {
                t.iter()
                    .any(|e| e.at == entry.at && e.event_id == entry.event_id)
            }) {
                return Err(StoreError::Conflict);
            }
        }
        let mut saved = lead.clone();
        saved.version += 1;
        state.leads.insert(lead.id.clone(), saved);
        if let Some(entry) = entry {
            state
                .timelines
                .entry(lead.id.clone())
                .or_default()
                .push(entry.clone());
        }
        if let Some(pointer) = pointer {
            state.pointers.insert(pointer.clone(), lead.id.clone());
        }
        Ok(())
    }

    async fn count_against(
        &self,
        key: &str,
        id: &LeadId,
        limit: u32,
        _expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let counted = state.counters.entry(key.to_string()).or_default();
        if counted.contains(id) || counted.len() < limit as usize {
            counted.insert(id.clone());
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn find_lead(&self, pointer: &Pointer) -> Result<Option<LeadId>, StoreError> {
        let state = self.lock();
        Ok(match pointer {
            Pointer::Email(email) => state.claims.get(email).map(|(id, _)| id.clone()),
            other => state.pointers.get(other).cloned(),
        })
    }

    async fn timeline(&self, id: &LeadId) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut entries = self.lock().timelines.get(id).cloned().unwrap_or_default();
        entries.sort_by_key(|a| a.at);
        Ok(entries)
    }

    async fn remember_booking(
        &self,
        email: &EmailAddress,
        key: &str,
        state: BookingState,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut store = self.lock();
        let known = store.remembered.entry(email.clone()).or_default();
        let entry = known.entry(key.to_string()).or_insert((state, expires_at));
        if state >= entry.0 {
            *entry = (state, expires_at.max(entry.1));
        }
        Ok(())
    }

    async fn remembered_bookings(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, BookingState)>, StoreError> {
        let store = self.lock();
        let mut bookings: Vec<(String, BookingState)> = store
            .remembered
            .get(email)
            .into_iter()
            .flatten()
            .filter(|(_, (_, expires))| *expires > now)
            .map(|(key, (state, _))| (key.clone(), *state))
            .collect();
        bookings.sort();
        Ok(bookings)
    }

    async fn quiet_recoveries(
        &self,
        quiet_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<LeadId>, StoreError> {
        let mut waiting: Vec<_> = self
            .lock()
            .leads
            .values()
            .filter_map(|lead| Some((lead.waiting_on_skipup()?, lead.id.clone())))
            .filter(|((what, since), _)| *what == Waiting::Cancel || *since < quiet_before)
            .collect();
        waiting.sort();
        Ok(waiting.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

#[async_trait]
impl LeadListing for MemoryLeadStore {
    async fn list_leads(&self) -> Result<Vec<Lead>, StoreError> {
        Ok(self.all_leads())
    }
}

#[async_trait]
impl EventLog for MemoryLeadStore {
    async fn seen(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().seen.contains(key))
    }

    async fn mark_seen(&self, key: &str, _expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().seen.insert(key.to_string());
        Ok(())
    }

    async fn keep_unmatched(
        &self,
        key: &str,
        reason: &str,
        event_json: &str,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.unmatched.iter().any(|(k, _, _)| k == key) {
            state
                .unmatched
                .push((key.to_string(), reason.to_string(), event_json.to_string()));
        }
        Ok(())
    }
}
