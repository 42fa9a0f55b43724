//! A webhook's deliveries: the attempt log (`GET /v1/webhooks/{id}/deliveries`) and the
//! health computed from it (`.../stats`), redelivery
//! from the event log, and test events sent through the real delivery path.

use std::sync::Arc;

use hookline_core::auth::Principal;
use hookline_core::delivery::{Attempt, AttemptStatus, DeliveryId, DeliveryMessage};
use hookline_core::event::{Event, EventId};
use hookline_core::event_type::EventType;
use hookline_core::ports::{AttemptLog, Cursor, DeliveryQueue, EventLog, Page};
use hookline_core::retention::Retention;
use hookline_core::stats::{self, WebhookStats};
use hookline_core::timestamp::rfc3339;
use hookline_core::urn::Urn;
use hookline_core::validation::{FieldError, ValidationErrors};
use time::OffsetDateTime;

use crate::error::ServiceError;
use crate::service::{page_size, WebhookService};

/// How long a test event stays in the event log.
pub const TEST_EVENT_TTL: time::Duration = time::Duration::days(1);

/// The deliveries service.
#[derive(Clone)]
pub struct DeliveriesService {
    webhooks: WebhookService,
    attempts: Arc<dyn AttemptLog>,
    events: Arc<dyn EventLog>,
    queue: Arc<dyn DeliveryQueue>,
}

/// A delivery that was (re)queued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    /// The delivery.
    #[schema(value_type = String)]
    pub delivery_id: DeliveryId,
    /// Its event (the `webhook-id` header the endpoint will see).
    #[schema(value_type = String)]
    pub event_id: EventId,
}

impl DeliveriesService {
    /// The service over the attempt log, the event log and the deliveries queue; webhook
    /// visibility is checked through `webhooks`.
    pub fn new(
        webhooks: WebhookService,
        attempts: Arc<dyn AttemptLog>,
        events: Arc<dyn EventLog>,
        queue: Arc<dyn DeliveryQueue>,
    ) -> Self {
        Self {
            webhooks,
            attempts,
            events,
            queue,
        }
    }

    /// The webhook's attempts, newest first, optionally of one status.
    pub async fn list(
        &self,
        principal: &Principal,
        webhook_id: &str,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<Attempt>, ServiceError> {
        let webhook = self.webhooks.get(principal, webhook_id).await?;
        let status = parse_status(status)?;
        let limit = page_size(limit)?;
        let cursor = cursor
            .map(|c| {
                ulid::Ulid::from_string(c)
                    .map(|_| Cursor(c.to_owned()))
                    .map_err(|_| {
                        ServiceError::BadRequest(format!(
                            "cursor \"{c}\" is not one this API returned"
                        ))
                    })
            })
            .transpose()?;
        Ok(self
            .attempts
            .list(&webhook.id, status, cursor.as_ref(), limit)
            .await?)
    }

    /// How many attempts [`Self::list`] walks through in all its pages, optionally of one
    /// status.
    pub async fn count(
        &self,
        principal: &Principal,
        webhook_id: &str,
        status: Option<&str>,
    ) -> Result<u64, ServiceError> {
        let webhook = self.webhooks.get(principal, webhook_id).await?;
        let status = parse_status(status)?;
        Ok(self.attempts.count(&webhook.id, status).await?)
    }

    /// The webhook's health since `since` (RFC 3339; default: [`stats::DEFAULT_WINDOW`] ago),
    /// from the newest [`stats::MAX_ATTEMPTS`] attempts of the window. `since` must not be in
    /// the future nor further back than the attempt log keeps attempts.
    pub async fn stats(
        &self,
        principal: &Principal,
        webhook_id: &str,
        since: Option<&str>,
    ) -> Result<WebhookStats, ServiceError> {
        let webhook = self.webhooks.get(principal, webhook_id).await?;
        let until = OffsetDateTime::now_utc();
        let since = stats_since(since, until, self.webhooks.settings().retention)?;
        let mut read: Vec<Attempt> = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut truncated = false;
        loop {
            let page = self
                .attempts
                .list(&webhook.id, None, cursor.as_ref(), STATS_PAGE)
                .await?;
            let older = page.items.last().is_some_and(|a| a.at < since);
            read.extend(page.items.into_iter().filter(|a| a.at >= since));
            if read.len() >= stats::MAX_ATTEMPTS {
                truncated = read.len() > stats::MAX_ATTEMPTS || (page.next.is_some() && !older);
                read.truncate(stats::MAX_ATTEMPTS);
                break;
            }
            match page.next {
                Some(next) if !older => cursor = Some(next),
                _ => break,
            }
        }
        Ok(WebhookStats::compute(&read, since, until, truncated))
    }

    /// Queues a delivery again from the event log (e.g. after fixing the endpoint).
    pub async fn redeliver(
        &self,
        principal: &Principal,
        webhook_id: &str,
        delivery_id: &str,
    ) -> Result<Queued, ServiceError> {
        let webhook = self.webhooks.get(principal, webhook_id).await?;
        let not_found =
            || ServiceError::NotFound(format!("webhook {webhook_id}'s delivery {delivery_id}"));
        let delivery = DeliveryId::parse(delivery_id).ok_or_else(not_found)?;
        let (event_id, attempts) = self
            .attempts
            .last_attempt(&webhook.id, &delivery)
            .await?
            .ok_or_else(not_found)?;
        let Some(event) = self.events.get(&event_id).await? else {
            return Err(ServiceError::Conflict(format!(
                "event {event_id} is no longer in the event log, so delivery {delivery} cannot be sent again"
            )));
        };
        let group = webhook
            .spec
            .ordering
            .group(webhook.id.as_str(), &event.urn.to_string());
        let message = DeliveryMessage {
            prior_attempts: attempts,
            ..DeliveryMessage::first(&event_id, &webhook.id, group)
        };
        self.send(message).await?;
        tracing::info!(webhook_id = %webhook.id, delivery_id = %delivery, event_id = %event_id, "redelivery queued");
        Ok(Queued {
            delivery_id: delivery,
            event_id,
        })
    }

    /// Sends a `webhook.test` event to the webhook through the real delivery path.
    pub async fn send_test(
        &self,
        principal: &Principal,
        webhook_id: &str,
    ) -> Result<Queued, ServiceError> {
        let webhook = self.webhooks.get(principal, webhook_id).await?;
        let pattern = webhook
            .spec
            .urns
            .first()
            .ok_or_else(|| ServiceError::Conflict("the webhook has no URN".into()))?;
        let now = OffsetDateTime::now_utc();
        let event = Event {
            id: EventId::generate(),
            event_type: EventType::parse_stored("webhook.test")
                .map_err(|e| ServiceError::BadRequest(e.to_string()))?,
            urn: Urn::clone(pattern.prefix()),
            timestamp: now,
            data: serde_json::json!({"message": "This is a test event from Hookline.", "webhookId": webhook.id}),
        };
        self.events
            .claim(&event, now + TEST_EVENT_TTL, std::time::Duration::ZERO)
            .await?;
        self.events.mark_fanned_out(&event.id).await?;
        let group = webhook
            .spec
            .ordering
            .group(webhook.id.as_str(), &event.urn.to_string());
        let message = DeliveryMessage::first(&event.id, &webhook.id, group);
        let queued = Queued {
            delivery_id: message.delivery_id.clone(),
            event_id: event.id.clone(),
        };
        self.send(message).await?;
        tracing::info!(webhook_id = %webhook.id, event_id = %event.id, "test event queued");
        Ok(queued)
    }

    async fn send(&self, message: DeliveryMessage) -> Result<(), ServiceError> {
        let unsent = self
            .queue
            .send_deliveries(std::slice::from_ref(&message))
            .await?;
        if unsent.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Store(
                hookline_core::ports::PortError::Unavailable(
                    "the deliveries queue did not accept the message".into(),
                ),
            ))
        }
    }
}

/// Attempts read per page by [`DeliveriesService::stats`].
const STATS_PAGE: usize = 1_000;

/// The start of a stats window: `since` as given (RFC 3339), or the default window.
fn stats_since(
    since: Option<&str>,
    now: OffsetDateTime,
    retention: Retention,
) -> Result<OffsetDateTime, ServiceError> {
    let Some(text) = since else {
        return Ok(now - stats::DEFAULT_WINDOW);
    };
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(
        |_| {
            ServiceError::BadRequest(format!(
                "since \"{text}\" is not an RFC 3339 time (2026-12-03T10:00:00Z)"
            ))
        },
    )?;
    let invalid = |why: String| {
        ServiceError::Invalid(ValidationErrors::new(vec![FieldError::new("since", why)]))
    };
    if at > now {
        return Err(invalid(format!("{text} is in the future")));
    }
    let horizon = retention.horizon(now);
    if at < horizon {
        return Err(invalid(format!(
            "{text} is before the retention horizon {} (attempts are kept {})",
            rfc3339(horizon),
            retention.describe()
        )));
    }
    Ok(at)
}

fn parse_status(status: Option<&str>) -> Result<Option<AttemptStatus>, ServiceError> {
    status
        .map(|s| {
            AttemptStatus::parse(s).ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "status \"{s}\" is not one of delivered, retrying, failed, exhausted, gone, skipped"
                ))
            })
        })
        .transpose()
}
