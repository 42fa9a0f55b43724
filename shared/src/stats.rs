//! A webhook's health over a window, computed from its attempt log on read (no write per
//! delivery): how many attempts were sent, delivered and failed, the success rate, answer
//! latency percentiles, and hourly buckets for a chart. Pure: the caller reads the attempts.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::delivery::{Attempt, AttemptStatus};

/// The default window: the last 24 hours.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Most attempts a stats answer reads (the newest of the window); the answer says when it cut.
pub const MAX_ATTEMPTS: usize = 10_000;

/// One bucket's width.
pub const BUCKET: Duration = Duration::from_secs(60 * 60);

/// Percentiles of the answered attempts' latency, in milliseconds (`None`: no answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Latency {
    /// Median.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

/// One hour of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Its first instant (a whole hour, UTC; the first bucket starts at the window's start).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: OffsetDateTime,
    /// Attempts acknowledged with a 2xx.
    pub delivered: u64,
    /// Attempts that failed: final failures and failures that were retried.
    pub failed: u64,
    /// The 95th percentile of its answered attempts' latency (ms), if any answered.
    pub p95_latency_ms: Option<u64>,
}

/// A webhook's health over `[since, until)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookStats {
    /// The window's start.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: OffsetDateTime,
    /// The window's end (the time of the answer).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub until: OffsetDateTime,
    /// Attempts sent (`delivered` + `failed`; attempts delayed by a rate limit or skipped
    /// were not sent and are not counted).
    pub attempts: u64,
    /// Attempts acknowledged with a 2xx.
    pub delivered: u64,
    /// Attempts that failed: final failures (4xx, exhausted, gone) and retried failures.
    pub failed: u64,
    /// `delivered / attempts`, 0 to 1; `null` when nothing was sent.
    pub success_rate: Option<f64>,
    /// Latency of the attempts the endpoint answered.
    pub latency_ms: Latency,
    /// One per hour of the window, oldest first.
    pub buckets: Vec<Bucket>,
    /// True when the window held more than `attemptLimit` attempts: the numbers are those of
    /// the newest `attemptLimit`.
    pub truncated: bool,
    /// Most attempts one answer reads ([`MAX_ATTEMPTS`]).
    pub attempt_limit: u64,
}

/// Was an attempt sent, and did it succeed?
fn sent(status: AttemptStatus) -> Option<bool> {
    match status {
        AttemptStatus::Delivered => Some(true),
        AttemptStatus::Retrying
        | AttemptStatus::Failed
        | AttemptStatus::Exhausted
        | AttemptStatus::Gone => Some(false),
        AttemptStatus::Delayed | AttemptStatus::Skipped => None,
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted `values`.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn latency_of(mut answered: Vec<u64>) -> Latency {
    answered.sort_unstable();
    Latency {
        p50: percentile(&answered, 50),
        p95: percentile(&answered, 95),
        p99: percentile(&answered, 99),
    }
}

/// The start of the hour holding `at`.
fn hour_of(at: OffsetDateTime) -> OffsetDateTime {
    let secs = at.unix_timestamp();
    let hour = i64::try_from(BUCKET.as_secs()).unwrap_or(3600);
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(hour)).unwrap_or(at)
}

impl WebhookStats {
    /// The stats of `attempts` (any order) inside `[since, until)`; `truncated` when the
    /// reader stopped at [`MAX_ATTEMPTS`].
    pub fn compute(
        attempts: &[Attempt],
        since: OffsetDateTime,
        until: OffsetDateTime,
        truncated: bool,
    ) -> Self {
        let mut starts = Vec::new();
        let mut start = hour_of(since);
        while start < until {
            starts.push(start);
            start += BUCKET;
        }
        let mut per_bucket: Vec<(u64, u64, Vec<u64>)> = vec![(0, 0, Vec::new()); starts.len()];
        let (mut delivered, mut failed, mut answered) = (0u64, 0u64, Vec::new());
        for a in attempts.iter().filter(|a| a.at >= since && a.at < until) {
            let Some(ok) = sent(a.status) else { continue };
            let i = starts.partition_point(|s| *s <= a.at).saturating_sub(1);
            let bucket = per_bucket.get_mut(i);
            if ok {
                delivered += 1;
            } else {
                failed += 1;
            }
            if let Some((d, f, latencies)) = bucket {
                if ok {
                    *d += 1;
                } else {
                    *f += 1;
                }
                if a.response_status.is_some() {
                    latencies.push(a.latency_ms);
                }
            }
            if a.response_status.is_some() {
                answered.push(a.latency_ms);
            }
        }
        let buckets = starts
            .into_iter()
            .zip(per_bucket)
            .map(|(start, (delivered, failed, latencies))| Bucket {
                start: start.max(since),
                delivered,
                failed,
                p95_latency_ms: latency_of(latencies).p95,
            })
            .collect();
        let attempts = delivered + failed;
        #[allow(clippy::cast_precision_loss)] // counts far below 2^53
        let success_rate = (attempts > 0).then(|| delivered as f64 / attempts as f64);
        Self {
            since,
            until,
            attempts,
            delivered,
            failed,
            success_rate,
            latency_ms: latency_of(answered),
            buckets,
            truncated,
            attempt_limit: MAX_ATTEMPTS as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::DeliveryId;
    use crate::event::EventId;
    use crate::webhook::WebhookId;

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + minutes * 60).expect("time")
    }

    fn attempt(minutes: i64, status: AttemptStatus, code: Option<u16>, ms: u64) -> Attempt {
        let webhook = WebhookId::generate();
        let event = EventId::parse("evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1").expect("id");
        Attempt {
            attempt_id: ulid::Ulid::new().to_string(),
            delivery_id: DeliveryId::for_pair(&event, &webhook),
            webhook_id: webhook,
            event_id: event,
            app_id: None,
            event_type: None,
            attempt: 1,
            at: at(minutes),
            status,
            response_status: code,
            error: None,
            latency_ms: ms,
            response_excerpt: String::new(),
            next_retry_at: None,
            backfill: false,
        }
    }

    #[test]
    fn counts_rates_percentiles_and_hourly_buckets() {
        // 1_800_000_000 is 08:00 UTC: minute 0 starts an hour.
        let since = at(-30);
        let until = at(150);
        let attempts = vec![
            attempt(-40, AttemptStatus::Delivered, Some(200), 1), // before the window
            attempt(-10, AttemptStatus::Delivered, Some(200), 10),
            attempt(5, AttemptStatus::Delivered, Some(204), 20),
            attempt(6, AttemptStatus::Retrying, Some(503), 30),
            attempt(7, AttemptStatus::Retrying, None, 0), // timed out: no latency
            attempt(70, AttemptStatus::Exhausted, Some(500), 40),
            attempt(71, AttemptStatus::Failed, Some(404), 50),
            attempt(72, AttemptStatus::Delayed, None, 0), // not sent
            attempt(73, AttemptStatus::Skipped, None, 0), // not sent
            attempt(74, AttemptStatus::Gone, Some(410), 60),
            attempt(150, AttemptStatus::Delivered, Some(200), 1), // at `until`: outside
        ];
        let s = WebhookStats::compute(&attempts, since, until, false);
        assert_eq!((s.attempts, s.delivered, s.failed), (7, 2, 5));
        assert_eq!(s.success_rate, Some(2.0 / 7.0));
        assert_eq!(
            s.latency_ms,
            Latency {
                p50: Some(30),
                p95: Some(60),
                p99: Some(60)
            }
        );
        let hours: Vec<_> = s
            .buckets
            .iter()
            .map(|b| (b.delivered, b.failed, b.p95_latency_ms))
            .collect();
        assert_eq!(
            hours,
            vec![
                (1, 0, Some(10)),
                (1, 2, Some(30)),
                (0, 3, Some(60)),
                (0, 0, None)
            ]
        );
        assert_eq!(
            s.buckets[0].start, since,
            "the first bucket starts with the window"
        );
        assert_eq!(s.buckets[1].start, at(0));
        assert!(!s.truncated);
        assert_eq!(s.attempt_limit, MAX_ATTEMPTS as u64);
    }

    #[test]
    fn an_empty_window_has_no_rate_and_no_latency() {
        let s = WebhookStats::compute(&[], at(0), at(60), true);
        assert_eq!((s.attempts, s.success_rate), (0, None));
        assert_eq!(s.latency_ms, Latency::default());
        assert_eq!(s.buckets.len(), 1);
        assert!(s.truncated);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
