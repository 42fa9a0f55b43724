//! The operational events (`webhook.disabled`, `webhook.enabled`, `webhook.suspended`,
//! `webhook.restored`, `webhook.app-purged`) that tell an App about its webhooks' health.

use time::OffsetDateTime;

use crate::event::{Event, EventId};
use crate::event_type::EventType;
use crate::urn::{Namespace, Urn};
use crate::webhook::WebhookId;

/// Types Hookline emits itself: never accepted from publishers over HTTP.
pub const OPERATIONAL_TYPES: [&str; 5] = [
    "webhook.disabled",
    "webhook.enabled",
    "webhook.suspended",
    "webhook.restored",
    "webhook.app-purged",
];

/// The operational events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operational {
    /// `webhook.disabled`.
    Disabled,
    /// `webhook.enabled`.
    Enabled,
    /// `webhook.suspended`.
    Suspended,
    /// `webhook.restored`.
    Restored,
    /// `webhook.app-purged`: another App the webhook named was purged; it keeps working for
    /// this one.
    AppPurged,
}

impl Operational {
    /// The event type's name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Disabled => OPERATIONAL_TYPES[0],
            Self::Enabled => OPERATIONAL_TYPES[1],
            Self::Suspended => OPERATIONAL_TYPES[2],
            Self::Restored => OPERATIONAL_TYPES[3],
            Self::AppPurged => OPERATIONAL_TYPES[4],
        }
    }
}

/// True for the types only Hookline emits.
pub fn is_operational(event_type: &EventType) -> bool {
    OPERATIONAL_TYPES.contains(&event_type.as_str())
}

/// The event about `webhook` for `app_id`: URN `urn:<nid>:app:<app>:webhook:<id>`, data
/// `{webhookId, appId, reason, ...extra}`.
pub fn operational_event(
    kind: Operational,
    webhook: &WebhookId,
    app_id: &str,
    reason: &str,
    extra: serde_json::Map<String, serde_json::Value>,
    namespace: &Namespace,
    now: OffsetDateTime,
) -> Result<Event, String> {
    let urn = Urn::parse(
        &format!(
            "urn:{}:app:{app_id}:webhook:{}",
            namespace.as_str(),
            webhook
        ),
        namespace,
    )
    .map_err(|e| e.to_string())?;
    let mut data = serde_json::Map::new();
    data.insert("webhookId".into(), webhook.as_str().into());
    data.insert("appId".into(), app_id.into());
    data.insert("reason".into(), reason.into());
    data.extend(extra);
    Ok(Event {
        id: EventId::generate(),
        event_type: EventType::parse_stored(kind.type_name()).map_err(|e| e.to_string())?,
        urn,
        timestamp: now,
        data: serde_json::Value::Object(data),
    })
}

/// The webhook an event of the `webhook.*` family is about (its `data.webhookId`): fan-out
/// never sends such an event to that webhook.
pub fn about_webhook(event: &Event) -> Option<&str> {
    if event.event_type.family() != "webhook" {
        return None;
    }
    event.data.get("webhookId").and_then(|v| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::PERMISSION_REVOKED;
    use time::macros::datetime;

    #[test]
    fn operational_events_name_their_webhook_and_app() {
        let id = WebhookId::generate();
        let e = operational_event(
            Operational::Suspended,
            &id,
            "A1",
            PERMISSION_REVOKED,
            serde_json::Map::new(),
            &Namespace::default(),
            datetime!(2026-11-26 12:00:00 UTC),
        )
        .expect("event");
        assert_eq!(e.event_type.as_str(), "webhook.suspended");
        assert_eq!(e.urn.app_id(), "A1");
        assert_eq!(
            e.urn.to_string(),
            format!("urn:allthings:app:A1:webhook:{id}")
        );
        assert_eq!(about_webhook(&e), Some(id.as_str()));
        assert_eq!(e.data["reason"], PERMISSION_REVOKED);
    }
}
