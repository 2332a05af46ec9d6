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
