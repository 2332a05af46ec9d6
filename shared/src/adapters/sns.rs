//! Alerts to an SNS topic (email, chat or paging subscriptions live on the topic).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::DisplayErrorContext;

use crate::ports::{AlertError, Alerts};

pub struct SnsAlerts {
    client: Client,
    topic_arn: String,
}

impl SnsAlerts {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl Alerts for SnsAlerts {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), AlertError> {
        // SNS subjects: at most 100 printable ASCII characters.
        let subject: String = subject.chars().filter(char::is_ascii).take(100).collect();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AlertError(format!("SNS publish failed: {}", DisplayErrorContext(e))))
    }
}
