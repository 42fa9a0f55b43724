//! The event envelope taken in over HTTP or SQS and delivered to endpoints.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event_type::{Catalog, EventType};
use crate::urn::{Namespace, Urn};
use crate::validation::{FieldError, ValidationErrors};

/// Largest intake body accepted, in bytes (larger gets 413).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Longest event id accepted.
pub const MAX_EVENT_ID_CHARS: usize = 128;

/// Why an intake body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// Over [`MAX_EVENT_BYTES`].
    #[error("event body is {len} bytes, the limit is {MAX_EVENT_BYTES}")]
    TooLarge {
        /// Size of the body in bytes.
        len: usize,
    },
    /// Not JSON, or not the envelope's shape (unknown field, wrong type, missing field).
    #[error("event body is not a valid envelope at line {line}, column {column}: {message}")]
    Malformed {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What serde found.
        message: String,
    },
    /// Well-formed JSON whose fields break the rules; every failing field is listed.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// An event id: the idempotency key, 1–128 chars of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id).map_err(|m| format!("event id {m}"))
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl EventId {
    /// Validates a caller-given id.
    pub fn parse(id: &str) -> Result<Self, String> {
        if id.is_empty() || id.len() > MAX_EVENT_ID_CHARS {
            return Err(format!(
                "must be 1 to {MAX_EVENT_ID_CHARS} characters, got {}",
                id.chars().count()
            ));
        }
        match id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
        {
            Some(c) => Err(format!(
                "has {c:?}; allowed are letters, digits and _ . : -"
            )),
            None => Ok(Self(id.to_owned())),
        }
    }

    /// A new `evt_<ULID>` id, for events that came without one.
    pub fn generate() -> Self {
        Self(format!("evt_{}", ulid::Ulid::new()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The intake body as sent, before validation (`POST /v1/events`, or an SQS message body).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Event))]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    /// Idempotency key (1–128 of `[A-Za-z0-9_.:-]`); the same id is delivered once.
    /// Assigned (`evt_<ULID>`) when absent.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$"))]
    pub id: Option<String>,
    /// A catalog event type.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(example = "ticket.created"))]
    pub event_type: String,
    /// The resource, e.g. `urn:allthings:app:A1:ticket:CAT7:T99` (no `*`).
    pub urn: String,
    /// RFC 3339; the intake time when absent.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: Option<String>,
    /// The payload, a JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// A validated event: what is fanned out, logged and delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Idempotency key; the same id accepted twice is delivered once.
    pub id: EventId,
    /// Catalog type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The resource it happened on.
    pub urn: Urn,
    /// When it happened (the intake time when the source gave none).
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The payload, a JSON object.
    pub data: serde_json::Value,
}

/// What intake needs to validate an envelope.
#[derive(Debug, Clone, Copy)]
pub struct IntakeRules<'a> {
    /// The deployment's URN namespace.
    pub namespace: &'a Namespace,
    /// Types an event may have.
    pub catalog: &'a Catalog,
}

impl Event {
    /// Parses and validates an intake body; `now` is used when the body has no timestamp.
    pub fn from_intake(
        body: &[u8],
        rules: IntakeRules<'_>,
        now: OffsetDateTime,
    ) -> Result<Self, EventError> {
        Self::parse_envelope(body, rules, now, EventId::generate)
    }

    /// Parses a body a source pushed into the events queue. An event without an id gets
    /// `evt_<message id>`: stable across redeliveries of the same message, so a retried
    /// fan-out yields the same delivery ids instead of new ones.
    pub fn from_queue_message(
        body: &[u8],
        message_id: &str,
        rules: IntakeRules<'_>,
        now: OffsetDateTime,
    ) -> Result<Self, EventError> {
        Self::parse_envelope(body, rules, now, || {
            EventId::parse(&format!("evt_{message_id}")).unwrap_or_else(|_| EventId::generate())
        })
    }

    fn parse_envelope(
        body: &[u8],
        rules: IntakeRules<'_>,
        now: OffsetDateTime,
        assign_id: impl FnOnce() -> EventId,
    ) -> Result<Self, EventError> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge { len: body.len() });
        }
        let raw: RawEvent = serde_json::from_slice(body).map_err(|e| EventError::Malformed {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let mut errors = Vec::new();
        let id = match raw.id.as_deref() {
            None => Some(assign_id()),
            Some(id) => EventId::parse(id)
                .map_err(|m| errors.push(FieldError::new("id", m)))
                .ok(),
        };
        let event_type = EventType::parse(&raw.event_type, rules.catalog)
            .map_err(|e| errors.push(FieldError::new("type", e.to_string())))
            .ok();
        let urn = Urn::parse(&raw.urn, rules.namespace)
            .map_err(|e| errors.push(FieldError::new("urn", e.to_string())))
            .ok();
        let timestamp = match raw.timestamp.as_deref() {
            None => Some(now),
            Some(ts) => OffsetDateTime::parse(ts, &Rfc3339)
                .map_err(|e| {
                    errors.push(FieldError::new(
                        "timestamp",
                        format!("is not an RFC 3339 date-time: {e}"),
                    ))
                })
                .ok(),
        };
        if !raw.data.is_object() {
            errors.push(FieldError::new("data", "must be a JSON object"));
        }
        match (id, event_type, urn, timestamp) {
            (Some(id), Some(event_type), Some(urn), Some(timestamp)) if errors.is_empty() => {
                Ok(Self {
                    id,
                    event_type,
                    urn,
                    timestamp,
                    data: raw.data,
                })
            }
            _ => Err(EventError::Invalid(ValidationErrors::new(errors))),
        }
    }

    /// Reads back an event this deployment logged (its delivered body): no catalog or
    /// namespace policy is applied again.
    pub fn from_stored(doc: &str) -> Result<Self, String> {
        let raw: RawEvent = serde_json::from_str(doc).map_err(|e| e.to_string())?;
        Self::from_raw_stored(raw)
    }

    fn from_raw_stored(raw: RawEvent) -> Result<Self, String> {
        let id = EventId::parse(raw.id.as_deref().unwrap_or_default())?;
        let event_type = EventType::parse_stored(&raw.event_type).map_err(|e| e.to_string())?;
        let urn = Urn::parse_stored(&raw.urn).map_err(|e| e.to_string())?;
        let timestamp =
            OffsetDateTime::parse(raw.timestamp.as_deref().unwrap_or_default(), &Rfc3339)
                .map_err(|e| e.to_string())?;
        Ok(Self {
            id,
            event_type,
            urn,
            timestamp,
            data: raw.data,
        })
    }

    /// The body POSTed to endpoints: `{"id","type","urn","timestamp","data"}`.
    pub fn delivery_body(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The delivered body as text: what the event log and the events queue store, and
    /// [`Event::from_stored`] reads back.
    pub fn stored_doc(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Serde for an event carried inside another document (a delivery message): written as its
/// delivered body, read back as [`Event::from_stored`] reads the log.
pub mod embedded {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Event, RawEvent};

    /// Writes the event, if any, as its delivered body.
    pub fn serialize<S: Serializer>(event: &Option<Event>, s: S) -> Result<S::Ok, S::Error> {
        event.serialize(s)
    }

    /// Reads an event written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Event>, D::Error> {
        Option::<RawEvent>::deserialize(d)?
            .map(Event::from_raw_stored)
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rules() -> IntakeRules<'static> {
        static NS: std::sync::LazyLock<Namespace> = std::sync::LazyLock::new(Namespace::default);
        IntakeRules {
            namespace: &NS,
            catalog: Catalog::builtin(),
        }
    }
    const NOW: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    fn parse(json: &str) -> Result<Event, EventError> {
        Event::from_intake(json.as_bytes(), rules(), NOW)
    }

    fn fields(err: EventError) -> Vec<String> {
        match err {
            EventError::Invalid(v) => v.errors().iter().map(|e| e.field.clone()).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn a_full_envelope_round_trips_to_the_delivered_body() {
        let e = parse(r#"{"id":"evt_1","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T99","timestamp":"2025-11-24T16:00:00Z","data":{"title":"Leaking tap"}}"#).expect("valid");
        let body = String::from_utf8(e.delivery_body().expect("serializes")).expect("utf8");
        assert_eq!(
            body,
            r#"{"id":"evt_1","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T99","timestamp":"2025-11-24T16:00:00Z","data":{"title":"Leaking tap"}}"#
        );
    }

    #[test]
    fn missing_id_and_timestamp_are_assigned() {
        let e = parse(
            r#"{"type":"booking.created","urn":"urn:allthings:app:A1:booking:B1","data":{}}"#,
        )
        .expect("valid");
        assert!(
            e.id.as_str().starts_with("evt_") && e.id.as_str().len() == 30,
            "{}",
            e.id
        );
        assert_eq!(e.timestamp, NOW);
        let other = parse(
            r#"{"type":"booking.created","urn":"urn:allthings:app:A1:booking:B1","data":{}}"#,
        )
        .expect("valid");
        assert_ne!(e.id, other.id);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let err = parse(r#"{"id":"bad id!","type":"ticket.deleted","urn":"urn:allthings:app:A1:*","timestamp":"yesterday","data":[]}"#).unwrap_err();
        assert_eq!(fields(err), ["id", "type", "urn", "timestamp", "data"]);
    }

    #[test]
    fn queued_events_without_an_id_get_one_stable_per_message() {
        let body =
            br#"{"type":"booking.created","urn":"urn:allthings:app:A1:booking:B1","data":{}}"#;
        let a =
            Event::from_queue_message(body, "0f8b6e4c-1d2a-4b7e-9c3f-5a6d7e8f9a0b", rules(), NOW)
                .expect("valid");
        let b =
            Event::from_queue_message(body, "0f8b6e4c-1d2a-4b7e-9c3f-5a6d7e8f9a0b", rules(), NOW)
                .expect("valid");
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.as_str(), "evt_0f8b6e4c-1d2a-4b7e-9c3f-5a6d7e8f9a0b");
    }

    #[test]
    fn stored_events_read_back() {
        let e = parse(r#"{"id":"evt_9","type":"ticket.created","urn":"urn:allthings:app:A1:ticket:CAT7:T99","data":{"a":1}}"#).expect("valid");
        let doc = String::from_utf8(e.delivery_body().expect("json")).expect("utf8");
        assert_eq!(Event::from_stored(&doc), Ok(e));
    }

    #[test]
    fn id_rules() {
        assert!(EventId::parse("evt_01JDK7Z3Q8W6V0N4B2C9D5E7F1").is_ok());
        assert!(EventId::parse("a.b:c-d_e").is_ok());
        assert!(EventId::parse(&"x".repeat(128)).is_ok());
        assert!(EventId::parse(&"x".repeat(129)).is_err());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a/b").is_err());
    }

    #[test]
    fn unknown_fields_and_malformed_json_are_refused_with_a_position() {
        let err =
            parse(r#"{"type":"ticket.created","urn":"urn:allthings:app:A1","data":{},"extra":1}"#)
                .unwrap_err();
        assert!(
            matches!(err, EventError::Malformed { ref message, .. } if message.contains("extra")),
            "{err:?}"
        );
        let err = parse("{\n  \"type\": }").unwrap_err();
        assert!(
            matches!(err, EventError::Malformed { line: 2, .. }),
            "{err:?}"
        );
        let err = parse(r#"{"urn":"urn:allthings:app:A1","data":{}}"#).unwrap_err();
        assert!(
            matches!(err, EventError::Malformed { ref message, .. } if message.contains("type")),
            "{err:?}"
        );
    }

    #[test]
    fn the_size_limit_is_256_kib() {
        let prefix = r#"{"type":"ticket.created","urn":"urn:allthings:app:A1","data":{"pad":""#;
        let suffix = r#""}}"#;
        let fill = MAX_EVENT_BYTES - prefix.len() - suffix.len();
        let body = format!("{prefix}{}{suffix}", "a".repeat(fill));
        assert_eq!(body.len(), MAX_EVENT_BYTES);
        assert!(Event::from_intake(body.as_bytes(), rules(), NOW).is_ok());
        let body = format!("{prefix}{}{suffix}", "a".repeat(fill + 1));
        assert_eq!(
            Event::from_intake(body.as_bytes(), rules(), NOW),
            Err(EventError::TooLarge {
                len: MAX_EVENT_BYTES + 1
            })
        );
    }
}
