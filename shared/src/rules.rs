//! Per-webhook delivery rules: its own retry schedule, a rate limit, and ordered delivery.
//! Inputs as the API takes them, their checks (every failure with its path), and the
//! validated forms the deliverer and the fan-out use.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use time::OffsetDateTime;

use crate::retry::{RetryPolicy, MAX_VISIBILITY};
use crate::validation::FieldError;

/// Most attempts (the first and every retry) a webhook's retry policy may allow.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest a webhook's retry schedule may add up to.
pub const MAX_RETRY_TOTAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest step of a retry schedule.
pub const MIN_RETRY_STEP: Duration = Duration::from_secs(1);
/// Highest rate limit, in deliveries per second.
pub const MAX_PER_SECOND: u32 = 1000;

/// A count as JSON may write it: `3` or `3.0` (JSON Schema's `integer` takes both); a
/// fraction or a value beyond `u32` is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole.and_then(|w| u32::try_from(w).ok()).ok_or_else(|| {
        serde::de::Error::custom(format!("{n} is not a whole number from 0 to {}", u32::MAX))
    })
}

/// [`whole_number`], or `null`.
fn optional_whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u32);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// `retry` as sent: delays after each failed attempt, and how many attempts in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryInput {
    /// Delay after attempt 1, 2, …, as durations (`"30s"`, `"5m"`, `"1h"`); ±20% jitter.
    #[cfg_attr(feature = "openapi", schema(example = json!(["30s", "5m", "1h"])))]
    pub schedule: Vec<String>,
    /// Attempts in all, first included (≤ 10); the last step repeats when it exceeds the
    /// schedule. Default: one more than the schedule's steps.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_whole_number"
    )]
    pub max_attempts: Option<u32>,
}

/// `rateLimit` as sent and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimit {
    /// Most deliveries started per second (1–1000), spaced evenly: one every 1/N s.
    #[serde(deserialize_with = "whole_number")]
    pub per_second: u32,
}

/// A webhook's own retry schedule (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRetry {
    /// Delay after attempt 1, 2, …
    pub schedule: Vec<Duration>,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

/// Whether deliveries to a webhook keep the events' order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Ordering {
    /// Deliveries go out in parallel (the default and the fastest).
    #[default]
    None,
    /// One at a time per webhook: the next waits until the previous is acknowledged or
    /// finally failed.
    PerWebhook,
    /// One at a time per webhook and resource URN; different URNs go in parallel.
    PerUrn,
}

impl Ordering {
    /// The name as sent and stored (`none`, `per-webhook`, `per-urn`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::PerWebhook => "per-webhook",
            Self::PerUrn => "per-urn",
        }
    }

    /// Parses a name as sent.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::PerWebhook, Self::PerUrn]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// The ordering group of a delivery of `webhook_id` about `urn`: deliveries of one group
    /// go one at a time, in order; `None` for unordered webhooks. A group name stays within
    /// SQS's 128 characters (the URN is hashed).
    pub fn group(self, webhook_id: &str, urn: &str) -> Option<String> {
        match self {
            Self::None => None,
            Self::PerWebhook => Some(webhook_id.to_owned()),
            Self::PerUrn => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(urn.as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                Some(format!("{webhook_id}.{hex}"))
            }
        }
    }
}

/// Reads a PATCH field where `null` (remove) differs from absent (keep): absent is `None`,
/// `null` is `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn step_text(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

impl WebhookRetry {
    /// Checks a `retry` input; every failure is returned under `field` (`retry.schedule[1]`).
    pub fn parse(input: &RetryInput, field: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut schedule = Vec::with_capacity(input.schedule.len());
        if input.schedule.len() >= MAX_ATTEMPTS as usize {
            errors.push(FieldError::new(
                format!("{field}.schedule"),
                format!(
                    "has {} steps, at most {} are allowed ({MAX_ATTEMPTS} attempts)",
                    input.schedule.len(),
                    MAX_ATTEMPTS - 1
                ),
            ));
        }
        for (i, step) in input.schedule.iter().enumerate() {
            let path = format!("{field}.schedule[{i}]");
            match humantime::parse_duration(step.trim()) {
                Ok(d) if d < MIN_RETRY_STEP => errors.push(FieldError::new(
                    path,
                    format!("\"{step}\" is shorter than 1s"),
                )),
                Ok(d) if d > MAX_VISIBILITY => errors.push(FieldError::new(
                    path,
                    format!("\"{step}\" is longer than 12h (SQS hides a message at most 12 h)"),
                )),
                Ok(d) => schedule.push(d),
                Err(e) => errors.push(FieldError::new(
                    path,
                    format!("\"{step}\" is not a duration such as \"30s\", \"5m\" or \"1h\": {e}"),
                )),
            }
        }
        let steps = u32::try_from(input.schedule.len()).unwrap_or(u32::MAX);
        let max_attempts = input.max_attempts.unwrap_or(steps.saturating_add(1));
        let attempts_field = format!("{field}.maxAttempts");
        if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
            errors.push(FieldError::new(
                &attempts_field,
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            ));
        } else if max_attempts < steps.saturating_add(1) {
            errors.push(FieldError::new(
                &attempts_field,
                format!("allows {} retries, but the schedule has {steps} steps: drop steps or raise maxAttempts", max_attempts - 1),
            ));
        } else if max_attempts > 1 && input.schedule.is_empty() {
            errors.push(FieldError::new(
                format!("{field}.schedule"),
                "give at least one delay for the retries maxAttempts allows",
            ));
        }
        let retry = Self {
            schedule,
            max_attempts,
        };
        if errors.is_empty() {
            let total = retry.total();
            if total > MAX_RETRY_TOTAL {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "adds up to {} of waiting, at most 24h is allowed",
                        step_text(total)
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(retry)
        } else {
            Err(errors)
        }
    }

    /// Every retry's delay in order, the last step repeated up to `max_attempts - 1`.
    pub fn delays(&self) -> Vec<Duration> {
        let retries = self.max_attempts.saturating_sub(1) as usize;
        (0..retries)
            .map(|i| {
                self.schedule
                    .get(i)
                    .or(self.schedule.last())
                    .copied()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The time all retries wait, without jitter.
    pub fn total(&self) -> Duration {
        self.delays().into_iter().sum()
    }

    /// The deployment's policy with this schedule (jitter and `Retry-After` caps stay).
    pub fn policy(&self, base: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            schedule: self.delays(),
            ..base.clone()
        }
    }

    /// As shown and stored: steps as durations (`"30s"`, `"5m"`), and the attempt count.
    pub fn to_input(&self) -> RetryInput {
        RetryInput {
            schedule: self.schedule.iter().map(|d| step_text(*d)).collect(),
            max_attempts: Some(self.max_attempts),
        }
    }
}

impl RateLimit {
    /// Checks a `rateLimit` input under `field`.
    pub fn check(self, field: &str) -> Result<Self, Vec<FieldError>> {
        if (1..=MAX_PER_SECOND).contains(&self.per_second) {
            Ok(self)
        } else {
            Err(vec![FieldError::new(
                format!("{field}.perSecond"),
                format!("must be between 1 and {MAX_PER_SECOND}"),
            )])
        }
    }

    /// The spacing between two deliveries.
    pub fn interval(self) -> Duration {
        Duration::from_secs(1) / self.per_second.max(1)
    }
}

/// The deliveries queues' `maxReceiveCount`: a backstop above any webhook's attempts (the
/// deliverer dead-letters by the webhook's own policy), for messages that never reach an
/// attempt (the store unreachable, say).
pub fn backstop_receive_count(policy: &RetryPolicy) -> u32 {
    policy.max_receive_count().max(MAX_ATTEMPTS) + 2
}

/// The slot a reservation gets when the webhook's next free slot is `next` (`None`: no
/// reservation yet): `now` or `next`, whichever is later; and the next free slot after it.
pub fn reserve_slot(
    next: Option<OffsetDateTime>,
    now: OffsetDateTime,
    limit: RateLimit,
) -> (OffsetDateTime, OffsetDateTime) {
    let slot = next.map_or(now, |n| n.max(now));
    (slot, slot + limit.interval())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_take_whole_numbers_written_either_way() {
        let r: RateLimit = serde_json::from_str(r#"{"perSecond": 99.0}"#).expect("99.0");
        assert_eq!(r.per_second, 99);
        assert!(serde_json::from_str::<RateLimit>(r#"{"perSecond": 9.5}"#).is_err());
        assert!(serde_json::from_str::<RateLimit>(r#"{"perSecond": -1}"#).is_err());
        let i: RetryInput =
            serde_json::from_str(r#"{"schedule": [], "maxAttempts": 1.0}"#).expect("1.0");
        assert_eq!(i.max_attempts, Some(1));
        let i: RetryInput =
            serde_json::from_str(r#"{"schedule": [], "maxAttempts": null}"#).expect("null");
        assert_eq!(i.max_attempts, None);
    }

    use super::*;

    fn retry(schedule: &[&str], max: Option<u32>) -> Result<WebhookRetry, Vec<String>> {
        WebhookRetry::parse(
            &RetryInput {
                schedule: schedule.iter().map(|s| (*s).to_owned()).collect(),
                max_attempts: max,
            },
            "retry",
        )
        .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn a_schedule_sets_the_delays_and_the_attempts() {
        let r = retry(&["30s", "5m", "1h"], None).expect("valid");
        assert_eq!(r.max_attempts, 4);
        let policy = r.policy(&RetryPolicy::default());
        assert_eq!(policy.max_retries(), 3);
        assert_eq!(policy.delay(3, None, 0.5), Duration::from_secs(3600));
        let r = retry(&["1s", "2s"], Some(5)).expect("valid");
        assert_eq!(
            r.delays(),
            [1, 2, 2, 2].map(Duration::from_secs).to_vec(),
            "the last step repeats"
        );
        assert_eq!(r.to_input().schedule, ["1s", "2s"]);
        assert!(retry(&[], Some(1)).expect("no retries").delays().is_empty());
    }

    #[test]
    fn bounds_are_enforced_with_paths() {
        assert_eq!(retry(&["soon"], None).unwrap_err(), ["retry.schedule[0]"]);
        assert_eq!(retry(&["500ms"], None).unwrap_err(), ["retry.schedule[0]"]);
        assert_eq!(retry(&["13h"], None).unwrap_err(), ["retry.schedule[0]"]);
        assert_eq!(retry(&["1s"], Some(11)).unwrap_err(), ["retry.maxAttempts"]);
        assert_eq!(
            retry(&["1s", "1s"], Some(2)).unwrap_err(),
            ["retry.maxAttempts"]
        );
        assert_eq!(retry(&[], Some(3)).unwrap_err(), ["retry.schedule"]);
        assert_eq!(retry(&["12h", "12h", "1s"], None).unwrap_err(), ["retry"]);
        assert_eq!(
            retry(&["1s"; 10], None).unwrap_err(),
            ["retry.schedule", "retry.maxAttempts"]
        );
    }

    #[test]
    fn ordering_groups_are_per_webhook_or_per_urn_and_short() {
        let urn = format!("urn:allthings:app:A1:ticket:{}", "x".repeat(300));
        assert_eq!(Ordering::None.group("wh_1", &urn), None);
        assert_eq!(
            Ordering::PerWebhook.group("wh_1", &urn).as_deref(),
            Some("wh_1")
        );
        let g = Ordering::PerUrn
            .group("wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB", &urn)
            .expect("group");
        assert!(g.len() <= 128 && g.starts_with("wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB."));
        assert_ne!(
            Some(g),
            Ordering::PerUrn.group("wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB", "urn:b")
        );
    }

    #[test]
    fn rate_limits_are_bounded_and_spaced() {
        assert!(RateLimit { per_second: 0 }.check("rateLimit").is_err());
        assert!(RateLimit { per_second: 1001 }.check("rateLimit").is_err());
        assert_eq!(
            RateLimit { per_second: 5 }.interval(),
            Duration::from_millis(200)
        );
    }
}
