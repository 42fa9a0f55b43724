//! Delivery on both paths — the embedded queue with SQLite, and SQS + DynamoDB on moto (real
//! redrive) — against a loopback receiver whose answer per request is scripted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hookline_core::adapters::aws::sqs::SqsQueue;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::adapters::sqlite::Database;
use hookline_core::adapters::sqlite::SqliteQueue;
use hookline_core::delivery::{
    Attempt, AttemptStatus, DeliveryId, DeliveryMessage, ReceiptHandle, ReceivedMessage,
};
use hookline_core::event::{Event, EventId, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::ports::{AttemptLog, DeliveryQueue, EventLog, Ports, WebhookStore};
use hookline_core::retry::RetryPolicy;
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;
use hookline_core::webhook::DisabledReason;
use hookline_core::webhook::{Webhook, WebhookUrl};
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_tests::receiver::{Captured, Reply, TestReceiver};
use hookline_tests::webhook;

/// What differs between the paths: the ports, the backoff unit, and the event source.
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
    fn events(&self) -> Arc<dyn EventLog> {
        self.ports().events
    }
    fn attempts(&self) -> Arc<dyn AttemptLog> {
        self.ports().attempts
    }
    fn queue(&self) -> Arc<dyn DeliveryQueue>;
    /// Backoff steps: milliseconds on the embedded queue, seconds on SQS (its granularity).
    fn schedule(&self) -> Vec<Duration>;
    async fn send(&self, message: &DeliveryMessage);
    async fn receive(&self) -> Vec<ReceivedMessage>;
    async fn delete(&self, receipt: &ReceiptHandle);
    async fn dlq_len(&self) -> usize;
    /// `hookline dlq replay` for this path; returns how many moved.
    async fn replay(&self) -> usize;
}

struct Embedded {
    db: Database,
    deliveries: SqliteQueue,
    dlq: SqliteQueue,
}

#[async_trait]
impl Backend for Embedded {
    fn ports(&self) -> Ports {
        hookline_tests::embedded_ports(&self.db)
    }
    fn queue(&self) -> Arc<dyn DeliveryQueue> {
        Arc::new(self.deliveries.clone())
    }
    fn schedule(&self) -> Vec<Duration> {
        [50, 150, 100, 100, 100]
            .into_iter()
            .map(Duration::from_millis)
            .collect()
    }
    async fn send(&self, message: &DeliveryMessage) {
        self.deliveries
            .send_deliveries(std::slice::from_ref(message))
            .await
            .expect("send");
    }
    async fn receive(&self) -> Vec<ReceivedMessage> {
        let batch = self
            .deliveries
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        batch
    }
    async fn delete(&self, receipt: &ReceiptHandle) {
        self.deliveries.delete(receipt).await.expect("delete");
    }
    async fn dlq_len(&self) -> usize {
        // Redrive is lazy, as on SQS/moto: it happens on a receive from the source queue.
        let _ = self.receive().await;
        self.dlq.len().await.expect("len")
    }
    async fn replay(&self) -> usize {
        hookline::dlq::replay_embedded(
            &self.dlq,
            &self.deliveries,
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

#[async_trait]
impl Backend for Moto {
    fn ports(&self) -> Ports {
        hookline_tests::aws_ports(&self.dynamo, &self.sqs, &self.resources).ports
    }
    fn queue(&self) -> Arc<dyn DeliveryQueue> {
        Arc::new(self.resources.deliveries(&self.sqs))
    }
    fn schedule(&self) -> Vec<Duration> {
        [1, 2, 1, 1, 1]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
    async fn send(&self, message: &DeliveryMessage) {
        self.queue()
            .send_deliveries(std::slice::from_ref(message))
            .await
            .expect("send");
    }
    async fn receive(&self) -> Vec<ReceivedMessage> {
        hookline_tests::sqs_receive(&self.sqs, &self.resources.deliveries_queue_url).await
    }
    async fn delete(&self, receipt: &ReceiptHandle) {
        SqsQueue::new(
            self.sqs.clone(),
            self.resources.deliveries_queue_url.clone(),
        )
        .delete(receipt)
        .await
        .expect("delete");
    }
    async fn dlq_len(&self) -> usize {
        // Redrive is applied lazily by moto, on a receive from the source queue.
        let _ = self.receive().await;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.resources.deliveries_dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes");
        attrs
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
    async fn replay(&self) -> usize {
        hookline::dlq::replay_sqs(
            &self.sqs,
            &self.resources.deliveries_dlq_url,
            &self.resources.deliveries_queue_url,
            &hookline::dlq::ReplayFilter::default(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .expect("replay")
    }
}

struct Scenario {
    receiver: TestReceiver,
    hook: Webhook,
    event: Event,
    deliver: Deliver,
}

async fn scenario(
    b: &dyn Backend,
    targets: TargetPolicy,
    respond: impl Fn(&Captured, usize) -> Reply + Send + Sync + 'static,
) -> Scenario {
    let receiver = TestReceiver::start(respond).await;
    let mut hook = webhook(&["urn:allthings:app:A1:*"], &["*"], true);
    hook.spec.endpoint = hookline_core::webhook::Endpoint::Http(
        WebhookUrl::parse_stored(&format!("{}/hook", receiver.url)).expect("url"),
    );
    b.store().create(&hook).await.expect("create");
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let body = format!(
        r#"{{"id":"evt_{}","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T99","data":{{"title":"Leaking tap"}}}}"#,
        ulid::Ulid::new()
    );
    let event =
        Event::from_intake(body.as_bytes(), rules, time::OffsetDateTime::now_utc()).expect("event");
    let log = b.events();
    log.claim(
        &event,
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
        Duration::from_secs(60),
    )
    .await
    .expect("claim");
    log.mark_fanned_out(&event.id).await.expect("mark");
    let settings = DeliverSettings {
        policy: RetryPolicy {
            schedule: b.schedule(),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        timeout: Duration::from_millis(700),
        ..DeliverSettings::default()
    };
    let http = ReqwestSender::new(targets, "Hookline/test").expect("client");
    let deliver = Deliver::new(
        b.store(),
        b.events(),
        b.attempts(),
        b.queue(),
        Arc::new(http),
        Arc::new(hookline_core::ports::FixedVault(hookline_tests::test_keys())),
        b.lifecycle(),
        settings,
    );
    let message = DeliveryMessage {
        delivery_id: DeliveryId::for_pair(&event.id, &hook.id),
        event_id: event.id.clone(),
        webhook_id: hook.id.clone(),
        webhook_version: None,
        event: None,
        prior_attempts: 0,
        run_attempts: 0,
        not_before: None,
        group: None,
        backfill: false,
    };
    b.send(&message).await;
    Scenario {
        receiver,
        hook,
        event,
        deliver,
    }
}

/// Plays the SQS event source until the deliveries queue is settled; returns the attempt log,
/// oldest first.
async fn run(b: &dyn Backend, s: &Scenario, settled: impl Fn(&[Attempt]) -> bool) -> Vec<Attempt> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let batch = b.receive().await;
        if !batch.is_empty() {
            let failed = s.deliver.handle_batch(&batch).await;
            for m in batch.iter().filter(|m| !failed.contains(&m.message_id)) {
                b.delete(&m.receipt).await;
            }
        }
        let mut attempts = b
            .attempts()
            .list(&s.hook.id, None, None, 100)
            .await
            .expect("attempts")
            .items;
        attempts.reverse();
        if settled(&attempts) {
            return attempts;
        }
        assert!(
            Instant::now() < deadline,
            "not settled in time; attempts so far: {attempts:#?}"
        );
    }
}

fn statuses(attempts: &[Attempt]) -> Vec<AttemptStatus> {
    attempts.iter().map(|a| a.status).collect()
}

fn last_is(status: AttemptStatus) -> impl Fn(&[Attempt]) -> bool {
    move |a: &[Attempt]| a.last().is_some_and(|l| l.status == status)
}

fn independently_verified(hook: &Webhook, request: &Captured) -> bool {
    let secret = hook
        .active_secrets(
            &hookline_tests::test_keys(),
            time::OffsetDateTime::now_utc(),
        )
        .expect("opens");
    request.signed_with(&secret[0].expose())
}

async fn a_200_is_one_signed_attempt(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, _| Reply::status(200),
    )
    .await;
    let attempts = run(b, &s, last_is(AttemptStatus::Delivered)).await;
    assert_eq!(statuses(&attempts), [AttemptStatus::Delivered]);
    let got = s.receiver.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("webhook-id"), Some(s.event.id.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r
        .header("user-agent")
        .is_some_and(|u| u.starts_with("Hookline/")));
    assert!(independently_verified(&s.hook, r), "signature must verify");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(body["id"], s.event.id.as_str());
    assert_eq!(body["type"], "ticket.created");
    assert_eq!(body["urn"], "urn:allthings:app:A1:ticket:CAT7:T99");
    assert_eq!(body["data"]["title"], "Leaking tap");
    assert_eq!(attempts[0].response_status, Some(200));
}

async fn two_500s_then_200_is_three_attempts_with_growing_delays(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, i| Reply::status(if i < 2 { 500 } else { 200 }),
    )
    .await;
    let attempts = run(b, &s, last_is(AttemptStatus::Delivered)).await;
    assert_eq!(
        statuses(&attempts),
        [
            AttemptStatus::Retrying,
            AttemptStatus::Retrying,
            AttemptStatus::Delivered
        ]
    );
    let got = s.receiver.requests();
    assert_eq!(got.len(), 3);
    let first_gap = got[1].at - got[0].at;
    let second_gap = got[2].at - got[1].at;
    assert!(
        second_gap > first_gap,
        "delays grow: {first_gap:?} then {second_gap:?}"
    );
    assert!(first_gap >= b.schedule()[0], "{first_gap:?}");
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.as_deref() == Some(s.event.id.as_str())),
        "webhook-id is stable across retries"
    );
    assert!(got.iter().all(|r| independently_verified(&s.hook, r)));
}

async fn always_500_is_six_attempts_then_the_dlq(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, _| Reply::status(500),
    )
    .await;
    let attempts = run(b, &s, last_is(AttemptStatus::Exhausted)).await;
    let mut expected = vec![AttemptStatus::Retrying; 5];
    expected.push(AttemptStatus::Exhausted);
    assert_eq!(statuses(&attempts), expected);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(attempts[..5].iter().all(|a| a.next_retry_at.is_some()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.dlq_len().await == 0 {
        assert!(
            Instant::now() < deadline,
            "the message never reached the DLQ"
        );
    }
    assert_eq!(b.dlq_len().await, 1);
    assert_eq!(s.receiver.requests().len(), 6, "exactly 1 + 5 attempts");
}

async fn final_answers_are_not_retried(b: &dyn Backend) {
    for (status, headers) in [
        (404, vec![]),
        (
            302,
            vec![(
                "location".to_owned(),
                "http://127.0.0.1:9/elsewhere".to_owned(),
            )],
        ),
    ] {
        let s = scenario(
            b,
            TargetPolicy {
                allow_private: true,
            },
            move |_, _| Reply {
                headers: headers.clone(),
                ..Reply::status(status)
            },
        )
        .await;
        let attempts = run(b, &s, last_is(AttemptStatus::Failed)).await;
        assert_eq!(statuses(&attempts), [AttemptStatus::Failed], "{status}");
        assert_eq!(
            s.receiver.requests().len(),
            1,
            "{status}: one attempt, redirect not followed"
        );
    }
}

async fn retry_after_is_honoured(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, i| {
            if i == 0 {
                Reply {
                    headers: vec![("retry-after".into(), "2".into())],
                    ..Reply::status(429)
                }
            } else {
                Reply::status(200)
            }
        },
    )
    .await;
    let attempts = run(b, &s, last_is(AttemptStatus::Delivered)).await;
    assert_eq!(
        statuses(&attempts),
        [AttemptStatus::Retrying, AttemptStatus::Delivered]
    );
    let got = s.receiver.requests();
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1900),
        "waited {:?}",
        got[1].at - got[0].at
    );
}

async fn a_receiver_that_never_answers_times_out_and_is_retried(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, i| {
            if i == 0 {
                Reply {
                    delay: Duration::from_secs(5),
                    ..Reply::status(200)
                }
            } else {
                Reply::status(200)
            }
        },
    )
    .await;
    let attempts = run(b, &s, last_is(AttemptStatus::Delivered)).await;
    assert_eq!(
        statuses(&attempts),
        [AttemptStatus::Retrying, AttemptStatus::Delivered]
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{:?}",
        attempts[0]
    );
}

async fn private_targets_are_refused_at_delivery(b: &dyn Backend) {
    let s = scenario(b, TargetPolicy::PUBLIC_ONLY, |_, _| Reply::status(200)).await;
    let attempts = run(b, &s, last_is(AttemptStatus::Failed)).await;
    assert_eq!(statuses(&attempts), [AttemptStatus::Failed]);
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("loopback")),
        "{:?}",
        attempts[0]
    );
    assert!(
        s.receiver.requests().is_empty(),
        "nothing reached the private address"
    );
}

async fn gone_disables_and_deleted_or_disabled_webhooks_receive_nothing(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, _| Reply::status(410),
    )
    .await;
    let attempts = run(b, &s, last_is(AttemptStatus::Gone)).await;
    assert_eq!(statuses(&attempts), [AttemptStatus::Gone]);
    let stored = b
        .store()
        .get(&s.hook.id)
        .await
        .expect("get")
        .expect("still there");
    assert!(!stored.spec.enabled);
    let disabled = stored.state.disabled.expect("disabled, with the reason");
    assert_eq!(disabled.reason, DisabledReason::Gone);
    assert_eq!(
        disabled.last_error.as_deref(),
        Some("the endpoint answered 410")
    );

    // Disabled: the next delivery for it sends nothing.
    let again = DeliveryMessage {
        delivery_id: DeliveryId::for_pair(&EventId::parse("evt_x").expect("id"), &s.hook.id),
        event_id: s.event.id.clone(),
        webhook_id: s.hook.id.clone(),
        webhook_version: None,
        event: None,
        prior_attempts: 0,
        run_attempts: 0,
        not_before: None,
        group: None,
        backfill: false,
    };
    b.send(&again).await;
    let attempts = run(b, &s, |a| a.len() == 2).await;
    assert_eq!(attempts[1].status, AttemptStatus::Skipped);
    // Deleted: nothing either.
    let deleted = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, _| Reply::status(200),
    )
    .await;
    b.store().delete(&deleted.hook.id, 1).await.expect("delete");
    // Handled and acknowledged, with nothing recorded: nobody can read a deleted webhook's
    // log, and an App purge leaves none of it behind.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let batch = b.receive().await;
        if !batch.is_empty() {
            assert!(deleted.deliver.handle_batch(&batch).await.is_empty());
            for m in &batch {
                b.delete(&m.receipt).await;
            }
            break;
        }
        assert!(Instant::now() < deadline, "the delivery was never received");
    }
    let attempts = b
        .attempts()
        .list(&deleted.hook.id, None, None, 100)
        .await
        .expect("attempts")
        .items;
    assert!(attempts.is_empty(), "{attempts:#?}");
    assert_eq!(s.receiver.requests().len(), 1);
    assert!(deleted.receiver.requests().is_empty());
}

async fn the_dlq_replays_to_a_healthy_endpoint(b: &dyn Backend) {
    // Six 500s exhaust the retries; after the replay the endpoint is healthy again.
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, i| Reply::status(if i < 6 { 500 } else { 200 }),
    )
    .await;
    run(b, &s, last_is(AttemptStatus::Exhausted)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.dlq_len().await == 0 {
        assert!(
            Instant::now() < deadline,
            "the message never reached the DLQ"
        );
    }
    assert_eq!(b.replay().await, 1);
    let attempts = run(b, &s, last_is(AttemptStatus::Delivered)).await;
    assert_eq!(attempts.len(), 7);
    assert_eq!(
        attempts[6].attempt, 7,
        "a replayed delivery keeps counting its attempts"
    );
    assert_eq!(b.dlq_len().await, 0, "the DLQ drained to zero");
    let got = s.receiver.requests();
    assert_eq!(
        got.last().and_then(|r| r.header("webhook-id")),
        Some(s.event.id.as_str())
    );
}

macro_rules! on_both_paths {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = super::Database::open_in_memory().expect("sqlite");
                    let b = super::Embedded {
                        deliveries: super::SqliteQueue::new(db.clone(), "deliveries", Some(("deliveries-dlq", 6))),
                        dlq: super::SqliteQueue::new(db.clone(), "deliveries-dlq", None),
                        db,
                    };
                    super::$case(&b).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test]
                #[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
                async fn $case() {
                    let (dynamo, sqs, resources) = hookline_tests::fresh_aws("deliver").await;
                    super::$case(&super::Moto { dynamo, sqs, resources }).await;
                }
            )*
        }
    };
}

/// A delivery queued before its owner's grant on the event's App was revoked is dropped
/// before sending: recorded as skipped with the reason, never POSTed, not dead-lettered.
async fn a_delivery_queued_before_a_revocation_is_dropped(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, _| Reply::status(200),
    )
    .await;
    let mut hook = s.hook.clone();
    hook.state
        .suspended
        .push(hookline_core::webhook::Suspension {
            app_id: "A1".into(),
            reason: "permission revoked".into(),
            since: time::OffsetDateTime::now_utc(),
        });
    hook.version = 2;
    b.store().update(&hook, 1).await.expect("suspend");
    let attempts = run(b, &s, last_is(AttemptStatus::Skipped)).await;
    assert_eq!(statuses(&attempts), [AttemptStatus::Skipped]);
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("permission revoked on App A1")
    );
    assert!(s.receiver.requests().is_empty(), "nothing was sent");
    assert_eq!(b.dlq_len().await, 0);
}

/// With the webhook cache on (as the `deliver` Lambda runs): a message carrying its event is
/// delivered without the event log; a cached copy serves messages of its version or older
/// within the TTL (the documented bound: a disable reaches deliveries fanned out before it
/// within the TTL), and a message fanned out after a change reads the webhook again. On the
/// embedded path the cache is coherent: a webhook write ends every copy at once.
async fn a_cached_webhook_serves_only_messages_of_its_version(b: &dyn Backend) {
    let s = scenario(
        b,
        TargetPolicy {
            allow_private: true,
        },
        |_, _| Reply::status(200),
    )
    .await;
    let deliver = Deliver::new(
        b.store(),
        b.events(),
        b.attempts(),
        b.queue(),
        Arc::new(
            ReqwestSender::new(
                TargetPolicy {
                    allow_private: true,
                },
                "t",
            )
            .expect("client"),
        ),
        Arc::new(hookline_core::ports::FixedVault(hookline_tests::test_keys())),
        b.lifecycle(),
        DeliverSettings {
            webhook_cache_ttl: Duration::from_secs(60),
            ..DeliverSettings::default()
        },
    );
    // An event the log never saw: only the message carries it.
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let body = r#"{"type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T1","data":{"carried":true}}"#;
    let event =
        Event::from_intake(body.as_bytes(), rules, time::OffsetDateTime::now_utc()).expect("event");
    let v = s.hook.version;
    let message = |version: Option<u64>| ReceivedMessage {
        message_id: ulid::Ulid::new().to_string(),
        body: serde_json::to_string(&DeliveryMessage {
            webhook_version: version,
            event: Some(event.clone()),
            ..DeliveryMessage::first(&event.id, &s.hook.id, None)
        })
        .expect("json"),
        receive_count: 1,
        receipt: ReceiptHandle(String::new()),
        replay_of: None,
    };
    let status = |m: ReceivedMessage| {
        let deliver = deliver.clone();
        async move { deliver.handle_message(&m).await.expect("handled") }
    };
    assert_eq!(status(message(Some(v))).await, AttemptStatus::Delivered);
    let received = s.receiver.requests();
    let last = received.last().expect("a request");
    assert_eq!(last.header("webhook-id"), Some(event.id.as_str()));
    assert!(String::from_utf8_lossy(&last.body).contains("\"carried\":true"));

    let mut off = s.hook.clone();
    off.spec.enabled = false;
    off.version = v + 1;
    b.store().update(&off, v).await.expect("disable");
    let coherent = b.store().change_counter().is_some();
    if coherent {
        // The embedded store counts its webhook writes: no copy outlives a write.
        assert_eq!(status(message(Some(v))).await, AttemptStatus::Skipped);
    } else {
        // Fanned out before the change: the cached copy still serves it (within the TTL).
        assert_eq!(status(message(Some(v))).await, AttemptStatus::Delivered);
    }
    // Fanned out after it: read again, and the webhook is disabled.
    assert_eq!(status(message(Some(v + 1))).await, AttemptStatus::Skipped);
    // That read replaced the copy: older messages see the change now too.
    assert_eq!(status(message(Some(v))).await, AttemptStatus::Skipped);
    // Without a version nothing is served from the cache.
    assert_eq!(status(message(None)).await, AttemptStatus::Skipped);
    assert_eq!(s.receiver.requests().len(), if coherent { 1 } else { 2 });
}

on_both_paths!(
    a_cached_webhook_serves_only_messages_of_its_version,
    a_delivery_queued_before_a_revocation_is_dropped,
    a_200_is_one_signed_attempt,
    two_500s_then_200_is_three_attempts_with_growing_delays,
    always_500_is_six_attempts_then_the_dlq,
    final_answers_are_not_retried,
    retry_after_is_honoured,
    a_receiver_that_never_answers_times_out_and_is_retried,
    private_targets_are_refused_at_delivery,
    gone_disables_and_deleted_or_disabled_webhooks_receive_nothing,
    the_dlq_replays_to_a_healthy_endpoint,
);

#[tokio::test]
async fn the_lambda_fixture_batch_is_delivered() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/events/sqs-deliver-batch.json");
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("SQS event");
    let messages = hookline_core::adapters::lambda::received_messages(event);
    let message: DeliveryMessage =
        serde_json::from_str(&messages[0].body).expect("delivery message");
    let db = Database::open_in_memory().expect("sqlite");
    let receiver = TestReceiver::always(200).await;
    let mut hook = hookline_tests::rekey(
        &webhook(&["urn:allthings:app:A1:*"], &["*"], true),
        &hookline_tests::test_keys(),
        Some(message.webhook_id.clone()),
    );
    hook.spec.endpoint = hookline_core::webhook::Endpoint::Http(
        WebhookUrl::parse_stored(&receiver.url).expect("url"),
    );
    db.create(&hook).await.expect("create");
    let body = format!(
        r#"{{"id":"{}","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T99","data":{{}}}}"#,
        message.event_id
    );
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let ev =
        Event::from_intake(body.as_bytes(), rules, time::OffsetDateTime::now_utc()).expect("event");
    db.claim(
        &ev,
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
        Duration::ZERO,
    )
    .await
    .expect("claim");
    let queue = SqliteQueue::new(db.clone(), "deliveries", None);
    let http = ReqwestSender::new(
        TargetPolicy {
            allow_private: true,
        },
        "Hookline/test",
    )
    .expect("client");
    let deliver = Deliver::new(
        Arc::new(db.clone()),
        Arc::new(db.clone()),
        Arc::new(db.clone()),
        Arc::new(queue),
        Arc::new(http),
        Arc::new(hookline_core::ports::FixedVault(hookline_tests::test_keys())),
        hookline_tests::embedded_lifecycle(&db),
        DeliverSettings::default(),
    );
    assert!(deliver.handle_batch(&messages).await.is_empty());
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("webhook-id"),
        Some("evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1")
    );
    assert!(independently_verified(&hook, &got[0]));
}
