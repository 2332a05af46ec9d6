//! CRM connectors over HTTPS, one module each: Skode's REST API (`PATCH /leads/{id}`)
//! and a signed outbound webhook any other CRM (or an automation tool) can receive.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;

use crate::adapters::skipup::{mask_emails, retry_after, without_url};
use crate::config::ConfigError;
use crate::crm::{ConnectorError, CrmConnector, CrmConnectors, CrmSettings, StatusChange};

mod hubspot;
mod salesforce;
mod skode;
mod webhook;

pub use hubspot::{HubSpotConnector, PropertySetup};
pub use salesforce::{SalesforceConnector, soql_string};
pub use skode::SkodeConnector;
pub use webhook::{STATUS_CHANGED, WebhookConnector};

/// The configured CRM connectors, built once per cold start.
pub fn connectors(settings: CrmSettings) -> Result<CrmConnectors, ConfigError> {
    let mut connectors: Vec<Arc<dyn CrmConnector>> = Vec::new();
    let mut add = |built: Option<Result<Arc<dyn CrmConnector>, String>>, var| match built {
        Some(Ok(connector)) => {
            connectors.push(connector);
            Ok(())
        }
        Some(Err(reason)) => Err(ConfigError::Invalid { var, reason }),
        None => Ok(()),
    };
    fn shared<C: CrmConnector + 'static>(
        built: Result<C, String>,
    ) -> Result<Arc<dyn CrmConnector>, String> {
        built.map(|c| Arc::new(c) as Arc<dyn CrmConnector>)
    }
    add(
        settings.skode.map(|s| shared(SkodeConnector::new(s))),
        "SKODE_BASE_URL",
    )?;
    add(
        settings.hubspot.map(|s| shared(HubSpotConnector::new(s))),
        "HUBSPOT_BASE_URL",
    )?;
    add(
        settings
            .salesforce
            .map(|s| shared(SalesforceConnector::new(s))),
        "SALESFORCE_INSTANCE_URL",
    )?;
    add(
        settings.webhook.map(|s| shared(WebhookConnector::new(s))),
        "CRM_WEBHOOK_URL",
    )?;
    Ok(CrmConnectors::new(connectors))
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .user_agent(concat!("lead-recovery/", env!("CARGO_PKG_VERSION")))
        // A redirected POST may turn into a bodiless GET, or carry the signature and
        // the lead's data to another host: a 3xx is refused instead.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// One answer of a CRM's API, whatever its status.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The status and the start of the body, with any email address masked (the
    /// answer may quote the lead's address back): what a log or error may carry.
    pub fn excerpt(&self) -> String {
        let excerpt: String = mask_emails(&self.body).chars().take(200).collect();
        format!("HTTP {}: {excerpt}", self.status.as_u16())
    }
}

/// Sends `request`; a network error or timeout is transient.
pub(crate) async fn call(
    connector: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Answer, ConnectorError> {
    let transient = |e: reqwest::Error| ConnectorError::Transient {
        connector,
        message: without_url(&e),
        retry_after: None,
    };
    let response = request.send().await.map_err(transient)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transient)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Tries of one request within one push.
const ATTEMPTS: u32 = 3;
/// The pause before the second try; doubled before the third.
const BACKOFF: Duration = Duration::from_millis(100);
/// A rate limit that asks for longer than this is left to the push's retry.
const INLINE_WAIT: Duration = Duration::from_secs(5);

/// Sends a request up to [`ATTEMPTS`] times within one push: again after a network
/// error, a timeout or a 5xx when repeating it is `safe` (a read, or a write that
/// sets a value), and after a rate limit (`limited` turns such an answer into its
/// transient error with the wait) when the wait is short, since a refused request
/// did nothing. A create is not `safe`: a timeout may hide that it took effect, so
/// its retry is the next push, which looks for what the last one made first.
pub(crate) async fn call_retrying(
    connector: &'static str,
    safe: bool,
    request: impl Fn() -> reqwest::RequestBuilder,
    limited: impl Fn(&Answer) -> Option<ConnectorError>,
) -> Result<Answer, ConnectorError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt == ATTEMPTS;
        let pause = BACKOFF * 2u32.pow(attempt - 1);
        let answer = match call(connector, request()).await {
            Err(_) if safe && !last => {
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(error) => return Err(error),
            Ok(answer) => answer,
        };
        if let Some(error) = limited(&answer) {
            match &error {
                ConnectorError::Transient {
                    retry_after: Some(wait),
                    ..
                } if *wait <= INLINE_WAIT && !last => {
                    tokio::time::sleep(*wait).await;
                    continue;
                }
                _ => return Err(error),
            }
        }
        if answer.status.is_server_error() && safe && !last {
            tokio::time::sleep(pause).await;
            continue;
        }
        return Ok(answer);
    }
}

/// Makes the note (or task) of every change that has none yet: `made` lists the
/// markers of those that exist, `create` makes one. A create answered with a 5xx
/// or a rate limit did nothing (or, rarely, did): the notes are listed again and the
/// missing ones made, up to [`ATTEMPTS`] rounds. A create that got no answer (a
/// timeout) may still take effect, so it ends the push; the retry, later, lists first.
pub(crate) async fn make_missing<'a, M, C>(
    connector: &'static str,
    changes: &'a [StatusChange],
    made: impl Fn() -> M,
    create: impl Fn(&'a StatusChange) -> C,
) -> Result<(), ConnectorError>
where
    M: Future<Output = Result<HashSet<String>, ConnectorError>>,
    C: Future<Output = Result<Answer, ConnectorError>>,
{
    let mut round = 0;
    'rounds: loop {
        round += 1;
        let made = made().await?;
        for change in changes.iter().filter(|c| !made.contains(&c.marker)) {
            let answer = create(change).await?;
            let refused = answer.status.is_server_error()
                || answer.status == StatusCode::TOO_MANY_REQUESTS
                || answer.body.contains("REQUEST_LIMIT_EXCEEDED");
            if refused && round < ATTEMPTS {
                tokio::time::sleep(BACKOFF * 2u32.pow(round - 1)).await;
                continue 'rounds;
            }
            classify(connector, answer)?;
        }
        return Ok(());
    }
}

/// Classifies an answer: 2xx is the body; 408, 429 and 5xx are transient (with the
/// answer's Retry-After); 401 and 403 are the CRM's setup (a key revoked, rotated or
/// missing a scope: retried, so the statuses still reach the CRM once it is fixed);
/// anything else is permanent.
pub(crate) fn classify(connector: &'static str, answer: Answer) -> Result<String, ConnectorError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(answer.body);
    }
    let message = answer.excerpt();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Err(ConnectorError::Setup { connector, message })
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Err(ConnectorError::Transient {
            connector,
            message,
            retry_after: retry_after(&answer.headers, Utc::now()),
        })
    } else {
        Err(ConnectorError::Permanent { connector, message })
    }
}

/// Sends `request` and classifies the answer ([`classify`]).
async fn send(
    connector: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<String, ConnectorError> {
    classify(connector, call(connector, request).await?)
}
