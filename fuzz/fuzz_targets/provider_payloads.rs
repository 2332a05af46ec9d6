//! Any verified body from any provider, normalized as webhook-ingest does and read
//! back as apply-events does. Properties: nothing panics; the event always has an id; the
//! FIFO group and deduplication ids are ones SQS accepts; the queued message reads
//! back as the same event (nothing is lost between the two functions).
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use shared::inbound::{InboundEvent, Provider};

/// SQS: 1 to 128 characters, printable ASCII.
fn sqs_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

fuzz_target!(|input: (u8, &[u8])| {
    let (which, body) = input;
    let providers: Vec<Provider> = Provider::all().collect();
    let provider = providers[usize::from(which) % providers.len()];
    let received = DateTime::from_timestamp(1_795_341_600, 0).unwrap();
    let event = InboundEvent::from_delivery(provider, body, received);
    assert!(!event.event_id.is_empty());
    let message = event.to_queue_message();
    assert!(sqs_id(message.group_id.as_deref().unwrap()));
    assert!(sqs_id(message.dedup_id.as_deref().unwrap()));
    let read_back: InboundEvent =
        serde_json::from_str(&message.body).expect("apply-events reads every queued event");
    assert_eq!(read_back, event);
});
