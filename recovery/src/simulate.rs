//! `recovery simulate`: sends a correctly signed sample delivery of SkipUp, SkipCalls
//! or Skode (or a form submission) to any URL, to test a deployed stack or the local one.

use anyhow::Context;
use chrono::Utc;
use serde_json::Value;
use shared::signature::{BodySignature, SecretSet, TimestampedSignature, WebhookSecret};

/// Who the delivery pretends to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sender {
    Skipup,
    Skipcalls,
    Skode,
    /// A demo form submission for `POST /forms`.
    Form,
}

impl Sender {
    /// The variable whose first secret signs this sender's deliveries.
    pub fn secret_variable(self) -> &'static str {
        match self {
            Sender::Skipup => "SKIPUP_WEBHOOK_SECRETS",
            Sender::Skipcalls => "SKIPCALLS_WEBHOOK_SECRETS",
            Sender::Skode => "SKODE_WEBHOOK_SECRETS",
            Sender::Form => "FORM_WEBHOOK_SECRETS",
        }
    }

    /// A realistic sample body (the project's fixtures), with a fresh event id so that
    /// a receiver does not drop it as a repeat.
    pub fn sample(self) -> Value {
        let text = match self {
            Sender::Skipup => {
                include_str!("../../shared/fixtures/payloads/skipup-booked-data.json")
            }
            Sender::Skipcalls => {
                include_str!("../../shared/fixtures/payloads/skipcalls-call-completed-default.json")
            }
            Sender::Skode => include_str!("../../shared/fixtures/payloads/skode-lead-created.json"),
            Sender::Form => include_str!("../../shared/fixtures/payloads/form-submission.json"),
        };
        let mut value: Value = serde_json::from_str(text).expect("the samples are JSON");
        let fresh = format!("sim_{}", Utc::now().timestamp_millis());
        match self {
            Sender::Skipup | Sender::Skode => value["id"] = Value::String(format!("evt_{fresh}")),
            Sender::Skipcalls => value["call"]["id"] = Value::String(format!("call_{fresh}")),
            Sender::Form => value["submission_id"] = Value::String(fresh),
        }
        value
    }

    /// The signature header (name, value) for `body`.
    pub fn sign(self, secret: &str, body: &[u8]) -> anyhow::Result<(&'static str, String)> {
        let secret = WebhookSecret::new(secret)
            .ok()
            .context("the secret is empty")?;
        Ok(match self {
            Sender::Skipup | Sender::Form => (
                TimestampedSignature::HEADER,
                TimestampedSignature::sign(&secret, Utc::now().timestamp(), body),
            ),
            Sender::Skipcalls => (
                BodySignature::skipcalls(SecretSet::default()).header(),
                BodySignature::sign(&secret, body),
            ),
            Sender::Skode => (
                BodySignature::skode(SecretSet::default()).header(),
                BodySignature::sign(&secret, body),
            ),
        })
    }
}

/// Posts `body` signed as `sender` would; returns the status and the answer's body.
pub async fn send(
    http: &reqwest::Client,
    sender: Sender,
    url: &str,
    secret: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let (header, signature) = sender.sign(secret, body)?;
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(header, signature)
        .body(body.to_vec())
        .send()
        .await
        .with_context(|| format!("posting to {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}
