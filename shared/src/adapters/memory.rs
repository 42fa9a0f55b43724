//! In-memory adapters: the embedded rate limiter.

use std::time::Duration;

use time::OffsetDateTime;

use crate::ports::{PortError, RateLimiter};
use crate::rules::{reserve_slot, RateLimit};
use crate::webhook::WebhookId;

/// The embedded rate limiter: every webhook's next free slot, in memory (one process is
/// the only sender, so the limit is exact). Slots idle for a minute are forgotten.
#[derive(Default)]
pub struct MemoryRateLimiter {
    next: std::sync::Mutex<std::collections::HashMap<WebhookId, OffsetDateTime>>,
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn reserve(
        &self,
        webhook: &WebhookId,
        limit: RateLimit,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, PortError> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if next.len() > 10_000 {
            next.retain(|_, t| *t + Duration::from_secs(60) > now);
        }
        let (slot, after) = reserve_slot(next.get(webhook).copied(), now, limit);
        next.insert(webhook.clone(), after);
        Ok(slot)
    }

    async fn forget(&self, webhook: &WebhookId) -> Result<(), PortError> {
        self.next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(webhook);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_spaced_one_interval_apart_and_never_in_the_past() {
        let limiter = MemoryRateLimiter::default();
        let wh = WebhookId::generate();
        let limit = RateLimit { per_second: 5 };
        let t0 = OffsetDateTime::now_utc();
        let mut slots = Vec::new();
        for _ in 0..4 {
            slots.push(limiter.reserve(&wh, limit, t0).await.expect("slot"));
        }
        let gaps: Vec<i128> = slots
            .windows(2)
            .map(|w| (w[1] - w[0]).whole_milliseconds())
            .collect();
        assert_eq!(slots[0], t0);
        assert_eq!(gaps, [200, 200, 200]);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            limiter.reserve(&wh, limit, later).await.expect("slot"),
            later
        );
    }
}
