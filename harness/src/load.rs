//! A bounded load on the local stack's webhook route: the local stack (the same
//! `webhook-ingest` handler as the Lambda function, in-memory ports, no queue
//! consumers) serves on one thread, so on one core; a load generator on another
//! thread keeps `connections` keep-alive connections busy with signed SkipUp
//! deliveries, each with its own event id, until `requests` were sent or
//! `max_duration` passed. Then the CRM queue is drained and every accepted delivery's
//! event id must be in it exactly once: the proof that an answered 200 means queued.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use shared::config::Env;
use shared::signature::{TimestampedSignature, WebhookSecret};
use tokio::sync::oneshot;

use crate::cold::Stats;
use recovery::stack::{Options, Stack, local_defaults};

/// How much load, and for how long at most.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub requests: usize,
    pub connections: usize,
    pub max_duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub sent: usize,
    pub accepted: usize,
    /// Answers other than 200, by status (none expected).
    pub refused: HashMap<u16, usize>,
    pub seconds: f64,
    pub accepted_per_second: f64,
    pub latency: Stats,
    /// Messages found in the CRM queue afterwards.
    pub queued: usize,
    /// Accepted event ids that are not in the queue (must be empty).
    pub missing: Vec<String>,
    /// Event ids queued more than once (must be empty).
    pub duplicated: Vec<String>,
}

impl LoadReport {
    /// Every accepted delivery reached the queue, once, and nothing else did.
    pub fn nothing_lost(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.queued == self.accepted
    }
}

const SECRET: &str = "whsec_load";

/// The local stack on a thread of its own (a single-threaded runtime: one core), with
/// a way to stop it and collect what its CRM queue holds.
struct Server {
    url: String,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<Vec<String>>>,
}

impl Server {
    async fn start() -> anyhow::Result<Self> {
        let (ready, url) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let options = Options {
                    port: 0,
                    env: Env::from_pairs([
                        ("SKIPUP_WEBHOOK_SECRETS", SECRET),
                        // No sandbox: nothing else runs on this core.
                        ("SKIPUP_BASE_URL", "http://127.0.0.1:9/api/v1"),
                    ])
                    .with_defaults(local_defaults()),
                    sandbox: Default::default(),
                    hubspot: None,
                    salesforce: None,
                    retry_scale: 1.0,
                    workers: 0,
                    sdk: None,
                    allow_aws: false,
                    controls: Default::default(),
                };
                let stack = Stack::start(options).await?;
                let _ = ready.send(stack.url().to_string());
                let _ = stopped.await;
                let mut ids = Vec::new();
                for message in stack.drain_crm_queue().await {
                    let body: Value = serde_json::from_str(message.body.as_deref().unwrap_or(""))?;
                    ids.push(
                        body["event_id"]
                            .as_str()
                            .context("no event id")?
                            .to_string(),
                    );
                }
                Ok(ids)
            })
        });
        match url.await {
            Ok(url) => Ok(Self { url, stop, thread }),
            // The thread ended before it had a URL: its error says why.
            Err(_) => Err(match thread.join() {
                Ok(Err(error)) => error.context("the local stack did not start"),
                _ => anyhow::anyhow!("the local stack's thread ended without starting"),
            }),
        }
    }

    fn stop(self) -> anyhow::Result<Vec<String>> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the local stack's thread panicked"))?
    }
}

/// One signed delivery, ready to send.
struct Delivery {
    event_id: String,
    body: String,
    signature: String,
}

fn deliveries(n: usize) -> anyhow::Result<Vec<Delivery>> {
    let secret = WebhookSecret::new(SECRET)?;
    let now = Utc::now().timestamp();
    Ok((0..n)
        .map(|i| {
            let event_id = format!("evt_load_{i:07}");
            let body = json!({
                "id": event_id,
                "type": "meeting_request.booked",
                "created_at": "2026-11-22T09:58:41Z",
                "data": {
                    "id": format!("mr_load{i:07}"),
                    "participant_emails": [format!("p{i}@prospect.example")],
                    "status": "booked",
                },
            })
            .to_string();
            let signature = TimestampedSignature::sign(&secret, now, body.as_bytes());
            Delivery {
                event_id,
                body,
                signature,
            }
        })
        .collect())
}

/// Runs the load and checks the queue afterwards.
pub async fn run(settings: &LoadSettings) -> anyhow::Result<LoadReport> {
    ensure!(settings.connections > 0, "at least one connection");
    let server = Server::start().await?;
    let endpoint = format!("{}/webhooks/skipup", server.url);
    let work = std::sync::Arc::new(std::sync::Mutex::new(deliveries(settings.requests)?));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let began = Instant::now();
    let deadline = began + settings.max_duration;
    let workers: Vec<_> = (0..settings.connections)
        .map(|_| {
            let (client, endpoint, work) = (client.clone(), endpoint.clone(), work.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < deadline {
                    let Some(delivery) = work.lock().unwrap().pop() else {
                        break;
                    };
                    let sent = Instant::now();
                    let status = client
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .header(TimestampedSignature::HEADER, &delivery.signature)
                        .body(delivery.body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    answers.push((delivery.event_id, status, sent.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await?);
    }
    let seconds = began.elapsed().as_secs_f64();
    let queued_ids = server.stop()?;

    tally(&answers, &queued_ids, seconds)
}

/// The report of the answers (event id, HTTP status or 0 when none came, latency)
/// against the event ids found in the queue afterwards.
fn tally(
    answers: &[(String, u16, Duration)],
    queued_ids: &[String],
    seconds: f64,
) -> anyhow::Result<LoadReport> {
    let mut refused = HashMap::new();
    let mut accepted = Vec::new();
    for (event_id, status, _) in answers {
        if *status == 200 {
            accepted.push(event_id);
        } else {
            *refused.entry(*status).or_insert(0) += 1;
        }
    }
    let mut in_queue: HashMap<&str, usize> = HashMap::new();
    for id in queued_ids {
        *in_queue.entry(id.as_str()).or_insert(0) += 1;
    }
    let mut duplicated: Vec<String> = in_queue
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    duplicated.sort();
    let latencies: Vec<Duration> = answers.iter().map(|(_, _, took)| *took).collect();
    Ok(LoadReport {
        sent: answers.len(),
        accepted: accepted.len(),
        refused,
        seconds,
        accepted_per_second: accepted.len() as f64 / seconds,
        latency: Stats::of(&latencies).context("no request was sent")?,
        queued: queued_ids.len(),
        missing: accepted
            .iter()
            .filter(|id| !in_queue.contains_key(id.as_str()))
            .map(|id| id.to_string())
            .collect(),
        duplicated,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::tally;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn a_delivery_missing_from_the_queue_or_queued_twice_is_reported() {
        let answers: Vec<(String, u16, Duration)> = [("a", 200), ("b", 200), ("c", 503), ("d", 0)]
            .into_iter()
            .map(|(id, status)| (id.to_string(), status, Duration::from_millis(2)))
            .collect();
        let all_there = tally(&answers, &ids(&["b", "a"]), 1.0).unwrap();
        assert!(all_there.nothing_lost(), "{all_there:?}");
        assert_eq!((all_there.sent, all_there.accepted), (4, 2));
        assert_eq!(all_there.refused.len(), 2);

        let lost = tally(&answers, &ids(&["a"]), 1.0).unwrap();
        assert_eq!(lost.missing, ids(&["b"]));
        assert!(!lost.nothing_lost());

        let twice = tally(&answers, &ids(&["a", "b", "a"]), 1.0).unwrap();
        assert_eq!(twice.duplicated, ids(&["a"]));
        assert!(!twice.nothing_lost());

        // A refused delivery that was queued anyway is not what was answered.
        let extra = tally(&answers, &ids(&["a", "b", "c"]), 1.0).unwrap();
        assert!(extra.missing.is_empty() && extra.duplicated.is_empty());
        assert!(!extra.nothing_lost());
        assert!(tally(&[], &[], 1.0).is_err(), "no answer, no figures");
    }
}
