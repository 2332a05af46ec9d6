//! SkipUp calls paced under its rate limit: evenly spaced at a chosen share of the
//! limit, and, when SkipUp still answers 429, paused for its `Retry-After` (else an
//! exponential backoff) and retried. For bulk work such as a backfill; the Lambda
//! functions are paced by the event source's maximum concurrency instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::lead::EmailAddress;
use crate::ports::SkipUpApi;
use crate::skipup::{
    CreateMeetingRequest, CreatedWebhookEndpoint, MeetingRequest, NewWebhookEndpoint, SkipUpError,
    WebhookEndpoint, WorkspaceMember,
};

/// At most `requests` calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub requests: u32,
    pub per: Duration,
}

impl Pace {
    /// SkipUp's documented limit: 120 requests per minute per API key.
    pub const SKIPUP_LIMIT: Pace = Pace {
        requests: 120,
        per: Duration::from_secs(60),
    };

    /// `share` of this pace (rounded down, at least one request).
    pub fn share(self, share: f64) -> Pace {
        Pace {
            requests: ((self.requests as f64 * share).floor() as u32).max(1),
            per: self.per,
        }
    }

    /// Time between two calls.
    pub fn interval(self) -> Duration {
        self.per / self.requests.max(1)
    }
}

/// What the pacer saw.
#[derive(Debug, Default)]
pub struct PaceStats {
    /// Calls sent to SkipUp, retries included.
    pub calls: AtomicU64,
    /// Of those, answered 429.
    pub rate_limited: AtomicU64,
    /// When the first and the latest call were sent.
    span: std::sync::Mutex<Option<(Instant, Instant)>>,
}

impl PaceStats {
    fn sent(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut span = self.span.lock().unwrap_or_else(|p| p.into_inner());
        *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
    }

    /// Calls per `per` from the first call to the latest, once there were two.
    pub fn rate(&self, per: Duration) -> Option<f64> {
        let (first, last) = (*self.span.lock().unwrap_or_else(|p| p.into_inner()))?;
        let calls = self.calls.load(Ordering::Relaxed);
        let took = last.duration_since(first).as_secs_f64();
        (calls >= 2 && took > 0.0).then(|| (calls - 1) as f64 / took * per.as_secs_f64())
    }
}

/// When the next call may start, and until when a 429 holds every call back.
struct Schedule {
    next_slot: Instant,
    paused_until: Instant,
}

/// A [`SkipUpApi`] whose calls are spaced by [`Pace::interval`]; a 429 pauses every
/// caller and retries the same call (same idempotency key), up to `max_retries`.
pub struct PacedSkipUp {
    inner: Arc<dyn SkipUpApi>,
    interval: Duration,
    schedule: Mutex<Schedule>,
    max_retries: u32,
    /// Longest pause after a 429 without `Retry-After`.
    max_backoff: Duration,
    pub stats: PaceStats,
}

impl PacedSkipUp {
    pub fn new(inner: Arc<dyn SkipUpApi>, pace: Pace) -> Self {
        Self {
            inner,
            interval: pace.interval(),
            schedule: Mutex::new(Schedule {
                next_slot: Instant::now(),
                paused_until: Instant::now(),
            }),
            max_retries: 8,
            max_backoff: pace.per,
            stats: PaceStats::default(),
        }
    }

    /// Waits for this caller's slot; a pause that began while it waited sends it
    /// back for a slot after the pause.
    async fn slot(&self) {
        loop {
            let at = {
                let mut schedule = self.schedule.lock().await;
                let at = schedule.next_slot.max(Instant::now());
                schedule.next_slot = at + self.interval;
                at
            };
            tokio::time::sleep_until(at).await;
            if Instant::now() >= self.schedule.lock().await.paused_until {
                break;
            }
        }
        self.stats.sent();
    }

    /// Holds every caller back for `pause`, those already waiting for a slot too.
    async fn pause(&self, pause: Duration) {
        let mut schedule = self.schedule.lock().await;
        let until = Instant::now() + pause;
        schedule.next_slot = schedule.next_slot.max(until);
        schedule.paused_until = schedule.paused_until.max(until);
    }

    async fn paced<T, F, Fut>(&self, call: F) -> Result<T, SkipUpError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T, SkipUpError>> + Send,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            self.slot().await;
            match call().await {
                Err(SkipUpError::RateLimited { retry_after }) if attempt < self.max_retries => {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let backoff = Duration::from_secs(1 << attempt.min(10)).min(self.max_backoff);
                    let pause = retry_after.unwrap_or(backoff);
                    tracing::warn!(
                        pause_ms = pause.as_millis() as u64,
                        attempt,
                        "SkipUp rate limit reached; pausing"
                    );
                    self.pause(pause).await;
                    attempt += 1;
                }
                other => {
                    if matches!(other, Err(SkipUpError::RateLimited { .. })) {
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    }
                    return other;
                }
            }
        }
    }
}

#[async_trait]
impl SkipUpApi for PacedSkipUp {
    async fn create_meeting_request(
        &self,
        idempotency_key: &str,
        request: &CreateMeetingRequest,
    ) -> Result<MeetingRequest, SkipUpError> {
        self.paced(|| self.inner.create_meeting_request(idempotency_key, request))
            .await
    }

    async fn get_meeting_request(&self, id: &str) -> Result<MeetingRequest, SkipUpError> {
        self.paced(|| self.inner.get_meeting_request(id)).await
    }

    async fn cancel_meeting_request(
        &self,
        id: &str,
        idempotency_key: &str,
        notify: bool,
    ) -> Result<MeetingRequest, SkipUpError> {
        self.paced(|| {
            self.inner
                .cancel_meeting_request(id, idempotency_key, notify)
        })
        .await
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, SkipUpError> {
        self.paced(|| self.inner.list_webhook_endpoints()).await
    }

    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> Result<CreatedWebhookEndpoint, SkipUpError> {
        self.paced(|| self.inner.create_webhook_endpoint(endpoint))
            .await
    }

    async fn find_workspace_member(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<WorkspaceMember>, SkipUpError> {
        self.paced(|| self.inner.find_workspace_member(email)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::fakes::ScriptedSkipUp;

    #[test]
    fn a_share_of_the_limit_rounds_down() {
        let pace = Pace::SKIPUP_LIMIT.share(0.97);
        assert_eq!(pace.requests, 116);
        assert_eq!(pace.interval(), Duration::from_secs(60) / 116);
        assert_eq!(Pace::SKIPUP_LIMIT.share(0.0).requests, 1);
    }

    fn request() -> CreateMeetingRequest {
        serde_json::from_value(serde_json::json!({
            "organizer_email": "owner@vendor.example",
            "participants": [{ "email": "dana@northwind.example" }],
            "include_introduction": true,
            "context": {
                "title": "Product demo", "purpose": "demo", "description": "",
                "duration_minutes": 30,
                "timeframe": { "start": "2026-11-23T00:00:00Z", "end": "2026-12-07T00:00:00Z" }
            }
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_and_a_429_pauses_then_retries_the_same_call() {
        let fake = Arc::new(ScriptedSkipUp::default());
        let limited = || {
            Err(SkipUpError::RateLimited {
                retry_after: Some(Duration::from_secs(5)),
            })
        };
        fake.then([limited(), limited()]);
        let pace = Pace {
            requests: 10,
            per: Duration::from_secs(1),
        };
        let paced = PacedSkipUp::new(fake.clone(), pace);
        let start = Instant::now();
        paced
            .create_meeting_request("k1", &request())
            .await
            .unwrap();
        // Two 429s with Retry-After 5 s each, then the answer.
        assert_eq!(paced.stats.calls.load(Ordering::Relaxed), 3);
        assert_eq!(paced.stats.rate_limited.load(Ordering::Relaxed), 2);
        assert!(start.elapsed() >= Duration::from_secs(10));
        let keys: Vec<String> = fake.calls().into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["k1", "k1", "k1"], "the retries reuse the key");
        let before = Instant::now();
        for i in 0..5 {
            paced
                .create_meeting_request(&format!("k{i}"), &request())
                .await
                .unwrap();
        }
        // Five more calls, 100 ms apart, the first one in the slot after the last.
        assert_eq!(before.elapsed(), Duration::from_millis(500));
        // Eight calls over 10.5 s of paused time (two 5 s pauses, then 100 ms apart).
        let rate = paced.stats.rate(Duration::from_secs(1)).unwrap();
        assert!((rate - 7.0 / 10.5).abs() < 1e-9, "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn callers_already_waiting_for_a_slot_wait_out_a_pause_too() {
        let fake = Arc::new(ScriptedSkipUp::default());
        fake.then([Err(SkipUpError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        })]);
        let pace = Pace {
            requests: 10,
            per: Duration::from_secs(1),
        };
        let paced = Arc::new(PacedSkipUp::new(fake.clone(), pace));
        let start = Instant::now();
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let paced = paced.clone();
                tokio::spawn(async move {
                    paced
                        .create_meeting_request(&format!("k{i}"), &request())
                        .await
                        .unwrap();
                    start.elapsed()
                })
            })
            .collect();
        // The first call was refused at 0 s; the two waiting for their slots at 0.1 s
        // and 0.2 s go only after the 3 s pause, like the retry.
        for call in calls {
            let done = call.await.unwrap();
            assert!(
                done >= Duration::from_secs(3),
                "a call went during the pause: {done:?}"
            );
        }
        assert_eq!(
            paced.stats.calls.load(Ordering::Relaxed),
            4,
            "three calls, one retry"
        );
        assert_eq!(paced.stats.rate_limited.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_that_does_not_end_is_returned_after_the_retries() {
        let fake = Arc::new(ScriptedSkipUp::default());
        fake.then((0..20).map(|_| Err(SkipUpError::RateLimited { retry_after: None })));
        let paced = PacedSkipUp::new(fake.clone(), Pace::SKIPUP_LIMIT);
        let error = paced
            .create_meeting_request("k", &request())
            .await
            .unwrap_err();
        assert!(matches!(error, SkipUpError::RateLimited { .. }));
        assert_eq!(fake.calls().len(), 9, "the call and eight retries");
    }
}
