//! Shared AWS SDK configuration: built once per cold start, with timeouts tight enough
//! that a webhook sender (10 s budget) hears back before it gives up.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use std::collections::HashMap;

use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::{ConfigError, Env};

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

/// The process environment, overlaid by the secret in `SECRETS_ARN` when set. The
/// secret is a JSON object of variable names to string values, e.g.
/// `{"SKIPUP_WEBHOOK_SECRETS": "whsec_a,whsec_b"}`.
pub async fn load_env(sdk: &SdkConfig) -> Result<Env, ConfigError> {
    let env = Env::process();
    if let Some(arn) = env.get("SECRETS_ARN") {
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let secret = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                ConfigError::Secrets(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        let text = secret
            .secret_string()
            .ok_or_else(|| ConfigError::Secrets("the secret has no string value".into()))?;
        return Ok(env.with_overlay(parse_secret_json(text)?));
    }
    Ok(env)
}

fn parse_secret_json(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| ConfigError::Secrets("the secret is not a JSON object".into()))?;
    let object = value
        .as_object()
        .ok_or_else(|| ConfigError::Secrets("the secret is not a JSON object".into()))?;
    object
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(ConfigError::Secrets(format!(
                "the value of {k} is not a string"
            ))),
        })
        .collect()
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

    #[test]
    fn the_secret_json_must_map_names_to_strings() {
        let parsed = parse_secret_json(r#"{"SKODE_WEBHOOK_SECRETS":"a,b"}"#).unwrap();
        assert_eq!(parsed["SKODE_WEBHOOK_SECRETS"], "a,b");
        assert!(parse_secret_json("[1]").is_err());
        let err = parse_secret_json(r#"{"X":1}"#).unwrap_err();
        assert!(err.to_string().contains("X is not a string"));
    }
}
