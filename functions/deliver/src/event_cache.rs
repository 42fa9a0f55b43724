//! Events read from the event log, kept per deliverer: an event fanned out to W webhooks is
//! read once, not W times. Events are immutable once logged, so a copy never goes stale;
//! the cache only bounds how many it keeps (the most recently read).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use hookline_core::event::{Event, EventId};
use hookline_core::ports::PortError;
use tokio::sync::OnceCell;

/// Events kept by default: W deliveries of one event arrive close together, so a few
/// hundred batches' worth is plenty (at 1 KiB bodies, about 2 MiB).
pub const EVENT_CACHE_ENTRIES: usize = 1_024;

type Slot = Arc<OnceCell<Arc<Event>>>;

/// Recently read events by id.
#[derive(Debug)]
pub struct EventCache {
    capacity: usize,
    slots: Mutex<(HashMap<EventId, Slot>, VecDeque<EventId>)>,
}

impl EventCache {
    /// A cache of up to `capacity` events (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            slots: Mutex::default(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, (HashMap<EventId, Slot>, VecDeque<EventId>)> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, id: &EventId) -> Slot {
        let mut guard = self.slots();
        let (slots, order) = &mut *guard;
        if let Some(slot) = slots.get(id) {
            return slot.clone();
        }
        while order.len() >= self.capacity {
            match order.pop_front() {
                Some(old) => {
                    slots.remove(&old);
                }
                None => break,
            }
        }
        let slot = Slot::default();
        slots.insert(id.clone(), slot.clone());
        order.push_back(id.clone());
        slot
    }

    /// The event `id`, from the cache or by `read` (concurrent callers for one id share one
    /// read). `Ok(None)`, when the log has no such event, is not kept.
    pub async fn get_or_read<F, Fut>(
        &self,
        id: &EventId,
        read: F,
    ) -> Result<Option<Arc<Event>>, PortError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Event>, PortError>>,
    {
        if self.capacity == 0 {
            return Ok(read().await?.map(Arc::new));
        }
        let slot = self.slot(id);
        let found = slot
            .get_or_try_init(|| async {
                match read().await {
                    Ok(Some(event)) => Ok(Arc::new(event)),
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            })
            .await;
        match found {
            Ok(event) => Ok(Some(event.clone())),
            Err(None) => {
                self.forget(id);
                Ok(None)
            }
            Err(Some(e)) => {
                self.forget(id);
                Err(e)
            }
        }
    }

    fn forget(&self, id: &EventId) {
        let mut guard = self.slots();
        let (slots, order) = &mut *guard;
        if slots.get(id).is_some_and(|s| !s.initialized()) {
            slots.remove(id);
            order.retain(|o| o != id);
        }
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.slots().0.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn event(n: u32) -> Event {
        let body = serde_json::json!({
            "id": format!("evt_{n}"),
            "type": "ticket.created",
            "urn": "urn:allthings:app:A1:ticket:CAT7:T1",
            "data": {}
        });
        Event::from_intake(
            body.to_string().as_bytes(),
            hookline_core::event::IntakeRules {
                namespace: &hookline_core::urn::Namespace::default(),
                catalog: hookline_core::event_type::Catalog::builtin(),
            },
            time::OffsetDateTime::now_utc(),
        )
        .expect("event")
    }

    #[tokio::test]
    async fn concurrent_deliveries_of_one_event_share_one_read() {
        let cache = EventCache::new(8);
        let reads = AtomicUsize::new(0);
        let e = event(1);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(Some(e.clone()))
        };
        let all =
            futures_util::future::join_all((0..10).map(|_| cache.get_or_read(&e.id, read))).await;
        assert!(all
            .iter()
            .all(|r| matches!(r, Ok(Some(got)) if got.id == e.id)));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn missing_events_and_failed_reads_are_not_kept() {
        let cache = EventCache::new(8);
        let e = event(2);
        let none = cache.get_or_read(&e.id, || async { Ok(None) }).await;
        assert!(matches!(none, Ok(None)));
        let failed = cache
            .get_or_read(&e.id, || async { Err(PortError::Corrupt("x".into())) })
            .await;
        assert!(failed.is_err());
        assert!(cache.is_empty());
        let found = cache
            .get_or_read(&e.id, || async { Ok(Some(e.clone())) })
            .await;
        assert!(matches!(found, Ok(Some(_))));
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn the_oldest_go_first_past_the_capacity() {
        let cache = EventCache::new(2);
        let (a, b, c) = (event(3), event(4), event(5));
        for e in [&a, &b, &c] {
            cache
                .get_or_read(&e.id, || async { Ok(Some(e.clone())) })
                .await
                .expect("read");
        }
        assert_eq!(cache.len(), 2);
        let reads = AtomicUsize::new(0);
        cache
            .get_or_read(&a.id, || async {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok(Some(a.clone()))
            })
            .await
            .expect("read");
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "a was evicted and read again"
        );
    }
}
