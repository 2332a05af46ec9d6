//! `form-intake` (`POST /forms`): a form tool or website backend posts a signed JSON
//! submission; the lead is recorded once and its recovery check scheduled. Answers
//! 202 with the lead id.

use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use super::{error_response, json_response};
use crate::connectors::fields::Warning;
use crate::form::{ValidationErrors, parse_form};
use crate::intake::{IntakeDeps, IntakeError, IntakeOutcome, submit};
use crate::sampling::{LogSample, REFUSAL_WINDOW, REFUSALS_PER_WINDOW};
use crate::signature::{SignatureError, TimestampedSignature};

/// The route, the same in Lambda and in the local stack.
pub const ROUTE: &str = "/forms";

pub struct FormDeps {
    /// `X-Webhook-Signature: t=...,v1=...` keyed by `FORM_WEBHOOK_SECRETS`.
    pub signature: TimestampedSignature,
    pub max_body_bytes: usize,
    pub intake: IntakeDeps,
}

impl FormDeps {
    pub fn log_configuration(&self) {
        if self.signature.secrets().is_empty() {
            tracing::error!("FORM_WEBHOOK_SECRETS is not set: every form submission is refused");
        }
    }
}

/// Every way a submission can be refused; the status of each is decided here only.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("no such route")]
    NotFound,
    #[error("only POST is accepted")]
    MethodNotAllowed,
    #[error("body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadSignature(SignatureError),
    #[error("form intake has no signing secret configured")]
    NotConfigured,
    #[error("the submission has invalid fields")]
    Invalid(ValidationErrors),
    #[error("the lead could not be recorded; retry later")]
    Unavailable(#[source] IntakeError),
}

impl FormError {
    pub fn status(&self) -> StatusCode {
        match self {
            FormError::NotFound => StatusCode::NOT_FOUND,
            FormError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            FormError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            FormError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            FormError::Invalid(_) => StatusCode::BAD_REQUEST,
            FormError::NotConfigured | FormError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            FormError::NotFound => "not_found",
            FormError::MethodNotAllowed => "method_not_allowed",
            FormError::PayloadTooLarge { .. } => "payload_too_large",
            FormError::BadSignature(_) => "invalid_signature",
            FormError::NotConfigured => "not_configured",
            FormError::Invalid(_) => "validation_failed",
            FormError::Unavailable(_) => "unavailable",
        }
    }

    fn into_response(self) -> Response<String> {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let FormError::Invalid(errors) = &self {
            body["fields"] = json!(errors.0);
        }
        error_response(self.status(), body)
    }
}

/// Refusals of the sender's making logged by this instance: a flood is sampled
/// ([`crate::sampling`]); a 503 is always logged.
static REFUSALS: LogSample = LogSample::new(REFUSALS_PER_WINDOW, REFUSAL_WINDOW);

pub async fn handle<B: AsRef<[u8]>>(deps: &FormDeps, request: &Request<B>) -> Response<String> {
    match intake(deps, request).await {
        Ok((outcome, warnings)) => {
            let lead = outcome.lead();
            let status = match outcome {
                IntakeOutcome::Scheduled(_) => "scheduled",
                IntakeOutcome::Duplicate(_) => "duplicate",
            };
            tracing::info!(
                lead_id = %lead.id,
                email = %lead.profile.email.log_tag(),
                outcome = status,
                due_at = %lead.due_at,
                "form submission recorded"
            );
            json_response(
                StatusCode::ACCEPTED,
                json!({
                    "lead_id": lead.id,
                    "status": status,
                    "lead_status": lead.status,
                    "due_at": lead.due_at,
                    // Fields cut or dropped: the lead is recorded all the same.
                    "warnings": warnings,
                }),
            )
        }
        Err(error) => {
            match &error {
                FormError::Unavailable(source) => {
                    tracing::error!(error = %source, "form submission not recorded; answered 503")
                }
                FormError::NotConfigured => {
                    tracing::error!("form submission refused: no form secret configured")
                }
                other => {
                    if let Some(unlogged) = REFUSALS.take() {
                        tracing::warn!(status = other.status().as_u16(), reason = %other, unlogged_before = unlogged, "form submission refused")
                    }
                }
            }
            error.into_response()
        }
    }
}

async fn intake<B: AsRef<[u8]>>(
    deps: &FormDeps,
    request: &Request<B>,
) -> Result<(IntakeOutcome, Vec<Warning>), FormError> {
    let path = request.uri().path();
    if path.strip_suffix('/').unwrap_or(path) != ROUTE {
        return Err(FormError::NotFound);
    }
    if request.method() != Method::POST {
        return Err(FormError::MethodNotAllowed);
    }
    let body = request.body().as_ref();
    if body.len() > deps.max_body_bytes {
        return Err(FormError::PayloadTooLarge {
            limit: deps.max_body_bytes,
        });
    }
    let header = request
        .headers()
        .get(TimestampedSignature::HEADER)
        .map(HeaderValue::as_bytes);
    deps.signature
        .verify(header, body, deps.intake.clock.now().timestamp())
        .map_err(|error| match error {
            SignatureError::NoSecrets => FormError::NotConfigured,
            other => FormError::BadSignature(other),
        })?;
    let submission = parse_form(body).map_err(FormError::Invalid)?;
    let profile = &submission.profile;
    let event_id = format!(
        "form:{}",
        profile
            .submission_id
            .clone()
            .unwrap_or_else(|| profile.lead_id(deps.intake.clock.now()).to_string())
    );
    let warnings = submission.warnings.clone();
    let outcome = submit(&deps.intake, submission, &event_id, "form-intake")
        .await
        .map_err(FormError::Unavailable)?;
    if matches!(outcome, IntakeOutcome::Scheduled(_)) {
        crate::metrics::count("form-intake", &[("LeadsSubmitted", 1.0)]);
    }
    Ok((outcome, warnings))
}
