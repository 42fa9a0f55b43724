//! Delivery values: the delivery id, the `deliveries` queue message, a received queue
//! message, and the attempt log's records.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::event::EventId;
use crate::webhook::WebhookId;

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

    /// `dl_` and 32 hex digits of SHA-256(job id, event id, webhook id): the delivery of an
    /// event by a backfill job, distinct from its live delivery and from other backfills'.
    pub fn for_backfill(job: &str, event: &EventId, webhook: &WebhookId) -> Self {
        let mut h = Sha256::new();
        h.update(b"backfill\0");
        h.update(job.as_bytes());
        h.update([0u8]);
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
    /// Sent by a backfill job: the request carries `webhook-backfill: true` and the attempt
    /// log marks it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
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
            backfill: false,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A received queue message's handle, for changing its visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptHandle(pub String);

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
    /// For a message put back from a dead-letter queue, the id of the message it first was
    /// (its [`REPLAY_OF_ATTRIBUTE`]): the event log's claim goes by that id.
    pub replay_of: Option<String>,
}

/// The SQS message attribute a replayed events-queue message carries: the id of the
/// message it first was, whose claim on the event it continues.
pub const REPLAY_OF_ATTRIBUTE: &str = "hookline-replay-of";

impl ReceivedMessage {
    /// The id the event log's claim goes by: the first message's, for a replayed one.
    pub fn claim_id(&self) -> &str {
        self.replay_of.as_deref().unwrap_or(&self.message_id)
    }
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

/// A new attempt id: a ULID that sorts after every one this process made before, even
/// within one millisecond (the attempt log lists by id, so two attempts of the same
/// millisecond are listed in the order they were made, not by their random bits).
pub fn new_attempt_id() -> String {
    static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let next = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .generate();
    // Only 2^80 ids in one millisecond exhaust it.
    next.unwrap_or_else(|_| ulid::Ulid::new()).to_string()
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
    /// The event's App, when the attempt knew the event (absent for attempts recorded before
    /// Hookline kept it, and for skips of an event no longer logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The event's type, when the attempt knew the event (as [`Self::app_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
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
    /// Sent by a backfill (`POST /v1/webhooks/{id}/backfill`), not by live fan-out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn attempt_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_attempt_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

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
            backfill: false,
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
