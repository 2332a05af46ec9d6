//! Fakes for tests: a queue that is down, and a clock that stands still.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{Clock, Queue, QueueError, QueueMessage, Redelivery};

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

/// Remembers each requested redelivery delay, by receipt handle.
#[derive(Debug, Default)]
pub struct RecordedRedelivery {
    pub delays: std::sync::Mutex<Vec<(String, std::time::Duration)>>,
}

#[async_trait]
impl Redelivery for RecordedRedelivery {
    async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration) {
        self.delays
            .lock()
            .unwrap()
            .push((receipt_handle.to_string(), delay));
    }
}
