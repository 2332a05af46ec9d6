//! Narrow async traits the handlers depend on. Production adapters live in
//! [`crate::adapters`]; fakes for tests sit behind the `test-util` feature.

use std::error::Error as StdError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One message for a queue. FIFO queues need `group_id` and `dedup_id`; standard
/// queues may carry a delay (at most 900 seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub body: String,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub delay_seconds: Option<u32>,
}

/// Why a message was not enqueued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or answered with a server error: try again.
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// The queue refused this message (too large, bad attribute, missing queue).
    #[error("queue refused the message: {0}")]
    Rejected(String),
}

/// Durable hand-off to the next stage. `send` returns only once the message is stored.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError>;
}

/// The current time, replaceable in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
