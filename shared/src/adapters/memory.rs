//! In-process queue for the local stack and handler tests.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{Queue, QueueError, QueueMessage};

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
