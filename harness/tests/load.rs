//! The local stack's webhook route under a bounded concurrent load: every delivery is
//! accepted, and every accepted one is in the CRM queue exactly once. (Behaviour
//! only: the rates are for `webhook-load`, not for a test.)

use std::time::Duration;

use harness::load::{LoadSettings, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_delivery_under_load_is_queued_exactly_once() {
    let report = run(&LoadSettings {
        requests: 600,
        connections: 24,
        max_duration: Duration::from_secs(120),
    })
    .await
    .unwrap();
    assert_eq!(report.sent, 600, "{report:?}");
    assert_eq!(report.accepted, 600, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(report.queued, 600);
    assert!(
        report.missing.is_empty() && report.duplicated.is_empty(),
        "{report:?}"
    );
    assert!(report.nothing_lost());
}
