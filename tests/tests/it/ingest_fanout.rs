//! Fan-out on both paths — the embedded queue and SQLite, and SQS + DynamoDB on moto — with
//! one set of cases: matching, dedupe, garbage to the DLQ, a half-failed send, and the
//! Lambda's SQS event fixture.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use hookline_core::adapters::aws::sqs::{SqsQueue, REASON_ATTRIBUTE};
use hookline_core::adapters::lambda::received_messages;
use hookline_core::adapters::sqlite::Database;
use hookline_core::adapters::sqlite::SqliteQueue;
use hookline_core::delivery::{DeliveryId, DeliveryMessage, ReceiptHandle};
use hookline_core::ports::{DeadLetters, DeliveryQueue, EventLog, PortError, Ports, WebhookStore};
use hookline_core::webhook::WebhookId;
use hookline_ingest::{Ingest, IngestSettings};
use hookline_tests::webhook;

/// One way to run ingest: its ports, and how a source and the event source mapping talk to
/// its queues.
#[async_trait]
trait Backend: Send + Sync {
    /// Every port, wired by the composition's builder.
    fn ports(&self) -> Ports;
    fn store(&self) -> Arc<dyn WebhookStore> {
        self.ports().webhooks
    }
    fn lifecycle(&self) -> hookline_core::lifecycle::Lifecycle {
        hookline_core::lifecycle::Lifecycle::from_ports(&self.ports())
    }
    fn log(&self) -> Arc<dyn EventLog> {
        self.ports().events
    }
    fn deliveries_port(&self) -> Arc<dyn DeliveryQueue>;
    fn dead_letters_port(&self) -> Arc<dyn DeadLetters>;
    /// A source's raw send into the events queue.
    async fn push_raw(&self, body: &str);
    /// One receive of up to 10 messages, as the SQS event source hands them to the function.
    async fn receive_event(&self) -> SqsEvent;
    /// Deletes a handled message; makes a failed one visible again at once (a redelivery
    /// without waiting out the visibility timeout).
    async fn settle(&self, receipt: &ReceiptHandle, failed: bool);
    /// Every delivery message in the deliveries queue.
    async fn deliveries(&self) -> Vec<DeliveryMessage>;
    /// Every dead letter: body and reason.
    async fn dead_letters(&self) -> Vec<(String, Option<String>)>;
    /// Receives the events queue's messages without handling them until redrive moves them
    /// to the events DLQ (a consumer that keeps failing), then replays the DLQ as `hookline
    /// dlq replay` does; returns how many went back.
    async fn redrive_and_replay(&self) -> usize;

    fn ingest_with(&self, deliveries: Arc<dyn DeliveryQueue>) -> Ingest {
        Ingest::new(
            self.store(),
            self.log(),
            deliveries,
            self.dead_letters_port(),
            self.lifecycle(),
            IngestSettings::default(),
        )
    }

    /// One receive, handled and settled; returns the ids reported failed.
    async fn run_once(&self, ingest: &Ingest) -> Option<Vec<String>> {
        let event = self.receive_event().await;
        if event.records.is_empty() {
            return None;
        }
        let messages = received_messages(event);
        let failed = ingest.handle_batch(&messages).await;
        for m in &messages {
            self.settle(&m.receipt, failed.contains(&m.message_id))
                .await;
        }
        Some(failed)
    }

    /// Runs the event source until nothing is visible; failed messages come straight back
    /// (as after their visibility timeout). Returns every failure reported on the way.
    async fn drain(&self, ingest: &Ingest) -> Vec<String> {
        let mut all_failed = Vec::new();
        for _ in 0..50 {
            match self.run_once(ingest).await {
                None => return all_failed,
                Some(failed) => all_failed.extend(failed),
            }
        }
        panic!("the events queue did not drain: still failing {all_failed:?}");
    }
}

fn sqs_event(records: Vec<serde_json::Value>) -> SqsEvent {
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("SQS event shape")
}

struct Embedded {
    db: Database,
    events: SqliteQueue,
    events_dlq: SqliteQueue,
    deliveries: SqliteQueue,
}

impl Embedded {
    fn new() -> Self {
        let db = Database::open_in_memory().expect("sqlite");
        Self {
            events: SqliteQueue::new(db.clone(), "events", Some(("events-dlq", 6))),
            events_dlq: SqliteQueue::new(db.clone(), "events-dlq", None),
            deliveries: SqliteQueue::new(db.clone(), "deliveries", Some(("deliveries-dlq", 6))),
            db,
        }
    }
}

#[async_trait]
impl Backend for Embedded {
    fn ports(&self) -> Ports {
        hookline_tests::embedded_ports(&self.db)
    }
    fn deliveries_port(&self) -> Arc<dyn DeliveryQueue> {
        Arc::new(self.deliveries.clone())
    }
    fn dead_letters_port(&self) -> Arc<dyn DeadLetters> {
        Arc::new(self.events_dlq.clone())
    }
    async fn push_raw(&self, body: &str) {
        self.events
            .send(body, Duration::ZERO, None)
            .await
            .expect("send");
    }
    async fn receive_event(&self) -> SqsEvent {
        let batch = self
            .events
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        sqs_event(
            batch
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "messageId": m.message_id, "receiptHandle": m.receipt.0, "body": m.body,
                        "attributes": {"ApproximateReceiveCount": m.receive_count.to_string()},
                        "messageAttributes": {}, "eventSource": "hookline:embedded"
                    })
                })
                .collect(),
        )
    }
    async fn settle(&self, receipt: &ReceiptHandle, failed: bool) {
        if failed {
            self.events
                .change_visibility(receipt, Duration::ZERO)
                .await
                .expect("visibility");
        } else {
            self.events.delete(receipt).await.expect("delete");
        }
    }
    async fn deliveries(&self) -> Vec<DeliveryMessage> {
        self.deliveries
            .list(10_000)
            .await
            .expect("list")
            .into_iter()
            .map(|m| serde_json::from_str(&m.body).expect("delivery message"))
            .collect()
    }
    async fn dead_letters(&self) -> Vec<(String, Option<String>)> {
        self.events_dlq
            .list(100)
            .await
            .expect("list")
            .into_iter()
            .map(|m| (m.body, m.reason))
            .collect()
    }
    async fn redrive_and_replay(&self) -> usize {
        for _ in 0..10 {
            let got = self
                .events
                .receive(10, Duration::ZERO)
                .await
                .expect("receive");
            if got.is_empty() {
                break;
            }
        }
        hookline::dlq::replay_embedded(
            &self.events_dlq,
            &self.events,
            &hookline::dlq::ReplayFilter::default(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .expect("replay")
    }
}

struct Moto {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    resources: hookline_infra::Resources,
}

impl Moto {
    async fn new() -> Self {
        let (dynamo, sqs, resources) = hookline_tests::fresh_aws("ingest").await;
        Self {
            dynamo,
            sqs,
            resources,
        }
    }

    async fn receive_all(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            if out.messages().is_empty() {
                return all;
            }
            all.extend(out.messages().iter().cloned());
        }
    }
}

#[async_trait]
impl Backend for Moto {
    fn ports(&self) -> Ports {
        hookline_tests::aws_ports(&self.dynamo, &self.sqs, &self.resources).ports
    }
    fn deliveries_port(&self) -> Arc<dyn DeliveryQueue> {
        Arc::new(self.resources.deliveries(&self.sqs))
    }
    fn dead_letters_port(&self) -> Arc<dyn DeadLetters> {
        Arc::new(SqsQueue::new(
            self.sqs.clone(),
            self.resources.events_dlq_url.clone(),
        ))
    }
    async fn push_raw(&self, body: &str) {
        // Exactly what an external producer does: a plain SendMessage, no Hookline code.
        self.sqs
            .send_message()
            .queue_url(&self.resources.events_queue_url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }
    async fn receive_event(&self) -> SqsEvent {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.resources.events_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        sqs_event(
            out.messages()
                .iter()
                .map(|m| {
                    let count = m
                        .attributes()
                        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                        .cloned()
                        .unwrap_or_else(|| "1".into());
                    // As the event source hands them over: {name: {stringValue, dataType}}.
                    let attributes: serde_json::Map<String, serde_json::Value> = m
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), serde_json::json!({"stringValue": v.string_value(), "dataType": v.data_type()})))
                        .collect();
                    serde_json::json!({
                        "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                        "attributes": {"ApproximateReceiveCount": count},
                        "messageAttributes": attributes, "eventSource": "aws:sqs"
                    })
                })
                .collect(),
        )
    }
    async fn settle(&self, receipt: &ReceiptHandle, failed: bool) {
        let url = &self.resources.events_queue_url;
        if failed {
            self.sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(&receipt.0)
                .visibility_timeout(0)
                .send()
                .await
                .expect("visibility");
        } else {
            self.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(&receipt.0)
                .send()
                .await
                .expect("delete");
        }
    }
    async fn deliveries(&self) -> Vec<DeliveryMessage> {
        self.receive_all(&self.resources.deliveries_queue_url)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().expect("body")).expect("delivery message"))
            .collect()
    }
    async fn dead_letters(&self) -> Vec<(String, Option<String>)> {
        self.receive_all(&self.resources.events_dlq_url)
            .await
            .iter()
            .map(|m| {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned);
                (m.body().unwrap_or_default().to_owned(), reason)
            })
            .collect()
    }
    async fn redrive_and_replay(&self) -> usize {
        for _ in 0..10 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.resources.events_queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .expect("receive");
            if out.messages().is_empty() {
                break;
            }
        }
        hookline::dlq::replay_sqs(
            &self.sqs,
            &self.resources.events_dlq_url,
            &self.resources.events_queue_url,
            &hookline::dlq::ReplayFilter::default(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .expect("replay")
    }
}

fn event_body(id: &str, event_type: &str, urn: &str) -> String {
    serde_json::json!({"id": id, "type": event_type, "urn": urn, "data": {"n": 1}}).to_string()
}

fn webhook_ids(deliveries: &[DeliveryMessage]) -> BTreeSet<WebhookId> {
    deliveries.iter().map(|d| d.webhook_id.clone()).collect()
}

async fn fans_out_to_exactly_the_matching_webhooks(b: &dyn Backend) {
    let store = b.store();
    let whole_app = webhook(&["urn:allthings:app:A1:*"], &["*"], true);
    let category = webhook(&["urn:allthings:app:A1:ticket:CAT7:*"], &["ticket.*"], true);
    let other_category = webhook(&["urn:allthings:app:A1:ticket:CAT8:*"], &["ticket.*"], true);
    let several_apps = webhook(
        &["urn:allthings:app:A2:*", "urn:allthings:app:A1:ticket:*"],
        &["ticket.created"],
        true,
    );
    let bookings_only = webhook(&["urn:allthings:app:A1:*"], &["booking.*"], true);
    let disabled = webhook(&["urn:allthings:app:A1:*"], &["*"], false);
    let deleted = webhook(&["urn:allthings:app:A1:*"], &["*"], true);
    let other_app = webhook(&["urn:allthings:app:A2:*"], &["*"], true);
    for w in [
        &whole_app,
        &category,
        &other_category,
        &several_apps,
        &bookings_only,
        &disabled,
        &deleted,
        &other_app,
    ] {
        store.create(w).await.expect("create");
    }
    store.delete(&deleted.id, 1).await.expect("delete");

    b.push_raw(&event_body(
        "evt_t99",
        "ticket.created",
        "urn:allthings:app:A1:ticket:CAT7:T99",
    ))
    .await;
    b.push_raw(&event_body(
        "evt_a2",
        "ticket.created",
        "urn:allthings:app:A2:ticket:CAT1:T1",
    ))
    .await;
    let ingest = b.ingest_with(b.deliveries_port());
    assert!(b.drain(&ingest).await.is_empty());

    let deliveries = b.deliveries().await;
    let for_t99: Vec<DeliveryMessage> = deliveries
        .iter()
        .filter(|d| d.event_id.as_str() == "evt_t99")
        .cloned()
        .collect();
    let for_a2: Vec<DeliveryMessage> = deliveries
        .iter()
        .filter(|d| d.event_id.as_str() == "evt_a2")
        .cloned()
        .collect();
    assert_eq!(
        webhook_ids(&for_t99),
        BTreeSet::from([
            whole_app.id.clone(),
            category.id.clone(),
            several_apps.id.clone()
        ])
    );
    assert_eq!(for_t99.len(), 3, "one delivery per webhook");
    assert_eq!(
        webhook_ids(&for_a2),
        BTreeSet::from([several_apps.id.clone(), other_app.id.clone()])
    );
    for d in &deliveries {
        assert_eq!(
            d.delivery_id,
            DeliveryId::for_pair(&d.event_id, &d.webhook_id)
        );
    }
    // The event log keeps the payload for redelivery.
    let logged = b
        .log()
        .get(&hookline_core::event::EventId::parse("evt_t99").expect("id"))
        .await
        .expect("get");
    assert_eq!(
        logged.expect("logged").urn.to_string(),
        "urn:allthings:app:A1:ticket:CAT7:T99"
    );
}

async fn the_same_event_id_twice_is_fanned_out_once(b: &dyn Backend) {
    let store = b.store();
    for _ in 0..3 {
        store
            .create(&webhook(&["urn:allthings:app:D1:*"], &["*"], true))
            .await
            .expect("create");
    }
    let body = event_body("evt_dup", "user.registered", "urn:allthings:app:D1:user:U1");
    b.push_raw(&body).await;
    b.push_raw(&body).await;
    let ingest = b.ingest_with(b.deliveries_port());
    // Both copies arrive in one batch: the second is dropped as a duplicate, at once on
    // DynamoDB (another message's claim), or after waiting for the first's claim (SQLite).
    let retried = b.drain(&ingest).await;
    assert!(retried.len() <= 1, "{retried:?}");
    b.push_raw(&body).await;
    assert!(
        b.drain(&ingest).await.is_empty(),
        "a later copy is dropped at once"
    );
    assert_eq!(b.deliveries().await.len(), 3);
}

async fn garbage_goes_to_the_dlq_without_blocking_its_batch(b: &dyn Backend) {
    b.store()
        .create(&webhook(&["urn:allthings:app:G1:*"], &["*"], true))
        .await
        .expect("create");
    b.push_raw("{ not json").await;
    b.push_raw(&event_body(
        "evt_good",
        "ticket.created",
        "urn:allthings:app:G1:ticket:C:T1",
    ))
    .await;
    b.push_raw(&event_body(
        "evt_unknown_type",
        "invoice.paid",
        "urn:allthings:app:G1:x",
    ))
    .await;
    b.push_raw(r#"{"type":"ticket.created","urn":"urn:allthings:app:*","data":{}}"#)
        .await;
    let ingest = b.ingest_with(b.deliveries_port());
    assert!(
        b.drain(&ingest).await.is_empty(),
        "garbage is handled (dead-lettered), not retried"
    );
    let deliveries = b.deliveries().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].event_id.as_str(), "evt_good");
    let dead = b.dead_letters().await;
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead.iter().any(|(body, reason)| body == "{ not json"
            && reason
                .as_deref()
                .is_some_and(|r| r.contains("not a valid envelope"))),
        "{dead:?}"
    );
    assert!(
        dead.iter().any(|(_, reason)| reason
            .as_deref()
            .is_some_and(|r| r.contains("invoice.paid"))),
        "{dead:?}"
    );
    assert!(
        dead.iter().any(|(_, reason)| reason
            .as_deref()
            .is_some_and(|r| r.contains("never spans Apps") || r.contains("no wildcard"))),
        "{dead:?}"
    );
}

/// Sends the first `accept` messages of each call, refuses the rest (a half-failed batch).
struct HalfBroken {
    inner: Arc<dyn DeliveryQueue>,
    accept: usize,
}

#[async_trait]
impl DeliveryQueue for HalfBroken {
    async fn send_deliveries(
        &self,
        messages: &[DeliveryMessage],
    ) -> Result<Vec<DeliveryId>, PortError> {
        let (sent, refused) = messages.split_at(self.accept.min(messages.len()));
        let mut failed = self.inner.send_deliveries(sent).await?;
        failed.extend(refused.iter().map(|m| m.delivery_id.clone()));
        Ok(failed)
    }
    async fn retry_later(
        &self,
        delivery: &DeliveryMessage,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError> {
        self.inner.retry_later(delivery, receipt, delay).await
    }
    async fn send_later(
        &self,
        delivery: &DeliveryMessage,
        delay: Duration,
    ) -> Result<(), PortError> {
        self.inner.send_later(delivery, delay).await
    }
    async fn dead_letter(&self, delivery: &DeliveryMessage, reason: &str) -> Result<(), PortError> {
        self.inner.dead_letter(delivery, reason).await
    }
}

async fn a_fan_out_failing_half_way_loses_no_delivery(b: &dyn Backend) {
    let store = b.store();
    let mut expected = BTreeSet::new();
    for _ in 0..12 {
        let w = webhook(&["urn:allthings:app:H1:*"], &["*"], true);
        store.create(&w).await.expect("create");
        expected.insert(w.id);
    }
    b.push_raw(&event_body(
        "evt_half",
        "booking.created",
        "urn:allthings:app:H1:booking:B1",
    ))
    .await;
    let broken = b.ingest_with(Arc::new(HalfBroken {
        inner: b.deliveries_port(),
        accept: 5,
    }));
    let failed = b.run_once(&broken).await.expect("a batch");
    assert_eq!(
        failed.len(),
        1,
        "the record is reported failed, to be retried"
    );
    assert_eq!(
        b.deliveries().await.len(),
        5,
        "five went out before the failure"
    );
    // The retry fans out again: the failed consumer released its claim (embedded), or the
    // claim is the message's own (DynamoDB's single write).
    let healthy = b.ingest_with(b.deliveries_port());
    assert!(
        b.drain(&healthy).await.is_empty(),
        "the retried record succeeds"
    );
    // The first five arrive twice, with the same delivery ids: duplicates, never losses.
    let all = b.deliveries().await;
    assert_eq!(webhook_ids(&all), expected);
    let ids: BTreeSet<&DeliveryId> = all.iter().map(|d| &d.delivery_id).collect();
    assert_eq!(ids.len(), 12);
    // Receiving twice above consumed the first batch's copies on moto; count both runs.
    assert!(
        all.len() == 12 || all.len() == 17,
        "{} delivery messages",
        all.len()
    );
}

async fn a_replayed_event_fans_out_and_a_second_publish_is_a_duplicate(b: &dyn Backend) {
    let store = b.store();
    let mut expected = BTreeSet::new();
    for _ in 0..3 {
        let w = webhook(&["urn:allthings:app:P1:*"], &["*"], true);
        store.create(&w).await.expect("create");
        expected.insert(w.id);
    }
    let body = event_body(
        "evt_replay",
        "booking.created",
        "urn:allthings:app:P1:booking:B1",
    );
    b.push_raw(&body).await;
    // The queue takes nothing: the event is claimed, nothing is sent, the message retried...
    let refusing = b.ingest_with(Arc::new(HalfBroken {
        inner: b.deliveries_port(),
        accept: 0,
    }));
    assert_eq!(b.run_once(&refusing).await.expect("a batch").len(), 1);
    assert!(b.deliveries().await.is_empty());
    // ...until redrive puts it in the DLQ, and an operator replays it: the replayed message
    // continues the first one's claim and fans out.
    assert_eq!(b.redrive_and_replay().await, 1);
    let healthy = b.ingest_with(b.deliveries_port());
    assert!(b.drain(&healthy).await.is_empty());
    let delivered = b.deliveries().await;
    assert_eq!(webhook_ids(&delivered), expected);
    assert_eq!(delivered.len(), 3);
    // A second publish of the same event id (another message) is the duplicate it is.
    let copy = hookline_core::delivery::ReceivedMessage {
        message_id: "a-second-publish".into(),
        body,
        receive_count: 1,
        receipt: ReceiptHandle(String::new()),
        replay_of: None,
    };
    assert_eq!(
        healthy.handle_message(&copy).await.expect("handled"),
        hookline_ingest::Outcome::Duplicate
    );
}

async fn the_lambda_fixture_batch_fans_out_and_dead_letters(b: &dyn Backend) {
    let store = b.store();
    let cat7 = webhook(&["urn:allthings:app:A1:ticket:CAT7:*"], &["ticket.*"], true);
    let bookings = webhook(&["urn:allthings:app:A1:booking:*"], &["booking.*"], true);
    store.create(&cat7).await.expect("create");
    store.create(&bookings).await.expect("create");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events/sqs-ingest-batch.json");
    let event: SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("SQS event");
    let ingest = b.ingest_with(b.deliveries_port());
    let failed = ingest.handle_batch(&received_messages(event)).await;
    assert!(failed.is_empty(), "{failed:?}");
    let deliveries = b.deliveries().await;
    assert_eq!(
        webhook_ids(&deliveries),
        BTreeSet::from([cat7.id.clone(), bookings.id.clone()])
    );
    let booking = deliveries
        .iter()
        .find(|d| d.webhook_id == bookings.id)
        .expect("booking delivery");
    assert_eq!(
        booking.event_id.as_str(),
        "evt_2e1424d4-f796-459a-8184-9c92662be6da",
        "an id-less event is named after its message"
    );
    assert_eq!(b.dead_letters().await.len(), 1);
}

macro_rules! on_both_paths {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::Embedded::new()).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test]
                #[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
                async fn $case() {
                    super::$case(&super::Moto::new().await).await;
                }
            )*
        }
    };
}

on_both_paths!(
    fans_out_to_exactly_the_matching_webhooks,
    the_same_event_id_twice_is_fanned_out_once,
    a_replayed_event_fans_out_and_a_second_publish_is_a_duplicate,
    garbage_goes_to_the_dlq_without_blocking_its_batch,
    a_fan_out_failing_half_way_loses_no_delivery,
    the_lambda_fixture_batch_fans_out_and_dead_letters,
);

/// The embedded store's one-commit fan-out, at the port: a new event's messages and its
/// mark land together; a copy sends nothing; an event another consumer holds sends nothing
/// until its claim lapses, and is then taken over.
#[tokio::test]
async fn embedded_fan_out_is_one_commit_of_claim_messages_and_mark() {
    use hookline_core::event::{Event, IntakeRules};
    use hookline_core::ports::{EventClaim, FanOutCommit};
    let b = Embedded::new();
    let rules = IntakeRules {
        namespace: &Default::default(),
        catalog: hookline_core::event_type::Catalog::builtin(),
    };
    let event = |id: &str| {
        Event::from_intake(
            event_body(id, "booking.created", "urn:allthings:app:C1:booking:B1").as_bytes(),
            rules,
            time::OffsetDateTime::now_utc(),
        )
        .expect("event")
    };
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let lease = Duration::from_millis(300);
    // One commit of `e` with two delivery messages; the claim it found.
    let commit = |e: Event| {
        let deliveries = b.deliveries.clone();
        async move {
            let messages: Vec<DeliveryMessage> = (0..2)
                .map(|_| DeliveryMessage::first(&e.id, &WebhookId::generate(), None))
                .collect();
            deliveries
                .commit_fan_out(&e, later, lease, &messages)
                .await
                .expect("commit")
        }
    };

    let a = event("evt_commit_a");
    let claim = commit(a.clone()).await;
    assert_eq!(claim, EventClaim::New);
    assert_eq!(b.deliveries().await.len(), 2);
    // Marked in the same commit: the claim-then-mark path sees it done.
    assert_eq!(
        b.db.claim(&a, later, lease).await.expect("claim"),
        EventClaim::Done
    );
    let again = commit(a.clone()).await;
    assert_eq!(again, EventClaim::Done);
    assert_eq!(b.deliveries().await.len(), 2, "a copy sends nothing");
    // Its messages are receivable at once.
    let received = b
        .deliveries
        .receive(10, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(received.len(), 2);

    let held = event("evt_commit_b");
    assert_eq!(
        b.db.claim(&held, later, lease).await.expect("claim"),
        EventClaim::New
    );
    let busy = commit(held.clone()).await;
    assert_eq!(busy, EventClaim::InProgress);
    assert_eq!(b.deliveries().await.len(), 2, "nothing sent while held");
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let taken = commit(held.clone()).await;
    assert_eq!(taken, EventClaim::Unfinished);
    assert_eq!(b.deliveries().await.len(), 4);
}
