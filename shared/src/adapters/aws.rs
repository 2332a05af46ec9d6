//! Shared AWS SDK configuration: built once per cold start, with timeouts tight enough
//! that a webhook sender (10 s budget) hears back before it gives up.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region, credentials and `AWS_ENDPOINT_URL` from the environment, as the SDK
/// does, with bounded timeouts: 1 s to connect, 2 s per attempt, 5 s in all (the
/// standard retry mode makes up to 3 attempts with jittered backoff).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await
}

/// How long a cold start waits for a warm-up call before going on without it.
pub const WARM_UP_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs one cheap call at cold start so that the connection (DNS, TCP, TLS) is open
/// before the first event: a webhook sender then waits for the call, not for the
/// handshake. A failure only logs: the first event retries as usual, and the log says
/// early that the resource is unreachable or misnamed.
pub async fn warm_up<T, E: std::fmt::Display>(
    service: &'static str,
    call: impl Future<Output = Result<T, E>>,
) {
    match tokio::time::timeout(WARM_UP_TIMEOUT, call).await {
        Ok(Ok(_)) => tracing::debug!(service, "connection warmed up"),
        Ok(Err(error)) => tracing::warn!(service, %error, "warm-up call failed at cold start"),
        Err(_) => tracing::warn!(service, "warm-up call timed out at cold start"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_warm_up_that_fails_or_hangs_only_delays_the_cold_start_by_its_cap() {
        let started = tokio::time::Instant::now();
        warm_up("sqs", async { Err::<(), _>("connection refused") }).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        warm_up("dynamodb", std::future::pending::<Result<(), String>>()).await;
        assert_eq!(started.elapsed(), WARM_UP_TIMEOUT);
    }
}
