//! Typed configuration, read once at cold start. Values come from the process
//! environment, overlaid by the JSON secret named in `SECRETS_ARN` (AWS Secrets
//! Manager) so that no secret sits in the function's plain environment.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

use crate::connectors::{Connectors, Provider};
use crate::crm::{
    CrmSettings, HUBSPOT_BASE_URL, HubSpotSettings, SALESFORCE_API_VERSION, SKODE_BASE_URL,
    SalesforceSettings, SalesforceStatusMap, SkodeSettings, WebhookSettings,
};
use crate::handlers::apply_events::ApplySettings;
use crate::handlers::reconcile::ReconcileSettings;
use crate::intake::IntakeSettings;
use crate::lead::EmailAddress;
use crate::pacing::Pace;
use crate::recovery::{RecoverySettings, RequestSettings};
use crate::signature::{DEFAULT_TOLERANCE_SECS, SecretSet, TimestampedSignature, WebhookSecret};
use crate::skipup::{DEFAULT_BASE_URL, SkipUpSettings};
use crate::suppression::{Caps, MAX_CAP, SuppressionList};

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
/// first, then, unless isolated, the process environment. Its `Debug` names the
/// variables set, never their values (the overlay holds every secret).
#[derive(Default, Clone)]
pub struct Env {
    overlay: HashMap<String, String>,
    isolated: bool,
    /// Used when neither the overlay nor the process sets a variable (local stack).
    defaults: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut overlay: Vec<&str> = self.overlay.keys().map(String::as_str).collect();
        overlay.sort_unstable();
        let mut defaults: Vec<&str> = self.defaults.keys().map(String::as_str).collect();
        defaults.sort_unstable();
        f.debug_struct("Env")
            .field("overlay", &overlay)
            .field("isolated", &self.isolated)
            .field("defaults", &defaults)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// The process environment alone.
    pub fn process() -> Self {
        Self::default()
    }

    /// Nothing set: every setting at its default.
    pub fn empty() -> Self {
        Self {
            isolated: true,
            ..Self::default()
        }
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
            defaults: HashMap::new(),
        }
    }

    /// These values wherever the environment leaves a variable unset.
    pub fn with_defaults<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.defaults
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// These pairs over the environment (the JSON secret named by `SECRETS_ARN`,
    /// which [`crate::adapters::aws::load_env`] reads).
    pub fn with_overlay(mut self, pairs: HashMap<String, String>) -> Self {
        self.overlay = pairs;
        self
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
            .or_else(|| self.defaults.get(key).cloned())
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

    /// A whole number within `range`, `default` when unset.
    pub fn u64_in(
        &self,
        key: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let value = self.u64_or(key, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                var: key,
                reason: format!("must be between {} and {}", range.start(), range.end()),
            })
        }
    }

    /// Seconds, fractions allowed (`0.5`), within `range`, `default` when unset.
    pub fn fractional_seconds(
        &self,
        key: &'static str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Duration, ConfigError> {
        let value = match self.get(key) {
            None => default,
            Some(v) => v.trim().parse::<f64>().map_err(|_| ConfigError::Invalid {
                var: key,
                reason: "expected a number of seconds".into(),
            })?,
        };
        if range.contains(&value) {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(ConfigError::Invalid {
                var: key,
                reason: format!("must be between {} and {}", range.start(), range.end()),
            })
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`), `default` when unset.
    pub fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .get(key)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(_) => Err(ConfigError::Invalid {
                var: key,
                reason: "expected true or false".into(),
            }),
        }
    }

    pub fn email(&self, key: &'static str) -> Result<EmailAddress, ConfigError> {
        EmailAddress::parse(&self.required(key)?).map_err(|reason| ConfigError::Invalid {
            var: key,
            reason: reason.into(),
        })
    }

    /// A comma-separated list (trimmed, empty items dropped), `default` when unset.
    pub fn list(&self, key: &str, default: &str) -> Vec<String> {
        self.get(key)
            .unwrap_or_else(|| default.to_string())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub(crate) fn seconds(
        &self,
        key: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<chrono::Duration, ConfigError> {
        let secs = self.u64_in(key, default, range)?;
        Ok(chrono::Duration::seconds(
            i64::try_from(secs).unwrap_or(i64::MAX),
        ))
    }
}

/// Default body limit: 256 KiB, as the largest SQS message was for years.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 * 1024;

/// Settings of `webhook-ingest`.
#[derive(Debug)]
pub struct IngestConfig {
    /// Each connector's verifier (its `*_WEBHOOK_SECRETS`) and field mapping.
    pub connectors: Connectors,
    pub max_body_bytes: usize,
    pub crm_queue_url: String,
}

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max_body = env.u64_or("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        if max_body == 0 {
            return Err(ConfigError::Invalid {
                var: "MAX_BODY_BYTES",
                reason: "must be positive".into(),
            });
        }
        Ok(Self {
            connectors: Connectors::from_env(env)?,
            max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
            crm_queue_url: env.required("CRM_QUEUE_URL")?,
        })
    }

    /// The secrets that verify `provider`'s deliveries.
    pub fn secrets(&self, provider: Provider) -> &SecretSet {
        self.connectors.get(provider).verifier.secrets()
    }
}

/// Where leads live and where their checks are queued (every lead-handling function).
#[derive(Debug, Clone)]
pub struct LeadResources {
    pub leads_table: String,
    pub check_queue_url: String,
}

impl LeadResources {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            leads_table: env.required("LEADS_TABLE")?,
            check_queue_url: env.required("CHECK_QUEUE_URL")?,
        })
    }
}

/// `RECOVERY_DELAY_SECONDS` (default 1800, up to 24 h) and
/// `RESUBMIT_WINDOW_SECONDS` (default 24 h, up to 30 days).
pub fn intake_settings(env: &Env) -> Result<IntakeSettings, ConfigError> {
    Ok(IntakeSettings {
        delay: env.seconds("RECOVERY_DELAY_SECONDS", 1800, 0..=86_400)?,
        resubmit_window: env.seconds("RESUBMIT_WINDOW_SECONDS", 86_400, 0..=2_592_000)?,
    })
}

/// Checks a URL the pipeline sends its keys or leads to: `https://`, or `http://` to
/// a loopback host only (the local stack, its doubles, tests). Nothing else may carry
/// a bearer key or a prospect's data in clear.
pub fn check_outbound_url(url: &str) -> Result<(), String> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") && lower.len() > "https://".len() {
        return Ok(());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err("must be an https:// URL".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry credentials".into());
    }
    if is_loopback_authority(authority) {
        Ok(())
    } else {
        Err("must be an https:// URL (http:// only to a loopback address)".into())
    }
}

/// Whether a URL's `host[:port]` names this machine: `localhost`, `127.0.0.0/8` or
/// `[::1]`.
pub fn is_loopback_authority(authority: &str) -> bool {
    let authority = authority.trim().to_ascii_lowercase();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` (any scheme) points at this machine (see [`is_loopback_authority`]).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.trim().split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.contains('@') && is_loopback_authority(authority)
}

fn outbound_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    check_outbound_url(url).map_err(|reason| ConfigError::Invalid { var, reason })
}

/// `SKIPUP_BASE_URL`, `SKIPUP_API_KEY` and `SKIPUP_TIMEOUT_SECONDS` (default 10).
pub fn skipup_settings(env: &Env) -> Result<SkipUpSettings, ConfigError> {
    let base_url = env
        .get("SKIPUP_BASE_URL")
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    outbound_url("SKIPUP_BASE_URL", &base_url)?;
    Ok(SkipUpSettings {
        base_url,
        api_key: SecretString::from(env.required("SKIPUP_API_KEY")?),
        connect_timeout: Duration::from_secs(3),
        timeout: Duration::from_secs(env.u64_in("SKIPUP_TIMEOUT_SECONDS", 10, 1..=60)?),
    })
}

/// The CRM connectors, each optional and turned on by its own setting alone: Skode
/// when `SKODE_API_KEY` is set (`SKODE_BASE_URL`, `SKODE_STATUS_FIELD`,
/// `SKODE_TAG_PREFIX`, `SKODE_PAUSE_TAG`); HubSpot when `HUBSPOT_ACCESS_TOKEN` is set
/// (`HUBSPOT_BASE_URL`, `HUBSPOT_STATUS_PROPERTY`, `HUBSPOT_CREATE_CONTACTS`);
/// Salesforce when `SALESFORCE_INSTANCE_URL` is set (with `SALESFORCE_CLIENT_ID` and
/// `SALESFORCE_CLIENT_SECRET`; `SALESFORCE_API_VERSION`, `SALESFORCE_STATUS_MAP`,
/// `SALESFORCE_CREATE_LEADS`); the signed outbound webhook when `CRM_WEBHOOK_URL` is
/// set (with `CRM_WEBHOOK_SECRET`). `CRM_TIMEOUT_SECONDS` (default 5) for all.
pub fn crm_settings(env: &Env) -> Result<CrmSettings, ConfigError> {
    let timeout = env.fractional_seconds("CRM_TIMEOUT_SECONDS", 5.0, 0.1..=10.0)?;
    let text = |key, default: &str| env.get(key).unwrap_or_else(|| default.to_string());
    for var in [
        "SKODE_BASE_URL",
        "HUBSPOT_BASE_URL",
        "SALESFORCE_INSTANCE_URL",
    ] {
        if let Some(url) = env.get(var) {
            outbound_url(var, &url)?;
        }
    }
    let skode = env.get("SKODE_API_KEY").map(|api_key| SkodeSettings {
        base_url: text("SKODE_BASE_URL", SKODE_BASE_URL),
        api_key: SecretString::from(api_key),
        status_field: text("SKODE_STATUS_FIELD", "recovery_status"),
        tag_prefix: text("SKODE_TAG_PREFIX", "recovery-"),
        pause_tag: text("SKODE_PAUSE_TAG", "nurture-paused"),
        timeout,
    });
    let hubspot = match env.get("HUBSPOT_ACCESS_TOKEN") {
        None => None,
        Some(token) => Some(HubSpotSettings {
            base_url: text("HUBSPOT_BASE_URL", HUBSPOT_BASE_URL),
            access_token: SecretString::from(token),
            status_property: hubspot_property(&text(
                "HUBSPOT_STATUS_PROPERTY",
                "lead_recovery_status",
            ))?,
            create_contacts: env.flag("HUBSPOT_CREATE_CONTACTS", true)?,
            timeout,
        }),
    };
    let salesforce = match env.get("SALESFORCE_INSTANCE_URL") {
        None => None,
        Some(instance_url) => Some(SalesforceSettings {
            instance_url,
            client_id: env.required("SALESFORCE_CLIENT_ID")?,
            client_secret: SecretString::from(env.required("SALESFORCE_CLIENT_SECRET")?),
            api_version: salesforce_version(&text(
                "SALESFORCE_API_VERSION",
                SALESFORCE_API_VERSION,
            ))?,
            status_map: SalesforceStatusMap::parse(
                &env.get("SALESFORCE_STATUS_MAP").unwrap_or_default(),
            )
            .map_err(|reason| ConfigError::Invalid {
                var: "SALESFORCE_STATUS_MAP",
                reason,
            })?,
            create_leads: env.flag("SALESFORCE_CREATE_LEADS", false)?,
            timeout,
        }),
    };
    let webhook = match env.get("CRM_WEBHOOK_URL") {
        None => None,
        Some(url) => {
            outbound_url("CRM_WEBHOOK_URL", &url)?;
            let secret =
                WebhookSecret::new(&env.required("CRM_WEBHOOK_SECRET")?).map_err(|_| {
                    ConfigError::Invalid {
                        var: "CRM_WEBHOOK_SECRET",
                        reason: "must not be empty".into(),
                    }
                })?;
            Some(WebhookSettings {
                url,
                secret,
                timeout,
            })
        }
    };
    Ok(CrmSettings {
        skode,
        hubspot,
        salesforce,
        webhook,
    })
}

/// A HubSpot property's internal name: lowercase letters, digits and `_`, starting
/// with a letter (it goes into request paths and bodies).
fn hubspot_property(name: &str) -> Result<String, ConfigError> {
    let valid = name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(ConfigError::Invalid {
            var: "HUBSPOT_STATUS_PROPERTY",
            reason: "an internal property name: lowercase letters, digits and _".into(),
        })
    }
}

/// `v66.0`, or `66.0` (the `v` is added).
fn salesforce_version(raw: &str) -> Result<String, ConfigError> {
    let number = raw.trim().trim_start_matches('v');
    let valid = number.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.chars().all(|c| c.is_ascii_digit())
            && minor.chars().all(|c| c.is_ascii_digit())
    });
    if valid {
        Ok(format!("v{number}"))
    } else {
        Err(ConfigError::Invalid {
            var: "SALESFORCE_API_VERSION",
            reason: "expected a version like v66.0".into(),
        })
    }
}

/// Settings of `form-intake`.
#[derive(Debug)]
pub struct FormConfig {
    pub signature: TimestampedSignature,
    pub max_body_bytes: usize,
    pub resources: LeadResources,
    pub intake: IntakeSettings,
}

/// Default body limit of a form submission: 64 KiB.
pub const DEFAULT_FORM_MAX_BODY_BYTES: u64 = 64 * 1024;

impl FormConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let tolerance = env.u64_or("WEBHOOK_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECS)?;
        Ok(Self {
            signature: TimestampedSignature::new(
                SecretSet::parse(&env.get("FORM_WEBHOOK_SECRETS").unwrap_or_default()),
                tolerance,
            ),
            max_body_bytes: env.u64_in(
                "MAX_BODY_BYTES",
                DEFAULT_FORM_MAX_BODY_BYTES,
                1..=1_048_576,
            )? as usize,
            resources: LeadResources::from_env(env)?,
            intake: intake_settings(env)?,
        })
    }
}

/// Settings of `recovery-check`.
#[derive(Debug)]
pub struct RecoveryConfig {
    pub resources: LeadResources,
    pub skipup: SkipUpSettings,
    pub recovery: RecoverySettings,
    pub crm: CrmSettings,
}

impl RecoveryConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            resources: LeadResources::from_env(env)?,
            skipup: skipup_settings(env)?,
            recovery: RecoverySettings {
                default_organizer: env.email("DEFAULT_ORGANIZER_EMAIL")?,
                request: RequestSettings {
                    title: env
                        .get("MEETING_TITLE")
                        .unwrap_or_else(|| "Product demo".into()),
                    duration_minutes: env.u64_in("MEETING_DURATION_MINUTES", 30, 5..=480)? as u32,
                    timeframe_days: env.u64_in("MEETING_TIMEFRAME_DAYS", 14, 1..=60)? as u32,
                },
                member_cache: Duration::from_secs(env.u64_in(
                    "MEMBER_CACHE_SECONDS",
                    300,
                    0..=86_400,
                )?),
                lease: env.seconds("RECOVERY_LEASE_SECONDS", 60, 15..=900)?,
                suppression: SuppressionList::parse(
                    env.list("SUPPRESS_LIST", "").iter().map(String::as_str),
                    env.flag("SUPPRESS_ROLE_ADDRESSES", true)?,
                )
                .map_err(|reason| ConfigError::Invalid {
                    var: "SUPPRESS_LIST",
                    reason,
                })?,
                caps: Caps {
                    per_day: env.u64_in(
                        "MAX_RECOVERIES_PER_DAY",
                        Caps::default().per_day.into(),
                        0..=MAX_CAP.into(),
                    )? as u32,
                    per_domain_per_day: env.u64_in(
                        "MAX_RECOVERIES_PER_DOMAIN_PER_DAY",
                        Caps::default().per_domain_per_day.into(),
                        0..=MAX_CAP.into(),
                    )? as u32,
                },
            },
            crm: crm_settings(env)?,
        })
    }
}

/// Settings of `webhook-health`.
#[derive(Debug)]
pub struct HealthConfig {
    pub skipup: SkipUpSettings,
    /// `ALERT_TOPIC_ARN`: the SNS topic told of disabled endpoints (optional).
    pub alert_topic_arn: Option<String>,
    /// `ALERT_WINDOW_SECONDS` (default 1800, twice the default schedule): endpoints
    /// disabled this recently are named in the alert.
    pub alert_window: chrono::Duration,
}

impl HealthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            skipup: skipup_settings(env)?,
            alert_topic_arn: env.get("ALERT_TOPIC_ARN"),
            alert_window: env.seconds("ALERT_WINDOW_SECONDS", 1800, 60..=604_800)?,
        })
    }
}

/// Settings of `apply-events`: what it decides with, and what its ports are built from.
#[derive(Debug)]
pub struct ApplyConfig {
    pub settings: ApplySettings,
    pub resources: LeadResources,
    pub crm: CrmSettings,
    /// SkipUp, to stop conversations and for reconciliation.
    pub skipup: SkipUpSettings,
    /// `RECONCILE_AFTER_SECONDS`, `RECONCILE_BATCH`.
    pub reconcile: ReconcileSettings,
}

/// How long a processed event id is remembered, at least: 90 days. Several senders
/// sign no timestamp (SkipCalls, Skode, Typeform, Tally, Cal.com, SavvyCal, HubSpot
/// v2), so a captured delivery verifies forever and only its remembered id stops a
/// replay; 90 days outlasts any sender's retries by far, and a replay after it meets
/// a lead whose status has moved on (the lifecycle only moves forward).
pub const EVENT_DEDUPE_DEFAULT_SECS: u64 = 90 * 86_400;

impl ApplyConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            settings: ApplySettings {
                connectors: Connectors::from_env(env)?,
                intake: intake_settings(env)?,
                seen_for: env.seconds(
                    "EVENT_DEDUPE_SECONDS",
                    EVENT_DEDUPE_DEFAULT_SECS,
                    EVENT_DEDUPE_DEFAULT_SECS..=31_536_000,
                )?,
                skode_booked_statuses: env
                    .list("SKODE_BOOKED_STATUSES", "meeting_booked,meeting_scheduled"),
                skode_suppress_statuses: env.list(
                    "SKODE_SUPPRESS_STATUSES",
                    "lost,unqualified,disqualified,customer,do_not_contact",
                ),
                skipup_pace: Pace {
                    requests: env.u64_in("RECONCILE_REQUESTS_PER_MINUTE", 60, 1..=100_000)? as u32,
                    per: Duration::from_secs(60),
                },
            },
            resources: LeadResources::from_env(env)?,
            crm: crm_settings(env)?,
            skipup: skipup_settings(env)?,
            reconcile: ReconcileSettings {
                after: env.seconds("RECONCILE_AFTER_SECONDS", 21_600, 1..=2_592_000)?,
                batch: env.u64_in("RECONCILE_BATCH", 100, 1..=10_000)? as usize,
            },
        })
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
        assert_eq!(config.secrets(Provider::SKIPUP).len(), 2);
        assert!(config.secrets(Provider::SKIPCALLS).is_empty());
        assert!(config.secrets(Provider::SKODE).is_empty());
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

    fn recovery_env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![
            ("LEADS_TABLE", "leads"),
            ("CHECK_QUEUE_URL", "http://q"),
            ("SKIPUP_API_KEY", "sk_live_secret_key"),
            ("DEFAULT_ORGANIZER_EMAIL", "Owner@Vendor.example"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn recovery_defaults_follow_the_documentation() {
        let config = RecoveryConfig::from_env(&recovery_env(&[])).unwrap();
        assert_eq!(config.skipup.base_url, "https://api.skipup.ai/api/v1");
        assert_eq!(
            config.recovery.default_organizer.as_str(),
            "owner@vendor.example"
        );
        assert_eq!(config.recovery.request.duration_minutes, 30);
        assert!(!format!("{config:?}").contains("sk_live_secret_key"));
        let intake = intake_settings(&Env::from_pairs([("X", "y")])).unwrap();
        assert_eq!(intake.delay, chrono::Duration::seconds(1800));
    }

    #[test]
    fn out_of_range_and_missing_recovery_settings_are_named() {
        let err = RecoveryConfig::from_env(&recovery_env(&[("MEETING_DURATION_MINUTES", "2")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "MEETING_DURATION_MINUTES is invalid: must be between 5 and 480"
        );
        let err = RecoveryConfig::from_env(&Env::from_pairs([
            ("LEADS_TABLE", "t"),
            ("CHECK_QUEUE_URL", "q"),
        ]))
        .unwrap_err();
        assert_eq!(err.to_string(), "SKIPUP_API_KEY is not set");
        let err = RecoveryConfig::from_env(&recovery_env(&[("DEFAULT_ORGANIZER_EMAIL", "nobody")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DEFAULT_ORGANIZER_EMAIL is invalid: is not an email address"
        );
    }

    #[test]
    fn defaults_fill_only_what_the_environment_leaves_unset() {
        let env = Env::from_pairs([("A", "set"), ("B", " ")]).with_defaults([
            ("A", "default"),
            ("B", "default"),
            ("C", "default"),
        ]);
        assert_eq!(env.get("A").as_deref(), Some("set"));
        assert_eq!(env.get("B").as_deref(), Some("default"));
        assert_eq!(env.get("C").as_deref(), Some("default"));
        assert_eq!(env.get("D"), None);
    }

    #[cfg(feature = "clients")]
    fn crm_connectors(env: &Env) -> Result<crate::crm::CrmConnectors, ConfigError> {
        crate::adapters::crm::connectors(crm_settings(env)?)
    }

    #[test]
    #[cfg(feature = "clients")]
    fn crm_connectors_are_each_turned_on_by_their_setting() {
        assert!(
            crm_connectors(&Env::from_pairs([("X", "y")]))
                .unwrap()
                .names()
                .is_empty()
        );
        let both = crm_connectors(&Env::from_pairs([
            ("SKODE_API_KEY", "sk_live_k"),
            ("CRM_WEBHOOK_URL", "https://crm.example/hooks/recovery"),
            ("CRM_WEBHOOK_SECRET", "whsec_out"),
        ]))
        .unwrap();
        assert_eq!(both.names(), ["skode", "webhook"]);
        let err = crm_connectors(&Env::from_pairs([(
            "CRM_WEBHOOK_URL",
            "https://crm.example",
        )]))
        .unwrap_err();
        assert_eq!(err.to_string(), "CRM_WEBHOOK_SECRET is not set");
        let err = crm_connectors(&Env::from_pairs([
            ("CRM_WEBHOOK_URL", "ftp://crm.example"),
            ("CRM_WEBHOOK_SECRET", "s"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("CRM_WEBHOOK_URL is invalid"));
    }

    #[test]
    fn hubspot_and_salesforce_are_turned_on_by_their_own_settings_and_checked() {
        let salesforce = [
            ("SALESFORCE_INSTANCE_URL", "https://acme.my.salesforce.com"),
            ("SALESFORCE_CLIENT_ID", "3MVG9"),
            ("SALESFORCE_CLIENT_SECRET", "sf-secret-value"),
        ];
        let mut all = vec![("HUBSPOT_ACCESS_TOKEN", "pat-na1-secret")];
        all.extend(salesforce);
        all.push(("SKODE_API_KEY", "sk_live_k"));
        let env = Env::from_pairs(all.clone());
        assert_eq!(
            crm_connectors(&env).unwrap().names(),
            ["skode", "hubspot", "salesforce"]
        );
        let settings = crm_settings(&env).unwrap();
        let hubspot = settings.hubspot.as_ref().unwrap();
        assert_eq!(hubspot.base_url, "https://api.hubapi.com");
        assert_eq!(hubspot.status_property, "lead_recovery_status");
        assert!(hubspot.create_contacts);
        let sf = settings.salesforce.as_ref().unwrap();
        assert_eq!(sf.api_version, "v66.0");
        assert!(!sf.create_leads);
        let shown = format!("{settings:?}");
        assert!(!shown.contains("pat-na1-secret") && !shown.contains("sf-secret-value"));

        let refused = |extra: (&'static str, &'static str)| {
            let mut pairs = all.clone();
            pairs.push(extra);
            crm_settings(&Env::from_pairs(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused(("HUBSPOT_STATUS_PROPERTY", "Lead Status"))
                .starts_with("HUBSPOT_STATUS_PROPERTY is invalid")
        );
        assert!(
            refused(("HUBSPOT_CREATE_CONTACTS", "maybe"))
                .starts_with("HUBSPOT_CREATE_CONTACTS is invalid")
        );
        assert!(
            refused(("SALESFORCE_API_VERSION", "latest"))
                .starts_with("SALESFORCE_API_VERSION is invalid")
        );
        assert!(
            refused(("SALESFORCE_STATUS_MAP", "booked=Booked"))
                .starts_with("SALESFORCE_STATUS_MAP is invalid")
        );
        assert!(
            refused(("CRM_TIMEOUT_SECONDS", "0.01")).starts_with("CRM_TIMEOUT_SECONDS is invalid")
        );
        let version = {
            let mut pairs = all.clone();
            pairs.push(("SALESFORCE_API_VERSION", "62.0"));
            crm_settings(&Env::from_pairs(pairs))
                .unwrap()
                .salesforce
                .unwrap()
                .api_version
        };
        assert_eq!(version, "v62.0");
        let err = crm_settings(&Env::from_pairs([salesforce[0]])).unwrap_err();
        assert_eq!(err.to_string(), "SALESFORCE_CLIENT_ID is not set");
    }

    #[test]
    fn keys_and_leads_go_out_over_https_or_to_a_loopback_address_only() {
        for ok in [
            "https://api.skipup.ai/api/v1",
            "HTTPS://crm.example/hook",
            "http://127.0.0.1:4010/api/v1",
            "http://localhost:8080",
            "http://[::1]:9000/x",
        ] {
            assert_eq!(check_outbound_url(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://api.skipup.ai/api/v1",
            "http://127.0.0.1.attacker.example/",
            "http://user:pw@127.0.0.1/",
            "ftp://crm.example",
            "https://",
            "crm.example",
        ] {
            assert!(check_outbound_url(refused).is_err(), "{refused}");
        }
        let skipup = recovery_env(&[("SKIPUP_BASE_URL", "http://api.skipup.ai/api/v1")]);
        let err = skipup_settings(&skipup).unwrap_err().to_string();
        assert!(
            err.starts_with("SKIPUP_BASE_URL is invalid: must be an https:// URL"),
            "{err}"
        );
        for (var, url) in [
            ("CRM_WEBHOOK_URL", "http://crm.example/hook"),
            ("HUBSPOT_BASE_URL", "http://api.hubapi.com"),
            ("SALESFORCE_INSTANCE_URL", "http://acme.my.salesforce.com"),
            ("SKODE_BASE_URL", "http://api.skodeai.com/v1"),
        ] {
            let env = Env::from_pairs([(var, url), ("CRM_WEBHOOK_SECRET", "s")]);
            let err = crm_settings(&env).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{var} is invalid")),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn an_env_shown_in_a_log_names_its_variables_and_none_of_their_values() {
        let env = Env::from_pairs([
            ("SKIPUP_API_KEY", "sk_live_do_not_print"),
            ("HUBSPOT_ACCESS_TOKEN", "pat-na1-do-not-print"),
        ])
        .with_defaults([("FORM_WEBHOOK_SECRETS", "whsec_default_do_not_print")]);
        let shown = format!("{env:?}");
        assert!(
            shown.contains("SKIPUP_API_KEY") && shown.contains("FORM_WEBHOOK_SECRETS"),
            "{shown}"
        );
        assert!(
            !shown.contains("do_not_print") && !shown.contains("do-not-print"),
            "{shown}"
        );
    }

    #[test]
    fn processed_event_ids_are_remembered_for_at_least_90_days() {
        let env = recovery_env(&[]);
        let seen = ApplyConfig::from_env(&env).unwrap().settings.seen_for;
        assert_eq!(seen, chrono::Duration::days(90));
        let week = recovery_env(&[("EVENT_DEDUPE_SECONDS", "604800")]);
        let err = ApplyConfig::from_env(&week).unwrap_err().to_string();
        assert!(err.starts_with("EVENT_DEDUPE_SECONDS is invalid"), "{err}");
        let year = recovery_env(&[("EVENT_DEDUPE_SECONDS", "31536000")]);
        assert_eq!(
            ApplyConfig::from_env(&year).unwrap().settings.seen_for,
            chrono::Duration::days(365)
        );
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
