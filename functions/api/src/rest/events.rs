//! `POST /v1/events` (intake) and `GET /v1/event-types` (the catalog).

use std::sync::Arc;

use super::*;

/// The event-type catalog.
#[utoipa::path(
    get, path = "/v1/event-types", tag = "events", operation_id = "listEventTypes",
    security(()),
    responses((status = 200, description = "The catalog", body = EventTypes))
)]
pub(crate) async fn event_types(State(s): State<Arc<Services>>) -> Response {
    json_response(
        StatusCode::OK,
        &EventTypes {
            items: s.webhooks.event_types(),
        },
    )
}

/// Publish an event (needs publish-events on its App); 202 once it is durable.
#[utoipa::path(
    post, path = "/v1/events", tag = "events", operation_id = "publishEvent",
    request_body = RawEvent,
    responses(
        (status = 202, description = "Accepted: durable, to be fanned out", body = Accepted),
        (status = "4XX", description = "Malformed (400), no token (401), no publish-events on the App (403), too large (413), not JSON (415), invalid (422)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Intake is full (the embedded runner's backpressure, after waiting up to a second for room): nothing was queued; send it again after `Retry-After` seconds", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before sending again"))),
    )
)]
pub(crate) async fn publish_event(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    JsonBytes(body): JsonBytes,
) -> Answer {
    let event = s.intake.publish(&p, &body).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &Accepted {
            id: event.id.to_string(),
        },
    ))
}
