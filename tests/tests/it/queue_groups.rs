//! Ordering groups on both queue adapters: of a group, only the oldest message is handed out,
//! never while it is in flight; the next follows once it is deleted or dead-lettered; a
//! message hidden for a retry keeps its place. The embedded queue and the FIFO deliveries
//! queue (on moto, through `SqsDeliveries`) answer the same.

use std::time::Duration;

use async_trait::async_trait;
use hookline_core::adapters::aws::sqs::SqsQueue;
use hookline_core::adapters::sqlite::SqliteQueue;
use hookline_core::delivery::{DeliveryMessage, ReceivedMessage};
use hookline_core::event::EventId;
use hookline_core::ports::DeliveryQueue;
use hookline_core::webhook::WebhookId;

#[async_trait]
trait Queue {
    fn port(&self) -> &dyn DeliveryQueue;
    /// Whatever is visible now, after waiting briefly for it.
    async fn receive(&self) -> Vec<ReceivedMessage>;
    async fn delete(&self, m: &ReceivedMessage);
}

struct Embedded(SqliteQueue);

#[async_trait]
impl Queue for Embedded {
    fn port(&self) -> &dyn DeliveryQueue {
        &self.0
    }
    async fn receive(&self) -> Vec<ReceivedMessage> {
        self.0
            .receive(10, Duration::from_secs(60))
            .await
            .expect("receive")
    }
    async fn delete(&self, m: &ReceivedMessage) {
        self.0.delete(&m.receipt).await.expect("delete");
    }
}

struct Fifo {
    deliveries: hookline_core::adapters::aws::sqs::SqsDeliveries,
    sqs: aws_sdk_sqs::Client,
    url: String,
    plain_url: String,
}

#[async_trait]
impl Queue for Fifo {
    fn port(&self) -> &dyn DeliveryQueue {
        &self.deliveries
    }
    /// As the FIFO event source with its batch size of 1 polls: one message a call, until
    /// none is handed out.
    async fn receive(&self) -> Vec<ReceivedMessage> {
        let mut got = hookline_tests::sqs_receive(&self.sqs, &self.plain_url).await;
        loop {
            let one = hookline_tests::sqs_receive_up_to(&self.sqs, &self.url, 1).await;
            if one.is_empty() {
                return got;
            }
            got.extend(one);
        }
    }
    async fn delete(&self, m: &ReceivedMessage) {
        let url = if m.body.contains("\"group\"") {
            &self.url
        } else {
            &self.plain_url
        };
        SqsQueue::new(self.sqs.clone(), url.clone())
            .delete(&m.receipt)
            .await
            .expect("delete");
    }
}

fn message(event: &str, group: Option<&str>) -> DeliveryMessage {
    DeliveryMessage::first(
        &EventId::parse(event).expect("event id"),
        &WebhookId::parse("wh_01JDK80000000000000000WH01").expect("webhook id"),
        group.map(str::to_owned),
    )
}

fn events(batch: &[ReceivedMessage]) -> Vec<String> {
    let mut ids: Vec<String> = batch
        .iter()
        .map(|m| {
            serde_json::from_str::<DeliveryMessage>(&m.body)
                .expect("delivery")
                .event_id
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

async fn groups_hand_out_their_oldest_message_only(q: &dyn Queue) {
    let sent = [
        message("evt_g1", Some("wh_1")),
        message("evt_g2", Some("wh_1")),
        message("evt_g3", Some("wh_1")),
        message("evt_h1", Some("wh_2")),
        message("evt_free", None),
    ];
    let unsent = q.port().send_deliveries(&sent).await.expect("send");
    assert!(unsent.is_empty());
    let first = q.receive().await;
    assert_eq!(events(&first), ["evt_free", "evt_g1", "evt_h1"]);
    // While the heads are in flight, their groups hand out nothing.
    assert!(
        q.receive().await.is_empty(),
        "a group is blocked while its head is in flight"
    );
    for m in &first {
        if !m.body.contains("evt_g1") {
            q.delete(m).await;
        }
    }
    // g1 fails and is hidden briefly for its retry: it comes back before g2.
    let g1 = first
        .iter()
        .find(|m| m.body.contains("evt_g1"))
        .expect("g1");
    q.port()
        .retry_later(&sent[0], &g1.receipt, Duration::from_secs(1))
        .await
        .expect("retry later");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = q.receive().await;
    assert_eq!(
        events(&again),
        ["evt_g1"],
        "the retried head keeps its place"
    );
    assert_eq!(again[0].receive_count, 2);
    // Finally failed: dead-lettered, and the group moves on.
    q.port()
        .dead_letter(&sent[0], "test: retries exhausted")
        .await
        .expect("dead letter");
    q.delete(&again[0]).await;
    let next = q.receive().await;
    assert_eq!(events(&next), ["evt_g2"]);
    q.delete(&next[0]).await;
    let last = q.receive().await;
    assert_eq!(events(&last), ["evt_g3"]);
    q.delete(&last[0]).await;
    assert!(q.receive().await.is_empty());
}

#[tokio::test]
async fn ordering_groups_on_the_embedded_queue() {
    let db = hookline_core::adapters::sqlite::Database::open(&hookline_tests::temp_db("groups"))
        .expect("db");
    let queue = SqliteQueue::new(db.clone(), "deliveries", Some(("deliveries-dlq", 12)));
    groups_hand_out_their_oldest_message_only(&Embedded(queue)).await;
    let dlq = SqliteQueue::new(db, "deliveries-dlq", None)
        .list(10)
        .await
        .expect("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].reason.as_deref(), Some("test: retries exhausted"));
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn ordering_groups_on_the_fifo_queue() {
    let (_, sqs, r) = hookline_tests::fresh_aws("groups").await;
    let fifo = Fifo {
        deliveries: r.deliveries(&sqs),
        sqs: sqs.clone(),
        url: r.ordered_deliveries_queue_url.clone(),
        plain_url: r.deliveries_queue_url.clone(),
    };
    groups_hand_out_their_oldest_message_only(&fifo).await;
    let dead = hookline_tests::sqs_receive(&sqs, &r.ordered_deliveries_dlq_url).await;
    assert_eq!(dead.len(), 1, "the dead-lettered head is in the FIFO DLQ");
}

/// A wide fan-out goes out as batches side by side: every one of 205 unordered deliveries
/// (21 `SendMessageBatch` requests) reaches the standard queue exactly once, and the ordered
/// ones beside them reach the FIFO queue in their order.
#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn a_wide_fan_out_reaches_the_queues_whole() {
    let (_, sqs, r) = hookline_tests::fresh_aws("wide").await;
    let mut sent: Vec<DeliveryMessage> = (0..205)
        .map(|i| message(&format!("evt_w{i:03}"), None))
        .collect();
    sent.extend((0..3).map(|i| message(&format!("evt_o{i}"), Some("wh_o"))));
    let unsent = r
        .deliveries(&sqs)
        .send_deliveries(&sent)
        .await
        .expect("send");
    assert!(unsent.is_empty(), "{unsent:?}");
    let mut received = Vec::new();
    loop {
        let batch = hookline_tests::sqs_receive(&sqs, &r.deliveries_queue_url).await;
        if batch.is_empty() {
            break;
        }
        received.extend(events(&batch));
    }
    received.sort();
    let expected: Vec<String> = (0..205).map(|i| format!("evt_w{i:03}")).collect();
    assert_eq!(received, expected, "each unordered delivery exactly once");
    let mut ordered = Vec::new();
    loop {
        let one = hookline_tests::sqs_receive_up_to(&sqs, &r.ordered_deliveries_queue_url, 1).await;
        let Some(m) = one.first() else { break };
        ordered.extend(events(&one));
        SqsQueue::new(sqs.clone(), r.ordered_deliveries_queue_url.clone())
            .delete(&m.receipt)
            .await
            .expect("delete");
    }
    assert_eq!(
        ordered,
        ["evt_o0", "evt_o1", "evt_o2"],
        "the group in order"
    );
}
