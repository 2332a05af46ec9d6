//! Fakes for tests: a queue that is down, and a clock that stands still.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{Clock, Queue, QueueError, QueueMessage};

/// A queue whose every send fails as if SQS were unreachable.
#[derive(Debug, Default)]
pub struct UnreachableQueue;

#[async_trait]
impl Queue for UnreachableQueue {
    async fn send(&self, _message: &QueueMessage) -> Result<(), QueueError> {
        Err(QueueError::Unavailable("connection refused".into()))
    }
}

/// A clock fixed at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl FixedClock {
    pub fn at_unix(seconds: i64) -> Self {
        Self(DateTime::from_timestamp(seconds, 0).expect("a valid unix time"))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}
