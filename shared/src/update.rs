//! Read-modify-write of one lead under optimistic concurrency: read, let the caller
//! decide, save if the lead did not change meanwhile, else read again.

use crate::lead::{Lead, LeadId, TimelineEntry};
use crate::ports::{LeadStore, Pointer, StoreError};

/// What a decision writes besides the lead itself.
#[derive(Debug, Default)]
pub struct Change {
    pub entry: Option<TimelineEntry>,
    pub pointer: Option<Pointer>,
}

/// How many times a conflicting write is retried before giving up.
const ATTEMPTS: usize = 5;

/// Applies `decide` to the current lead. `decide` edits the lead and returns the
/// change to write, or `None` to write nothing. Returns the lead as saved (or as
/// read, when nothing was written), or `None` when there is no such lead.
pub async fn update_lead<F>(
    store: &dyn LeadStore,
    id: &LeadId,
    mut decide: F,
) -> Result<Option<Lead>, StoreError>
where
    F: FnMut(&mut Lead) -> Option<Change> + Send,
{
    for _ in 0..ATTEMPTS {
        let Some(mut lead) = store.get_lead(id).await? else {
            return Ok(None);
        };
        let Some(change) = decide(&mut lead) else {
            return Ok(Some(lead));
        };
        match store
            .save_lead(&lead, change.entry.as_ref(), change.pointer.as_ref())
            .await
        {
            Ok(()) => {
                lead.version += 1;
                return Ok(Some(lead));
            }
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::Conflict)
}
