//! The SQS adapter over the wire against `moto_server`: messages really land in a
//! FIFO queue with the group and deduplication ids we chose, and failures are
//! classified so the handler can answer 503.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use shared::adapters::sqs::SqsQueue;
use shared::inbound::{InboundEvent, Provider};
use shared::ports::{Queue, QueueError};
use testkit::moto::{free_port, moto, sdk_config_for};

const BOOKED: &str = include_str!("../../fixtures/payloads/skipup-booked-data.json");

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto().sdk_config().await)
}

#[tokio::test]
async fn an_inbound_event_lands_in_the_fifo_queue_with_its_group_and_dedup_ids() {
    let url = moto().create_fifo_queue("crm").await;
    let queue = SqsQueue::new(sqs().await, &url);
    let event = InboundEvent::from_delivery(Provider::SKIPUP, BOOKED.as_bytes(), Utc::now());

    queue
        .send(&event.to_queue_message())
        .await
        .expect("enqueued");

    let messages = moto().drain_queue(&url).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    let attributes = message.attributes.as_ref().expect("system attributes");
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageGroupId],
        event.group_id()
    );
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageDeduplicationId],
        "skipup:evt_01JBOOKED00000000000000001"
    );
    let back: InboundEvent = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
    assert_eq!(back, event);
}

#[tokio::test]
async fn a_redelivered_event_is_stored_once() {
    let url = moto().create_fifo_queue("crm-dedup").await;
    let queue = SqsQueue::new(sqs().await, &url);
    let event = InboundEvent::from_delivery(Provider::SKIPUP, BOOKED.as_bytes(), Utc::now());
    for _ in 0..3 {
        queue
            .send(&event.to_queue_message())
            .await
            .expect("enqueued");
    }
    assert_eq!(moto().drain_queue(&url).await.len(), 1);
}

#[tokio::test]
async fn a_missing_queue_is_a_rejection() {
    let client = sqs().await;
    let missing = format!("{}/000000000000/does-not-exist.fifo", moto().endpoint());
    let queue = SqsQueue::new(client, missing);
    let event = InboundEvent::from_delivery(Provider::SKODE, b"{}", Utc::now());
    let error = queue.send(&event.to_queue_message()).await.unwrap_err();
    assert!(matches!(error, QueueError::Rejected(_)), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let client = aws_sdk_sqs::Client::new(&sdk_config_for(&endpoint).await);
    let queue = SqsQueue::new(client, format!("{endpoint}/000000000000/crm.fifo"));
    let event = InboundEvent::from_delivery(Provider::SKODE, b"{}", Utc::now());
    let error = queue.send(&event.to_queue_message()).await.unwrap_err();
    assert!(matches!(error, QueueError::Unavailable(_)), "{error:?}");
}
