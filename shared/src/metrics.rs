//! CloudWatch metrics as Embedded Metric Format lines on stdout: no API call, no
//! extra latency; CloudWatch extracts them from the function's logs.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

/// Namespace of every metric the pipeline emits.
pub const NAMESPACE: &str = "LeadRecovery";

/// The EMF line for counts of `metrics` under the dimension `Function`.
pub fn emf_line(function: &str, metrics: &[(&str, f64)], timestamp_ms: i64) -> String {
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _)| json!({ "Name": name, "Unit": "Count" }))
        .collect();
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        }),
    );
    line.insert("Function".into(), Value::from(function));
    for (name, value) in metrics {
        line.insert((*name).into(), Value::from(*value));
    }
    Value::Object(line).to_string()
}

static TO_STDOUT: AtomicBool = AtomicBool::new(true);

/// Sends metric lines to the debug log instead of stdout, for a process (the local
/// stack) whose stdout is for people.
pub fn to_debug_log() {
    TO_STDOUT.store(false, Ordering::Relaxed);
}

/// Prints one EMF line.
pub fn count(function: &str, metrics: &[(&str, f64)]) {
    let line = emf_line(function, metrics, chrono::Utc::now().timestamp_millis());
    if TO_STDOUT.load(Ordering::Relaxed) {
        println!("{line}");
    } else {
        tracing::debug!(metric = %line, "metric");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_and_carries_each_metric() {
        let line: Value = serde_json::from_str(&emf_line(
            "recovery-check",
            &[("SkipUpAuthFailures", 1.0)],
            7,
        ))
        .unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 7);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "LeadRecovery");
        assert_eq!(directive["Metrics"][0]["Name"], "SkipUpAuthFailures");
        assert_eq!(line["Function"], "recovery-check");
        assert_eq!(line["SkipUpAuthFailures"], 1.0);
    }
}
