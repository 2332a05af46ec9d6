//! The AWS bill per million leads, from what was measured: the AWS requests per lead
//! that the quiet-day end-to-end test counted on the wire
//! ([`testkit::meter::COSTED_REQUESTS`]), and each function's warm duration and
//! log volume from the cold-start harness (`target/bench/lambda.json`). Prices are
//! on-demand list prices of us-east-1 (see [`PRICES`]); nothing here is a quote.

use anyhow::Context;
use testkit::meter::RequestsPerLead;

use crate::cold::Report;

/// List prices, us-east-1, in USD (AWS pricing pages, 2025): Lambda on arm64, HTTP
/// APIs, SQS beyond the free tier, DynamoDB on-demand, CloudWatch Logs ingestion.
pub struct Prices {
    pub lambda_gb_second: f64,
    pub lambda_request: f64,
    pub http_api_request: f64,
    pub sqs_standard_request: f64,
    pub sqs_fifo_request: f64,
    pub dynamodb_write_unit: f64,
    pub dynamodb_read_unit: f64,
    pub log_ingestion_gb: f64,
}

pub const PRICES: Prices = Prices {
    lambda_gb_second: 0.000_013_333_4,
    lambda_request: 0.20 / 1e6,
    http_api_request: 1.00 / 1e6,
    sqs_standard_request: 0.40 / 1e6,
    sqs_fifo_request: 0.50 / 1e6,
    dynamodb_write_unit: 0.625 / 1e6,
    dynamodb_read_unit: 0.125 / 1e6,
    log_ingestion_gb: 0.50,
};

/// `template.yaml`'s `MemorySize`.
const MEMORY_GB: f64 = 0.25;
/// Lambda's START, END and REPORT lines per invocation, in JSON format.
const PLATFORM_LOG_BYTES: f64 = 600.0;
/// With the default 30-minute delay a check is delivered twice (SQS delays at most
/// 15 minutes; the early delivery is sent again with the rest).
const EXTRA_CHECK_DELIVERIES: f64 = 1.0;

/// One line of the bill.
#[derive(Debug, Clone)]
pub struct Line {
    pub service: &'static str,
    pub what: String,
    pub per_million_leads: f64,
}

impl Line {
    fn new(service: &'static str, what: String, per_lead: f64) -> Self {
        Self {
            service,
            what,
            per_million_leads: per_lead * 1e6,
        }
    }
}

/// The bill per million leads, line by line.
pub fn bill(counted: &RequestsPerLead, lambda: &Report) -> anyhow::Result<Vec<Line>> {
    let deliveries = counted.webhook_deliveries_per_lead;
    let checks = counted.requests("sqs:SendMessage") + EXTRA_CHECK_DELIVERIES;
    let events = counted.requests("sqs-fifo:SendMessage");
    // One message per invocation: the worst case, at low volume.
    let invocations = [
        ("form-intake", 1.0),
        ("webhook-ingest", deliveries),
        ("recovery-check", checks),
        ("apply-events", events),
    ];
    let mut gb_seconds = 0.0;
    let mut log_bytes = 0.0;
    for (function, count) in invocations {
        let figures = lambda
            .functions
            .iter()
            .find(|f| f.function == function)
            .with_context(|| {
                format!("no figures for {function}: run the harness on every function")
            })?;
        gb_seconds += count * figures.warm.p50_ms.ceil() / 1000.0 * MEMORY_GB;
        log_bytes += count * (figures.log_bytes_per_invocation as f64 + PLATFORM_LOG_BYTES);
    }
    let lambda_requests: f64 = invocations.iter().map(|(_, n)| n).sum();
    let dynamo = counted
        .per_lead
        .iter()
        .filter(|(op, _)| op.starts_with("dynamodb:"))
        .fold((0.0, 0.0), |(w, r), (_, u)| {
            (w + u.write_units, r + u.read_units)
        });
    let changes = counted.requests("sqs:ChangeMessageVisibility");
    // Each message is sent, received and deleted by the event source.
    let standard = checks * 3.0 + changes;
    let fifo = events * 3.0;
    Ok(vec![
        Line::new(
            "API Gateway (HTTP API)",
            format!(
                "{:.1} requests per lead (the form, {deliveries:.1} webhooks)",
                1.0 + deliveries
            ),
            (1.0 + deliveries) * PRICES.http_api_request,
        ),
        Line::new(
            "Lambda requests",
            format!("{lambda_requests:.1} invocations per lead"),
            lambda_requests * PRICES.lambda_request,
        ),
        Line::new(
            "Lambda duration (arm64, 256 MB)",
            format!("{gb_seconds:.4} GB-s per lead"),
            gb_seconds * PRICES.lambda_gb_second,
        ),
        Line::new(
            "SQS standard (checks)",
            format!("{standard:.1} requests per lead"),
            standard * PRICES.sqs_standard_request,
        ),
        Line::new(
            "SQS FIFO (CRM events)",
            format!("{fifo:.1} requests per lead"),
            fifo * PRICES.sqs_fifo_request,
        ),
        Line::new(
            "DynamoDB on-demand",
            format!(
                "{:.1} write and {:.1} read units per lead",
                dynamo.0, dynamo.1
            ),
            dynamo.0 * PRICES.dynamodb_write_unit + dynamo.1 * PRICES.dynamodb_read_unit,
        ),
        Line::new(
            "CloudWatch Logs ingestion",
            format!("{:.1} KB per lead", log_bytes / 1000.0),
            log_bytes / 1e9 * PRICES.log_ingestion_gb,
        ),
    ])
}

/// The bill as a Markdown table.
pub fn table(lines: &[Line]) -> String {
    let mut out = String::from("| service | usage | per 1 million leads |\n|---|---|---|\n");
    for line in lines {
        out.push_str(&format!(
            "| {} | {} | ${:.2} |\n",
            line.service, line.what, line.per_million_leads
        ));
    }
    let total: f64 = lines.iter().map(|l| l.per_million_leads).sum();
    out.push_str(&format!("| **total** | | **${total:.2}** |\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold::{Baseline, Figures, Stats};

    fn stats(ms: f64) -> Stats {
        Stats {
            n: 1,
            p50_ms: ms,
            p99_ms: ms,
            max_ms: ms,
        }
    }

    fn figures(function: &str, warm_ms: f64) -> Figures {
        Figures {
            function: function.into(),
            init: stats(20.0),
            init_instant_aws: stats(5.0),
            first_invocation: stats(warm_ms),
            warm: stats(warm_ms),
            no_aws_call: None,
            peak_rss_kib: 10_000,
            log_bytes_per_invocation: 400,
            binary_bytes: 1,
            arm64_binary_bytes: None,
        }
    }

    #[test]
    fn the_bill_follows_the_counted_requests_and_measured_durations() {
        let counted: RequestsPerLead = serde_json::from_value(serde_json::json!({
            "leads": 10,
            "webhook_deliveries_per_lead": 3.0,
            "per_lead": {
                "sqs:SendMessage": { "requests": 1.0, "write_units": 0.0, "read_units": 0.0 },
                "sqs-fifo:SendMessage": { "requests": 3.0, "write_units": 0.0, "read_units": 0.0 },
                "dynamodb:TransactWriteItems": { "requests": 2.0, "write_units": 10.0, "read_units": 0.0 },
                "dynamodb:GetItem": { "requests": 8.0, "write_units": 0.0, "read_units": 8.0 },
            },
        }))
        .unwrap();
        let lambda = Report {
            functions: [
                "form-intake",
                "webhook-ingest",
                "recovery-check",
                "apply-events",
            ]
            .into_iter()
            .map(|f| figures(f, 9.5))
            .collect(),
            concurrent: None,
            baseline: Baseline {
                sqs_send_message: stats(1.0),
                dynamodb_get_item: stats(1.0),
            },
        };
        let lines = bill(&counted, &lambda).unwrap();
        let cost = |service: &str| {
            lines
                .iter()
                .find(|l| l.service.starts_with(service))
                .unwrap()
                .per_million_leads
        };
        // The form and three webhooks through the HTTP API, at $1 per million.
        assert!((cost("API Gateway") - 4.0).abs() < 1e-9);
        // 1 form + 3 webhooks + 2 check deliveries + 3 events, 10 ms billed each at 256 MB.
        assert!((cost("Lambda requests") - 9.0 * 0.20).abs() < 1e-9);
        let gb_seconds = 9.0 * 0.010 * 0.25;
        assert!((cost("Lambda duration") - gb_seconds * 13.3334).abs() < 1e-6);
        // Checks sent, received and deleted twice each; events once each, on FIFO.
        assert!((cost("SQS standard") - 6.0 * 0.40).abs() < 1e-9);
        assert!((cost("SQS FIFO") - 9.0 * 0.50).abs() < 1e-9);
        assert!((cost("DynamoDB") - (10.0 * 0.625 + 8.0 * 0.125)).abs() < 1e-9);
        let missing = Report {
            functions: vec![],
            ..lambda
        };
        assert!(bill(&counted, &missing).is_err());
    }
}
