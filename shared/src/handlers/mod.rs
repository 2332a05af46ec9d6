//! Handlers: one async function per Lambda function, called alike by the Lambda
//! binaries, the local stack and the tests.

pub mod form_intake;
pub mod recovery_check;
pub mod webhook_ingest;

use http::{HeaderValue, Response, StatusCode, header};

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
