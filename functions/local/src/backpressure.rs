//! Intake's backpressure on the embedded runner: an event is taken only while the work
//! waiting for its first attempt is within bounds. A publisher faster than delivery waits
//! (up to [`BacklogLimits::max_wait`]) for room, then gets a 429 with `Retry-After`, instead
//! of filling a queue whose deliveries arrive seconds late.
//!
//! What is counted is work never received yet (a memory read of the queue's schedule):
//! deliveries waiting out a retry backoff for a failing endpoint do not hold back events for
//! everyone else.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hookline_api::admission::{Admission, Overloaded};
use hookline_core::adapters::sqlite::SqliteQueue;

/// How much unstarted work intake lets wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogLimits {
    /// Deliveries not yet attempted.
    pub deliveries: usize,
    /// Events not yet fanned out.
    pub events: usize,
    /// How long a POST waits for room before it is answered 429.
    pub max_wait: Duration,
}

/// [`BacklogLimits::deliveries`] by default: a quarter to half a second of delivery at the
/// pipeline's capacity on the reference machine (BENCHMARKS.md §1), so deliveries never wait
/// long behind others, yet the deliverers never run dry while publishers keep up.
pub const DEFAULT_MAX_DELIVERY_BACKLOG: usize = 1_000;

impl Default for BacklogLimits {
    fn default() -> Self {
        Self {
            deliveries: DEFAULT_MAX_DELIVERY_BACKLOG,
            events: DEFAULT_MAX_DELIVERY_BACKLOG / 8,
            max_wait: Duration::from_secs(1),
        }
    }
}

/// Most POSTs waiting for room at once; past it a POST is refused without waiting. Under an
/// open-ended overload, thousands of waiting requests (each woken by every receive) would
/// spend the CPU that delivery needs.
pub const MAX_WAITING: usize = 64;

/// The embedded queues' [`Admission`].
pub struct BacklogGate {
    events: SqliteQueue,
    deliveries: SqliteQueue,
    waiters: AtomicUsize,
    max_deliveries: AtomicUsize,
    max_events: AtomicUsize,
    max_wait_ms: AtomicU64,
}

impl BacklogGate {
    /// Bounds what waits in `events` and `deliveries` by `limits`.
    pub fn new(events: SqliteQueue, deliveries: SqliteQueue, limits: BacklogLimits) -> Self {
        let gate = Self {
            events,
            deliveries,
            waiters: AtomicUsize::new(0),
            max_deliveries: AtomicUsize::new(0),
            max_events: AtomicUsize::new(0),
            max_wait_ms: AtomicU64::new(0),
        };
        gate.set_limits(limits);
        gate
    }

    /// Changes the limits (`hookline serve --max-backlog`); a limit of 0 counts as 1.
    pub fn set_limits(&self, limits: BacklogLimits) {
        self.max_deliveries
            .store(limits.deliveries.max(1), Ordering::Relaxed);
        self.max_events
            .store(limits.events.max(1), Ordering::Relaxed);
        let wait = u64::try_from(limits.max_wait.as_millis()).unwrap_or(u64::MAX);
        self.max_wait_ms.store(wait, Ordering::Relaxed);
    }

    /// The limits in force.
    pub fn limits(&self) -> BacklogLimits {
        BacklogLimits {
            deliveries: self.max_deliveries.load(Ordering::Relaxed),
            events: self.max_events.load(Ordering::Relaxed),
            max_wait: Duration::from_millis(self.max_wait_ms.load(Ordering::Relaxed)),
        }
    }

    /// `(events, deliveries)` waiting for their first attempt.
    fn waiting(&self) -> (usize, usize) {
        (self.events.unreceived(), self.deliveries.unreceived())
    }

    fn has_room(&self, limits: &BacklogLimits) -> bool {
        let (events, deliveries) = self.waiting();
        events < limits.events && deliveries < limits.deliveries
    }
}

#[async_trait]
impl Admission for BacklogGate {
    async fn admit(&self) -> Result<(), Overloaded> {
        let limits = self.limits();
        if self.has_room(&limits) {
            return Ok(());
        }
        // A place among the waiters, given back however this ends.
        struct Place<'a>(&'a AtomicUsize);
        impl Drop for Place<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let max_wait = if self.waiters.fetch_add(1, Ordering::AcqRel) < MAX_WAITING {
            limits.max_wait
        } else {
            Duration::ZERO
        };
        let _place = Place(&self.waiters);
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Register for the wake-up before looking, so a take in between is not missed.
            let taken = self.deliveries.taken().notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            if self.has_room(&limits) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, taken).await.is_err() {
                let (events, deliveries) = self.waiting();
                return Err(Overloaded {
                    retry_after: Duration::from_secs(1),
                    detail: format!(
                        "intake is full: {deliveries} deliveries and {events} events wait for a first attempt \
                         (limits {} and {}); nothing was queued, send the event again after Retry-After",
                        limits.deliveries, limits.events
                    ),
                });
            }
        }
    }
}
