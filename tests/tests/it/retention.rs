//! Retention (`HOOKLINE_RETENTION`): the embedded sweeper deletes expired events and attempts
//! in bounded transactions and nothing else (the test reads the raw tables), the deliverer and
//! ingest write the retention as each row's expiry, and the API refuses a window before the
//! horizon, naming it.

use std::time::Duration;

use hookline_api::auth::Caller;
use hookline_api::settings::Settings;
use hookline_core::adapters::sqlite::Database;
use hookline_core::auth::Principal;
use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
use hookline_core::event::{Event, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::ports::{AttemptLog as _, EventLog as _, WebhookStore as _};
use hookline_core::retention::Retention;
use hookline_core::timestamp::rfc3339;
use hookline_core::urn::Namespace;
use hookline_core::webhook::WebhookId;
use hookline_tests::{local_settings, temp_db};
use serde_json::Value;
use time::OffsetDateTime;

fn event(n: usize) -> Event {
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let body = serde_json::json!({"type": "ticket.created", "urn": format!("urn:allthings:app:A1:ticket:C:T{n}"), "data": {}});
    Event::from_intake(
        body.to_string().as_bytes(),
        rules,
        OffsetDateTime::now_utc(),
    )
    .expect("event")
}

fn attempt(webhook: &WebhookId, event: &Event, n: usize) -> Attempt {
    Attempt {
        attempt_id: format!("{:08}", n),
        webhook_id: webhook.clone(),
        delivery_id: DeliveryId::for_pair(&event.id, webhook),
        event_id: event.id.clone(),
        app_id: None,
        event_type: None,
        attempt: 1,
        at: OffsetDateTime::now_utc(),
        status: AttemptStatus::Delivered,
        response_status: Some(200),
        error: None,
        latency_ms: 3,
        response_excerpt: String::new(),
        next_retry_at: None,
        backfill: false,
    }
}

fn count(path: &std::path::Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(path).expect("open");
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[tokio::test]
async fn the_sweeper_deletes_expired_rows_in_bounded_batches_and_nothing_else() {
    let path = temp_db("retention-sweep");
    let db = Database::open(&path).expect("store");
    let now = OffsetDateTime::now_utc();
    let expired = now - time::Duration::seconds(1);
    let kept = now + time::Duration::hours(1);
    let webhook = WebhookId::generate();
    // 1 203 expired events and attempts, 7 that are not.
    let (old, young) = (1_203, 7);
    let mut old_attempts = Vec::new();
    for n in 0..old {
        let e = event(n);
        db.claim(&e, expired, Duration::from_secs(60))
            .await
            .expect("claim");
        old_attempts.push(attempt(&webhook, &e, n));
    }
    db.record_many(&old_attempts, expired)
        .await
        .expect("record");
    let mut young_attempts = Vec::new();
    let mut young_events = Vec::new();
    for n in old..old + young {
        let e = event(n);
        db.claim(&e, kept, Duration::from_secs(60))
            .await
            .expect("claim");
        young_attempts.push(attempt(&webhook, &e, n));
        young_events.push(e);
    }
    db.record_many(&young_attempts, kept).await.expect("record");
    assert_eq!(count(&path, "events"), (old + young) as i64);
    assert_eq!(count(&path, "attempts"), (old + young) as i64);

    // Each call deletes at most its limit from each table.
    let mut calls = Vec::new();
    loop {
        let (e, a) = db.purge_expired(500).await.expect("purge");
        calls.push((e, a));
        if e < 500 && a < 500 {
            break;
        }
    }
    assert_eq!(calls, vec![(500, 500), (500, 500), (203, 203)]);
    assert_eq!(count(&path, "events"), young as i64);
    assert_eq!(count(&path, "attempts"), young as i64);
    for e in &young_events {
        assert!(
            hookline_core::ports::EventLog::get(&db, &e.id)
                .await
                .expect("get")
                .is_some(),
            "a kept event stays"
        );
    }
    assert_eq!(db.purge_expired(500).await.expect("purge"), (0, 0));

    // Finished jobs go after 30 days (as DynamoDB's TTL lets them go); others stay.
    use hookline_core::job::{Job, JobState};
    use hookline_core::ports::JobStore;
    let now = time::OffsetDateTime::now_utc();
    let mut old_job = Job::purge("A1", "platform", 0, now - time::Duration::days(40));
    old_job.finish(JobState::Done, None, now - time::Duration::days(31));
    let mut recent = Job::purge("A2", "platform", 0, now - time::Duration::days(3));
    recent.finish(JobState::Done, None, now - time::Duration::days(2));
    let running = Job::purge("A3", "platform", 0, now - time::Duration::days(90));
    for job in [&old_job, &recent, &running] {
        JobStore::create(&db, job).await.expect("job");
    }
    db.purge_expired(500).await.expect("purge");
    assert_eq!(
        JobStore::get(&db, &old_job.id).await.expect("get"),
        None,
        "a job finished 31 days ago goes"
    );
    assert!(JobStore::get(&db, &recent.id).await.expect("get").is_some());
    assert!(
        JobStore::get(&db, &running.id)
            .await
            .expect("get")
            .is_some(),
        "an unfinished job stays"
    );
}

/// The sweeper `hookline serve` runs does the same on its own, and stops when told.
#[tokio::test]
async fn serves_sweeper_runs_until_stopped() {
    let path = temp_db("retention-sweeper-task");
    let db = Database::open(&path).expect("store");
    let expired = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let webhook = WebhookId::generate();
    let attempts: Vec<Attempt> = (0..1_100)
        .map(|n| attempt(&webhook, &event(n), n))
        .collect();
    db.record_many(&attempts, expired).await.expect("record");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(hookline::sweep(db.clone(), stop));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&path, "attempts") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper deleted the expired attempts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the sweeper stops")
        .expect("joined");
}

async fn stats(api: &hookline_api::Api, id: &WebhookId, since: &str) -> (u16, Value) {
    let request = http::Request::builder()
        .uri(format!("/v1/webhooks/{id}/stats?since={since}"))
        .body(bytes::Bytes::new())
        .expect("request");
    let caller = Caller::Principal(Principal::from_claims(
        "tester",
        Some(&Value::String("edit-app:A1".into())),
    ));
    let response = api.handle(request, caller).await;
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body()).expect("json"),
    )
}

#[tokio::test]
async fn windows_before_the_horizon_are_refused_naming_it() {
    let settings = Settings {
        retention: Retention::parse("2h").expect("2h"),
        ..local_settings()
    };
    let (api, db) = hookline_tests::embedded_api(settings);
    let hook = hookline_tests::webhook(&["urn:allthings:app:A1:*"], &["ticket.created"], true);
    db.create(&hook).await.expect("create");
    let now = OffsetDateTime::now_utc();
    let (status, body) = stats(&api, &hook.id, &rfc3339(now - time::Duration::minutes(90))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = stats(&api, &hook.id, &rfc3339(now - time::Duration::hours(3))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "since", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("retention horizon") && message.contains("kept 2 hours"),
        "{body}"
    );
}
