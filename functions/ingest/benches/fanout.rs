//! Fan-out throughput on the embedded path (SQLite file, embedded queues), as `hookline serve`
//! runs it: events sent to the events queue, consumed in batches of 10 by the ingest handler,
//! delivery messages written to the deliveries queue.
//!
//! `cargo bench -p hookline-ingest --bench fanout` prints events/s and delivery messages/s for
//! (a) one event to 1 000 matching webhooks, (b) 10 000 events to 10 matching webhooks each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::ports::WebhookStore;
use hookline_core::queue::sqlite::SqliteQueue;
use hookline_core::signing::Secret;
use hookline_core::store::sqlite::Database;
use hookline_core::webhook::{NewWebhook, Webhook, WebhookRules};
use hookline_ingest::{Ingest, IngestSettings};

fn webhook(app: &str, rules: &WebhookRules<'_>) -> Webhook {
    let spec = NewWebhook {
        name: "bench".into(),
        url: "https://crm.example.com/hook".into(),
        event_types: vec!["ticket.*".into()],
        urns: Some(vec![format!("urn:allthings:app:{app}:ticket:*")]),
        custom_headers: None,
        enabled: None,
        secret: None,
        ..Default::default()
    }
    .validate(rules, None)
    .expect("valid");
    Webhook::new(
        spec,
        Secret::generate().expect("rng"),
        "bench",
        time::OffsetDateTime::now_utc(),
    )
}

async fn run(label: &str, webhooks: usize, events: usize) {
    let dir = std::env::temp_dir().join(format!("hookline-bench-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = Database::open(&dir.join("bench.db")).expect("db");
    let ns = hookline_core::urn::Namespace::default();
    let rules = WebhookRules {
        namespace: &ns,
        catalog: hookline_core::event_type::Catalog::builtin(),
        allow_http: false,
        targets: hookline_core::target::TargetPolicy::PUBLIC_ONLY,
        ordered: true,
    };
    for _ in 0..webhooks {
        db.create(&webhook("B1", &rules)).await.expect("create");
    }
    let events_q = SqliteQueue::new(db.clone(), "events", Some(("events-dlq", 6)));
    let deliveries = SqliteQueue::new(db.clone(), "deliveries", Some(("deliveries-dlq", 6)));
    let dlq = SqliteQueue::new(db.clone(), "events-dlq", None);
    let bodies: Vec<String> = (0..events)
        .map(|i| format!(r#"{{"id":"evt_{i}","type":"ticket.created","urn":"urn:allthings:app:B1:ticket:C{}:T{i}","data":{{"title":"t"}}}}"#, i % 50))
        .collect();
    for chunk in bodies.chunks(500) {
        events_q
            .send_many(chunk, Duration::ZERO, None)
            .await
            .expect("send");
    }
    let ingest = Ingest::new(
        Arc::new(db.clone()),
        Arc::new(db.clone()),
        Arc::new(deliveries.clone()),
        Arc::new(dlq),
        hookline_core::lifecycle::Lifecycle::new(
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Arc::new(events_q.clone()),
            hookline_core::urn::Namespace::default(),
        ),
        IngestSettings::default(),
    );
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    // Two consumers, as `hookline serve` runs them.
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, ingest) = (events_q.clone(), ingest.clone());
            tokio::spawn(async move {
                loop {
                    let batch = q
                        .receive(10, Duration::from_secs(30))
                        .await
                        .expect("receive");
                    if batch.is_empty() {
                        return;
                    }
                    let failed = ingest.handle_batch(&batch).await;
                    assert!(failed.is_empty(), "no failures expected: {failed:?}");
                    for m in &batch {
                        q.delete(&m.receipt).await.expect("delete");
                    }
                }
            })
        })
        .collect();
    for c in consumers {
        c.await.expect("consumer");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    let messages = deliveries.len().await.expect("len");
    assert_eq!(
        messages,
        webhooks * events,
        "every (event, webhook) pair has its message"
    );
    println!(
        "{label}: {events} events x {webhooks} webhooks -> {messages} delivery messages in {elapsed:.2} s \
         = {:.0} events/s, {:.0} delivery messages/s (CPU {cpu:.2} s)",
        events as f64 / elapsed,
        messages as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (Linux); 0 elsewhere.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn main() {
    // `cargo bench` passes flags like --bench; this harness has no options.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run("one event to 1 000 webhooks (x20 events)", 1_000, 20).await;
        run("10 000 events to 10 webhooks each", 10, 10_000).await;
    });
}
