//! The chaos guarantees on the AWS path: the `ingest` and `deliver` handlers on SQS and
//! DynamoDB (moto, where redrive is real), a receiver failing 30% at random plus one endpoint
//! that is down, smaller than the embedded run. Count-exact at the end, then the DLQ replay
//! drains to zero against a healthy receiver.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::adapters::aws::sqs::SqsQueue;
use hookline_core::adapters::http::ReqwestSender;
use hookline_core::delivery::{AttemptStatus, DeliveryMessage, ReceivedMessage};
use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::ports::EventQueue;
use hookline_core::retry::RetryPolicy;
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;
use hookline_core::webhook::{WebhookId, WebhookUrl};
use hookline_deliver::{Deliver, DeliverSettings};
use hookline_ingest::{Ingest, IngestSettings};
use hookline_tests::receiver::{Reply, TestReceiver};
use hookline_tests::webhook;

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<ReceivedMessage> {
    hookline_tests::sqs_receive(sqs, url).await
}

async fn queued(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("attributes");
    let attrs = out.attributes().cloned().unwrap_or_default();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|k| {
        attrs
            .get(k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    })
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn chaos_on_sqs_and_dynamodb() {
    let (webhooks, events) = (3, 15);
    let (dynamo, sqs, r) = hookline_tests::fresh_aws("chaos").await;
    let rng = Arc::new(AtomicU64::new(0x5DEE_CE66_D1CE_4E5B));
    let healthy = Arc::new(AtomicBool::new(false));
    let (rng_r, healthy_r) = (rng.clone(), healthy.clone());
    let receiver = TestReceiver::start(move |request, _| {
        if healthy_r.load(Ordering::Relaxed) {
            return Reply::status(200);
        }
        if request.path == "/w/broken" {
            return Reply::status(503);
        }
        let mut x = rng_r.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng_r.store(x, Ordering::Relaxed);
        match x % 100 {
            0..=5 => Reply::status(500),
            6..=11 => Reply::status(503),
            12..=17 => Reply::reset(),
            18..=23 => Reply {
                delay: Duration::from_millis(1500),
                ..Reply::status(200)
            },
            24..=29 => Reply {
                headers: vec![("retry-after".into(), "1".into())],
                ..Reply::status(429)
            },
            _ => Reply::status(200),
        }
    })
    .await;
    let aws = hookline_tests::aws_ports(&dynamo, &sqs, &r);
    let store = aws.ports.webhooks.clone();
    let events_log = aws.ports.events.clone();
    let attempts = aws.ports.attempts.clone();
    let deliveries = Arc::new(r.deliveries(&sqs));
    let mut ids = BTreeMap::new();
    for name in (0..webhooks)
        .map(|i| i.to_string())
        .chain(std::iter::once("broken".to_owned()))
    {
        let mut w = webhook(&["urn:allthings:app:Q1:*"], &["*"], true);
        w.spec.endpoint = hookline_core::webhook::Endpoint::Http(
            WebhookUrl::parse_stored(&format!("{}/w/{name}", receiver.url)).expect("url"),
        );
        store.create(&w).await.expect("create");
        ids.insert(name, w.id.clone());
    }
    let events_q = SqsQueue::new(sqs.clone(), r.events_queue_url.clone());
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    for i in 0..events {
        let body = format!(
            r#"{{"id":"evt_q{i}","type":"ticket.created","urn":"urn:allthings:app:Q1:ticket:T{i}","data":{{}}}}"#
        );
        let event = Event::from_intake(body.as_bytes(), rules, time::OffsetDateTime::now_utc())
            .expect("event");
        events_q.send_event(&event).await.expect("send");
    }
    let ingest = Ingest::new(
        store.clone(),
        events_log.clone(),
        deliveries.clone(),
        Arc::new(SqsQueue::new(sqs.clone(), r.events_dlq_url.clone())),
        hookline_tests::aws_lifecycle(&dynamo, &sqs, &r),
        IngestSettings::default(),
    );
    let deliver = Deliver::new(
        store.clone(),
        events_log,
        attempts.clone(),
        deliveries.clone(),
        Arc::new(
            ReqwestSender::new(
                TargetPolicy {
                    allow_private: true,
                },
                "Hookline/test",
            )
            .expect("client"),
        ),
        Arc::new(hookline_core::ports::FixedVault(hookline_tests::test_keys())),
        hookline_tests::aws_lifecycle(&dynamo, &sqs, &r),
        DeliverSettings {
            policy: RetryPolicy {
                schedule: vec![Duration::from_secs(1); 5],
                ..RetryPolicy::default()
            },
            timeout: Duration::from_millis(800),
            ..DeliverSettings::default()
        },
    );
    let run = |deadline: Instant| {
        let (sqs, r, ingest, deliver) = (sqs.clone(), r.clone(), ingest.clone(), deliver.clone());
        async move {
            loop {
                for (url, is_ingest) in [
                    (&r.events_queue_url, true),
                    (&r.deliveries_queue_url, false),
                ] {
                    let batch = receive(&sqs, url).await;
                    if batch.is_empty() {
                        continue;
                    }
                    let failed = if is_ingest {
                        ingest.handle_batch(&batch).await
                    } else {
                        deliver.handle_batch(&batch).await
                    };
                    for m in batch.iter().filter(|m| !failed.contains(&m.message_id)) {
                        sqs.delete_message()
                            .queue_url(url)
                            .receipt_handle(&m.receipt.0)
                            .send()
                            .await
                            .expect("delete");
                    }
                }
                if queued(&sqs, &r.events_queue_url).await
                    + queued(&sqs, &r.deliveries_queue_url).await
                    == 0
                {
                    return;
                }
                assert!(Instant::now() < deadline, "queues did not settle");
            }
        }
    };
    run(Instant::now() + Duration::from_secs(240)).await;

    let mut dead = BTreeSet::new();
    let mut receipts = Vec::new();
    loop {
        let batch = receive(&sqs, &r.deliveries_dlq_url).await;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let d: DeliveryMessage = serde_json::from_str(&m.body).expect("delivery");
            dead.insert((d.webhook_id, d.event_id.to_string()));
            receipts.push(m.receipt);
        }
    }
    for receipt in &receipts {
        // Visible again for the replay below.
        sqs.change_message_visibility()
            .queue_url(&r.deliveries_dlq_url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(0)
            .send()
            .await
            .expect("visibility");
    }
    let mut acknowledged = BTreeSet::new();
    for id in ids.values() {
        let page = attempts
            .list(id, Some(AttemptStatus::Delivered), None, 100)
            .await
            .expect("attempts");
        acknowledged.extend(
            page.items
                .iter()
                .map(|a| (id.clone(), a.event_id.to_string())),
        );
    }
    let broken: &WebhookId = &ids["broken"];
    assert_eq!(
        dead.iter().filter(|(w, _)| w == broken).count(),
        events,
        "the down endpoint's deliveries are all dead-lettered"
    );
    assert!(acknowledged.is_disjoint(&dead));
    assert_eq!(
        acknowledged.len() + dead.len(),
        events * (webhooks + 1),
        "every pair accounted for"
    );
    let exhausted = attempts
        .list(broken, Some(AttemptStatus::Exhausted), None, 100)
        .await
        .expect("attempts")
        .items
        .len();
    assert_eq!(
        exhausted, events,
        "each dead-lettered pair logged its last attempt"
    );

    healthy.store(true, Ordering::Relaxed);
    let replayed = hookline::dlq::replay_sqs(
        &sqs,
        &r.deliveries_dlq_url,
        &r.deliveries_queue_url,
        &hookline::dlq::ReplayFilter::default(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .expect("replay");
    assert_eq!(replayed, dead.len());
    run(Instant::now() + Duration::from_secs(120)).await;
    assert_eq!(
        queued(&sqs, &r.deliveries_dlq_url).await,
        0,
        "the DLQ drained to zero"
    );
    for (w, e) in &dead {
        let page = attempts
            .list(w, Some(AttemptStatus::Delivered), None, 100)
            .await
            .expect("attempts");
        assert!(
            page.items.iter().any(|a| &a.event_id.to_string() == e),
            "{w}/{e} delivered after replay"
        );
    }
    println!(
        "chaos (moto): {} pairs: {} acknowledged, {} dead-lettered then replayed",
        events * (webhooks + 1),
        acknowledged.len(),
        dead.len()
    );
}
