//! Typed configuration, read once at cold start. Values come from the process
//! environment, overlaid by the JSON secret named in `SECRETS_ARN` (AWS Secrets
//! Manager) so that no secret sits in the function's plain environment.

use std::collections::HashMap;

use aws_config::SdkConfig;

use crate::inbound::Provider;
use crate::signature::{BodySignature, DEFAULT_TOLERANCE_SECS, SecretSet, TimestampedSignature};

/// A setting that is missing or unusable; names the variable, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("could not read the secret named by SECRETS_ARN: {0}")]
    Secrets(String),
}

/// Where settings are looked up: an overlay (from Secrets Manager, or a test's pairs)
/// first, then, unless isolated, the process environment.
#[derive(Debug, Default, Clone)]
pub struct Env {
    overlay: HashMap<String, String>,
    isolated: bool,
}

impl Env {
    /// The process environment alone.
    pub fn process() -> Self {
        Self::default()
    }

    /// Only these pairs, ignoring the process environment (for tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            overlay: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            isolated: true,
        }
    }

    /// The process environment, overlaid by the secret in `SECRETS_ARN` when set. The
    /// secret is a JSON object of variable names to string values, e.g.
    /// `{"SKIPUP_WEBHOOK_SECRETS": "whsec_a,whsec_b"}`.
    pub async fn load(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        let mut env = Self::process();
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
            env.overlay = parse_secret_json(text)?;
        }
        Ok(env)
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.overlay
            .get(key)
            .cloned()
            .or_else(|| {
                if self.isolated {
                    None
                } else {
                    std::env::var(key).ok()
                }
            })
            .filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, key: &'static str) -> Result<String, ConfigError> {
        self.get(key).ok_or(ConfigError::Missing(key))
    }

    pub fn u64_or(&self, key: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                var: key,
                reason: "expected a whole number".into(),
            }),
        }
    }
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

/// Default body limit: 256 KiB, as the largest SQS message was for years.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 * 1024;

/// Settings of `webhook-ingest`.
#[derive(Debug)]
pub struct IngestConfig {
    pub skipup: TimestampedSignature,
    pub skipcalls: BodySignature,
    pub skode: BodySignature,
    pub max_body_bytes: usize,
    pub crm_queue_url: String,
}

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secrets = |key| SecretSet::parse(&env.get(key).unwrap_or_default());
        let tolerance = env.u64_or("WEBHOOK_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECS)?;
        let max_body = env.u64_or("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        if max_body == 0 {
            return Err(ConfigError::Invalid {
                var: "MAX_BODY_BYTES",
                reason: "must be positive".into(),
            });
        }
        Ok(Self {
            skipup: TimestampedSignature::new(secrets("SKIPUP_WEBHOOK_SECRETS"), tolerance),
            skipcalls: BodySignature::skipcalls(secrets("SKIPCALLS_WEBHOOK_SECRETS")),
            skode: BodySignature::skode(secrets("SKODE_WEBHOOK_SECRETS")),
            max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
            crm_queue_url: env.required("CRM_QUEUE_URL")?,
        })
    }

    /// The secrets that verify `provider`'s deliveries.
    pub fn secrets(&self, provider: Provider) -> &SecretSet {
        match provider {
            Provider::SkipUp => self.skipup.secrets(),
            Provider::SkipCalls => self.skipcalls.secrets(),
            Provider::Skode => self.skode.secrets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_queue_url_is_named_in_the_error() {
        let err = IngestConfig::from_env(&Env::from_pairs([("SKIPUP_WEBHOOK_SECRETS", "s")]))
            .unwrap_err();
        assert_eq!(err.to_string(), "CRM_QUEUE_URL is not set");
    }

    #[test]
    fn defaults_apply_and_secrets_are_split_on_commas() {
        let config = IngestConfig::from_env(&Env::from_pairs([
            ("CRM_QUEUE_URL", "http://q"),
            ("SKIPUP_WEBHOOK_SECRETS", "old, new"),
        ]))
        .unwrap();
        assert_eq!(config.max_body_bytes, 262_144);
        assert_eq!(config.skipup.secrets().len(), 2);
        assert!(config.skipcalls.secrets().is_empty());
        assert!(config.skode.secrets().is_empty());
    }

    #[test]
    fn a_non_numeric_limit_is_refused_without_echoing_it() {
        let err = IngestConfig::from_env(&Env::from_pairs([
            ("CRM_QUEUE_URL", "http://q"),
            ("MAX_BODY_BYTES", "lots"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "MAX_BODY_BYTES is invalid: expected a whole number"
        );
    }

    #[test]
    fn the_secret_json_must_map_names_to_strings() {
        let parsed = parse_secret_json(r#"{"SKODE_WEBHOOK_SECRETS":"a,b"}"#).unwrap();
        assert_eq!(parsed["SKODE_WEBHOOK_SECRETS"], "a,b");
        assert!(parse_secret_json("[1]").is_err());
        let err = parse_secret_json(r#"{"X":1}"#).unwrap_err();
        assert!(err.to_string().contains("X is not a string"));
    }

    #[test]
    fn the_config_debug_output_hides_secrets() {
        let config = IngestConfig::from_env(&Env::from_pairs([
            ("CRM_QUEUE_URL", "http://q"),
            ("SKODE_WEBHOOK_SECRETS", "very-secret-value"),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret-value"));
    }
}
