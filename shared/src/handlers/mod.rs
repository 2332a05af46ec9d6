//! Handlers: one async function per Lambda function, called alike by the Lambda
//! binaries, the local stack and the tests.

pub mod apply_events;
pub mod form_intake;
pub mod reconcile;
pub mod recovery_check;
pub mod webhook_health;
pub mod webhook_ingest;

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

/// Why a queue message was not done with: it comes back after a delay, or it never
/// can be (its redeliveries take it to the dead-letter queue, where an operator
/// inspects it with `recovery dlq`).
#[derive(Debug, Clone, PartialEq)]
pub enum MessageFailure {
    /// Transient: try again after `after`.
    Retry { after: Duration, reason: String },
    /// The message itself is bad (it will never parse): left to the redrive policy.
    Poison { reason: String },
}

impl MessageFailure {
    pub(crate) fn after(after: Duration, reason: impl ToString) -> Self {
        Self::Retry {
            after,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn poison(reason: impl ToString) -> Self {
        Self::Poison {
            reason: reason.to_string(),
        }
    }

    /// When to try again; `None` for poison (the queue's visibility timeout applies).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retry { after, .. } => Some(*after),
            Self::Poison { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Retry { reason, .. } | Self::Poison { reason } => reason,
        }
    }
}

/// A JSON error answer; a 405 names the one method every route takes.
pub(crate) fn error_response(status: StatusCode, body: serde_json::Value) -> Response<String> {
    let mut response = json_response(status, body);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// A JSON answer with its content type.
pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A SkipUp cancellation that could not be carried out now, as a retry (an alarm
/// metric when SkipUp refused our credentials).
pub(crate) fn stop_failure(
    error: crate::recovery::StopError,
    function: &str,
    fallback: std::time::Duration,
) -> MessageFailure {
    if error.class() == crate::skipup::ErrorClass::Configuration {
        crate::metrics::count(function, &[("SkipUpAuthFailures", 1.0)]);
    }
    MessageFailure::after(error.retry_after().unwrap_or(fallback), error)
}
