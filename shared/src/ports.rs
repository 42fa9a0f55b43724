//! The ports: small async traits for storage and queues. Each has a DynamoDB/SQS adapter and
//! a SQLite adapter (later issues), and one conformance suite runs against both.
//!
//! The traits speak domain types only, so the api, ingest and deliver libraries never see an
//! SDK type, and `hookline serve` can swap every adapter for an embedded one.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::event::{Event, EventId};
use crate::lifecycle::FailureRun;
use crate::webhook::{Route, Webhook, WebhookId};

/// A storage or queue failure, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The item already exists (create with a taken id).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The item changed since it was read (`If-Match` / conditional write failed).
    #[error("version conflict: expected version {expected}")]
    VersionConflict {
        /// The version the caller expected.
        expected: u64,
    },
    /// The item is not there.
    #[error("{0} not found")]
    NotFound(String),
    /// A backend error worth retrying (throttling, timeouts, unavailable).
    #[error("storage or queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be read back into the domain (a bug or a manual edit).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An opaque pagination cursor handed back to the caller as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// One page of a listing and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched items: the extra one only tells that more exist,
    /// and the last item kept names the cursor of the next page.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|item| Cursor(cursor_of(item)))
        } else {
            None
        };
        Self { items, next }
    }
}

/// Webhooks and their per-App route items, changed together.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// A count this store moves after every webhook write it commits (create, update,
    /// delete, failure runs), if it sees them all (the embedded store, written by one
    /// process); deliverers then keep webhooks until the next write. `None` by default.
    fn change_counter(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }
    /// Stores a new webhook and its route items atomically.
    async fn create(&self, webhook: &Webhook) -> Result<(), PortError>;
    /// Reads one webhook.
    async fn get(&self, id: &WebhookId) -> Result<Option<Webhook>, PortError>;
    /// Replaces a webhook (and its route items) if its stored version is `expected_version`.
    async fn update(&self, webhook: &Webhook, expected_version: u64) -> Result<(), PortError>;
    /// Deletes a webhook and its route items if its stored version is `expected_version`.
    async fn delete(&self, id: &WebhookId, expected_version: u64) -> Result<(), PortError>;
    /// Webhooks naming `app_id`, oldest first; stable under concurrent inserts.
    async fn list_for_app(
        &self,
        app_id: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Webhook>, PortError>;
    /// Every route item of `app_id`: what fan-out matches an event against.
    async fn routes_for_app(&self, app_id: &str) -> Result<Vec<Route>, PortError>;
    /// A number that changes whenever a webhook naming `app_id` is created, changed or
    /// deleted (0 for an App never written): a cache of the App's routes is current while
    /// it reads the same number. Read before the routes, so a cache is never newer than its
    /// number says.
    async fn routes_version(&self, app_id: &str) -> Result<u64, PortError>;
    /// Counts one failed delivery in the webhook's failure run, starting the run at `at` if
    /// none is going on; atomic, and leaves the webhook's version alone. `None` when the
    /// webhook is gone.
    async fn record_failure(
        &self,
        id: &WebhookId,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<Option<FailureRun>, PortError>;
    /// Ends the webhook's failure run, if one is going on.
    async fn clear_failures(&self, id: &WebhookId) -> Result<(), PortError>;
    /// The webhooks `owner` created that name `app_id` (for grant changes: rare, so a walk
    /// of the App's webhooks rather than an index of its own).
    async fn owned_in_app(&self, owner: &str, app_id: &str) -> Result<Vec<Webhook>, PortError> {
        let mut owned = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_for_app(app_id, cursor.as_ref(), 100).await?;
            owned.extend(page.items.into_iter().filter(|w| w.owner == owner));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(owned),
            }
        }
    }
}

/// A grant the platform revoked: `sub` may not manage `app_id`'s webhooks, and its webhooks
/// receive nothing from it, until the grant is restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedGrant {
    /// The client.
    pub sub: String,
    /// The App.
    pub app_id: String,
    /// When it was revoked.
    pub since: OffsetDateTime,
}

/// Revoked grants (`PK=GRANT#<sub> SK=APP#<appId>` in DynamoDB).
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Records a revocation; revoking twice keeps the first time.
    async fn revoke(&self, sub: &str, app_id: &str, at: OffsetDateTime) -> Result<(), PortError>;
    /// Removes a revocation, if there is one.
    async fn restore(&self, sub: &str, app_id: &str) -> Result<(), PortError>;
    /// The grants revoked for `sub`.
    async fn revoked(&self, sub: &str) -> Result<Vec<RevokedGrant>, PortError>;
}

/// Where an event stands in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClaim {
    /// First time seen: fan it out, then call [`EventLog::mark_fanned_out`].
    New,
    /// Seen before, its fan-out did not finish and its claim lapsed: this caller takes it
    /// over and fans it out again (the repeated delivery ids make duplicates recognisable).
    Unfinished,
    /// Another consumer claimed it moments ago and may still be fanning it out: retry later.
    InProgress,
    /// Seen and fanned out: drop this copy.
    Done,
}

/// The event log: dedupe by event id, and the payload kept for redelivery.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Records `event` unless its id is known, and says where it stands; kept until
    /// `expires_at`. A `New` or `Unfinished` claim is the caller's for `lease`.
    async fn claim(
        &self,
        event: &Event,
        expires_at: OffsetDateTime,
        lease: Duration,
    ) -> Result<EventClaim, PortError>;
    /// Gives up a claim after a failed fan-out, so the retry need not wait out the lease.
    async fn release(&self, id: &EventId) -> Result<(), PortError>;
    /// Marks the event's fan-out complete, so later copies are dropped.
    async fn mark_fanned_out(&self, id: &EventId) -> Result<(), PortError>;
    /// Reads a logged event, for redelivery.
    async fn get(&self, id: &EventId) -> Result<Option<Event>, PortError>;
}

/// A delivery id, deterministic per (event, webhook): a retried fan-out yields the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// `dl_` and 32 hex digits of SHA-256(event id, webhook id).
    pub fn for_pair(event: &EventId, webhook: &WebhookId) -> Self {
        let mut h = Sha256::new();
        h.update(event.as_str().as_bytes());
        h.update([0u8]);
        h.update(webhook.as_str().as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("dl_{hex}"))
    }

    /// Accepts an id from a path: `dl_` and 32 lower-case hex digits.
    pub fn parse(id: &str) -> Option<Self> {
        let hex = id.strip_prefix("dl_")?;
        (hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One (event, webhook) pair to deliver: the body of a `deliveries` queue message.
///
/// Unknown fields are ignored, so a deliverer reads messages a newer fan-out wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMessage {
    /// Deterministic id of the pair.
    pub delivery_id: DeliveryId,
    /// The event; read from the event log at delivery time unless [`Self::event`] carries it.
    pub event_id: EventId,
    /// The webhook, read at delivery time (so a deleted or disabled one receives nothing).
    pub webhook_id: WebhookId,
    /// The webhook's version when the delivery was fanned out: a deliverer's cached copy at
    /// least this new may stand in for a read. Absent: always read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_version: Option<u64>,
    /// The event itself, when it is small enough to ride along (so the deliverer does not
    /// read the event log); absent for large events, redeliveries and replays of old copies.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::event::embedded"
    )]
    pub event: Option<crate::event::Event>,
    /// Attempts made for this delivery before this message was queued (a DLQ replay or a
    /// redelivery), so attempt numbers keep counting; absent means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prior_attempts: u32,
    /// Attempts of this run made before this message was sent (a delivery deferred by its
    /// webhook's rate limit is sent again and keeps counting toward its retry budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run_attempts: u32,
    /// The rate-limit slot this delivery holds (Unix ms): it goes out then, without taking
    /// another slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// The ordering group (the webhook, or the webhook and URN): deliveries of one group go
    /// one at a time, in order. Absent for unordered webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl DeliveryMessage {
    /// The first message of the delivery of `event` to `webhook`, in ordering `group`.
    pub fn first(event: &EventId, webhook: &WebhookId, group: Option<String>) -> Self {
        Self {
            delivery_id: DeliveryId::for_pair(event, webhook),
            event_id: event.clone(),
            webhook_id: webhook.clone(),
            webhook_version: None,
            event: None,
            prior_attempts: 0,
            run_attempts: 0,
            not_before: None,
            group,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A received queue message's handle, for changing its visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptHandle(pub String);

/// The `events` queue, as the api's intake sees it.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Enqueues one validated event for fan-out.
    async fn send_event(&self, event: &Event) -> Result<(), PortError>;
}

/// The `deliveries` queues (unordered, and ordered by group), as ingest and deliver see
/// them, with their dead-letter queues.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Enqueues messages; returns the ones that were not accepted (to retry or fail the event).
    async fn send_deliveries(
        &self,
        messages: &[DeliveryMessage],
    ) -> Result<Vec<DeliveryId>, PortError>;
    /// Hides a received message of `delivery` for `delay` (backoff); it comes back with its
    /// receive count + 1.
    async fn retry_later(
        &self,
        delivery: &DeliveryMessage,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError>;
    /// Sends `delivery` again, visible after `delay` (an unordered delivery waiting for its
    /// rate-limit slot); the received copy is then acknowledged.
    async fn send_later(
        &self,
        delivery: &DeliveryMessage,
        delay: Duration,
    ) -> Result<(), PortError>;
    /// Moves `delivery` to the dead-letter queue with `reason` (its retries are exhausted);
    /// the received copy is then acknowledged.
    async fn dead_letter(&self, delivery: &DeliveryMessage, reason: &str) -> Result<(), PortError>;
}

/// Where a message that can never be processed goes, with the reason (`events-dlq`).
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Stores the raw body and why it was refused; the original message is then deleted.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), PortError>;
}

/// One message as a queue consumer receives it (from an SQS event or the embedded queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The queue's id for the message (reported back when it failed).
    pub message_id: String,
    /// The body as sent.
    pub body: String,
    /// How many times it has been received, this time included (1 on first delivery).
    pub receive_count: u32,
    /// Handle for changing its visibility.
    pub receipt: ReceiptHandle,
}

/// How one delivery attempt ended, as the attempt log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AttemptStatus {
    /// 2xx: acknowledged.
    Delivered,
    /// Failed, retried later (`next_retry_at`).
    Retrying,
    /// Failed and not retried (3xx, 4xx, refused target).
    Failed,
    /// Not sent yet: waiting for its webhook's rate limit (`next_retry_at` is its slot).
    Delayed,
    /// Failed on the last allowed attempt: moved to the DLQ.
    Exhausted,
    /// 410 Gone: the webhook was disabled.
    Gone,
    /// Not sent: the webhook was deleted or disabled, or the event expired.
    Skipped,
}

impl AttemptStatus {
    /// Every status, in the order above.
    pub const ALL: [Self; 7] = [
        Self::Delivered,
        Self::Retrying,
        Self::Failed,
        Self::Delayed,
        Self::Exhausted,
        Self::Gone,
        Self::Skipped,
    ];

    /// The kebab-case name (`delivered`, `retrying`, ...), as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Delayed => "delayed",
            Self::Exhausted => "exhausted",
            Self::Gone => "gone",
            Self::Skipped => "skipped",
        }
    }

    /// Parses the kebab-case name (`delivered`, `retrying`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One delivery attempt, kept in the attempt log for its TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Sortable id of the attempt (ULID, time-ordered).
    pub attempt_id: String,
    /// The webhook.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB"))]
    pub webhook_id: WebhookId,
    /// The (event, webhook) pair.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub delivery_id: DeliveryId,
    /// The event (also the `webhook-id` header).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub event_id: EventId,
    /// 1 for the first try of this delivery message.
    pub attempt: u32,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// How it ended.
    pub status: AttemptStatus,
    /// The endpoint's status code, if it answered.
    pub response_status: Option<u16>,
    /// Why there was no answer, or why it was skipped.
    pub error: Option<String>,
    /// Time to answer.
    pub latency_ms: u64,
    /// The start of the endpoint's answer.
    pub response_excerpt: String,
    /// When the next try is due, for `retrying`.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_retry_at: Option<OffsetDateTime>,
}

/// The attempt log (`PK=WH#<id> SK=DL#<ulid>` in DynamoDB).
#[async_trait]
pub trait AttemptLog: Send + Sync {
    /// Records one attempt, kept until `expires_at`.
    async fn record(&self, attempt: &Attempt, expires_at: OffsetDateTime) -> Result<(), PortError>;
    /// Records a batch's attempts (one transaction where the store has them).
    async fn record_many(
        &self,
        attempts: &[Attempt],
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError> {
        for attempt in attempts {
            self.record(attempt, expires_at).await?;
        }
        Ok(())
    }
    /// The event of a delivery of this webhook that has attempts on record, and its highest
    /// attempt number (for redelivery).
    async fn last_attempt(
        &self,
        webhook: &WebhookId,
        delivery: &DeliveryId,
    ) -> Result<Option<(EventId, u32)>, PortError>;
    /// A webhook's attempts, newest first, optionally only those with `status`.
    async fn list(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<Attempt>, PortError>;
    /// How many attempts [`AttemptLog::list`] would walk through, in all its pages.
    async fn count(
        &self,
        webhook: &WebhookId,
        status: Option<AttemptStatus>,
    ) -> Result<u64, PortError>;
}

/// Spaces a webhook's deliveries to its rate limit: every delivery reserves a start slot,
/// one interval (1/N s) after the previous one reserved for that webhook, and never in the
/// past.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Reserves the next start slot for a delivery to `webhook` limited to `limit`.
    async fn reserve(
        &self,
        webhook: &WebhookId,
        limit: crate::rules::RateLimit,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, PortError>;
}

/// Largest part of an endpoint's answer that is read (DESIGN §7).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// HTTP methods Hookline sends to endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundMethod {
    /// Verification probe.
    Head,
    /// Deliveries and signed test events.
    Post,
}

/// One request to an endpoint.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// HEAD or POST.
    pub method: OutboundMethod,
    /// The endpoint.
    pub url: crate::webhook::WebhookUrl,
    /// Headers in order: Standard Webhooks headers, then custom ones.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
    /// Total time allowed, connect included.
    pub timeout: Duration,
}

/// What an endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// HTTP status.
    pub status: u16,
    /// Its `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The first [`MAX_RESPONSE_BYTES`] of the body, lossily decoded.
    pub body: String,
    /// From sending to the end of the (capped) body.
    pub latency: Duration,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// No complete answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Could not connect (refused, unreachable, reset, DNS failure).
    #[error("could not connect: {0}")]
    Connect(String),
    /// TLS handshake or certificate failure.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The target guard refused the address the host resolved to.
    #[error("target refused: {0}")]
    Blocked(String),
    /// Anything else the client reported.
    #[error("request failed: {0}")]
    Other(String),
}

/// What kind of failure an [`OutboundError`] was, for people reading the attempt log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundErrorKind {
    /// [`OutboundError::Timeout`].
    Timeout,
    /// [`OutboundError::Connect`].
    Connect,
    /// [`OutboundError::Tls`].
    Tls,
    /// [`OutboundError::Blocked`].
    Blocked,
    /// [`OutboundError::Other`], or a message of no known kind.
    Other,
}

impl OutboundErrorKind {
    /// The kind of a recorded error message (the attempt log keeps an [`OutboundError`]'s
    /// text, which starts with its kind).
    pub fn of_message(message: &str) -> Self {
        if message.starts_with("timed out") {
            Self::Timeout
        } else if message.starts_with("could not connect") {
            Self::Connect
        } else if message.starts_with("TLS failed") {
            Self::Tls
        } else if message.starts_with("target refused") {
            Self::Blocked
        } else {
            Self::Other
        }
    }
}

impl OutboundError {
    /// Its kind.
    pub fn kind(&self) -> OutboundErrorKind {
        match self {
            Self::Timeout(_) => OutboundErrorKind::Timeout,
            Self::Connect(_) => OutboundErrorKind::Connect,
            Self::Tls(_) => OutboundErrorKind::Tls,
            Self::Blocked(_) => OutboundErrorKind::Blocked,
            Self::Other(_) => OutboundErrorKind::Other,
        }
    }

    /// The retry policy's view of this failure.
    pub fn outcome(&self) -> crate::retry::AttemptOutcome {
        use crate::retry::AttemptOutcome;
        match self {
            Self::Timeout(_) => AttemptOutcome::Timeout,
            Self::Connect(_) | Self::Other(_) => AttemptOutcome::Connect,
            Self::Tls(_) => AttemptOutcome::Tls,
            Self::Blocked(_) => AttemptOutcome::Blocked,
        }
    }
}

/// Sends requests to endpoints, enforcing the target guard on every resolved address.
#[async_trait]
pub trait HttpSender: Send + Sync {
    /// Sends one request; redirects are never followed.
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_status_names_are_the_serialized_ones() {
        for st in AttemptStatus::ALL {
            assert_eq!(
                serde_json::to_value(st).expect("serializes"),
                serde_json::Value::String(st.as_str().to_owned())
            );
            assert_eq!(AttemptStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(AttemptStatus::parse("Delivered"), None);
    }

    #[test]
    fn a_recorded_error_message_tells_its_kind() {
        for e in [
            OutboundError::Timeout(Duration::from_secs(10)),
            OutboundError::Connect("connection refused".into()),
            OutboundError::Tls("bad certificate".into()),
            OutboundError::Blocked("10.0.0.1 is private".into()),
            OutboundError::Other("body too large".into()),
        ] {
            assert_eq!(
                OutboundErrorKind::of_message(&e.to_string()),
                e.kind(),
                "{e}"
            );
        }
        assert_eq!(
            OutboundErrorKind::of_message("webhook was deleted"),
            OutboundErrorKind::Other
        );
    }

    #[test]
    fn delivery_ids_are_deterministic_per_pair() {
        let e1 = EventId::parse("evt_1").expect("valid");
        let e2 = EventId::parse("evt_2").expect("valid");
        let w1 = WebhookId::generate();
        let w2 = WebhookId::generate();
        assert_eq!(
            DeliveryId::for_pair(&e1, &w1),
            DeliveryId::for_pair(&e1, &w1)
        );
        assert_ne!(
            DeliveryId::for_pair(&e1, &w1),
            DeliveryId::for_pair(&e2, &w1)
        );
        assert_ne!(
            DeliveryId::for_pair(&e1, &w1),
            DeliveryId::for_pair(&e1, &w2)
        );
        assert_eq!(DeliveryId::for_pair(&e1, &w1).as_str().len(), 35);
    }

    #[test]
    fn delivery_messages_are_camel_case_and_tolerate_newer_fields() {
        let m = DeliveryMessage {
            run_attempts: 0,
            not_before: None,
            group: None,
            delivery_id: DeliveryId("dl_x".into()),
            event_id: EventId::parse("evt_1").expect("valid"),
            webhook_id: WebhookId::generate(),
            webhook_version: None,
            event: None,
            prior_attempts: 0,
        };
        let json = serde_json::to_value(&m).expect("serializes");
        assert!(json.get("deliveryId").is_some() && json.get("webhookId").is_some());
        assert!(json.get("event").is_none() && json.get("webhookVersion").is_none());
        let back: DeliveryMessage = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, m);
        let extra = serde_json::json!({
            "deliveryId": "dl_x", "eventId": "evt_1", "webhookId": m.webhook_id, "x": 1
        });
        let read = serde_json::from_value::<DeliveryMessage>(extra).expect("newer field ignored");
        assert_eq!(read, m);
    }

    #[test]
    fn a_delivery_message_carries_its_event_as_the_delivered_body() {
        let body = r#"{"id":"evt_1","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:C:T","timestamp":"2026-11-26T10:00:00Z","data":{"n":1}}"#;
        let event = crate::event::Event::from_stored(body).expect("event");
        let m = DeliveryMessage {
            webhook_version: Some(3),
            event: Some(event.clone()),
            ..DeliveryMessage::first(&event.id, &WebhookId::generate(), None)
        };
        let json = serde_json::to_value(&m).expect("serializes");
        assert_eq!(json["webhookVersion"], 3);
        assert_eq!(json["event"]["data"]["n"], 1);
        assert_eq!(json["event"]["urn"], "urn:allthings:app:A1:ticket:C:T");
        let back: DeliveryMessage = serde_json::from_value(json).expect("round trip");
        assert_eq!(back.event, Some(event));
        let bad = r#"{"deliveryId":"a","eventId":"b","webhookId":"c","event":{"type":"x"}}"#;
        assert!(serde_json::from_str::<DeliveryMessage>(bad).is_err());
    }
}
