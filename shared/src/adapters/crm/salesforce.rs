//! Salesforce's REST API with the OAuth 2.0 client-credentials flow on the org's My
//! Domain: the Lead found by email (SOQL, the value escaped), its `Status` set from
//! the status map, a completed Task per status change.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Answer, call_retrying, classify, http_client, make_missing};
use crate::crm::{
    ConnectorError, CrmConnector, SalesforceSettings, StatusChange, StatusUpdate, marker_in,
};

const NAME: &str = "salesforce";

/// A Task's Description holds at most this many characters.
const DESCRIPTION_MAX: usize = 32_000;
/// Wait after the org's API allocation is used up (403 `REQUEST_LIMIT_EXCEEDED`).
const LIMIT_WAIT: Duration = Duration::from_secs(300);
/// Wait after any other request limit (concurrent requests).
const CONCURRENCY_WAIT: Duration = Duration::from_millis(250);
/// Pages of one query followed at most (2,000 records each).
const QUERY_PAGES: usize = 5;

#[derive(Debug)]
pub struct SalesforceConnector {
    http: reqwest::Client,
    instance: Url,
    settings: SalesforceSettings,
    /// The access token, shared by every push of this process until it expires or
    /// Salesforce stops taking it.
    token: Mutex<Option<Token>>,
}

#[derive(Debug)]
struct Token {
    value: SecretString,
    /// When the answer said it expires (`expires_in`); Salesforce's client-credentials
    /// answer usually names no lifetime, and the session ends on the org's timeout.
    until: Option<Instant>,
}

impl SalesforceConnector {
    pub fn new(settings: SalesforceSettings) -> Result<Self, String> {
        let instance = Url::parse(settings.instance_url.trim_end_matches('/'))
            .map_err(|e| format!("SALESFORCE_INSTANCE_URL: {e}"))?;
        if instance.cannot_be_a_base() || instance.host_str().is_none() {
            return Err("SALESFORCE_INSTANCE_URL: not a base URL".into());
        }
        Ok(Self {
            http: http_client(settings.timeout)?,
            instance,
            settings,
            token: Mutex::new(None),
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.instance.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn data_url(&self, segments: &[&str]) -> Url {
        let mut all = vec!["services", "data", self.settings.api_version.as_str()];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    /// The cached token, or a new one from `POST /services/oauth2/token`.
    async fn token(&self, renew: bool) -> Result<SecretString, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && !renew
            && token.until.is_none_or(|until| Instant::now() < until)
        {
            return Ok(token.value.clone());
        }
        *cached = None;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.expose_secret()),
        ];
        let url = self.url(&["services", "oauth2", "token"]);
        // Asking for a token again is harmless: retried like a read.
        let request = || self.http.post(url.clone()).form(&form);
        let answer = call_retrying(NAME, true, request, |_| None).await?;
        if answer.status == StatusCode::BAD_REQUEST || answer.status == StatusCode::UNAUTHORIZED {
            let error: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            return Err(ConnectorError::Setup {
                connector: NAME,
                message: format!(
                    "Salesforce refused the client credentials ({}: {}): check \
                     SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET, that the connected \
                     app enables the client credentials flow with a Run As user, and that \
                     SALESFORCE_INSTANCE_URL is the org's My Domain",
                    error["error"].as_str().unwrap_or("no error code"),
                    error["error_description"]
                        .as_str()
                        .unwrap_or("no description"),
                ),
            });
        }
        let answer: Value = json_of(classify(NAME, answer)?)?;
        let Some(value) = answer["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(ConnectorError::Transient {
                connector: NAME,
                message: "the token answer has no access_token".into(),
                retry_after: None,
            });
        };
        let value = SecretString::from(value.to_string());
        let until = answer["expires_in"]
            .as_u64()
            .map(|secs| Instant::now() + Duration::from_secs(secs.saturating_sub(60)));
        *cached = Some(Token {
            value: value.clone(),
            until,
        });
        Ok(value)
    }

    /// One REST call with the token, tried again within the push when that is safe
    /// (everything but a create). On a 401 the token is fetched once more and the
    /// call made again. The org's exhausted allocation is transient.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        let safe = method != Method::POST;
        let mut renew = false;
        loop {
            let token = self.token(renew).await?;
            let request = || {
                let request = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(token.expose_secret());
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            };
            let answer = call_retrying(NAME, safe, request, limit_exceeded).await?;
            if answer.status == StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// Runs a SOQL query and returns its records (following up to a few pages).
    async fn query(&self, soql: &str) -> Result<Vec<Value>, ConnectorError> {
        let mut url = self.data_url(&["query"]);
        url.query_pairs_mut().append_pair("q", soql);
        let mut records = Vec::new();
        for _ in 0..QUERY_PAGES {
            let page: Value = json_of(classify(
                NAME,
                self.send(Method::GET, url.clone(), None).await?,
            )?)?;
            records.extend(page["records"].as_array().into_iter().flatten().cloned());
            match page["nextRecordsUrl"].as_str() {
                Some(next) if page["done"] == Value::Bool(false) => {
                    url = self
                        .instance
                        .join(next)
                        .map_err(|_| ConnectorError::Permanent {
                            connector: NAME,
                            message: "a nextRecordsUrl that is not a path".into(),
                        })?;
                }
                _ => break,
            }
        }
        Ok(records)
    }

    /// The Lead with the update's email (id, Status), created when allowed.
    async fn find_lead(
        &self,
        update: &StatusUpdate,
        status: &str,
    ) -> Result<(String, Option<String>), ConnectorError> {
        let soql = format!(
            "SELECT Id, Status FROM Lead WHERE Email = {} AND IsConverted = false \
             ORDER BY CreatedDate DESC LIMIT 1",
            soql_string(&update.email)
        );
        if let Some(lead) = self.query(&soql).await?.first()
            && let Some(id) = lead["Id"].as_str()
        {
            return Ok((id.to_string(), lead["Status"].as_str().map(str::to_string)));
        }
        if !self.settings.create_leads {
            return Err(ConnectorError::Permanent {
                connector: NAME,
                message: "no Salesforce Lead has this email (SALESFORCE_CREATE_LEADS=true \
                          would create one)"
                    .into(),
            });
        }
        let (first, last) = match update.name.trim().rsplit_once(char::is_whitespace) {
            Some((first, last)) => (first.trim(), last.trim()),
            None => ("", update.name.trim()),
        };
        // LastName and Company are required on a Lead.
        let last = if last.is_empty() {
            update.email.split('@').next().unwrap_or("Unknown")
        } else {
            last
        };
        let mut lead = json!({
            "LastName": last,
            "Company": update.company.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or("Unknown"),
            "Email": update.email,
            "Status": status,
        });
        if !first.is_empty() {
            lead["FirstName"] = Value::String(first.to_string());
        }
        let answer = self
            .send(
                Method::POST,
                self.data_url(&["sobjects", "Lead"]),
                Some(&lead),
            )
            .await?;
        let created: Value = json_of(self.check(answer, status)?)?;
        match created["id"].as_str() {
            Some(id) => Ok((id.to_string(), Some(status.to_string()))),
            None => Err(ConnectorError::Permanent {
                connector: NAME,
                message: "the created Lead has no id".into(),
            }),
        }
    }

    /// Classifies a write's answer; a refused Status value is the status map's fault.
    fn check(&self, answer: Answer, status: &str) -> Result<String, ConnectorError> {
        if answer.status == StatusCode::BAD_REQUEST
            && (answer
                .body
                .contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
                || answer.body.contains("bad value for restricted picklist"))
        {
            return Err(ConnectorError::Setup {
                connector: NAME,
                message: format!(
                    "this org's Lead Status picklist has no value `{status}`: fix \
                     SALESFORCE_STATUS_MAP (README, \"Connect your CRM\")"
                ),
            });
        }
        classify(NAME, answer)
    }

    /// The markers of the Tasks this pipeline already made on the Lead.
    async fn markers(&self, lead: &str) -> Result<HashSet<String>, ConnectorError> {
        let soql = format!(
            "SELECT Subject FROM Task WHERE WhoId = {} AND Subject LIKE 'Lead recovery:%'",
            soql_string(lead)
        );
        Ok(self
            .query(&soql)
            .await?
            .iter()
            .filter_map(|task| task["Subject"].as_str().and_then(marker_in))
            .map(str::to_string)
            .collect())
    }

    /// Creates the Task; the answer is the caller's to judge (see [`super::make_missing`]).
    async fn add_task(&self, lead: &str, change: &StatusChange) -> Result<Answer, ConnectorError> {
        let description: String = change.text.chars().take(DESCRIPTION_MAX).collect();
        let task = json!({
            "WhoId": lead,
            "Subject": change.title(),
            "Description": description,
            "Status": "Completed",
            "ActivityDate": change.at.format("%Y-%m-%d").to_string(),
        });
        self.send(
            Method::POST,
            self.data_url(&["sobjects", "Task"]),
            Some(&task),
        )
        .await
    }
}

#[async_trait]
impl CrmConnector for SalesforceConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keeps_notes(&self) -> bool {
        true
    }

    async fn push(&self, update: &StatusUpdate) -> Result<(), ConnectorError> {
        let Some(status) = self.settings.status_map.value(update.status) else {
            return Ok(());
        };
        let (lead, current) = self.find_lead(update, status).await?;
        if current.as_deref() != Some(status) {
            let answer = self
                .send(
                    Method::PATCH,
                    self.data_url(&["sobjects", "Lead", &lead]),
                    Some(&json!({ "Status": status })),
                )
                .await?;
            self.check(answer, status)?;
        }
        if update.changes.is_empty() {
            return Ok(());
        }
        make_missing(
            NAME,
            &update.changes,
            || self.markers(&lead),
            |change| self.add_task(&lead, change),
        )
        .await
    }
}

/// `value` as a SOQL string literal: quoted, with quotes, backslashes and control
/// characters escaped, so that no value can change the query around it.
pub fn soql_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// A 403 `REQUEST_LIMIT_EXCEEDED`. When the org's daily allocation is used up
/// ("TotalRequests Limit exceeded") the retry waits [`LIMIT_WAIT`]; any other limit
/// (concurrent requests) passes in moments, so the request is tried again shortly.
/// Salesforce names no time.
fn limit_exceeded(answer: &Answer) -> Option<ConnectorError> {
    if answer.status != StatusCode::FORBIDDEN || !answer.body.contains("REQUEST_LIMIT_EXCEEDED") {
        return None;
    }
    let usage = header(answer, "sforce-limit-info").unwrap_or("no Sforce-Limit-Info");
    let daily = answer.body.contains("TotalRequests");
    Some(ConnectorError::Transient {
        connector: NAME,
        message: if daily {
            format!("the org's daily API request allocation is used up ({usage})")
        } else {
            format!("a Salesforce request limit was reached ({usage})")
        },
        retry_after: Some(if daily { LIMIT_WAIT } else { CONCURRENCY_WAIT }),
    })
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_of(body: String) -> Result<Value, ConnectorError> {
    serde_json::from_str(&body).map_err(|_| ConnectorError::Transient {
        connector: NAME,
        message: "Salesforce answered with something that is not JSON".into(),
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soql_string_cannot_end_early_or_escape_its_quotes() {
        assert_eq!(
            soql_string("dana@northwind.example"),
            "'dana@northwind.example'"
        );
        assert_eq!(soql_string("o'brien@x.example"), r"'o\'brien@x.example'");
        assert_eq!(
            soql_string(r"a\' OR Name != '@x"),
            r"'a\\\' OR Name != \'@x'"
        );
        assert_eq!(soql_string("a\"b\n\r\t"), r#"'a\"b\n\r\t'"#);
        assert_eq!(soql_string("\u{8}\u{c}\u{1}"), r"'\b\f\u0001'");
    }
}
