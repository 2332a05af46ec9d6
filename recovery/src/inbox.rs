//! Queues as the local stack consumes them, in place of Lambda's SQS event source:
//! an in-process queue with SQS's delays, visibility timeout, FIFO message groups and
//! dead letters, or a real SQS queue (or `moto_server`) long-polled. Each consumer
//! hands batches to the same handler a Lambda function runs.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use shared::ports::{Queue, QueueError, QueueMessage, Redelivery};

/// Where a consumer takes its batches from.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Up to `max` messages, waiting briefly when there are none.
    async fn receive(&self, max: usize) -> Vec<SqsMessage>;
    /// Deletes the batch's messages except the `failed` ones, which come back later.
    async fn settle(&self, batch: &[SqsMessage], failed: &HashSet<String>);
    /// Messages that ended in the dead-letter queue.
    async fn dead_letters(&self) -> usize;
}

/// Runs `handler` on every batch of `inbox`, forever.
pub async fn consume<F, Fut>(inbox: Arc<dyn Inbox>, handler: F)
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    loop {
        let batch = inbox.receive(10).await;
        if batch.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = batch.clone();
        let response = handler(event).await;
        let failed: HashSet<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        inbox.settle(&batch, &failed).await;
    }
}

/// An in-process queue. Like SQS: a delayed message waits, a received one is
/// invisible for the visibility timeout, a FIFO group is consumed in order with one
/// batch at a time, a dedup id is dropped for five minutes, and a message received
/// `max_receives` times without success becomes a dead letter.
pub struct LocalQueue {
    fifo: bool,
    visibility: Duration,
    max_receives: u32,
    state: Mutex<LocalState>,
    arrived: tokio::sync::Notify,
}

#[derive(Default)]
struct LocalState {
    entries: Vec<Entry>,
    dedup: HashMap<String, Instant>,
    dead: Vec<QueueMessage>,
    next_id: u64,
}

struct Entry {
    id: String,
    message: QueueMessage,
    visible_at: Instant,
    receives: u32,
    in_flight: bool,
}

const DEDUP_WINDOW: Duration = Duration::from_secs(300);

impl LocalQueue {
    pub fn standard(visibility: Duration, max_receives: u32) -> Self {
        Self::new(false, visibility, max_receives)
    }

    pub fn fifo(visibility: Duration, max_receives: u32) -> Self {
        Self::new(true, visibility, max_receives)
    }

    fn new(fifo: bool, visibility: Duration, max_receives: u32) -> Self {
        Self {
            fifo,
            visibility,
            max_receives,
            state: Mutex::default(),
            arrived: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Messages waiting or in flight.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages ever stored (a send dropped as a duplicate is not counted).
    pub fn stored(&self) -> u64 {
        self.lock().next_id
    }

    fn take(&self, max: usize) -> Vec<SqsMessage> {
        let now = Instant::now();
        let mut state = self.lock();
        let mut blocked = HashSet::new();
        let mut batch = Vec::new();
        for entry in state.entries.iter_mut() {
            if batch.len() == max {
                break;
            }
            let group = entry.message.group_id.clone().unwrap_or_default();
            if self.fifo && blocked.contains(&group) {
                continue;
            }
            if entry.in_flight || entry.visible_at > now {
                blocked.insert(group);
                continue;
            }
            entry.in_flight = true;
            entry.receives += 1;
            entry.visible_at = now + self.visibility;
            let mut message = SqsMessage::default();
            message.message_id = Some(entry.id.clone());
            message.receipt_handle = Some(entry.id.clone());
            message.body = Some(entry.message.body.clone());
            message.attributes = HashMap::from([(
                "ApproximateReceiveCount".to_string(),
                entry.receives.to_string(),
            )]);
            if let Some(group) = &entry.message.group_id {
                message
                    .attributes
                    .insert("MessageGroupId".into(), group.clone());
            }
            batch.push(message);
        }
        batch
    }

    /// When the next waiting message becomes visible, if any.
    fn next_visible(&self) -> Option<Instant> {
        self.lock()
            .entries
            .iter()
            .filter(|e| !e.in_flight)
            .map(|e| e.visible_at)
            .min()
    }
}

#[async_trait]
impl Queue for LocalQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let now = Instant::now();
        {
            let mut state = self.lock();
            state
                .dedup
                .retain(|_, at| now.duration_since(*at) < DEDUP_WINDOW);
            if let Some(dedup) = &message.dedup_id
                && state.dedup.insert(dedup.clone(), now).is_some()
            {
                return Ok(());
            }
            state.next_id += 1;
            let id = format!("local-{}", state.next_id);
            let delay = Duration::from_secs(message.delay_seconds.unwrap_or(0).into());
            state.entries.push(Entry {
                id,
                message: message.clone(),
                visible_at: now + delay,
                receives: 0,
                in_flight: false,
            });
        }
        self.arrived.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl Redelivery for LocalQueue {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) {
        if let Some(entry) = self
            .lock()
            .entries
            .iter_mut()
            .find(|e| e.id == receipt_handle)
        {
            entry.visible_at = Instant::now() + delay;
        }
    }
}

#[async_trait]
impl Inbox for LocalQueue {
    async fn receive(&self, max: usize) -> Vec<SqsMessage> {
        let batch = self.take(max);
        if batch.is_empty() {
            let wait = self
                .next_visible()
                .map_or(Duration::from_millis(500), |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .clamp(Duration::from_millis(5), Duration::from_millis(500));
            let _ = tokio::time::timeout(wait, self.arrived.notified()).await;
        }
        batch
    }

    async fn settle(&self, batch: &[SqsMessage], failed: &HashSet<String>) {
        let mut state = self.lock();
        let mut dead = Vec::new();
        for message in batch {
            let id = message.message_id.as_deref().unwrap_or_default();
            let Some(position) = state.entries.iter().position(|e| e.id == id) else {
                continue;
            };
            if !failed.contains(id) {
                state.entries.remove(position);
                continue;
            }
            let entry = &mut state.entries[position];
            entry.in_flight = false;
            if entry.receives >= self.max_receives {
                dead.push(state.entries.remove(position).message);
            }
        }
        if !dead.is_empty() {
            tracing::error!(
                count = dead.len(),
                "messages moved to the dead-letter queue"
            );
        }
        state.dead.extend(dead);
    }

    async fn dead_letters(&self) -> usize {
        self.lock().dead.len()
    }
}

/// A real SQS queue, long-polled; its dead-letter queue (if any) is counted.
pub struct SqsInbox {
    client: aws_sdk_sqs::Client,
    url: String,
    dead_letter_url: Option<String>,
}

impl SqsInbox {
    pub fn new(client: aws_sdk_sqs::Client, url: String, dead_letter_url: Option<String>) -> Self {
        Self {
            client,
            url,
            dead_letter_url,
        }
    }
}

#[async_trait]
impl Inbox for SqsInbox {
    async fn receive(&self, max: usize) -> Vec<SqsMessage> {
        let answer = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        match answer {
            Ok(output) => output
                .messages()
                .iter()
                .map(|m| {
                    let mut message = SqsMessage::default();
                    message.message_id = m.message_id().map(str::to_string);
                    message.receipt_handle = m.receipt_handle().map(str::to_string);
                    message.body = m.body().map(str::to_string);
                    message.attributes = m
                        .attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect();
                    message
                })
                .collect(),
            Err(error) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                Vec::new()
            }
        }
    }

    async fn settle(&self, batch: &[SqsMessage], failed: &HashSet<String>) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .iter()
            .filter(|m| !failed.contains(m.message_id.as_deref().unwrap_or_default()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let result = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await;
        if let Err(error) = result {
            // The messages come back after their visibility timeout: handled twice, not lost.
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), "delete failed");
        }
    }

    async fn dead_letters(&self) -> usize {
        let Some(url) = &self.dead_letter_url else {
            return 0;
        };
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await;
        answer
            .ok()
            .and_then(|a| {
                a.attributes()?
                    .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }
}

/// Shortens every retry delay by `scale` (the local stack's compressed time), to no
/// less than a second.
pub struct ScaledRedelivery {
    pub inner: Arc<dyn Redelivery>,
    pub scale: f64,
}

#[async_trait]
impl Redelivery for ScaledRedelivery {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) {
        self.inner
            .retry_after(
                receipt_handle,
                delay
                    .div_f64(self.scale.max(1.0))
                    .max(Duration::from_secs(1)),
            )
            .await;
    }
}

/// Shortens the delay of every message sent by `scale`, to no less than a second
/// (none stays none).
pub struct ScaledDelays {
    pub inner: Arc<dyn Queue>,
    pub scale: f64,
}

#[async_trait]
impl Queue for ScaledDelays {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let mut message = message.clone();
        message.delay_seconds = message
            .delay_seconds
            .filter(|d| *d > 0)
            .map(|d| ((f64::from(d) / self.scale.max(1.0)).ceil() as u32).max(1));
        self.inner.send(&message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str, group: Option<&str>, dedup: Option<&str>) -> QueueMessage {
        QueueMessage {
            body: body.into(),
            group_id: group.map(str::to_string),
            dedup_id: dedup.map(str::to_string),
            delay_seconds: None,
        }
    }

    fn bodies(batch: &[SqsMessage]) -> Vec<&str> {
        batch.iter().map(|m| m.body.as_deref().unwrap()).collect()
    }

    #[tokio::test]
    async fn a_fifo_group_waits_for_its_failed_head_and_a_dedup_id_is_dropped() {
        let queue = LocalQueue::fifo(Duration::ZERO, 3);
        for (body, group, dedup) in [
            ("a1", "a", "1"),
            ("a2", "a", "2"),
            ("b1", "b", "3"),
            ("dup", "a", "1"),
        ] {
            queue
                .send(&message(body, Some(group), Some(dedup)))
                .await
                .unwrap();
        }
        let batch = queue.take(10);
        assert_eq!(bodies(&batch), ["a1", "a2", "b1"]);
        let failed = HashSet::from([
            batch[0].message_id.clone().unwrap(),
            batch[1].message_id.clone().unwrap(),
        ]);
        queue.settle(&batch, &failed).await;
        queue
            .retry_after(
                batch[0].message_id.as_deref().unwrap(),
                Duration::from_secs(60),
            )
            .await;
        assert!(queue.take(10).is_empty(), "a2 waits behind a1");
        assert_eq!(queue.len(), 2);
    }

    #[tokio::test]
    async fn a_message_that_keeps_failing_becomes_a_dead_letter() {
        let queue = LocalQueue::standard(Duration::ZERO, 2);
        queue.send(&message("poison", None, None)).await.unwrap();
        for _ in 0..2 {
            let batch = queue.take(10);
            let failed = HashSet::from([batch[0].message_id.clone().unwrap()]);
            queue.settle(&batch, &failed).await;
        }
        assert!(queue.is_empty());
        assert_eq!(queue.dead_letters().await, 1);
    }

    #[tokio::test]
    async fn a_delayed_message_is_not_received_before_its_time() {
        let queue = LocalQueue::standard(Duration::from_secs(30), 5);
        let mut delayed = message("later", None, None);
        delayed.delay_seconds = Some(60);
        queue.send(&delayed).await.unwrap();
        queue.send(&message("now", None, None)).await.unwrap();
        let batch = queue.take(10);
        assert_eq!(bodies(&batch), ["now"]);
        assert_eq!(batch[0].attributes["ApproximateReceiveCount"], "1");
        assert!(
            queue.take(10).is_empty(),
            "in flight for the visibility timeout"
        );
    }
}
