//! One conformance suite for the `WebhookStore` port, run against every adapter: SQLite
//! (always) and DynamoDB on moto (`./tests/run.sh`); and the `AttemptLog` port's counting.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_core::event::EventId;
use hookline_core::event_type::Catalog;
use hookline_core::ports::{
    Attempt, AttemptLog, AttemptStatus, Cursor, DeliveryId, PortError, WebhookStore,
};
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
    };
    let spec = NewWebhook {
        name: "CRM".into(),
        url: "https://crm.example.com/hooks?x=1".into(),
        event_types: vec!["ticket.*".into(), "booking.created".into()],
        urns: Some(urns.iter().map(|u| (*u).to_owned()).collect()),
        custom_headers: Some(BTreeMap::from([("X-Api-Key".into(), "k 1".into())])),
        enabled: None,
        secret: None,
    }
    .validate(&rules, None)
    .expect("valid webhook");
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");
    Webhook {
        id: WebhookId::generate(),
        spec,
        secrets: vec![
            SigningSecret {
                secret: Secret::generate().expect("rng"),
                expires_at: None,
            },
            SigningSecret {
                secret: Secret::generate().expect("rng"),
                expires_at: Some(now + time::Duration::hours(24)),
            },
        ],
        owner: "alice".into(),
        version: 1,
        created_at: now,
        updated_at: now,
        disabled_reason: None,
    }
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
    store.delete(&w.id, 1).await.expect("delete");
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

macro_rules! conformance {
    ($module:ident, $make:expr, $($ignore:tt)*) => {
        mod $module {
            use super::*;
            conformance!(@case $make, [$($ignore)*], create_then_get_round_trips);
            conformance!(@case $make, [$($ignore)*], update_moves_route_items_with_the_urns);
            conformance!(@case $make, [$($ignore)*], stale_versions_conflict_and_missing_ones_are_not_found);
            conformance!(@case $make, [$($ignore)*], delete_removes_the_webhook_and_its_routes);
            conformance!(@case $make, [$($ignore)*], routes_hold_only_their_apps_patterns);
            conformance!(@case $make, [$($ignore)*], listing_pages_in_creation_order_stable_under_inserts);
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
    Arc::new(hookline_core::store::sqlite::Database::open_in_memory().expect("sqlite"))
}

async fn dynamo_store() -> Arc<dyn WebhookStore> {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("store").await;
    Arc::new(hookline_core::store::dynamodb::DynamoWebhookStore::new(
        dynamo,
        resources.table_name,
    ))
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
            attempt: n,
            at: now,
            status,
            response_status: Some(500),
            error: None,
            latency_ms: 1,
            response_excerpt: String::new(),
            next_retry_at: None,
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
    let db = hookline_core::store::sqlite::Database::open_in_memory().expect("sqlite");
    attempt_counts_agree_with_the_listing(Arc::new(db)).await;
}

#[tokio::test]
#[ignore = "needs moto: ./tests/run.sh starts it and runs this with --include-ignored"]
async fn dynamodb_attempt_counts_agree_with_the_listing() {
    let (dynamo, _sqs, resources) = hookline_tests::fresh_aws("attempts").await;
    attempt_counts_agree_with_the_listing(Arc::new(
        hookline_core::store::dynamodb::DynamoAttemptLog::new(dynamo, resources.table_name),
    ))
    .await;
}
