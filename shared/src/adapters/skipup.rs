//! The SkipUp REST API over HTTPS (reqwest, rustls): the production [`SkipUpApi`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{RequestBuilder, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::lead::EmailAddress;
use crate::ports::SkipUpApi;
use crate::skipup::{
    CreateMeetingRequest, CreatedWebhookEndpoint, MeetingRequest, NewWebhookEndpoint, SkipUpError,
    SkipUpSettings, WebhookEndpoint, WorkspaceMember,
};

/// SkipUp's error body: `{"error": {"type", "message"}}` or `{"error": "text"}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorDetail {
    Structured {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
    Text(String),
}

/// `(type, message)` from an error body, tolerating both documented shapes. The
/// message goes to logs and onto the lead, so email addresses in it are masked.
fn error_parts(body: &str) -> (String, String) {
    let (kind, message) = match serde_json::from_str::<ErrorBody>(body).map(|b| b.error) {
        Ok(ErrorDetail::Structured { kind, message }) => (
            kind.unwrap_or_default(),
            message.unwrap_or_else(|| "no message".into()),
        ),
        Ok(ErrorDetail::Text(text)) => (String::new(), text),
        Err(_) => (String::new(), body.chars().take(200).collect()),
    };
    (kind, mask_emails(&message))
}

/// Replaces every `local@domain.tld` in `text` with `<email>`.
pub(crate) fn mask_emails(text: &str) -> String {
    let is_part = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_part(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let end = rest[at + 1..]
            .char_indices()
            .find(|(_, c)| !is_part(*c))
            .map_or(rest.len(), |(i, _)| at + 1 + i);
        let domain = rest[at + 1..end].trim_end_matches('.');
        if start < at && domain.contains('.') {
            out.push_str(&rest[..start]);
            out.push_str("<email>");
            out.push_str(&rest[at + 1 + domain.len()..end]);
        } else {
            out.push_str(&rest[..end]);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The error an unsuccessful answer means.
fn classify_status(status: StatusCode, headers: &header::HeaderMap, body: &str) -> SkipUpError {
    let (kind, message) = error_parts(body);
    match status.as_u16() {
        401 => SkipUpError::Unauthorized { message },
        403 => SkipUpError::Forbidden { message },
        404 => SkipUpError::NotFound { message },
        422 => SkipUpError::Invalid { kind, message },
        429 => SkipUpError::RateLimited {
            retry_after: retry_after(headers, Utc::now()),
        },
        s if s >= 500 => SkipUpError::Server { status: s, message },
        s => SkipUpError::Unexpected {
            status: s,
            detail: message,
        },
    }
}

#[derive(Deserialize)]
struct Single<T> {
    data: T,
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(default)]
    meta: PageMeta,
}

#[derive(Deserialize, Default)]
struct PageMeta {
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// The SkipUp REST API client.
#[derive(Debug, Clone)]
pub struct SkipUpClient {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
}

/// Pages of webhook endpoints read before giving up on a cursor that never ends.
const MAX_PAGES: usize = 1_000;

impl SkipUpClient {
    pub fn new(settings: SkipUpSettings) -> Result<Self, SkipUpError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("lead-recovery/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the API key and the prospect's data to wherever
            // the answer points (and may turn a POST into a GET): refused instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SkipUpError::Network(e.to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            api_key: settings.api_key,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .header(header::ACCEPT, "application/json")
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, SkipUpError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(classify_status(status, &headers, &body));
        }
        serde_json::from_str(&body).map_err(|e| SkipUpError::Unexpected {
            status: status.as_u16(),
            detail: format!("body does not parse: {e}"),
        })
    }
}

/// A request or response that did not get through: a timeout, or the network.
fn transport_error(error: reqwest::Error) -> SkipUpError {
    if error.is_timeout() {
        SkipUpError::Timeout
    } else {
        SkipUpError::Network(without_url(&error))
    }
}

/// reqwest errors name the URL, which may carry an email in its query.
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

#[async_trait]
impl SkipUpApi for SkipUpClient {
    async fn create_meeting_request(
        &self,
        idempotency_key: &str,
        request: &CreateMeetingRequest,
    ) -> Result<MeetingRequest, SkipUpError> {
        let builder = self
            .request(reqwest::Method::POST, "/meeting_requests")
            .header("Idempotency-Key", idempotency_key)
            .json(request);
        self.send::<Single<MeetingRequest>>(builder)
            .await
            .map(|s| s.data)
    }

    async fn get_meeting_request(&self, id: &str) -> Result<MeetingRequest, SkipUpError> {
        let builder = self.request(reqwest::Method::GET, &format!("/meeting_requests/{id}"));
        self.send::<Single<MeetingRequest>>(builder)
            .await
            .map(|s| s.data)
    }

    async fn cancel_meeting_request(
        &self,
        id: &str,
        idempotency_key: &str,
        notify: bool,
    ) -> Result<MeetingRequest, SkipUpError> {
        let builder = self
            .request(
                reqwest::Method::POST,
                &format!("/meeting_requests/{id}/cancel"),
            )
            .header("Idempotency-Key", idempotency_key)
            .json(&serde_json::json!({ "notify": notify }));
        self.send::<Single<MeetingRequest>>(builder)
            .await
            .map(|s| s.data)
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, SkipUpError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut builder = self
                .request(reqwest::Method::GET, "/webhook_endpoints")
                .query(&[("limit", "100")]);
            if let Some(cursor) = &cursor {
                builder = builder.query(&[("cursor", cursor)]);
            }
            let page: Page<WebhookEndpoint> = self.send(builder).await?;
            all.extend(page.data);
            match page.meta.next_cursor {
                Some(next) if page.meta.has_more && cursor.as_ref() != Some(&next) => {
                    cursor = Some(next)
                }
                _ => return Ok(all),
            }
        }
        Err(SkipUpError::Unexpected {
            status: 200,
            detail: format!("more than {MAX_PAGES} pages of webhook endpoints"),
        })
    }

    async fn create_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> Result<CreatedWebhookEndpoint, SkipUpError> {
        let builder = self
            .request(reqwest::Method::POST, "/webhook_endpoints")
            .json(endpoint);
        self.send::<Single<CreatedWebhookEndpoint>>(builder)
            .await
            .map(|s| s.data)
    }

    async fn find_workspace_member(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<WorkspaceMember>, SkipUpError> {
        let builder = self
            .request(reqwest::Method::GET, "/workspace_members")
            .query(&[("email", email.as_str())]);
        let page: Page<WorkspaceMember> = self.send(builder).await?;
        Ok(page
            .data
            .into_iter()
            .find(|m| m.deactivated_at.is_none() && m.email.eq_ignore_ascii_case(email.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skipup::ErrorClass;

    #[test]
    fn both_error_body_shapes_parse() {
        assert_eq!(
            error_parts(
                r#"{"error":{"type":"validation_error","message":"organizer is not a member"}}"#
            ),
            (
                "validation_error".into(),
                "organizer is not a member".into()
            )
        );
        assert_eq!(
            error_parts(r#"{"error":"Invalid or expired API key"}"#),
            (String::new(), "Invalid or expired API key".into())
        );
        assert_eq!(
            error_parts("<html>bad gateway</html>").1,
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn email_addresses_in_skipup_messages_are_masked() {
        assert_eq!(
            mask_emails("organizer_email owner@vendor.example is not an active member."),
            "organizer_email <email> is not an active member."
        );
        assert_eq!(mask_emails("a@b.io, c.d+e@f.co.uk"), "<email>, <email>");
        assert_eq!(
            mask_emails("no address @ here, user@localhost"),
            "no address @ here, user@localhost"
        );
        assert_eq!(
            error_parts(r#"{"error":"Invalid key for dana@northwind.example"}"#).1,
            "Invalid key for <email>"
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = header::HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "17".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(17)));
        headers.insert(
            header::RETRY_AFTER,
            "Sun, 22 Nov 2026 10:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn each_status_has_one_class() {
        let class = |status: u16| {
            classify_status(
                StatusCode::from_u16(status).unwrap(),
                &header::HeaderMap::new(),
                "{}",
            )
            .class()
        };
        assert_eq!(class(401), ErrorClass::Configuration);
        assert_eq!(class(403), ErrorClass::Configuration);
        assert_eq!(class(422), ErrorClass::Input);
        assert_eq!(class(400), ErrorClass::Input);
        assert_eq!(class(429), ErrorClass::Transient { retry_after: None });
        assert_eq!(class(500), ErrorClass::Transient { retry_after: None });
        assert_eq!(class(503), ErrorClass::Transient { retry_after: None });
        assert_eq!(
            SkipUpError::Timeout.class(),
            ErrorClass::Transient { retry_after: None }
        );
    }
}
