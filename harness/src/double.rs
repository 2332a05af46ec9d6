//! An AWS endpoint double for the few calls the functions make at cold start and
//! webhook-ingest makes per delivery: SQS `SendMessage` and `GetQueueAttributes`,
//! Secrets Manager `GetSecretValue`, DynamoDB `GetItem` (of nothing). It answers in
//! parallel after a fixed latency, where moto answers one request at a time and more
//! slowly than AWS; so init and invocations can be timed without the emulator's cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

pub struct AwsDouble {
    pub url: String,
    sent: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl AwsDouble {
    /// The secret `GetSecretValue` answers for, whatever ARN is asked.
    pub const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:double";

    /// A FIFO queue URL at the double (which accepts any).
    pub fn crm_queue_url(&self) -> String {
        format!("{}/000000000000/double.fifo", self.url)
    }

    /// Answers after `latency`; `GetSecretValue` returns `secret` (a JSON object).
    pub async fn start(latency: Duration, secret: &str) -> anyhow::Result<Self> {
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let secret = secret.to_string();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let (counter, secret) = (counter.clone(), secret.clone());
            async move {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                let target = headers
                    .get("x-amz-target")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or_default();
                let answer = match target {
                    "AmazonSQS.SendMessage" => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let id = uuid::Uuid::new_v4().to_string();
                        Some(json!({ "MessageId": id, "MD5OfMessageBody": "0".repeat(32) }))
                    }
                    "AmazonSQS.GetQueueAttributes" => Some(json!({
                        "Attributes": { "QueueArn": "arn:aws:sqs:us-east-1:000000000000:double.fifo" },
                    })),
                    "secretsmanager.GetSecretValue" => Some(json!({
                        "ARN": Self::SECRET_ARN,
                        "Name": "double",
                        "SecretString": secret,
                    })),
                    "DynamoDB_20120810.GetItem" => Some(json!({})),
                    _ => None,
                };
                let (status, body) = match answer {
                    Some(body) => (StatusCode::OK, body),
                    None => (StatusCode::BAD_REQUEST, json!({ "__type": "InvalidAction" })),
                };
                (
                    status,
                    [("content-type", "application/x-amz-json-1.0")],
                    body.to_string(),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, sent, server })
    }

    /// `SendMessage` calls answered so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for AwsDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}
