//! `recovery simulate`: sends a correctly signed, realistic sample delivery of any
//! connector (SkipUp, SkipCalls, Skode, Typeform, Tally, ...: `shared::connectors::ALL`)
//! or a `POST /forms` submission to any URL, to test a deployed stack or the local one.

use std::str::FromStr;

use anyhow::Context;
use chrono::Utc;
use serde_json::Value;
use shared::connectors::{Delivery, Provider};
use shared::signature::{TimestampedSignature, WebhookSecret};

/// Who the delivery pretends to come from: `form` (our own `POST /forms`) or a
/// connector by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A demo form submission for `POST /forms`.
    Form,
    Connector(Provider),
}

impl FromStr for Sender {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        if name == "form" {
            return Ok(Sender::Form);
        }
        Provider::named(name).map(Sender::Connector).ok_or_else(|| {
            let names: Vec<&str> = Provider::all().map(Provider::as_str).collect();
            format!("not a sender: use form or one of {}", names.join(", "))
        })
    }
}

impl Sender {
    pub const SKIPUP: Sender = Sender::Connector(Provider::SKIPUP);
    pub const SKIPCALLS: Sender = Sender::Connector(Provider::SKIPCALLS);
    pub const SKODE: Sender = Sender::Connector(Provider::SKODE);

    /// The variable whose first secret signs this sender's deliveries.
    pub fn secret_variable(self) -> &'static str {
        match self {
            Sender::Form => "FORM_WEBHOOK_SECRETS",
            Sender::Connector(provider) => provider.connector().secrets_var(),
        }
    }

    /// The route it delivers to.
    pub fn route(self) -> String {
        match self {
            Sender::Form => "/forms".into(),
            Sender::Connector(provider) => provider.route(),
        }
    }

    /// A realistic sample body (the project's fixtures) with fresh ids, so that a
    /// receiver does not drop it as a repeat.
    pub fn sample(self) -> Vec<u8> {
        let fresh = format!("sim_{}", Utc::now().timestamp_millis());
        match self {
            Sender::Form => {
                let mut value: Value = serde_json::from_str(include_str!(
                    "../../shared/fixtures/payloads/form-submission.json"
                ))
                .expect("the sample is JSON");
                value["submission_id"] = Value::String(fresh);
                serde_json::to_vec(&value).expect("JSON serializes")
            }
            Sender::Connector(provider) => provider.connector().sample(&fresh).body,
        }
    }

    /// The sample as JSON, for callers that change a field (every JSON sample).
    pub fn sample_json(self) -> Value {
        serde_json::from_slice(&self.sample()).expect("a JSON sample")
    }

    /// The headers this sender adds to `body` posted to `url`, signed with `secret`.
    pub fn headers(
        self,
        secret: &str,
        url: &str,
        body: &[u8],
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
        let secret = WebhookSecret::new(secret)
            .ok()
            .context("the secret is empty")?;
        Ok(match self {
            Sender::Form => vec![(
                TimestampedSignature::HEADER,
                TimestampedSignature::sign(&secret, Utc::now().timestamp(), body),
            )],
            Sender::Connector(provider) => {
                let headers = http::HeaderMap::new();
                let delivery = Delivery {
                    method: "POST",
                    url,
                    headers: &headers,
                    body,
                    now: Utc::now(),
                };
                provider.connector().sign(&secret, &delivery)
            }
        })
    }
}

/// Posts `body` signed as `sender` would; returns the status and the answer's body.
/// A body that is not JSON goes as `application/x-www-form-urlencoded`.
pub async fn send(
    http: &reqwest::Client,
    sender: Sender,
    url: &str,
    secret: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let content_type = if serde_json::from_slice::<Value>(body).is_ok() {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_vec());
    for (name, value) in sender.headers(secret, url, body)? {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("posting to {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connector_and_the_form_route_can_be_simulated() {
        assert_eq!("form".parse::<Sender>(), Ok(Sender::Form));
        for provider in Provider::all() {
            let sender: Sender = provider.as_str().parse().unwrap();
            assert_eq!(sender.route(), provider.route());
            assert!(!sender.sample().is_empty());
        }
        let error = "nobody".parse::<Sender>().unwrap_err();
        assert!(error.contains("typeform"), "{error}");
    }
}
