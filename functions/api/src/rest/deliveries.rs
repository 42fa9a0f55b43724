//! A webhook's test event, attempt log and redelivery.

use std::sync::Arc;

use super::*;

/// Send a signed webhook.test event through the real delivery path.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/test", tag = "deliveries", operation_id = "sendTestEvent",
    params(("id" = String, Path, description = "wh_<ULID>")),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = "4XX", description = "No token (401), not found (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn send_test(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let queued = s.deliveries.send_test(&p, &id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &queued))
}

/// The webhook's health over a window, from its attempt log.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/stats", tag = "deliveries", operation_id = "getWebhookStats",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("since" = Option<String>, Query, format = DateTime, description = "The window's start (RFC 3339; default: 24 hours ago). Not in the future, and not before the retention horizon (HOOKLINE_RETENTION, default 30 days): 422 otherwise"),
    ),
    responses(
        (status = 200, description = "Attempts sent, delivered and failed, the success rate, latency percentiles and hourly buckets, from the window's newest attemptLimit attempts", body = WebhookStats),
        (status = "4XX", description = "Malformed since (400), no token (401), not found (404), since in the future or beyond the retention (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn webhook_stats(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = Query::of(query);
    let stats = s.deliveries.stats(&p, &id, query.get("since")).await?;
    Ok(json_response(StatusCode::OK, &stats))
}

/// The webhook's delivery attempts, newest first.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/deliveries", tag = "deliveries", operation_id = "listDeliveries",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("status" = Option<hookline_core::delivery::AttemptStatus>, Query, description = "Only attempts that ended so"),
        ("cursor" = Option<String>, Query, description = "From the previous page's nextCursor"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of attempts", body = AttemptPage),
        (status = "4XX", description = "Bad parameter (400), no token (401), not found (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_deliveries(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = Query::of(query);
    let page = s
        .deliveries
        .list(
            &p,
            &id,
            query.get("status"),
            query.get("cursor"),
            query.limit()?,
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &AttemptPage {
            items: page.items,
            next_cursor: page.next.map(|c| c.0),
        },
    ))
}

/// Queue one delivery again, from the event log.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver", tag = "deliveries", operation_id = "redeliver",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("deliveryId" = String, Path, description = "dl_..., from the attempt log"),
    ),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = "4XX", description = "No token (401), not found (404), the event has left the event log (409)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn redeliver(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path((id, delivery)): Path<(String, String)>,
) -> Answer {
    let queued = s.deliveries.redeliver(&p, &id, &delivery).await?;
    Ok(json_response(StatusCode::ACCEPTED, &queued))
}
