//! Webhook documents cached per deliverer (one Lambda container), so a busy webhook costs a
//! store read per TTL instead of one per delivery.
//!
//! A delivery message names the webhook version it was fanned out for; a cached copy is used
//! only if it is at least that new and younger than the TTL. A change made before an event
//! was fanned out therefore always shows (its version is newer than the cached copy). One
//! made after (a disable, a delete, a rotated secret) shows in deliveries already queued
//! within the TTL: that is the documented bound on how long a deleted or disabled webhook
//! can still receive deliveries fanned out before the change.
//!
//! Where the store counts its own webhook writes (the embedded store: one process writes
//! them all), the cache is coherent instead: a copy serves only while no webhook write
//! has completed since it was read, whatever its age. Nothing is ever served stale there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookline_core::webhook::FailureRun;
use hookline_core::webhook::{Webhook, WebhookId};

/// Most webhooks kept; past this, expired copies are dropped, then all.
pub const WEBHOOK_CACHE_ENTRIES: usize = 10_000;

/// A cached webhook: the document, when it was read, and the store's write count before.
type Cached = (Arc<Webhook>, Instant, u64);

/// Webhook documents by id, each with when it was read.
#[derive(Debug)]
pub struct WebhookCache {
    ttl: Duration,
    /// The store's count of webhook writes, if it keeps one (coherent mode).
    changes: Option<Arc<AtomicU64>>,
    /// Each copy with when it was read and the write count before that read.
    entries: Mutex<HashMap<WebhookId, Cached>>,
    /// Reads in progress, one per webhook: concurrent deliveries of one webhook wait for the
    /// first one's read instead of each reading.
    reads: Mutex<HashMap<WebhookId, Arc<tokio::sync::Mutex<()>>>>,
}

impl WebhookCache {
    /// A cache whose copies serve for `ttl` (zero: nothing is cached).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            changes: None,
            entries: Mutex::default(),
            reads: Mutex::default(),
        }
    }

    /// Coherent with a store that moves `changes` after every webhook write it commits:
    /// a copy serves until the next write, and the TTL no longer applies.
    pub fn with_changes(mut self, changes: Arc<AtomicU64>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// Whether copies are kept at all.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() || self.changes.is_some()
    }

    /// The store's webhook write count now (0 without one): take it before a read, and
    /// hand it to [`Self::put_read`] with what was read.
    pub fn generation(&self) -> u64 {
        self.changes
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Acquire))
    }

    /// The turn to read `id`: hold it while reading, then look in the cache again.
    pub fn read_turn(&self, id: &WebhookId) -> Arc<tokio::sync::Mutex<()>> {
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        if reads.len() > WEBHOOK_CACHE_ENTRIES {
            reads.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        reads.entry(id.clone()).or_default().clone()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached copy of `id`, if it is at least `min_version` and younger than the TTL.
    /// Without a version to check against, nothing is served from the cache.
    /// In coherent mode, the copy of `id` if no webhook write completed since it was read.
    pub fn get(&self, id: &WebhookId, min_version: Option<u64>) -> Option<Arc<Webhook>> {
        let entries = self.entries();
        let (webhook, read_at, generation) = entries.get(id)?;
        if self.changes.is_some() {
            return (*generation == self.generation()).then(|| webhook.clone());
        }
        let min_version = min_version?;
        (webhook.version >= min_version && read_at.elapsed() < self.ttl).then(|| webhook.clone())
    }

    /// Keeps `webhook`, just read from the store.
    pub fn put(&self, webhook: Arc<Webhook>) {
        self.put_read(webhook, self.generation());
    }

    /// Keeps `webhook`, read from the store after the write count was `generation`.
    pub fn put_read(&self, webhook: Arc<Webhook>, generation: u64) {
        if !self.enabled() {
            return;
        }
        let now = self.generation();
        let mut entries = self.entries();
        if entries.len() >= WEBHOOK_CACHE_ENTRIES {
            let (ttl, coherent) = (self.ttl, self.changes.is_some());
            entries.retain(|_, (_, read_at, g)| {
                if coherent {
                    *g == now
                } else {
                    read_at.elapsed() < ttl
                }
            });
            if entries.len() >= WEBHOOK_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(webhook.id.clone(), (webhook, Instant::now(), generation));
    }

    /// Forgets `id` (this deliverer changed it).
    pub fn forget(&self, id: &WebhookId) {
        self.entries().remove(id);
    }

    /// Records in the cached copy of `id` the failure run this deliverer just wrote, so its
    /// next 2xx ends the run without waiting for the TTL.
    pub fn set_failures(&self, id: &WebhookId, run: Option<FailureRun>) {
        if let Some((webhook, _, _)) = self.entries().get_mut(id) {
            Arc::make_mut(webhook).state.failures = run;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::event_type::Catalog;
    use hookline_core::signing::Secret;
    use hookline_core::urn::Namespace;
    use hookline_core::webhook::{NewWebhook, WebhookRules};
    use time::OffsetDateTime;

    fn webhook() -> Webhook {
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
            urns: Some(vec!["urn:allthings:app:A1:*".into()]),
            ..Default::default()
        }
        .validate(&rules, None)
        .expect("valid");
        Webhook::new(
            spec,
            &Secret::generate().expect("rng"),
            "owner",
            OffsetDateTime::now_utc(),
        )
    }

    #[test]
    fn a_coherent_copy_serves_until_the_next_webhook_write() {
        let changes = Arc::new(AtomicU64::new(7));
        let cache = WebhookCache::new(Duration::ZERO).with_changes(changes.clone());
        assert!(cache.enabled());
        let w = webhook();
        let before = cache.generation();
        cache.put_read(Arc::new(w.clone()), before);
        // Any version, any age: no write completed since the read.
        assert!(cache.get(&w.id, None).is_some());
        assert!(cache.get(&w.id, Some(w.version + 5)).is_some());
        changes.fetch_add(1, Ordering::Release);
        assert!(cache.get(&w.id, Some(w.version)).is_none());
        // A read that began before a write finished is never served.
        let w2 = webhook();
        cache.put_read(Arc::new(w2.clone()), before);
        assert!(cache.get(&w2.id, None).is_none());
    }

    #[test]
    fn a_copy_serves_messages_of_its_version_or_older_within_the_ttl() {
        let cache = WebhookCache::new(Duration::from_secs(60));
        let w = webhook();
        let v = w.version;
        cache.put(Arc::new(w.clone()));
        assert!(cache.get(&w.id, Some(v)).is_some());
        assert!(cache.get(&w.id, Some(v - 1)).is_some());
        assert!(
            cache.get(&w.id, Some(v + 1)).is_none(),
            "fanned out after a change"
        );
        assert!(cache.get(&w.id, None).is_none(), "no version to check");
        cache.forget(&w.id);
        assert!(cache.get(&w.id, Some(v)).is_none());
    }

    #[test]
    fn nothing_is_served_past_the_ttl_or_with_a_zero_ttl() {
        let w = webhook();
        let off = WebhookCache::new(Duration::ZERO);
        off.put(Arc::new(w.clone()));
        assert!(off.get(&w.id, Some(w.version)).is_none());
        let short = WebhookCache::new(Duration::from_millis(20));
        short.put(Arc::new(w.clone()));
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.get(&w.id, Some(w.version)).is_none());
    }

    #[test]
    fn a_failure_run_written_here_shows_in_the_copy() {
        let cache = WebhookCache::new(Duration::from_secs(60));
        let w = webhook();
        cache.put(Arc::new(w.clone()));
        let run = FailureRun {
            since: OffsetDateTime::now_utc(),
            failures: 1,
            last_error: Some("503".into()),
        };
        cache.set_failures(&w.id, Some(run.clone()));
        let got = cache.get(&w.id, Some(w.version)).expect("cached");
        assert_eq!(got.state.failures, Some(run));
        cache.set_failures(&w.id, None);
        let got = cache.get(&w.id, Some(w.version)).expect("cached");
        assert_eq!(got.state.failures, None);
    }
}
