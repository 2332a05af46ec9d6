//! Counts the AWS requests made through an SDK configuration, by operation, with
//! their sizes: what the end-to-end test reports per lead for the cost figures. Every
//! HTTP attempt counts (AWS bills retries too). The operation comes from the
//! `X-Amz-Target` header of the JSON protocols (DynamoDB, SQS, Secrets Manager); SQS
//! operations are split into standard and FIFO queues, which are priced apart.
//!
//! DynamoDB's capacity units are estimated from the wire: a write costs one unit per
//! KiB of each item's JSON (two in a transaction, condition checks included), a read
//! one unit per 4 KiB of the answer (half when eventually consistent). The JSON is
//! longer than DynamoDB's own size measure, so the estimates err on the high side.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde::{Deserialize, Serialize};

/// What one operation cost in requests and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub requests: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Estimated DynamoDB write request units.
    pub write_units: f64,
    /// Estimated DynamoDB read request units.
    pub read_units: f64,
}

/// The counts, shared by every client built from a metered configuration.
#[derive(Debug, Default, Clone)]
pub struct Meter(Arc<Mutex<BTreeMap<String, Usage>>>);

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `sdk` with its HTTP client counted by this meter (every attempt that client
    /// sends, as it sends it).
    pub fn wrap(&self, sdk: SdkConfig) -> SdkConfig {
        let inner = sdk.http_client().unwrap_or_else(crate::moto::https_client);
        sdk.into_builder()
            .http_client(Metered {
                inner,
                meter: self.clone(),
            })
            .build()
    }

    /// Requests and bytes per operation (`dynamodb:GetItem`, `sqs-fifo:SendMessage`, ...).
    pub fn usage(&self) -> BTreeMap<String, Usage> {
        self.0.lock().unwrap().clone()
    }

    fn record(&self, operation: String, request: &[u8], response_bytes: u64) {
        let (write_units, read_units) = capacity(&operation, request, response_bytes);
        let mut usage = self.0.lock().unwrap();
        let entry = usage.entry(operation).or_default();
        entry.requests += 1;
        entry.request_bytes += request.len() as u64;
        entry.response_bytes += response_bytes;
        entry.write_units += write_units;
        entry.read_units += read_units;
    }
}

/// An operation's share of one lead: what the cost figures are computed from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerLead {
    pub requests: f64,
    pub write_units: f64,
    pub read_units: f64,
}

/// The AWS requests behind each lead, as the quiet-day end-to-end test counted them
/// and `harness`'s `cost` reads them back ([`COSTED_REQUESTS`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestsPerLead {
    pub leads: usize,
    pub webhook_deliveries_per_lead: f64,
    pub per_lead: BTreeMap<String, PerLead>,
}

/// Where [`RequestsPerLead`] is written, under the workspace root.
pub const COSTED_REQUESTS: &str = "target/cost/aws-requests-per-lead.json";

impl RequestsPerLead {
    /// What was used between `before` and `after` (two [`Meter::usage`] readings),
    /// shared by `leads`; operations with no request in between are left out.
    pub fn between(
        before: &BTreeMap<String, Usage>,
        after: &BTreeMap<String, Usage>,
        leads: usize,
        webhook_deliveries: usize,
    ) -> Self {
        let share = |now: f64, then: f64| (now - then) / leads as f64;
        let per_lead = after
            .iter()
            .filter_map(|(operation, now)| {
                let then = before.get(operation).copied().unwrap_or_default();
                (now.requests > then.requests).then(|| {
                    let per = PerLead {
                        requests: share(now.requests as f64, then.requests as f64),
                        write_units: share(now.write_units, then.write_units),
                        read_units: share(now.read_units, then.read_units),
                    };
                    (operation.clone(), per)
                })
            })
            .collect();
        Self {
            leads,
            webhook_deliveries_per_lead: webhook_deliveries as f64 / leads as f64,
            per_lead,
        }
    }

    /// Requests per lead of `operation` (0 when it made none).
    pub fn requests(&self, operation: &str) -> f64 {
        self.per_lead.get(operation).map_or(0.0, |p| p.requests)
    }
}

#[derive(Debug)]
struct Metered {
    inner: SharedHttpClient,
    meter: Meter,
}

impl HttpClient for Metered {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(MeteredConnector {
            inner: self.inner.http_connector(settings, components),
            meter: self.meter.clone(),
        })
    }
}

#[derive(Debug)]
struct MeteredConnector {
    inner: SharedHttpConnector,
    meter: Meter,
}

impl HttpConnector for MeteredConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let operation = operation(
            request.headers().get("x-amz-target").unwrap_or("unknown"),
            &body,
        );
        let meter = self.meter.clone();
        let call = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let response = call.await?;
            let response_bytes = response
                .headers()
                .get("content-length")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            meter.record(operation, &body, response_bytes);
            Ok(response)
        })
    }
}

/// `DynamoDB_20120810.GetItem` -> `dynamodb:GetItem`; SQS calls on a `.fifo` queue
/// are `sqs-fifo:...`.
fn operation(target: &str, body: &[u8]) -> String {
    let (service, name) = target.split_once('.').unwrap_or(("unknown", target));
    let service = match service {
        s if s.starts_with("DynamoDB") => "dynamodb",
        "AmazonSQS" => {
            let fifo = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|b| b["QueueUrl"].as_str().map(|u| u.ends_with(".fifo")))
                .unwrap_or(false);
            if fifo { "sqs-fifo" } else { "sqs" }
        }
        "secretsmanager" => "secretsmanager",
        other => other,
    };
    format!("{service}:{name}")
}

/// Estimated (write, read) request units of one DynamoDB call.
fn capacity(operation: &str, request: &[u8], response_bytes: u64) -> (f64, f64) {
    let Some(name) = operation.strip_prefix("dynamodb:") else {
        return (0.0, 0.0);
    };
    let body: serde_json::Value = serde_json::from_slice(request).unwrap_or_default();
    let kib = |item: &serde_json::Value| (item.to_string().len() as f64 / 1024.0).ceil().max(1.0);
    match name {
        "PutItem" => (kib(&body["Item"]), 0.0),
        "DeleteItem" | "UpdateItem" => (1.0, 0.0),
        "TransactWriteItems" => {
            let items = body["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let units = items
                .iter()
                .map(|item| match &item["Put"]["Item"] {
                    serde_json::Value::Null => 2.0,
                    put => 2.0 * kib(put),
                })
                .sum();
            (units, 0.0)
        }
        "GetItem" | "Query" | "Scan" | "BatchGetItem" => {
            let consistent = body["ConsistentRead"].as_bool().unwrap_or(false);
            let units = (response_bytes as f64 / 4096.0).ceil().max(1.0);
            (0.0, if consistent { units } else { units / 2.0 })
        }
        _ => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::{BTreeMap, PerLead, RequestsPerLead, Usage, capacity, operation};

    #[test]
    fn per_lead_usage_is_what_was_used_in_between_shared_by_the_leads() {
        let usage = |requests, write_units| Usage {
            requests,
            write_units,
            ..Usage::default()
        };
        let before = BTreeMap::from([
            ("dynamodb:CreateTable".to_string(), usage(1, 0.0)),
            ("dynamodb:TransactWriteItems".to_string(), usage(2, 8.0)),
        ]);
        let after = BTreeMap::from([
            ("dynamodb:CreateTable".to_string(), usage(1, 0.0)),
            ("dynamodb:TransactWriteItems".to_string(), usage(12, 48.0)),
            ("sqs:SendMessage".to_string(), usage(5, 0.0)),
        ]);
        let counted = RequestsPerLead::between(&before, &after, 5, 15);
        assert_eq!(counted.webhook_deliveries_per_lead, 3.0);
        assert_eq!(
            counted.per_lead,
            BTreeMap::from([
                (
                    "dynamodb:TransactWriteItems".to_string(),
                    PerLead {
                        requests: 2.0,
                        write_units: 8.0,
                        read_units: 0.0
                    }
                ),
                (
                    "sqs:SendMessage".to_string(),
                    PerLead {
                        requests: 1.0,
                        ..PerLead::default()
                    }
                ),
            ])
        );
        assert_eq!(counted.requests("sqs:SendMessage"), 1.0);
        assert_eq!(counted.requests("dynamodb:CreateTable"), 0.0);
    }

    #[test]
    fn capacity_is_estimated_per_item_and_per_4_kib_read() {
        let put = br#"{"TableName":"t","Item":{"pk":{"S":"a"}}}"#;
        assert_eq!(capacity("dynamodb:PutItem", put, 100), (1.0, 0.0));
        let big = format!(r#"{{"Item":{{"pk":{{"S":"{}"}}}}}}"#, "x".repeat(1500));
        assert_eq!(
            capacity("dynamodb:PutItem", big.as_bytes(), 100),
            (2.0, 0.0)
        );
        let transaction = br#"{"TransactItems":[{"Put":{"Item":{"pk":{"S":"a"}}}},{"ConditionCheck":{"Key":{}}}]}"#;
        assert_eq!(
            capacity("dynamodb:TransactWriteItems", transaction, 0),
            (4.0, 0.0)
        );
        let read = br#"{"ConsistentRead":true}"#;
        assert_eq!(capacity("dynamodb:GetItem", read, 5000), (0.0, 2.0));
        assert_eq!(capacity("dynamodb:GetItem", b"{}", 100), (0.0, 0.5));
        assert_eq!(capacity("sqs:SendMessage", b"{}", 100), (0.0, 0.0));
    }

    #[test]
    fn operations_are_named_by_service_and_sqs_queues_by_kind() {
        assert_eq!(
            operation("DynamoDB_20120810.TransactWriteItems", b""),
            "dynamodb:TransactWriteItems"
        );
        let fifo = br#"{"QueueUrl":"http://localhost/123/crm.fifo","MessageBody":"{}"}"#;
        assert_eq!(
            operation("AmazonSQS.SendMessage", fifo),
            "sqs-fifo:SendMessage"
        );
        let standard = br#"{"QueueUrl":"http://localhost/123/checks"}"#;
        assert_eq!(
            operation("AmazonSQS.DeleteMessageBatch", standard),
            "sqs:DeleteMessageBatch"
        );
        assert_eq!(
            operation("secretsmanager.GetSecretValue", b"{}"),
            "secretsmanager:GetSecretValue"
        );
    }
}
