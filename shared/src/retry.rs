//! Retry policy: which delivery outcomes are retried, and when.
//!
//! SQS counts receives, so the decision is a function of the outcome and the message's
//! `ApproximateReceiveCount`. Attempt *n* is receive *n*; after a retryable failure of attempt
//! *n* ≤ `max_retries` the message becomes visible again after `schedule[n-1]` ± jitter.
//! Redrive moves it to the DLQ once it has been received [`RetryPolicy::max_receive_count`]
//! times.

use std::time::Duration;

use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// Longest visibility timeout SQS accepts (12 h).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// What one delivery attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered with this status; `retry_after` is its parsed `Retry-After`.
    Status {
        /// HTTP status code.
        code: u16,
        /// Parsed `Retry-After` header, if any.
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout.
    Timeout,
    /// TCP connect failed or the connection was reset.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The target guard refused the resolved address (never retried: it is a policy verdict).
    Blocked,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 2xx: acknowledged, delete the message.
    Delivered,
    /// Retryable failure: make the message visible again after this delay.
    RetryAfter(Duration),
    /// Retryable failure on the last allowed attempt: leave it for redrive to the DLQ.
    Exhausted,
    /// Not retryable (3xx, 4xx other than 429, blocked target): final, delete.
    Failed,
    /// 410 Gone: final, and the webhook is disabled (Standard Webhooks' advice).
    Gone,
}

/// Retry schedule and caps of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after attempt 1, 2, ...; its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// Each delay is multiplied by a factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
    /// Largest `Retry-After` honoured.
    pub retry_after_cap: Duration,
    /// Largest delay of any kind (SQS caps visibility at 12 h).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 30 s, 2 min, 8 min, 32 min, 2 h with ±20% jitter; `Retry-After` honoured up to 1 h.
    fn default() -> Self {
        Self {
            schedule: [30, 120, 480, 1920, 7200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
            retry_after_cap: Duration::from_secs(60 * 60),
            max_delay: MAX_VISIBILITY,
        }
    }
}

impl RetryPolicy {
    /// How many times a failed delivery is retried (5 by default).
    pub fn max_retries(&self) -> u32 {
        u32::try_from(self.schedule.len()).unwrap_or(u32::MAX)
    }

    /// The queue's redrive `maxReceiveCount`: the first attempt plus every retry (6 by default).
    pub fn max_receive_count(&self) -> u32 {
        self.max_retries().saturating_add(1)
    }

    /// Decides after attempt `receive_count` (1-based); `jitter_sample` is uniform in `[0, 1)`
    /// and supplied by the caller so this stays pure.
    pub fn decide(
        &self,
        outcome: AttemptOutcome,
        receive_count: u32,
        jitter_sample: f64,
    ) -> Decision {
        let retry_after = match outcome {
            AttemptOutcome::Status {
                code: 200..=299, ..
            } => return Decision::Delivered,
            AttemptOutcome::Status { code: 410, .. } => return Decision::Gone,
            AttemptOutcome::Status {
                code: 429,
                retry_after,
            } => retry_after,
            AttemptOutcome::Status {
                code: 500..=599,
                retry_after,
            } => retry_after,
            AttemptOutcome::Status { .. } | AttemptOutcome::Blocked => return Decision::Failed,
            AttemptOutcome::Timeout | AttemptOutcome::Connect | AttemptOutcome::Tls => None,
        };
        if receive_count > self.max_retries() {
            return Decision::Exhausted;
        }
        Decision::RetryAfter(self.delay(receive_count, retry_after, jitter_sample))
    }

    /// The delay after failed attempt `attempt` (1-based): `Retry-After` (capped) when the
    /// endpoint gave one, else the schedule's step with jitter; never above `max_delay`.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter_sample: f64,
    ) -> Duration {
        let delay = match retry_after {
            Some(asked) => asked.min(self.retry_after_cap),
            None => {
                let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
                let base = self
                    .schedule
                    .get(index)
                    .or(self.schedule.last())
                    .copied()
                    .unwrap_or_default();
                let sample = jitter_sample.clamp(0.0, 1.0);
                let factor = 1.0 - self.jitter + 2.0 * self.jitter * sample;
                base.mul_f64(factor.max(0.0))
            }
        };
        delay.min(self.max_delay)
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date relative to `now`
/// (a date in the past means "now"). Unparseable values give `None`.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let secs = (when - now).whole_seconds().max(0);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn status(code: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            code,
            retry_after: None,
        }
    }
    const MID: f64 = 0.5; // jitter factor exactly 1.0

    #[test]
    fn outcomes_are_classified() {
        let p = RetryPolicy::default();
        let secs = |s| Decision::RetryAfter(Duration::from_secs(s));
        let table: &[(AttemptOutcome, Decision)] = &[
            (status(200), Decision::Delivered),
            (status(204), Decision::Delivered),
            (status(299), Decision::Delivered),
            (status(301), Decision::Failed),
            (status(302), Decision::Failed),
            (status(400), Decision::Failed),
            (status(401), Decision::Failed),
            (status(404), Decision::Failed),
            (status(413), Decision::Failed),
            (status(410), Decision::Gone),
            (status(408), Decision::Failed),
            (status(429), secs(30)),
            (status(500), secs(30)),
            (status(502), secs(30)),
            (status(503), secs(30)),
            (status(599), secs(30)),
            (status(100), Decision::Failed),
            (AttemptOutcome::Timeout, secs(30)),
            (AttemptOutcome::Connect, secs(30)),
            (AttemptOutcome::Tls, secs(30)),
            (AttemptOutcome::Blocked, Decision::Failed),
        ];
        for (outcome, expected) in table {
            assert_eq!(p.decide(*outcome, 1, MID), *expected, "{outcome:?}");
        }
    }

    #[test]
    fn five_hundreds_follow_the_schedule_then_exhaust_after_five_retries() {
        let p = RetryPolicy::default();
        let expected = [30, 120, 480, 1920, 7200];
        for (i, secs) in expected.iter().enumerate() {
            let attempt = u32::try_from(i + 1).expect("small");
            assert_eq!(
                p.decide(status(500), attempt, MID),
                Decision::RetryAfter(Duration::from_secs(*secs))
            );
        }
        assert_eq!(p.decide(status(500), 6, MID), Decision::Exhausted);
        assert_eq!(p.decide(status(200), 6, MID), Decision::Delivered);
        assert_eq!(p.max_retries(), 5);
        assert_eq!(p.max_receive_count(), 6);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 0.0), Duration::from_secs(24));
        assert_eq!(p.delay(1, None, 1.0), Duration::from_secs(36));
        for i in 0..100 {
            let d = p.delay(3, None, f64::from(i) / 100.0);
            assert!(
                d >= Duration::from_secs(384) && d <= Duration::from_secs(576),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        let asked = |s| AttemptOutcome::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            p.decide(asked(5), 1, MID),
            Decision::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            p.decide(asked(999_999), 1, MID),
            Decision::RetryAfter(Duration::from_secs(3600))
        );
        assert_eq!(p.decide(asked(5), 6, MID), Decision::Exhausted);
        let unavailable = AttemptOutcome::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(90)),
        };
        assert_eq!(
            p.decide(unavailable, 2, MID),
            Decision::RetryAfter(Duration::from_secs(90))
        );
    }

    #[test]
    fn delays_never_pass_the_sqs_visibility_cap() {
        let p = RetryPolicy {
            schedule: vec![Duration::from_secs(24 * 3600)],
            retry_after_cap: Duration::from_secs(48 * 3600),
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1, None, 1.0), MAX_VISIBILITY);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(40 * 3600)), MID),
            MAX_VISIBILITY
        );
    }

    #[test]
    fn retry_after_header_forms() {
        let now = datetime!(2015-10-21 07:28:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
