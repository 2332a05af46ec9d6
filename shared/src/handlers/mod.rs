//! Handlers: one async function per Lambda function, called alike by the Lambda
//! binaries, the local stack and the tests.

pub mod crm_sync;
pub mod form_intake;
pub mod recovery_check;
pub mod webhook_health;
pub mod webhook_ingest;

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

/// A queue message that must come back later; `after` sets when (else the queue's
/// own visibility timeout applies).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryLater {
    pub after: Option<Duration>,
    pub reason: String,
}

impl RetryLater {
    pub(crate) fn after(after: Duration, reason: impl ToString) -> Self {
        Self {
            after: Some(after),
            reason: reason.to_string(),
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
