//! Hookline's metrics: one vocabulary for both compositions, recorded through the `metrics`
//! facade. A composition installs the recorder once (`hookline serve`: Prometheus text on
//! `GET /metrics`; the Lambdas: CloudWatch Embedded Metric Format lines flushed per
//! invocation); the handlers call the functions here, which cost an atomic add when no
//! recorder is installed. Names follow Prometheus's conventions (`hookline_` prefix, `_total`
//! counters, `_seconds` histograms in base units); labels have bounded values only (no webhook
//! or event ids; the App id only when [`set_app_label`] turned it on).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::delivery::AttemptStatus;

/// What kind of metric a [`Metric`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// A value now (queue depths).
    Gauge,
    /// A distribution (`_seconds`).
    Histogram,
}

/// One metric of the vocabulary, as documented in the README's operator section.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels (`app` is added to those marked in [`APP_LABELLED`] when turned on).
    pub labels: &'static [&'static str],
    /// What it counts or measures.
    pub help: &'static str,
    /// True when only `hookline serve` records it (queue gauges: on AWS, SQS's own metrics).
    pub serve_only: bool,
    /// The values of its one label, each series started at zero by [`describe`] so that
    /// rates and alerts see a series before its first event (empty: not known ahead).
    pub values: &'static [&'static str],
}

/// Events received by intake, by outcome; `duplicate` is counted at fan-out, when a copy of
/// an event already fanned out is dropped.
pub const EVENTS_PUBLISHED: &str = "hookline_events_published_total";
/// Delivery messages made by fan-out (one per matching webhook).
pub const FANOUT_MATCHES: &str = "hookline_fanout_matches_total";
/// Delivery attempts by outcome.
pub const DELIVERY_ATTEMPTS: &str = "hookline_delivery_attempts_total";
/// Attempts that were sent, by the class of the endpoint's answer (`none`: no answer).
pub const DELIVERY_RESPONSES: &str = "hookline_delivery_responses_total";
/// Time from sending an attempt to its answer (or error).
pub const ATTEMPT_DURATION: &str = "hookline_delivery_attempt_duration_seconds";
/// Time from an event's timestamp to its acknowledged delivery.
pub const DELIVERY_LATENCY: &str = "hookline_delivery_latency_seconds";
/// Deliveries that waited for their webhook's rate limit, by where they waited.
pub const RATE_LIMIT_DELAYS: &str = "hookline_rate_limit_delays_total";
/// Webhooks disabled (or suspended for an App), by reason.
pub const WEBHOOKS_DISABLED: &str = "hookline_webhooks_disabled_total";
/// Webhooks enabled (or restored for an App), by reason.
pub const WEBHOOKS_ENABLED: &str = "hookline_webhooks_enabled_total";
/// Endpoint checks (on save and "test endpoint"), by result.
pub const ENDPOINT_CHECKS: &str = "hookline_endpoint_checks_total";
/// Messages in a queue (visible, in flight and delayed).
pub const QUEUE_DEPTH: &str = "hookline_queue_depth";
/// Age of the oldest message in a queue.
pub const QUEUE_OLDEST_AGE: &str = "hookline_queue_oldest_message_age_seconds";
/// Messages in a dead-letter queue.
pub const DLQ_DEPTH: &str = "hookline_dlq_depth";
/// Metrics that could not be recorded or written (never a delivery's failure).
pub const METRICS_ERRORS: &str = "hookline_metrics_errors_total";

/// Every metric Hookline records.
pub const CATALOG: [Metric; 14] = [
    Metric { name: EVENTS_PUBLISHED, kind: Kind::Counter, labels: &["outcome"], help: "Events received, by outcome: accepted, duplicate (dropped at fan-out), rejected, backpressure.", serve_only: false, values: &["accepted", "duplicate", "rejected", "backpressure"] },
    Metric { name: FANOUT_MATCHES, kind: Kind::Counter, labels: &[], help: "Delivery messages made by fan-out: one per matching webhook and event.", serve_only: false, values: &[] },
    Metric { name: DELIVERY_ATTEMPTS, kind: Kind::Counter, labels: &["outcome"], help: "Delivery attempts, by outcome: delivered, retrying, failed, dead_lettered, delayed, gone, skipped.", serve_only: false, values: &["delivered", "retrying", "failed", "dead_lettered", "delayed", "gone", "skipped"] },
    Metric { name: DELIVERY_RESPONSES, kind: Kind::Counter, labels: &["status_class"], help: "Attempts sent, by the endpoint's answer: 2xx, 3xx, 4xx, 5xx, none (timeout, refused, unreachable).", serve_only: false, values: &["2xx", "3xx", "4xx", "5xx", "none"] },
    Metric { name: ATTEMPT_DURATION, kind: Kind::Histogram, labels: &[], help: "Time from sending an attempt to the endpoint's answer or the error.", serve_only: false, values: &[] },
    Metric { name: DELIVERY_LATENCY, kind: Kind::Histogram, labels: &[], help: "Time from an event's timestamp to its acknowledged delivery, retries included.", serve_only: false, values: &[] },
    Metric { name: RATE_LIMIT_DELAYS, kind: Kind::Counter, labels: &["mode"], help: "Deliveries that waited for their webhook's rate limit: in_place (a short wait), deferred (sent back to the queue).", serve_only: false, values: &["in_place", "deferred"] },
    Metric { name: WEBHOOKS_DISABLED, kind: Kind::Counter, labels: &["reason"], help: "Webhooks disabled, by reason: manual, failing, gone, permission_revoked (suspended for one App).", serve_only: false, values: &["manual", "failing", "gone", "permission_revoked"] },
    Metric { name: WEBHOOKS_ENABLED, kind: Kind::Counter, labels: &["reason"], help: "Webhooks enabled, by reason: manual, permission_restored (for one App).", serve_only: false, values: &["manual", "permission_restored"] },
    Metric { name: ENDPOINT_CHECKS, kind: Kind::Counter, labels: &["result"], help: "Endpoint checks (on save, on \"test endpoint\"), by result: ok, failed.", serve_only: false, values: &["ok", "failed"] },
    Metric { name: QUEUE_DEPTH, kind: Kind::Gauge, labels: &["queue"], help: "Messages in a queue: visible, in flight and delayed.", serve_only: true, values: &[] },
    Metric { name: QUEUE_OLDEST_AGE, kind: Kind::Gauge, labels: &["queue"], help: "Age of the oldest message in a queue (0 when empty).", serve_only: true, values: &[] },
    Metric { name: DLQ_DEPTH, kind: Kind::Gauge, labels: &["queue"], help: "Messages in a dead-letter queue.", serve_only: true, values: &[] },
    Metric { name: METRICS_ERRORS, kind: Kind::Counter, labels: &["what"], help: "Metrics that could not be gathered or written; each kind is logged once.", serve_only: false, values: &[] },
];

/// The metrics that carry an `app` label when [`set_app_label`] turned it on (a webhook's
/// own health is its stats, `GET /v1/webhooks/{id}/stats`).
pub const APP_LABELLED: [&str; 2] = [EVENTS_PUBLISHED, FANOUT_MATCHES];

/// Upper bounds (seconds) of the histograms' buckets on Prometheus: 5 ms to 6 h, so both an
/// answer's time and a delivery that waited out retries land in a bucket of their own.
pub const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    21600.0,
];

static APP_LABEL: AtomicBool = AtomicBool::new(false);

/// Adds the App id as a label to [`APP_LABELLED`] (`HOOKLINE_METRICS_APP_LABEL`): one series
/// per App, so only for deployments with few Apps.
pub fn set_app_label(on: bool) {
    APP_LABEL.store(on, Ordering::Relaxed);
}

/// Describes every metric to the installed recorder (help text, units); call once after
/// installing it.
pub fn describe() {
    for m in CATALOG {
        let unit = m
            .name
            .ends_with("_seconds")
            .then_some(metrics::Unit::Seconds);
        match (m.kind, unit) {
            (Kind::Counter, _) => metrics::describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(m.name, u, m.help),
            (Kind::Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
        match (m.kind, m.labels) {
            (Kind::Counter, []) => metrics::counter!(m.name).increment(0),
            (Kind::Counter, [label]) => {
                for value in m.values {
                    metrics::counter!(m.name, *label => *value).increment(0);
                }
            }
            _ => {}
        }
    }
}

/// How intake or fan-out ended for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Queued (intake's 202).
    Accepted,
    /// A copy of an event already fanned out, dropped.
    Duplicate,
    /// Refused as invalid or forbidden (intake's 4xx, or the events DLQ).
    Rejected,
    /// Refused for lack of room (intake's 429).
    Backpressure,
}

impl Published {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Backpressure => "backpressure",
        }
    }
}

fn counter(name: &'static str, label: &'static str, value: &'static str, app: Option<&str>) {
    match app.filter(|_| APP_LABEL.load(Ordering::Relaxed)) {
        Some(app) => metrics::counter!(name, label => value, "app" => app.to_owned()).increment(1),
        None => metrics::counter!(name, label => value).increment(1),
    }
}

/// One event received, and how it ended; `app` is its App when known.
pub fn event_published(outcome: Published, app: Option<&str>) {
    counter(EVENTS_PUBLISHED, "outcome", outcome.as_str(), app);
}

/// Fan-out made `matches` delivery messages for an event of `app`.
pub fn fanned_out(matches: usize, app: &str) {
    let n = u64::try_from(matches).unwrap_or(u64::MAX);
    if APP_LABEL.load(Ordering::Relaxed) {
        metrics::counter!(FANOUT_MATCHES, "app" => app.to_owned()).increment(n);
    } else {
        metrics::counter!(FANOUT_MATCHES).increment(n);
    }
}

/// The outcome label of an attempt (`exhausted` is `dead_lettered`: it went to the DLQ).
pub fn outcome_label(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Delivered => "delivered",
        AttemptStatus::Retrying => "retrying",
        AttemptStatus::Failed => "failed",
        AttemptStatus::Delayed => "delayed",
        AttemptStatus::Exhausted => "dead_lettered",
        AttemptStatus::Gone => "gone",
        AttemptStatus::Skipped => "skipped",
    }
}

/// The class of an endpoint's answer: `2xx` … `5xx`, `none` when there was none.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}

/// One attempt recorded with `status`.
pub fn attempt(status: AttemptStatus) {
    metrics::counter!(DELIVERY_ATTEMPTS, "outcome" => outcome_label(status)).increment(1);
}

/// One attempt sent: the endpoint's status (`None`: no answer) and how long it took.
pub fn response(status: Option<u16>, took: Duration) {
    metrics::counter!(DELIVERY_RESPONSES, "status_class" => status_class(status)).increment(1);
    metrics::histogram!(ATTEMPT_DURATION).record(took.as_secs_f64());
}

/// A delivery acknowledged `since` after its event's timestamp.
pub fn delivered_after(since: Duration) {
    metrics::histogram!(DELIVERY_LATENCY).record(since.as_secs_f64());
}

/// A delivery waited for its rate limit, in place (`deferred: false`) or back in the queue.
pub fn rate_limit_delay(deferred: bool) {
    let mode = if deferred { "deferred" } else { "in_place" };
    metrics::counter!(RATE_LIMIT_DELAYS, "mode" => mode).increment(1);
}

/// A webhook was disabled (`enabled: false`) or enabled, for `reason` (a bounded code).
pub fn webhook_state(enabled: bool, reason: &'static str) {
    let name = if enabled {
        WEBHOOKS_ENABLED
    } else {
        WEBHOOKS_DISABLED
    };
    metrics::counter!(name, "reason" => reason).increment(1);
}

/// An endpoint check ended.
pub fn endpoint_check(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!(ENDPOINT_CHECKS, "result" => result).increment(1);
}

/// One queue's state now (`hookline serve`, at each scrape).
pub fn queue_state(queue: &'static str, dead_letters: bool, depth: u64, oldest: Duration) {
    // Gauges hold f64; a queue of 2^53 messages is not a concern.
    #[allow(clippy::cast_precision_loss)]
    let depth = depth as f64;
    if dead_letters {
        metrics::gauge!(DLQ_DEPTH, "queue" => queue).set(depth);
    } else {
        metrics::gauge!(QUEUE_DEPTH, "queue" => queue).set(depth);
    }
    metrics::gauge!(QUEUE_OLDEST_AGE, "queue" => queue).set(oldest.as_secs_f64());
}

static LOGGED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Metrics of kind `what` could not be gathered or written: counted every time, logged the
/// first time only (a broken exporter must not flood the logs).
pub fn metrics_error(what: &'static str, error: &dyn std::fmt::Display) {
    metrics::counter!(METRICS_ERRORS, "what" => what).increment(1);
    let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if !logged.contains(&what) {
        logged.push(what);
        tracing::warn!(what, error = %error, "metrics could not be gathered or written (logged once; counted in hookline_metrics_errors_total)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let re = regex::Regex::new("^hookline_[a-z_]+$").expect("pattern");
        for m in CATALOG {
            assert!(re.is_match(m.name), "{}", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                Kind::Histogram => assert!(m.name.ends_with("_seconds"), "{}", m.name),
                Kind::Gauge => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            assert!(
                !m.labels.iter().any(|l| l.contains("id")),
                "{} has an unbounded label",
                m.name
            );
        }
        let mut names: Vec<_> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len(), "names are unique");
        assert!(BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_attempt_status_has_an_outcome_and_classes_are_bounded() {
        let mut seen: Vec<_> = AttemptStatus::ALL
            .iter()
            .map(|s| outcome_label(*s))
            .collect();
        seen.dedup();
        assert_eq!(seen.len(), AttemptStatus::ALL.len());
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(Some(302)), "3xx");
        assert_eq!(status_class(Some(404)), "4xx");
        assert_eq!(status_class(None), "none");
    }
}
