//! One conformance suite for the `WebhookStore` port, run against every adapter: SQLite
//! (always) and DynamoDB on moto (`./tests/run.sh`); the `AttemptLog` port's counting, and the
//! `JobStore` port.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId};
use hookline_core::event::EventId;
use hookline_core::event_type::Catalog;
use hookline_core::ports::{AttemptLog, Cursor, EventLog, JobStore, PortError, WebhookStore};
use hookline_core::sealed::Protected;
use hookline_core::signing::Secret;
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;
use hookline_core::webhook::{NewWebhook, SigningSecret, Webhook, WebhookId, WebhookRules};
use time::OffsetDateTime;

fn webhook(urns: &[&str]) -> Webhook {
    let ns = Namespace::default();
    let rules = WebhookRules {
        namespace: &ns,
        catalog: Catalog::builtin(),
        allow_http: false,
        targets: TargetPolicy::PUBLIC_ONLY,
        ordered: true,
        destinations: None,
    };
    let spec = NewWebhook {
        name: "CRM".into(),
        url: "https://crm.example.com/hooks?x=1".into(),
        event_types: vec!["ticket.*".into(), "booking.created".into()],
        urns: Some(urns.iter().map(|u| (*u).to_owned()).collect()),
        custom_headers: Some(BTreeMap::from([("X-Api-Key".into(), "k 1".into())])),
        enabled: None,
        secret: None,
        ..Default::default()
    }
    .validate(&rules, None)
    .expect("valid webhook");
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");
    let secret = || Protected::Plain(Secret::generate().expect("rng").expose());
    let mut webhook = Webhook {
        id: WebhookId::generate(),
        spec,
        secrets: vec![
            SigningSecret {
                secret: secret(),
                expires_at: None,
            },
            SigningSecret {
                secret: secret(),
                expires_at: Some(now + time::Duration::hours(24)),
            },
        ],
        owner: "alice".into(),
        version: 1,
        created_at: now,
        updated_at: now,
        state: hookline_core::webhook::WebhookState::default(),
    };
    webhook.seal(&hookline_tests::test_keys()).expect("seals");
    webhook
}

async fn create_then_get_round_trips(store: Arc<dyn WebhookStore>) {
    let w = webhook(&[
        "urn:allthings:app:A1:ticket:CAT7:*",
        "urn:allthings:app:A2:*",
    ]);
    store.create(&w).await.expect("create");
    assert_eq!(store.get(&w.id).await.expect("get"), Some(w.clone()));
    assert_eq!(store.get(&WebhookId::generate()).await.expect("get"), None);
    let again = store.create(&w).await;
    assert!(
        matches!(again, Err(PortError::AlreadyExists(_))),
        "{again:?}"
    );
}

async fn update_moves_route_items_with_the_urns(store: Arc<dyn WebhookStore>) {
    let mut w = webhook(&["urn:allthings:app:A1:*", "urn:allthings:app:B1:*"]);
    store.create(&w).await.expect("create");
    w.spec.urns = vec![
        hookline_core::urn::UrnPattern::parse_default("urn:allthings:app:B1:x:*").expect("valid"),
        hookline_core::urn::UrnPattern::parse_default("urn:allthings:app:C1:*").expect("valid"),
    ];
    w.version = 2;
    store.update(&w, 1).await.expect("update");
    assert_eq!(store.get(&w.id).await.expect("get"), Some(w.clone()));
    assert!(store.routes_for_app("A1").await.expect("routes").is_empty());
    let b1 = store.routes_for_app("B1").await.expect("routes");
    assert_eq!(b1.len(), 1);
    assert_eq!(b1[0].patterns[0].to_string(), "urn:allthings:app:B1:x:*");
    assert_eq!(store.routes_for_app("C1").await.expect("routes").len(), 1);
}

/// Every write naming an App moves its route version, and only those: what fan-out's route
/// cache relies on.
async fn route_versions_move_with_every_write_naming_the_app(store: Arc<dyn WebhookStore>) {
    let version = |app: &'static str| {
        let store = store.clone();
        async move { store.routes_version(app).await.expect("version") }
    };
    assert_eq!(version("A1").await, 0, "an App never written");
    let mut w = webhook(&["urn:allthings:app:A1:*", "urn:allthings:app:B1:*"]);
    store.create(&w).await.expect("create");
    let (a1, b1, c1) = (
        version("A1").await,
        version("B1").await,
        version("C1").await,
    );
    assert!(a1 > 0 && b1 > 0);
    assert_eq!(c1, 0);

    store
        .create(&webhook(&["urn:allthings:app:C1:*"]))
        .await
        .expect("create");
    assert_eq!((version("A1").await, version("B1").await), (a1, b1));
    let c1 = version("C1").await;
    assert!(c1 > 0);

    // Leaving A1 for D1: A1 (left), B1 (changed) and D1 (joined) move; C1 does not.
    w.spec.urns = vec![
        hookline_core::urn::UrnPattern::parse_default("urn:allthings:app:B1:x:*").expect("valid"),
        hookline_core::urn::UrnPattern::parse_default("urn:allthings:app:D1:*").expect("valid"),
    ];
    w.version = 2;
    store.update(&w, 1).await.expect("update");
    let (a1b, b1b, d1) = (
        version("A1").await,
        version("B1").await,
        version("D1").await,
    );
    assert!(a1b != a1 && b1b != b1 && d1 > 0);
    assert_eq!(version("C1").await, c1);

    // A failed write moves nothing.
    assert!(store.update(&w, 1).await.is_err());
    assert_eq!(version("B1").await, b1b);

    store.delete(&w.id, 2).await.expect("delete");
    assert!(version("B1").await != b1b && version("D1").await != d1);
    assert_eq!(version("A1").await, a1b);
}

async fn stale_versions_conflict_and_missing_ones_are_not_found(store: Arc<dyn WebhookStore>) {
    let mut w = webhook(&["urn:allthings:app:A1:*"]);
    store.create(&w).await.expect("create");
    w.version = 2;
    store.update(&w, 1).await.expect("first update");
    w.version = 3;
    w.spec.name = "stale".into();
    let stale = store.update(&w, 1).await;
    assert!(
        matches!(stale, Err(PortError::VersionConflict { expected: 1 })),
        "{stale:?}"
    );
    assert_eq!(
        store
            .get(&w.id)
            .await
            .expect("get")
            .expect("there")
            .spec
            .name,
        "CRM"
    );
    let stale = store.delete(&w.id, 1).await;
    assert!(
        matches!(stale, Err(PortError::VersionConflict { .. })),
        "{stale:?}"
    );
    let ghost = webhook(&["urn:allthings:app:A1:*"]);
    assert!(matches!(
        store.update(&ghost, 1).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        store.delete(&ghost.id, 1).await,
        Err(PortError::NotFound(_))
    ));
}

async fn delete_removes_the_webhook_and_its_routes(store: Arc<dyn WebhookStore>) {
    let w = webhook(&["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"]);
    store.create(&w).await.expect("create");
    let apps = store.app_ids().await.expect("apps");
    assert!(
        apps.contains(&"A1".to_owned()) && apps.contains(&"A2".to_owned()),
        "the Apps with webhooks: {apps:?}"
    );
    store.delete(&w.id, 1).await.expect("delete");
    let apps = store.app_ids().await.expect("apps");
    assert!(
        !apps.contains(&"A1".to_owned()) && !apps.contains(&"A2".to_owned()),
        "an App without webhooks is not offered: {apps:?}"
    );
    assert_eq!(store.get(&w.id).await.expect("get"), None);
    assert!(store.routes_for_app("A1").await.expect("routes").is_empty());
    assert!(store.routes_for_app("A2").await.expect("routes").is_empty());
    assert!(store
        .list_for_app("A1", None, 10)
        .await
        .expect("list")
        .items
        .is_empty());
}

async fn routes_hold_only_their_apps_patterns(store: Arc<dyn WebhookStore>) {
    let w = webhook(&[
        "urn:allthings:app:A1:ticket:*",
        "urn:allthings:app:A2:*",
        "urn:allthings:app:A1:booking:B1",
    ]);
    store.create(&w).await.expect("create");
    let a1 = store.routes_for_app("A1").await.expect("routes");
    assert_eq!(a1.len(), 1);
    let patterns: Vec<String> = a1[0].patterns.iter().map(ToString::to_string).collect();
    assert_eq!(
        patterns,
        [
            "urn:allthings:app:A1:ticket:*",
            "urn:allthings:app:A1:booking:B1"
        ]
    );
    assert_eq!(a1[0].webhook_id, w.id);
    assert!(a1[0].enabled);
    assert!(store.routes_for_app("A3").await.expect("routes").is_empty());
}

async fn listing_pages_in_creation_order_stable_under_inserts(store: Arc<dyn WebhookStore>) {
    let mut created = Vec::new();
    for _ in 0..5 {
        let w = webhook(&["urn:allthings:app:L1:*"]);
        store.create(&w).await.expect("create");
        created.push(w.id.clone());
        // ULIDs order by millisecond; keep creation order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    store
        .create(&webhook(&["urn:allthings:app:OTHER:*"]))
        .await
        .expect("create other app");
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_for_app("L1", cursor.as_ref(), 2)
            .await
            .expect("list");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|w| w.id.clone()));
        pages += 1;
        if pages == 1 {
            // Inserted while the caller is paging: shows up at the end, nothing skipped twice.
            let late = webhook(&["urn:allthings:app:L1:*"]);
            store.create(&late).await.expect("create during paging");
            created.push(late.id.clone());
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);
}

/// A failure run is counted beside the webhook, without touching its version, kept across a user's update, ended by `clear_failures`.
async fn failure_runs_count_beside_the_webhook(store: Arc<dyn WebhookStore>) {
    let w = webhook(&["urn:allthings:app:A1:*"]);
    store.create(&w).await.expect("create");
    assert_eq!(
        store
            .get(&w.id)
            .await
            .expect("get")
            .expect("there")
            .state
            .failures,
        None
    );
    let t0 = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");
    let first = store
        .record_failure(&w.id, t0, "the endpoint answered 500")
        .await
        .expect("record")
        .expect("webhook there");
    assert_eq!((first.since, first.failures), (t0, 1));
    let later = t0 + time::Duration::seconds(30);
    // One after the other: moto's UpdateItem is not atomic under concurrent calls (it loses
    // increments; DynamoDB's is), so concurrency is checked on SQLite only, below.
    for i in 0..8 {
        store
            .record_failure(&w.id, later, &format!("failure {i}"))
            .await
            .expect("record")
            .expect("there");
    }
    let read = store.get(&w.id).await.expect("get").expect("there");
    let run = read.state.failures.clone().expect("a run");
    assert_eq!(
        (run.since, run.failures),
        (t0, 9),
        "every failure counts; the run keeps its start"
    );
    assert!(run.last_error.is_some_and(|e| e.starts_with("failure ")));
    assert_eq!(
        read.version, 1,
        "counting failures leaves the version alone"
    );

    // A user's update keeps the run.
    let mut next = read.clone();
    next.spec.name = "renamed".into();
    next.version = 2;
    store.update(&next, 1).await.expect("update");
    let read = store.get(&w.id).await.expect("get").expect("there");
    assert_eq!(read.state.failures.map(|r| r.failures), Some(9));

    store.clear_failures(&w.id).await.expect("clear");
    assert_eq!(
        store
            .get(&w.id)
            .await
            .expect("get")
            .expect("there")
            .state
            .failures,
        None
    );
    store
        .clear_failures(&w.id)
        .await
        .expect("clearing no run is fine");
    let again = store
        .record_failure(&w.id, later, "x")
        .await
        .expect("record")
        .expect("there");
    assert_eq!(
        (again.since, again.failures),
        (later, 1),
        "a new run starts"
    );

    let missing = WebhookId::generate();
    assert_eq!(
        store
            .record_failure(&missing, later, "x")
            .await
            .expect("no error"),
        None
    );
    store
        .clear_failures(&missing)
        .await
        .expect("nothing to clear");
}

/// Disabled state and suspensions are stored with the webhook; a suspended App's route item
/// is not enabled, the other Apps' are.
async fn lifecycle_state_round_trips_and_suspends_routes(store: Arc<dyn WebhookStore>) {
    use hookline_core::webhook::{Disabled, DisabledReason, Suspension};
    let mut w = webhook(&["urn:allthings:app:A1:*", "urn:allthings:app:A2:*"]);
    store.create(&w).await.expect("create");
    let at = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");
    w.state.suspended.push(Suspension {
        app_id: "A1".into(),
        reason: "permission revoked".into(),
        since: at,
    });
    w.version = 2;
    store.update(&w, 1).await.expect("suspend");
    let read = store.get(&w.id).await.expect("get").expect("there");
    assert_eq!(read.state.suspended, w.state.suspended);
    let a1 = store.routes_for_app("A1").await.expect("routes");
    let a2 = store.routes_for_app("A2").await.expect("routes");
    assert_eq!((a1.len(), a2.len()), (1, 1));
    assert!(!a1[0].enabled && a2[0].enabled);
    assert_eq!(
        store
            .owned_in_app("alice", "A1")
            .await
            .expect("owned")
            .len(),
        1
    );
    assert!(store
        .owned_in_app("bob", "A1")
        .await
        .expect("owned")
        .is_empty());

    w.disable(
        DisabledReason::Failing,
        at,
        Some("the endpoint answered 503".into()),
    );
    w.version = 3;
    store.update(&w, 2).await.expect("disable");
    let read = store.get(&w.id).await.expect("get").expect("there");
    assert!(!read.spec.enabled);
    assert_eq!(
        read.state.disabled,
        Some(Disabled {
            reason: DisabledReason::Failing,
            at,
            last_error: Some("the endpoint answered 503".into())
        })
    );
    assert!(store
        .routes_for_app("A2")
        .await
        .expect("routes")
        .iter()
        .all(|r| !r.enabled));
}

/// Revoked grants: recorded once (the first time stays), listed per client, restored.
async fn revoked_grants_are_recorded_and_restored(
    grants: Arc<dyn hookline_core::ports::GrantStore>,
) {
    let t0 = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");
    grants.revoke("auth0|7", "A1", t0).await.expect("revoke");
    grants
        .revoke("auth0|7", "A1", t0 + time::Duration::hours(1))
        .await
        .expect("revoking twice is fine");
    grants.revoke("auth0|7", "A2", t0).await.expect("revoke");
    grants.revoke("other", "A1", t0).await.expect("revoke");
    let mine = grants.revoked("auth0|7").await.expect("list");
    assert_eq!(
        mine.iter()
            .map(|g| (g.app_id.as_str(), g.since))
            .collect::<Vec<_>>(),
        [("A1", t0), ("A2", t0)]
    );
    grants.restore("auth0|7", "A1").await.expect("restore");
    grants
        .restore("auth0|7", "A9")
        .await
        .expect("restoring what was not revoked is fine");
    let mine = grants.revoked("auth0|7").await.expect("list");
    assert_eq!(
        mine.iter().map(|g| g.app_id.as_str()).collect::<Vec<_>>(),
        ["A2"]
    );
    assert!(grants.revoked("nobody").await.expect("list").is_empty());
}

/// Concurrent failures of one webhook all count (SQLite serialises them on its one
/// connection; DynamoDB's update expressions are atomic, which moto does not reproduce).
#[tokio::test]
async fn sqlite_counts_concurrent_failures_exactly() {
    let store: Arc<dyn WebhookStore> =
        Arc::new(hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite"));
    let w = webhook(&["urn:allthings:app:A1:*"]);
    store.create(&w).await.expect("create");
    let mut concurrent = tokio::task::JoinSet::new();
    for i in 0..32 {
        let (store, id) = (store.clone(), w.id.clone());
        concurrent.spawn(async move {
            store
                .record_failure(&id, OffsetDateTime::now_utc(), &format!("failure {i}"))
                .await
        });
    }
    for counted in concurrent.join_all().await {
        assert!(matches!(counted, Ok(Some(_))), "{counted:?}");
    }
    let run = store
        .get(&w.id)
        .await
        .expect("get")
        .expect("there")
        .state
        .failures;
    assert_eq!(run.map(|r| r.failures), Some(32));
}

#[tokio::test]
async fn sqlite_revoked_grants_are_recorded_and_restored() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    revoked_grants_are_recorded_and_restored(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_revoked_grants_are_recorded_and_restored() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("grants").await;
    revoked_grants_are_recorded_and_restored(Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoGrantStore::new(dynamo, resources.table_name),
    ))
    .await;
}

macro_rules! conformance {
    ($module:ident, $make:expr, $($ignore:tt)*) => {
        mod $module {
            use super::*;
            conformance!(@case $make, [$($ignore)*], create_then_get_round_trips);
            conformance!(@case $make, [$($ignore)*], update_moves_route_items_with_the_urns);
            conformance!(@case $make, [$($ignore)*], route_versions_move_with_every_write_naming_the_app);
            conformance!(@case $make, [$($ignore)*], stale_versions_conflict_and_missing_ones_are_not_found);
            conformance!(@case $make, [$($ignore)*], delete_removes_the_webhook_and_its_routes);
            conformance!(@case $make, [$($ignore)*], routes_hold_only_their_apps_patterns);
            conformance!(@case $make, [$($ignore)*], listing_pages_in_creation_order_stable_under_inserts);
            conformance!(@case $make, [$($ignore)*], failure_runs_count_beside_the_webhook);
            conformance!(@case $make, [$($ignore)*], lifecycle_state_round_trips_and_suspends_routes);
        }
    };
    (@case $make:expr, [$($ignore:tt)*], $name:ident) => {
        #[tokio::test]
        $($ignore)*
        async fn $name() {
            let store: Arc<dyn WebhookStore> = $make.await;
            super::$name(store).await;
        }
    };
}

async fn sqlite_store() -> Arc<dyn WebhookStore> {
    Arc::new(hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite"))
}

async fn dynamo_store() -> Arc<dyn WebhookStore> {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("store").await;
    Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoWebhookStore::new(
            dynamo,
            resources.table_name,
        ),
    )
}

conformance!(sqlite, sqlite_store(),);
conformance!(dynamodb, dynamo_store(), #[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]);

/// The attempt log counts what its listing walks: per webhook, per status, unexpired only.
async fn attempt_counts_agree_with_the_listing(log: Arc<dyn AttemptLog>) {
    let (w, other) = (WebhookId::generate(), WebhookId::generate());
    let now = time::OffsetDateTime::now_utc();
    let record = |webhook: &WebhookId, n: u32, status: AttemptStatus| {
        let event = EventId::generate();
        Attempt {
            attempt_id: ulid::Ulid::new().to_string(),
            webhook_id: webhook.clone(),
            delivery_id: DeliveryId::for_pair(&event, webhook),
            event_id: event,
            app_id: None,
            event_type: None,
            attempt: n,
            at: now,
            status,
            response_status: Some(500),
            error: None,
            latency_ms: 1,
            response_excerpt: String::new(),
            next_retry_at: None,
            backfill: false,
        }
    };
    let keep = now + time::Duration::days(1);
    for n in 1..=7 {
        let status = if n % 3 == 0 {
            AttemptStatus::Exhausted
        } else {
            AttemptStatus::Retrying
        };
        log.record(&record(&w, n, status), keep)
            .await
            .expect("record");
    }
    for n in 1..=2 {
        log.record(&record(&other, n, AttemptStatus::Delivered), keep)
            .await
            .expect("record");
    }
    log.record(
        &record(&w, 9, AttemptStatus::Exhausted),
        now - time::Duration::minutes(1),
    )
    .await
    .expect("record");

    assert_eq!(log.count(&w, None).await.expect("count"), 7);
    assert_eq!(
        log.count(&w, Some(AttemptStatus::Exhausted))
            .await
            .expect("count"),
        2,
        "the expired one is not counted"
    );
    assert_eq!(log.count(&other, None).await.expect("count"), 2);
    assert_eq!(
        log.count(&WebhookId::generate(), None)
            .await
            .expect("count"),
        0
    );
    let (mut walked, mut cursor) = (0, None);
    loop {
        let page = log.list(&w, None, cursor.as_ref(), 3).await.expect("list");
        walked += page.items.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, 7);
}

#[tokio::test]
async fn sqlite_attempt_counts_agree_with_the_listing() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    attempt_counts_agree_with_the_listing(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_attempt_counts_agree_with_the_listing() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("attempts").await;
    attempt_counts_agree_with_the_listing(Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoAttemptLog::new(dynamo, resources.table_name),
    ))
    .await;
}

/// Every delivery with attempts on record is found for redelivery, with its event and its
/// highest attempt number: first-try successes (DynamoDB keeps no `DLV#` item for them and
/// searches the newest attempts), retried ones, failed ones; in one batch or apart.
async fn every_delivery_on_record_is_found_for_redelivery(log: Arc<dyn AttemptLog>) {
    let w = WebhookId::generate();
    let now = time::OffsetDateTime::now_utc();
    let keep = now + time::Duration::days(1);
    let attempt = |event: &EventId, n: u32, status: AttemptStatus| Attempt {
        attempt_id: ulid::Ulid::new().to_string(),
        webhook_id: w.clone(),
        delivery_id: DeliveryId::for_pair(event, &w),
        event_id: event.clone(),
        app_id: None,
        event_type: None,
        attempt: n,
        at: now,
        status,
        response_status: Some(200),
        error: None,
        latency_ms: 1,
        response_excerpt: String::new(),
        next_retry_at: None,
        backfill: false,
    };
    let (first_try, retried, failed) = (
        EventId::generate(),
        EventId::generate(),
        EventId::generate(),
    );
    log.record(&attempt(&retried, 1, AttemptStatus::Retrying), keep)
        .await
        .expect("record");
    // Filler between them: the search walks past other deliveries.
    let filler: Vec<Attempt> = (0..30)
        .map(|_| attempt(&EventId::generate(), 1, AttemptStatus::Delivered))
        .collect();
    log.record_many(&filler, keep).await.expect("record");
    log.record_many(
        &[
            attempt(&first_try, 1, AttemptStatus::Delivered),
            attempt(&retried, 2, AttemptStatus::Delivered),
            attempt(&failed, 1, AttemptStatus::Failed),
        ],
        keep,
    )
    .await
    .expect("record");
    log.record_many(&filler[..5], keep).await.expect("record");
    let found = |event: &EventId| {
        let (log, delivery) = (log.clone(), DeliveryId::for_pair(event, &w));
        let w = w.clone();
        async move { log.last_attempt(&w, &delivery).await.expect("lookup") }
    };
    assert_eq!(found(&first_try).await, Some((first_try.clone(), 1)));
    assert_eq!(found(&retried).await, Some((retried.clone(), 2)));
    assert_eq!(found(&failed).await, Some((failed.clone(), 1)));
    assert_eq!(
        found(&filler[7].event_id).await,
        Some((filler[7].event_id.clone(), 1))
    );
    assert_eq!(found(&EventId::generate()).await, None);
}

#[tokio::test]
async fn sqlite_every_delivery_on_record_is_found_for_redelivery() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    every_delivery_on_record_is_found_for_redelivery(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_every_delivery_on_record_is_found_for_redelivery() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("redeliver").await;
    every_delivery_on_record_is_found_for_redelivery(Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoAttemptLog::new(dynamo, resources.table_name),
    ))
    .await;
}

/// The job store: one unfinished job per webhook (a second is refused naming the first),
/// writes conditional on the version read, and a final state frees the webhook.
async fn one_unfinished_job_per_webhook_and_versioned_writes(jobs: Arc<dyn JobStore>) {
    use hookline_core::job::{Job, JobKind, JobLock, JobState};
    let now = time::OffsetDateTime::now_utc();
    let webhook_id = WebhookId::generate();
    let webhook = JobLock::Webhook(webhook_id.clone());
    let other_webhook = WebhookId::generate();
    let window = (now - time::Duration::hours(6), now);
    let make = |w: &WebhookId, total| {
        Job::new(
            JobKind::Recover,
            w.clone(),
            "tester",
            window.0,
            window.1,
            total,
            now,
        )
    };
    let first = make(&webhook_id, 3);
    assert_eq!(jobs.active_for(&webhook).await.expect("active"), None);
    jobs.create(&first).await.expect("created");
    assert_eq!(jobs.get(&first.id).await.expect("get"), Some(first.clone()));
    assert_eq!(
        jobs.active_for(&webhook).await.expect("active"),
        Some(first.id.clone())
    );

    // A second unfinished job on the same webhook: refused, naming the first.
    match jobs.create(&make(&webhook_id, 1)).await {
        Err(PortError::AlreadyExists(id)) => assert_eq!(id, first.id.to_string()),
        other => panic!("a second job was not refused: {other:?}"),
    }
    // Another webhook is not affected.
    jobs.create(&make(&other_webhook, 1))
        .await
        .expect("another webhook's job");

    // Progress: conditional on the version read.
    let mut running = first.clone();
    running.state = JobState::Running;
    running.done = 2;
    running.next_chunk = 1;
    running.cursor = Some("c1".into());
    running.started_at = Some(now);
    running.version = 2;
    jobs.update(&running, 1).await.expect("moved on");
    assert!(matches!(
        jobs.update(&running, 1).await,
        Err(PortError::VersionConflict { expected: 1 })
    ));
    let missing = make(&WebhookId::generate(), 0);
    assert!(matches!(
        jobs.update(&missing, 1).await,
        Err(PortError::NotFound(_))
    ));
    assert_eq!(
        jobs.get(&running.id).await.expect("get"),
        Some(running.clone())
    );

    // Done: the webhook takes a new job.
    let mut done = running.clone();
    done.done = 3;
    done.finish(JobState::Done, None, now);
    done.version = 3;
    jobs.update(&done, 2).await.expect("finished");
    assert_eq!(jobs.active_for(&webhook).await.expect("active"), None);
    let next = make(&webhook_id, 5);
    jobs.create(&next).await.expect("the next job");
    assert_eq!(
        jobs.active_for(&webhook).await.expect("active"),
        Some(next.id.clone())
    );
    assert_eq!(jobs.get(&done.id).await.expect("get"), Some(done));

    // A purge locks its App: one at a time per App, beside any webhook's jobs.
    let app = JobLock::App(format!("A{}", ulid::Ulid::new()));
    let JobLock::App(app_id) = &app else {
        unreachable!()
    };
    let purge = Job::purge(app_id, "platform", 2, now);
    assert_eq!(purge.lock(), app);
    jobs.create(&purge).await.expect("a purge");
    assert_eq!(
        jobs.active_for(&app).await.expect("active"),
        Some(purge.id.clone())
    );
    match jobs.create(&Job::purge(app_id, "platform", 0, now)).await {
        Err(PortError::AlreadyExists(id)) => assert_eq!(id, purge.id.to_string()),
        other => panic!("a second purge of the App was not refused: {other:?}"),
    }
    assert_eq!(jobs.get(&purge.id).await.expect("get"), Some(purge.clone()));
    let mut ended = purge.clone();
    ended.finish(JobState::Done, None, now);
    ended.version = 2;
    jobs.update(&ended, 1).await.expect("purge finished");
    assert_eq!(jobs.active_for(&app).await.expect("active"), None);
}

#[tokio::test]
async fn sqlite_one_unfinished_job_per_webhook_and_versioned_writes() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    one_unfinished_job_per_webhook_and_versioned_writes(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_one_unfinished_job_per_webhook_and_versioned_writes() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("jobs").await;
    one_unfinished_job_per_webhook_and_versioned_writes(Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoJobStore::new(dynamo, resources.table_name),
    ))
    .await;
}

/// The event log lists an App's events by receipt time, a page at a time, and no other
/// App's: what backfill and App purges walk.
async fn an_apps_events_are_listed_in_receipt_order(log: Arc<dyn EventLog>) {
    use hookline_core::event::{Event, IntakeRules};
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let mut mine = Vec::new();
    for i in 0..7 {
        for app in ["A1", "A2"] {
            let body = serde_json::json!({"type": "ticket.created", "urn": format!("urn:allthings:app:{app}:ticket:C:T{i}"), "data": {"i": i}});
            let event = Event::from_intake(
                body.to_string().as_bytes(),
                rules,
                OffsetDateTime::now_utc(),
            )
            .expect("event");
            log.claim(
                &event,
                OffsetDateTime::now_utc() + time::Duration::hours(1),
                std::time::Duration::ZERO,
            )
            .await
            .expect("claim");
            if app == "A1" {
                mine.push(event.id.clone());
            }
        }
    }
    let after = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let mut listed = Vec::new();
    let mut positions = Vec::new();
    let mut cursor = None;
    loop {
        let page = log
            .list_for_app("A1", before, after, cursor.as_ref(), 3)
            .await
            .expect("list");
        assert!(page.items.len() <= 3);
        for e in &page.items {
            assert_eq!(e.event.urn.app_id(), "A1");
            listed.push(e.event.id.clone());
            positions.push(e.position());
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "oldest first");
    let (mut a, mut b) = (listed.clone(), mine.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b, "exactly A1's events, each once");
    // A window that ends before them lists nothing.
    let none = log
        .list_for_app("A1", before - time::Duration::hours(1), before, None, 10)
        .await
        .expect("list");
    assert!(none.items.is_empty() && none.next.is_none());
}

#[tokio::test]
async fn sqlite_an_apps_events_are_listed_in_receipt_order() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    an_apps_events_are_listed_in_receipt_order(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_an_apps_events_are_listed_in_receipt_order() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("events-by-app").await;
    an_apps_events_are_listed_in_receipt_order(Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoEventLog::new(dynamo, resources.table_name),
    ))
    .await;
}

/// DynamoDB's single-write claim: the event written once, naming the message that took it;
/// that message's retry fans out again, any other message's copy is done, a claim an older
/// build left lapsed is taken over, an expired entry is as good as absent; and the item
/// reads back, is listed, and counts as done for the claim-then-mark path too.
#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_claims_an_event_in_one_write_per_message() {
    use hookline_core::event::{Event, IntakeRules};
    use hookline_core::ports::EventClaim;
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("claim-once").await;
    let log =
        hookline_core::adapters::aws::dynamodb::DynamoEventLog::new(dynamo, resources.table_name);
    let rules = IntakeRules {
        namespace: &Namespace::default(),
        catalog: Catalog::builtin(),
    };
    let event = |n: u32| {
        let body = serde_json::json!({"id": format!("evt_once{n}"), "type": "ticket.created", "urn": "urn:allthings:app:A1:ticket:C:T1", "data": {}});
        Event::from_intake(
            body.to_string().as_bytes(),
            rules,
            OffsetDateTime::now_utc(),
        )
        .expect("event")
    };
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let claim = |e: Event, by: &'static str, expires: OffsetDateTime| {
        let log = log.clone();
        async move {
            log.claim_for_message(&e, expires, by)
                .await
                .expect("claim")
                .expect("DynamoDB claims in one write")
        }
    };
    let e1 = event(1);
    assert_eq!(claim(e1.clone(), "m1", later).await, EventClaim::New);
    assert_eq!(claim(e1.clone(), "m1", later).await, EventClaim::Unfinished);
    assert_eq!(claim(e1.clone(), "m2", later).await, EventClaim::Done);
    assert_eq!(
        log.claim(&e1, later, std::time::Duration::from_secs(60))
            .await
            .expect("claim"),
        EventClaim::Done,
        "the claim-then-mark path sees it done"
    );
    assert_eq!(
        log.get(&e1.id).await.expect("get").map(|e| e.id),
        Some(e1.id.clone())
    );
    let listed = log
        .list_for_app(
            "A1",
            OffsetDateTime::now_utc() - time::Duration::minutes(1),
            later,
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);

    // A claim an older build took and left lapsed (lease 0) is taken over.
    let e2 = event(2);
    assert_eq!(
        log.claim(&e2, later, std::time::Duration::ZERO)
            .await
            .expect("claim"),
        EventClaim::New
    );
    assert_eq!(claim(e2.clone(), "m3", later).await, EventClaim::New);
    assert_eq!(claim(e2, "m4", later).await, EventClaim::Done);

    // An expired entry (not yet deleted by TTL) is as good as absent.
    let e3 = event(3);
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    assert_eq!(claim(e3.clone(), "m5", past).await, EventClaim::New);
    assert_eq!(claim(e3, "m6", later).await, EventClaim::New);
}

/// An App purge's erasing of attempts: of one App only (the others, and their delivery
/// lookups, stay), walked in pages from a cursor; and a webhook's whole log.
async fn attempts_are_erased_by_app_in_pages(log: Arc<dyn AttemptLog>) {
    let w = WebhookId::generate();
    let now = time::OffsetDateTime::now_utc();
    let keep = now + time::Duration::days(1);
    let attempt = |event: &EventId, app: &str, n: u32| Attempt {
        attempt_id: ulid::Ulid::new().to_string(),
        webhook_id: w.clone(),
        delivery_id: DeliveryId::for_pair(event, &w),
        event_id: event.clone(),
        app_id: Some(app.to_owned()),
        event_type: None,
        attempt: n,
        at: now,
        status: if n == 1 {
            AttemptStatus::Retrying
        } else {
            AttemptStatus::Delivered
        },
        response_status: Some(200),
        error: None,
        latency_ms: 1,
        response_excerpt: String::new(),
        next_retry_at: None,
        backfill: false,
    };
    let (gone, kept): (Vec<EventId>, Vec<EventId>) = (
        (0..7).map(|_| EventId::generate()).collect(),
        (0..5).map(|_| EventId::generate()).collect(),
    );
    for (events, app) in [(&gone, "AppGone"), (&kept, "AppKept")] {
        for e in events {
            log.record_many(&[attempt(e, app, 1), attempt(e, app, 2)], keep)
                .await
                .expect("record");
        }
    }
    assert_eq!(log.count(&w, None).await.expect("count"), 24);
    let (mut erased, mut cursor, mut pages) = (0, None, 0);
    loop {
        let (n, next) = log
            .erase(&w, Some("AppGone"), cursor.as_ref(), 5)
            .await
            .expect("erase");
        erased += n;
        pages += 1;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(erased, 14, "every attempt of AppGone");
    assert!(pages > 2, "walked in pages of at most 5 ({pages})");
    let left = log.list(&w, None, None, 100).await.expect("list").items;
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|a| a.app_id.as_deref() == Some("AppKept")));
    assert_eq!(
        log.last_attempt(&w, &DeliveryId::for_pair(&kept[0], &w))
            .await
            .expect("lookup"),
        Some((kept[0].clone(), 2))
    );
    assert_eq!(
        log.last_attempt(&w, &DeliveryId::for_pair(&gone[0], &w))
            .await
            .expect("lookup"),
        None,
        "an erased delivery is not found for redelivery"
    );
    // The whole log of a deleted webhook.
    let mut cursor = None;
    loop {
        let (_, next) = log
            .erase(&w, None, cursor.as_ref(), 1_000)
            .await
            .expect("erase");
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(log.count(&w, None).await.expect("count"), 0);
}

#[tokio::test]
async fn sqlite_attempts_are_erased_by_app_in_pages() {
    let db = hookline_core::adapters::sqlite::Database::open_in_memory().expect("sqlite");
    attempts_are_erased_by_app_in_pages(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_attempts_are_erased_by_app_in_pages() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("erase").await;
    attempts_are_erased_by_app_in_pages(Arc::new(
        hookline_core::adapters::aws::dynamodb::DynamoAttemptLog::new(dynamo, resources.table_name),
    ))
    .await;
}
