//! Fan-out's view of an App's routes: compiled once into a [`UrnIndex`], cached per App, and
//! used while the App's route version ([`WebhookStore::routes_version`]) stays the same. An
//! event then costs one version read and a trie lookup, not a read of every webhook of its
//! App.
//!
//! Freshness: a lookup names the instant its events were known to be accepted
//! (`fresh_after`, the start of their batch), and a cached App is used only if its version
//! was checked after that instant. Every webhook write finished before an event was accepted
//! has moved the version by then, so an event never misses a webhook created, changed or
//! deleted before it was published. Events of one batch share one check per App.
//!
//! A store that counts its webhook writes ([`WebhookStore::change_counter`], the embedded
//! one) spares even that read: while the count is what it was when a check started, no
//! webhook write has finished since, and the cached routes are current.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::event::Event;
use hookline_core::operational::about_webhook;
use hookline_core::ports::{PortError, WebhookStore};
use hookline_core::urn::UrnIndex;
use hookline_core::webhook::Route;

/// Longest a cached App's routes are used without reading them again, whatever their
/// version says: the bound on staleness if a version write was lost (DynamoDB moves the
/// version after the webhook's transaction; a failure there is logged).
pub const ROUTE_CACHE_MAX_AGE: Duration = Duration::from_secs(60);

/// Apps kept at once; past this, the cache is emptied of Apps not being looked up.
pub const ROUTE_CACHE_APPS: usize = 4096;

/// An App's routes, compiled for matching.
#[derive(Debug)]
pub struct AppRoutes {
    version: u64,
    routes: Vec<Route>,
    index: UrnIndex<usize>,
}

impl AppRoutes {
    /// Compiles `routes` (the route items of one App, at `version`).
    pub fn new(version: u64, routes: Vec<Route>) -> Self {
        let index = routes
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.patterns.iter().map(move |p| (p.clone(), i)))
            .collect();
        Self {
            version,
            routes,
            index,
        }
    }

    /// The route version these were read at.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many route items the App has.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the App has no route items.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes an event goes to: enabled (and not suspended), wanting its type, with a
    /// pattern matching its URN, its payload filter (if any) matching the event, and not the
    /// webhook an operational event is about; one per webhook, by webhook id. Filters are
    /// evaluated last, only for routes that passed the rest. Costs what the URN index finds,
    /// not what the App holds.
    pub fn matches(&self, event: &Event) -> Vec<&Route> {
        let about = about_webhook(event);
        let mut matched: Vec<&Route> = self
            .index
            .matches(&event.urn)
            .into_iter()
            .map(|i| &self.routes[*i])
            .filter(|r| r.enabled && r.event_types.iter().any(|f| f.matches(&event.event_type)))
            .filter(|r| about != Some(r.webhook_id.as_str()))
            .collect();
        matched.sort_by(|a, b| a.webhook_id.cmp(&b.webhook_id));
        matched.dedup_by(|a, b| a.webhook_id == b.webhook_id);
        matched.retain(|r| r.filter.as_ref().is_none_or(|f| f.matches(event)));
        matched
    }
}

/// One App's cache entry: lookups of one App take turns, so concurrent events share a check.
#[derive(Default)]
struct Slot {
    current: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    routes: Arc<AppRoutes>,
    /// When the last version check that found these current started.
    checked: Instant,
    /// When these were read.
    loaded: Instant,
    /// The store's write count read before that check, when it keeps one.
    writes: Option<u64>,
}

/// Compiled routes per App, over the webhook store.
pub struct RouteCache {
    store: Arc<dyn WebhookStore>,
    writes: Option<Arc<std::sync::atomic::AtomicU64>>,
    apps: std::sync::Mutex<HashMap<String, Arc<Slot>>>,
    max_age: Duration,
}

impl std::fmt::Debug for RouteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCache")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl RouteCache {
    /// An empty cache over `store`; an App's routes are read again after `max_age` at the
    /// latest.
    pub fn new(store: Arc<dyn WebhookStore>, max_age: Duration) -> Self {
        Self {
            writes: store.change_counter(),
            store,
            apps: std::sync::Mutex::default(),
            max_age,
        }
    }

    fn slot(&self, app_id: &str) -> Arc<Slot> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = apps.get(app_id) {
            return slot.clone();
        }
        if apps.len() >= ROUTE_CACHE_APPS {
            apps.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        apps.entry(app_id.to_owned()).or_default().clone()
    }

    /// The App's routes as of a version check started no earlier than `fresh_after`: from
    /// the cache when the version has not moved, else read and compiled again.
    pub async fn routes(
        &self,
        app_id: &str,
        fresh_after: Instant,
    ) -> Result<Arc<AppRoutes>, PortError> {
        let slot = self.slot(app_id);
        let mut current = slot.current.lock().await;
        let writes = self
            .writes
            .as_ref()
            .map(|w| w.load(std::sync::atomic::Ordering::Acquire));
        if let Some(cached) = current.as_ref() {
            let unwritten = writes.is_some() && cached.writes == writes;
            if (unwritten || cached.checked >= fresh_after)
                && cached.loaded.elapsed() < self.max_age
            {
                return Ok(cached.routes.clone());
            }
        }
        let started = Instant::now();
        // The version first: routes read after it are at least that new.
        let version = self.store.routes_version(app_id).await?;
        if let Some(cached) = current.as_mut() {
            if cached.routes.version == version
                && started.saturating_duration_since(cached.loaded) < self.max_age
            {
                cached.checked = started;
                cached.writes = writes;
                return Ok(cached.routes.clone());
            }
        }
        let routes = Arc::new(AppRoutes::new(
            version,
            self.store.routes_for_app(app_id).await?,
        ));
        tracing::debug!(
            app_id,
            version,
            routes = routes.len(),
            "routes of the App read"
        );
        *current = Some(Cached {
            routes: routes.clone(),
            checked: started,
            loaded: started,
            writes,
        });
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hookline_core::adapters::sqlite::Database;
    use hookline_core::event::IntakeRules;
    use hookline_core::event_type::Catalog;
    use hookline_core::ports::{Cursor, Page};
    use hookline_core::signing::Secret;
    use hookline_core::urn::Namespace;
    use hookline_core::webhook::FailureRun;
    use hookline_core::webhook::{NewWebhook, Webhook, WebhookId, WebhookRules};
    use time::OffsetDateTime;

    use super::*;

    /// The SQLite store, counting the reads the cache makes.
    struct Counting {
        db: Database,
        versions: AtomicUsize,
        reads: AtomicUsize,
        /// Hand out the embedded store's write count (as `hookline serve`'s store does).
        counted: bool,
    }

    #[async_trait::async_trait]
    impl WebhookStore for Counting {
        fn change_counter(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
            self.counted.then(|| self.db.change_counter()).flatten()
        }
        async fn create(&self, webhook: &Webhook) -> Result<(), PortError> {
            self.db.create(webhook).await
        }
        async fn get(&self, id: &WebhookId) -> Result<Option<Webhook>, PortError> {
            self.db.get(id).await
        }
        async fn update(&self, webhook: &Webhook, expected: u64) -> Result<(), PortError> {
            self.db.update(webhook, expected).await
        }
        async fn delete(&self, id: &WebhookId, expected: u64) -> Result<(), PortError> {
            self.db.delete(id, expected).await
        }
        async fn list_for_app(
            &self,
            app_id: &str,
            cursor: Option<&Cursor>,
            limit: usize,
        ) -> Result<Page<Webhook>, PortError> {
            self.db.list_for_app(app_id, cursor, limit).await
        }
        async fn routes_for_app(&self, app_id: &str) -> Result<Vec<Route>, PortError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.db.routes_for_app(app_id).await
        }
        async fn ids(&self) -> Result<Vec<WebhookId>, PortError> {
            self.db.ids().await
        }
        async fn app_ids(&self) -> Result<Vec<String>, PortError> {
            self.db.app_ids().await
        }
        async fn forget_app(&self, app_id: &str) -> Result<(), PortError> {
            self.db.forget_app(app_id).await
        }
        async fn routes_version(&self, app_id: &str) -> Result<u64, PortError> {
            self.versions.fetch_add(1, Ordering::SeqCst);
            self.db.routes_version(app_id).await
        }
        async fn record_failure(
            &self,
            id: &WebhookId,
            at: OffsetDateTime,
            error: &str,
        ) -> Result<Option<FailureRun>, PortError> {
            self.db.record_failure(id, at, error).await
        }
        async fn clear_failures(&self, id: &WebhookId) -> Result<(), PortError> {
            self.db.clear_failures(id).await
        }
    }

    fn webhook(urns: &[&str]) -> Webhook {
        let ns = Namespace::default();
        let rules = WebhookRules {
            namespace: &ns,
            catalog: Catalog::builtin(),
            allow_http: false,
            targets: hookline_core::target::TargetPolicy::PUBLIC_ONLY,
            ordered: true,
            destinations: None,
        };
        let spec = NewWebhook {
            name: "crm".into(),
            url: "https://crm.example.com/hook".into(),
            event_types: vec!["ticket.*".into()],
            urns: Some(urns.iter().map(|u| (*u).to_owned()).collect()),
            ..Default::default()
        }
        .validate(&rules, None)
        .expect("valid");
        let mut webhook = Webhook::new(
            spec,
            &Secret::generate().expect("rng"),
            "owner",
            OffsetDateTime::now_utc(),
        );
        webhook
            .seal(&hookline_core::sealed::Keyring::generate().expect("rng"))
            .expect("seals");
        webhook
    }

    fn event(urn: &str) -> Event {
        let body = format!(r#"{{"type":"ticket.created","urn":"{urn}","data":{{}}}}"#);
        let rules = IntakeRules {
            namespace: &Namespace::default(),
            catalog: Catalog::builtin(),
        };
        Event::from_intake(body.as_bytes(), rules, OffsetDateTime::now_utc()).expect("event")
    }

    fn store() -> Arc<Counting> {
        store_counted(false)
    }

    fn store_counted(counted: bool) -> Arc<Counting> {
        let dir = std::env::temp_dir().join(format!("hookline-routes-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("dir");
        Arc::new(Counting {
            db: Database::open(&dir.join("routes.db")).expect("db"),
            versions: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            counted,
        })
    }

    fn counts(s: &Counting) -> (usize, usize) {
        (
            s.versions.load(Ordering::SeqCst),
            s.reads.load(Ordering::SeqCst),
        )
    }

    #[tokio::test]
    async fn an_app_is_read_again_only_when_a_webhook_naming_it_changed() {
        let s = store();
        let cache = RouteCache::new(s.clone(), ROUTE_CACHE_MAX_AGE);
        let a = webhook(&["urn:allthings:app:A1:ticket:*"]);
        s.create(&a).await.expect("create");
        let ev = event("urn:allthings:app:A1:ticket:C:T1");

        let first = cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(first.matches(&ev).len(), 1);
        assert_eq!(counts(&s), (1, 1));
        // Unchanged: one version read per lookup, no route read.
        let again = cache.routes("A1", Instant::now()).await.expect("routes");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(counts(&s), (2, 1));
        // A check already made after the batch started serves the rest of it.
        let batch = Instant::now();
        cache.routes("A1", batch).await.expect("routes");
        cache.routes("A1", batch).await.expect("routes");
        assert_eq!(counts(&s), (3, 1));

        // A webhook of another App does not move A1.
        s.create(&webhook(&["urn:allthings:app:B1:*"]))
            .await
            .expect("create");
        cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(counts(&s), (4, 1));

        // Created, updated, deleted in A1: each is seen by the next lookup.
        let b = webhook(&["urn:allthings:app:A1:*"]);
        s.create(&b).await.expect("create");
        let two = cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(two.matches(&ev).len(), 2);
        assert_eq!(counts(&s), (5, 2));

        let mut moved = b.clone();
        moved.spec.urns = webhook(&["urn:allthings:app:B1:*"]).spec.urns;
        moved.version += 1;
        s.update(&moved, b.version).await.expect("update");
        let one = cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(one.matches(&ev).len(), 1, "b left A1");

        s.delete(&a.id, a.version).await.expect("delete");
        let none = cache.routes("A1", Instant::now()).await.expect("routes");
        assert!(none.matches(&ev).is_empty(), "a is gone");
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_store_counting_its_writes_is_asked_again_only_after_one() {
        let s = store_counted(true);
        let cache = RouteCache::new(s.clone(), ROUTE_CACHE_MAX_AGE);
        let a = webhook(&["urn:allthings:app:A1:ticket:*"]);
        s.create(&a).await.expect("create");
        let ev = event("urn:allthings:app:A1:ticket:C:T1");
        // How many of A1's routes the event matches, as the cache answers now.
        let matched = || async {
            let routes = cache.routes("A1", Instant::now()).await.expect("routes");
            routes.matches(&ev).len()
        };
        assert_eq!(matched().await, 1);
        assert_eq!(counts(&s), (1, 1));
        // No write since: later lookups read nothing, not even the version.
        for _ in 0..3 {
            cache.routes("A1", Instant::now()).await.expect("routes");
        }
        assert_eq!(counts(&s), (1, 1));
        // Any webhook write (another App's too) costs the next lookup a version read...
        s.create(&webhook(&["urn:allthings:app:B1:*"]))
            .await
            .expect("create");
        cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(counts(&s), (2, 1));
        cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(counts(&s), (2, 1));
        // ...and one to A1 its routes, seen by the very next lookup.
        s.create(&webhook(&["urn:allthings:app:A1:*"]))
            .await
            .expect("create");
        assert_eq!(matched().await, 2);
        assert_eq!(counts(&s), (3, 2));
        s.delete(&a.id, a.version).await.expect("delete");
        assert_eq!(matched().await, 1);
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_batch_share_one_check() {
        let s = store();
        let cache = RouteCache::new(s.clone(), ROUTE_CACHE_MAX_AGE);
        s.create(&webhook(&["urn:allthings:app:A1:*"]))
            .await
            .expect("create");
        let batch = Instant::now();
        let lookups = (0..10).map(|_| cache.routes("A1", batch));
        for routes in futures_util::future::join_all(lookups).await {
            assert_eq!(routes.expect("routes").len(), 1);
        }
        assert_eq!(counts(&s), (1, 1));
    }

    #[tokio::test]
    async fn past_its_maximum_age_an_app_is_read_again_whatever_its_version() {
        let s = store();
        let cache = RouteCache::new(s.clone(), Duration::ZERO);
        s.create(&webhook(&["urn:allthings:app:A1:*"]))
            .await
            .expect("create");
        cache.routes("A1", Instant::now()).await.expect("routes");
        cache.routes("A1", Instant::now()).await.expect("routes");
        assert_eq!(counts(&s), (2, 2));
    }
}
