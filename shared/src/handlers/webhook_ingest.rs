//! `webhook-ingest`: verify a delivery's signature on the raw bytes, normalize it,
//! enqueue it durably, and only then answer 200. Anything that is not safely queued
//! gets a non-2xx answer so the sender retries.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::{error_response, json_response};
use crate::config::IngestConfig;
use crate::connectors::Delivery;
use crate::inbound::{InboundEvent, MAX_QUEUE_EVENT_BYTES, Payload, Provider};
use crate::ports::{Clock, Queue, QueueError};
use crate::sampling::{LogSample, REFUSAL_WINDOW, REFUSALS_PER_WINDOW};
use crate::signature::SignatureError;

/// What the handler needs, built once per cold start.
pub struct IngestDeps {
    pub config: IngestConfig,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
}

impl IngestDeps {
    /// Says at start which connectors refuse every delivery for lack of a secret.
    pub fn log_configuration(&self) {
        for provider in Provider::all() {
            let secrets = self.config.secrets(provider).len();
            if secrets == 0 {
                // Fail closed; a warning, not an error: a team uses only some tools.
                tracing::warn!(
                    provider = provider.as_str(),
                    "no webhook secret configured: every delivery from this provider is refused"
                );
            } else {
                tracing::info!(
                    provider = provider.as_str(),
                    secrets,
                    "webhook secrets loaded"
                );
            }
        }
    }
}

/// Every way a delivery can be refused. The HTTP status of each is decided here and
/// nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no such route")]
    NotFound,
    #[error("only POST is accepted")]
    MethodNotAllowed,
    #[error("body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadSignature(SignatureError),
    #[error("no webhook secret is configured for this provider")]
    NotConfigured,
    #[error("the event could not be queued; retry later")]
    QueueUnavailable(#[source] QueueError),
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::NotFound => StatusCode::NOT_FOUND,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            // Our misconfiguration or outage, not the sender's fault: 503 makes it retry.
            IngestError::NotConfigured | IngestError::QueueUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            IngestError::NotFound => "not_found",
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::PayloadTooLarge { .. } => "payload_too_large",
            IngestError::BadSignature(_) => "invalid_signature",
            IngestError::NotConfigured => "provider_not_configured",
            IngestError::QueueUnavailable(_) => "queue_unavailable",
        }
    }

    fn into_response(self) -> Response<String> {
        error_response(
            self.status(),
            json!({ "error": self.code(), "message": self.to_string() }),
        )
    }
}

/// Handles one HTTP delivery. `request`'s body must be the bytes exactly as received
/// (already base64-decoded when API Gateway or a function URL encoded them).
pub async fn handle<B: AsRef<[u8]>>(deps: &IngestDeps, request: &Request<B>) -> Response<String> {
    match ingest(deps, request).await {
        Ok(event) => json_response(
            StatusCode::OK,
            json!({ "status": "queued", "event_id": event.event_id }),
        ),
        Err(error) => {
            log_refusal(request, &error);
            error.into_response()
        }
    }
}

async fn ingest<B: AsRef<[u8]>>(
    deps: &IngestDeps,
    request: &Request<B>,
) -> Result<InboundEvent, IngestError> {
    let path = request.uri().path();
    let provider = Provider::from_route(path.strip_suffix('/').unwrap_or(path))
        .ok_or(IngestError::NotFound)?;
    if request.method() != Method::POST {
        return Err(IngestError::MethodNotAllowed);
    }
    let body = request.body().as_ref();
    let limit = deps.config.max_body_bytes;
    if body.len() > limit {
        return Err(IngestError::PayloadTooLarge { limit });
    }
    let now = deps.clock.now();
    let url = public_url(request);
    let delivery = Delivery {
        method: request.method().as_str(),
        url: &url,
        headers: request.headers(),
        body,
        now,
    };
    let settings = deps.config.connectors.get(provider);
    settings
        .verifier
        .verify(&delivery)
        .map_err(|error| match error {
            SignatureError::NoSecrets => IngestError::NotConfigured,
            other => IngestError::BadSignature(other),
        })?;
    let payload = Payload::from_body(body);
    let parsed = provider.connector().parse(&payload, settings);
    let event =
        InboundEvent::new(provider, body, payload, &parsed, now).fitted(MAX_QUEUE_EVENT_BYTES);
    if let Some(cut) = &event.cut {
        tracing::warn!(
            provider = provider.as_str(),
            event_id = %event.event_id,
            bytes = cut.bytes,
            sha256 = %cut.sha256,
            cut = %cut.what,
            "webhook larger than the queue takes; cut to fit"
        );
    }
    deps.queue
        .send(&event.to_queue_message())
        .await
        .map_err(IngestError::QueueUnavailable)?;
    tracing::info!(
        provider = provider.as_str(),
        event_id = %event.event_id,
        event_type = event.event_type.as_deref().unwrap_or(""),
        recognized = event.recognized,
        bytes = body.len(),
        "webhook queued"
    );
    if !event.recognized {
        tracing::warn!(
            provider = provider.as_str(),
            event_id = %event.event_id,
            "webhook payload shape not recognized; queued for an operator to inspect"
        );
    }
    Ok(event)
}

/// The URL the sender called: the request's own when absolute (as the Lambda
/// adapter builds it), else `Host` and the path, over `X-Forwarded-Proto` (else https,
/// or http for a loopback host such as the local stack's).
fn public_url<B>(request: &Request<B>) -> String {
    let uri = request.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return uri.to_string();
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let host = header("host").unwrap_or("localhost");
    let loopback =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    let scheme = header("x-forwarded-proto").unwrap_or(if loopback { "http" } else { "https" });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{path}")
}

/// Refusals of the sender's own making (401, 404, 405, 413) logged by this instance:
/// a flood of them is sampled.
static REFUSALS: LogSample = LogSample::new(REFUSALS_PER_WINDOW, REFUSAL_WINDOW);

/// One line per refusal: route, status and reason, never the body or the signature.
/// Our own failures (503) are always logged; the sender's are sampled
/// ([`crate::sampling`]), each line saying how many were left out before it.
fn log_refusal<B>(request: &Request<B>, error: &IngestError) {
    let status = error.status().as_u16();
    match error {
        IngestError::QueueUnavailable(source) => tracing::error!(
            path = request.uri().path(),
            status,
            error = %source,
            "webhook not queued; answered 503 so the sender retries"
        ),
        IngestError::NotConfigured => tracing::error!(
            path = request.uri().path(),
            status,
            "webhook refused: provider has no secret configured"
        ),
        _ => {
            if let Some(unlogged) = REFUSALS.take() {
                tracing::warn!(
                    path = request.uri().path(),
                    method = %request.method(),
                    status,
                    reason = %error,
                    unlogged_before = unlogged,
                    "webhook refused"
                )
            }
        }
    }
}
