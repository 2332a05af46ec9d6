//! `recovery dlq list|replay`: the dead-letter queues of the checks and CRM queues,
//! found through each queue's redrive policy. Replay receives each dead letter, sends
//! it again to its queue (FIFO: same message group, a fresh deduplication id) and
//! deletes it only once the send succeeded, so an interrupted replay loses nothing
//! (a message may at worst be sent twice, which the consumers absorb: checks hold a
//! stored idempotency key, apply-events remembers applied event ids). This works on the
//! local emulator too, which lacks SQS's move-task API.

use anyhow::{Context, bail};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName as Sys, QueueAttributeName as A};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// How long a listed message stays hidden before it is made visible again.
const LIST_VISIBILITY: i32 = 30;
/// How long a message being replayed stays hidden: if the replay dies, or the send
/// fails, it re-appears in the dead-letter queue after this.
const REPLAY_VISIBILITY: i32 = 60;

/// A queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueuePair {
    pub url: String,
    pub dead_letters: String,
    pub fifo: bool,
}

impl QueuePair {
    /// Finds the dead-letter queue from the queue's redrive policy.
    pub async fn of(sqs: &Client, url: &str) -> anyhow::Result<Self> {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::RedrivePolicy)
            .attribute_names(A::FifoQueue)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("reading the attributes of {url}"))?;
        let attributes = attributes.attributes().cloned().unwrap_or_default();
        let policy = attributes
            .get(&A::RedrivePolicy)
            .with_context(|| format!("{url} has no dead-letter queue (no redrive policy)"))?;
        let arn = serde_json::from_str::<Value>(policy)
            .ok()
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_string))
            .context("the redrive policy names no deadLetterTargetArn")?;
        let name = arn.rsplit(':').next().unwrap_or_default();
        let dead_letters = sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("finding the dead-letter queue {name}"))?
            .queue_url
            .context("no queue URL")?;
        Ok(Self {
            url: url.to_string(),
            dead_letters,
            fifo: attributes.get(&A::FifoQueue).is_some_and(|v| v == "true"),
        })
    }
}

/// A dead letter, described without its body (which may name a person).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub receive_count: Option<u32>,
    pub group: Option<String>,
    /// The lead and due time of a check, or the provider, type and id of an event.
    pub about: String,
}

fn describe(message: &Message) -> DeadLetter {
    let attribute = |name: Sys| message.attributes().and_then(|a| a.get(&name)).cloned();
    let body: Value = message
        .body()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let text = |key: &str| body[key].as_str().unwrap_or("?").to_string();
    let about = if body.get("lead_id").is_some() {
        format!("check of {} due {}", text("lead_id"), text("due_at"))
    } else if body.get("provider").is_some() {
        format!(
            "{} {} {}",
            text("provider"),
            body["event_type"].as_str().unwrap_or("(no type)"),
            text("event_id")
        )
    } else {
        format!(
            "unrecognized body of {} bytes",
            message.body().map_or(0, str::len)
        )
    };
    DeadLetter {
        message_id: message.message_id().unwrap_or_default().to_string(),
        sent_at: attribute(Sys::SentTimestamp)
            .and_then(|ms| ms.parse().ok())
            .and_then(DateTime::from_timestamp_millis),
        receive_count: attribute(Sys::ApproximateReceiveCount).and_then(|n| n.parse().ok()),
        group: attribute(Sys::MessageGroupId),
        about,
    }
}

async fn receive(sqs: &Client, url: &str, visibility: i32) -> anyhow::Result<Vec<Message>> {
    let answer = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .wait_time_seconds(1)
        .message_system_attribute_names(Sys::All)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .with_context(|| format!("receiving from {url}"))?;
    Ok(answer.messages.unwrap_or_default())
}

/// Up to `max` dead letters, left in the queue (visible again once listed). On a
/// FIFO queue, SQS hands out one batch per message group while others are hidden,
/// so a group with more than ten dead letters shows its first ten.
pub async fn list(sqs: &Client, pair: &QueuePair, max: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let mut seen: Vec<DeadLetter> = Vec::new();
    let mut handles = Vec::new();
    while seen.len() < max {
        let batch = receive(sqs, &pair.dead_letters, LIST_VISIBILITY).await?;
        let mut new = 0;
        for message in batch {
            if let Some(handle) = message.receipt_handle() {
                handles.push(handle.to_string());
            }
            let letter = describe(&message);
            // One listed earlier can be visible again on a long listing.
            if !seen.iter().any(|s| s.message_id == letter.message_id) {
                seen.push(letter);
                new += 1;
            }
        }
        if new == 0 {
            break;
        }
    }
    for handle in handles {
        // Best effort: otherwise they re-appear after LIST_VISIBILITY anyway.
        let _ = sqs
            .change_message_visibility()
            .queue_url(&pair.dead_letters)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
    seen.truncate(max);
    Ok(seen)
}

/// What a replay did.
#[derive(Debug, Default, PartialEq)]
pub struct Replayed {
    pub replayed: Vec<DeadLetter>,
    /// Messages that could not be sent back; they stay in the dead-letter queue.
    pub failed: Vec<(DeadLetter, String)>,
}

impl Replayed {
    /// `--json`: what was sent back, and what was not with why.
    pub fn json(&self) -> Value {
        let failed: Vec<Value> = self
            .failed
            .iter()
            .map(|(letter, error)| serde_json::json!({ "dead_letter": letter, "error": error }))
            .collect();
        serde_json::json!({ "replayed": self.replayed, "failed": failed })
    }
}

/// Sends up to `max` dead letters back to their queue.
pub async fn replay(sqs: &Client, pair: &QueuePair, max: usize) -> anyhow::Result<Replayed> {
    let mut done = Replayed::default();
    let stamp = Utc::now().timestamp_millis();
    while done.replayed.len() + done.failed.len() < max {
        let batch = receive(sqs, &pair.dead_letters, REPLAY_VISIBILITY).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if done.replayed.len() + done.failed.len() >= max {
                release(sqs, pair, &message).await;
                continue;
            }
            let letter = describe(&message);
            match resend(sqs, pair, &message, stamp).await {
                Ok(()) => done.replayed.push(letter),
                // Left hidden, so this run does not receive it again.
                Err(error) => done.failed.push((letter, format!("{error:#}"))),
            }
        }
    }
    Ok(done)
}

async fn resend(
    sqs: &Client,
    pair: &QueuePair,
    message: &Message,
    stamp: i64,
) -> anyhow::Result<()> {
    let Some(body) = message.body() else {
        bail!("the message has no body");
    };
    let mut send = sqs.send_message().queue_url(&pair.url).message_body(body);
    if pair.fifo {
        let group = message
            .attributes()
            .and_then(|a| a.get(&Sys::MessageGroupId))
            .context("a FIFO dead letter without a message group")?;
        let id = message.message_id().unwrap_or_default();
        // A fresh id: the original may still be inside SQS's 5-minute dedup window.
        send = send
            .message_group_id(group)
            .message_deduplication_id(format!("replay-{stamp}-{id}"));
    }
    send.send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .context("sending it back")?;
    let handle = message.receipt_handle().context("no receipt handle")?;
    sqs.delete_message()
        .queue_url(&pair.dead_letters)
        .receipt_handle(handle)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
        .context("sent back, but not deleted from the dead-letter queue")?;
    Ok(())
}

async fn release(sqs: &Client, pair: &QueuePair, message: &Message) {
    if let Some(handle) = message.receipt_handle() {
        let _ = sqs
            .change_message_visibility()
            .queue_url(&pair.dead_letters)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

/// One line per dead letter.
pub fn print(
    out: &mut dyn std::io::Write,
    queue: &str,
    letters: &[DeadLetter],
) -> std::io::Result<()> {
    writeln!(out, "{queue}: {} dead letter(s)", letters.len())?;
    for l in letters {
        writeln!(
            out,
            "  {}  sent {}  received {}x{}  {}",
            l.message_id,
            l.sent_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "?".into()),
            l.receive_count.map_or("?".into(), |n| n.to_string()),
            l.group
                .as_deref()
                .map(|g| format!("  group {g}"))
                .unwrap_or_default(),
            l.about
        )?;
    }
    Ok(())
}
