//! Fan-out throughput on the embedded path (SQLite file, embedded queues), as `hookline serve`
//! runs it: events sent to the events queue, consumed in batches of 10 by the ingest handler,
//! delivery messages written to the deliveries queue.
//!
//! `cargo bench -p hookline-ingest --bench fanout` prints events/s and delivery messages/s for
//! (a) one event to 1 000 matching webhooks, (b) 10 000 events to 10 matching webhooks each;
//! then (c) events one at a time into an App of 10, 1 000, 5 000 and 10 000 webhooks of which
//! 3 match, with the route cache and without it (every event reads its App, as before it);
//! and (d) the time one event takes to fan out to 10 000 matching webhooks.
//! `cargo bench -p hookline-ingest --bench fanout -- scale` runs (c) and (d) only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::adapters::sqlite::Database;
use hookline_core::adapters::sqlite::SqliteQueue;
use hookline_core::ports::WebhookStore;
use hookline_core::signing::Secret;
use hookline_core::webhook::{NewWebhook, Webhook, WebhookRules};
use hookline_ingest::{Ingest, IngestSettings};

fn webhook(app: &str, rules: &WebhookRules<'_>) -> Webhook {
    webhook_on(&format!("urn:allthings:app:{app}:ticket:*"), rules)
}

fn webhook_on(urn: &str, rules: &WebhookRules<'_>) -> Webhook {
    let spec = NewWebhook {
        name: "bench".into(),
        url: "https://crm.example.com/hook".into(),
        event_types: vec!["ticket.*".into()],
        urns: Some(vec![urn.to_owned()]),
        custom_headers: None,
        enabled: None,
        secret: None,
        ..Default::default()
    }
    .validate(rules, None)
    .expect("valid");
    let mut webhook = Webhook::new(
        spec,
        &Secret::generate().expect("rng"),
        "bench",
        time::OffsetDateTime::now_utc(),
    );
    webhook
        .seal(&hookline_core::sealed::Keyring::generate().expect("rng"))
        .expect("seals");
    webhook
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
        destinations: None,
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

fn rules(ns: &hookline_core::urn::Namespace) -> WebhookRules<'_> {
    WebhookRules {
        namespace: ns,
        catalog: hookline_core::event_type::Catalog::builtin(),
        allow_http: false,
        targets: hookline_core::target::TargetPolicy::PUBLIC_ONLY,
        ordered: true,
        destinations: None,
    }
}

/// A fresh store holding App B1's webhooks: `matching` that every bench event matches, and
/// `total - matching` on another resource type.
async fn app_of(total: usize, matching: usize) -> (Database, std::path::PathBuf) {
    use futures_util::stream::{self, StreamExt};
    let dir = std::env::temp_dir().join(format!("hookline-bench-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = Database::open(&dir.join("bench.db")).expect("db");
    let ns = hookline_core::urn::Namespace::default();
    let rules = rules(&ns);
    let hooks: Vec<Webhook> = (0..total)
        .map(|i| match i < matching {
            true => webhook("B1", &rules),
            false => webhook_on(&format!("urn:allthings:app:B1:other:X{i}:*"), &rules),
        })
        .collect();
    stream::iter(hooks.iter().map(|w| db.create(w)))
        .buffer_unordered(64)
        .for_each(|r| async move { r.expect("create") })
        .await;
    (db, dir)
}

fn ingest_over(db: &Database, deliveries: &SqliteQueue, route_cache: bool) -> Ingest {
    let events_q = SqliteQueue::new(db.clone(), "events", None);
    Ingest::new(
        Arc::new(db.clone()),
        Arc::new(db.clone()),
        Arc::new(deliveries.clone()),
        Arc::new(SqliteQueue::new(db.clone(), "events-dlq", None)),
        hookline_core::lifecycle::Lifecycle::new(
            Arc::new(db.clone()),
            Arc::new(db.clone()),
            Arc::new(events_q),
            hookline_core::urn::Namespace::default(),
        ),
        IngestSettings {
            route_cache_max_age: match route_cache {
                true => IngestSettings::default().route_cache_max_age,
                false => Duration::ZERO,
            },
            ..IngestSettings::default()
        },
    )
}

/// Events one at a time (a batch of one each, as one client posting one after another makes
/// them) into an App of `total` webhooks, 3 of them matching; events/s.
async fn app_scale(db: &Database, total: usize, events: usize, route_cache: bool) -> f64 {
    let events_q = SqliteQueue::new(db.clone(), "events", None);
    let deliveries = SqliteQueue::new(db.clone(), "deliveries", None);
    let ingest = ingest_over(db, &deliveries, route_cache);
    let before = deliveries.len().await.expect("len");
    let tag = ulid::Ulid::new();
    let started = Instant::now();
    for i in 0..events {
        let body = format!(
            r#"{{"id":"evt_{tag}_{i}","type":"ticket.created","urn":"urn:allthings:app:B1:ticket:C{}:T{i}","data":{{"title":"t"}}}}"#,
            i % 50
        );
        events_q
            .send_many(&[body], Duration::ZERO, None)
            .await
            .expect("send");
        let batch = events_q
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive");
        let failed = ingest.handle_batch(&batch).await;
        assert!(failed.is_empty(), "no failures expected: {failed:?}");
        for m in &batch {
            events_q.delete(&m.receipt).await.expect("delete");
        }
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let made = deliveries.len().await.expect("len") - before;
    assert_eq!(
        made,
        3 * events,
        "3 matching webhooks per event ({total} in the App)"
    );
    let _ = total;
    rate
}

/// (c) and (d).
async fn scale() {
    for total in [10, 1_000, 5_000, 10_000] {
        let (db, dir) = app_of(total, 3).await;
        // Warm both ways once (the first event reads the App either way).
        app_scale(&db, total, 5, true).await;
        let cached = app_scale(&db, total, 500, true).await;
        let uncached = app_scale(&db, total, if total > 1_000 { 50 } else { 500 }, false).await;
        println!(
            "App of {total:>6} webhooks, 3 matching, one event at a time: {cached:>6.0} events/s with the route cache, {uncached:>6.0} reading the App per event ({:.1}x)",
            cached / uncached
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (db, dir) = app_of(10_000, 10_000).await;
    let events_q = SqliteQueue::new(db.clone(), "events", None);
    let deliveries = SqliteQueue::new(db.clone(), "deliveries", None);
    let ingest = ingest_over(&db, &deliveries, true);
    let body = r#"{"id":"evt_wide","type":"ticket.created","urn":"urn:allthings:app:B1:ticket:C1:T1","data":{"title":"t"}}"#;
    events_q
        .send_many(&[body.to_owned()], Duration::ZERO, None)
        .await
        .expect("send");
    let batch = events_q
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive");
    let started = Instant::now();
    let failed = ingest.handle_batch(&batch).await;
    let elapsed = started.elapsed();
    assert!(failed.is_empty(), "no failures expected: {failed:?}");
    assert_eq!(deliveries.len().await.expect("len"), 10_000);
    println!(
        "one event to 10 000 matching webhooks: every delivery enqueued in {:.2} s (cold: the App's routes read first)",
        elapsed.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo bench` passes flags like --bench; `scale` as an argument runs (c) and (d) only.
    let only_scale = std::env::args().skip(1).any(|a| a == "scale");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if !only_scale {
            run("one event to 1 000 webhooks (x20 events)", 1_000, 20).await;
            run("10 000 events to 10 webhooks each", 10, 10_000).await;
        }
        scale().await;
    });
}
