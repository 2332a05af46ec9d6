//! The queue port over Amazon SQS.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::send_message::SendMessageError;

use crate::ports::{Queue, QueueError, QueueMessage, Redelivery};

/// One SQS queue, standard or FIFO (the message's group and dedup ids decide).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Opens the connection to SQS at cold start (`GetQueueAttributes` of the queue's
    /// ARN: no message is touched); see [`super::aws::warm_up`].
    pub async fn warm_up(&self) {
        let call = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send();
        super::aws::warm_up("sqs", async { call.await.map_err(DisplayErrorContext) }).await;
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .set_message_group_id(message.group_id.clone())
            .set_message_deduplication_id(message.dedup_id.clone())
            .set_delay_seconds(message.delay_seconds.map(|d| d.min(900) as i32))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// A refusal of this very message is `Rejected`; anything about reaching SQS, or
/// SQS failing, is `Unavailable` and worth a retry.
fn classify(error: SdkError<SendMessageError>) -> QueueError {
    match &error {
        SdkError::ServiceError(service) if !is_server_side(service.raw().status().as_u16()) => {
            QueueError::Rejected(DisplayErrorContext(&error).to_string())
        }
        _ => QueueError::Unavailable(Box::new(error)),
    }
}

fn is_server_side(status: u16) -> bool {
    status >= 500 || status == 429
}

/// Delays a failed message's next delivery by changing its visibility timeout.
#[derive(Debug, Clone)]
pub struct SqsRedelivery {
    client: Client,
    queue_url: String,
}

impl SqsRedelivery {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// SQS allows a visibility timeout of at most 12 hours.
const MAX_VISIBILITY_SECS: u64 = 43_200;

#[async_trait]
impl Redelivery for SqsRedelivery {
    async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration) {
        // Whole seconds, rounded up: a short delay must not become an immediate retry.
        let seconds = (delay.as_secs_f64().ceil() as u64).min(MAX_VISIBILITY_SECS) as i32;
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await;
        if let Err(error) = result {
            // The queue's own visibility timeout applies instead.
            tracing::warn!(error = %DisplayErrorContext(&error), "could not delay the retry");
        }
    }
}
