//! `/v1/webhooks`: list, create, probe, read, change, delete, rotate, enable, disable.

use std::sync::Arc;

use super::*;

/// List the webhooks of an App you may edit, oldest first.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks", operation_id = "listWebhooks",
    params(
        ("appId" = String, Query, description = "The App"),
        ("cursor" = Option<String>, Query, description = "From the previous page's nextCursor"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
    ),
    responses(
        (status = 200, description = "A page", body = WebhookPage),
        (status = "4XX", description = "Bad parameter (400), no token (401), no edit-app on the App (403)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_webhooks(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = Query::of(query);
    let app = query
        .get("appId")
        .ok_or_else(|| Problem::bad_request("the appId query parameter is required"))?;
    let page = s
        .webhooks
        .list(&p, app, query.get("cursor"), query.limit()?)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &WebhookPage {
            items: page
                .items
                .iter()
                .map(|w| WebhookView::of(w, None))
                .collect(),
            next_cursor: page.next.map(|c| c.0),
        },
    ))
}

/// Create a webhook; the endpoint must answer 200 to HEAD or a signed webhook.test POST within
/// 5 s.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks", operation_id = "createWebhook",
    params(("appId" = Option<String>, Query, description = "The App it is created in; without urns the webhook covers urn:<nid>:app:<appId>:*")),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = WebhookView,
            headers(("location" = String, description = "/v1/webhooks/{id}"), ("etag" = String, description = "The version"))),
        (status = "4XX", description = "Malformed (400), no token (401), no edit-app on an App it names (403), conflict (409), too large (413), not JSON (415), invalid or the endpoint did not answer 200 (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_webhook(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    RawQuery(query): RawQuery,
    JsonBody(input): JsonBody<NewWebhook>,
) -> Answer {
    let query = Query::of(query);
    let created = s.webhooks.create(&p, &input, query.get("appId")).await?;
    let w = &created.webhook;
    let mut r = json_response(
        StatusCode::CREATED,
        &WebhookView::of(w, Some(created.secret.expose())),
    );
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/webhooks/{}", w.id)) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(with_etag(r, w.version))
}

/// Probe a URL (and headers) before saving: sends HEAD, then a signed webhook.test POST.
#[utoipa::path(
    post, path = "/v1/webhooks/test", tag = "webhooks", operation_id = "probeUrl",
    request_body = ProbeInput,
    responses(
        (status = 200, description = "What the endpoint answered (ok is true for a 200)", body = ProbeReport),
        (status = "4XX", description = "No token (401), no edit-app on any App (403), invalid URL or headers (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn probe_url(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<ProbeInput>,
) -> Answer {
    let report = s.webhooks.test_url(&p, &input).await?;
    Ok(json_response(StatusCode::OK, &report))
}

/// Issue an external id for an AWS destination's role: the trust policy to give the role
/// (and the permission policy, given the destination's type and ARN).
#[utoipa::path(
    post, path = "/v1/destinations/external-ids", tag = "webhooks", operation_id = "issueExternalId",
    request_body = ExternalIdInput,
    responses(
        (status = 201, description = "A new external id for the App's destinations", body = ExternalIdGrant),
        (status = "4XX", description = "Bad App id or no AWS destinations here (400), no token (401), no edit-app on the App (403), bad type or ARN (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn issue_external_id(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<ExternalIdInput>,
) -> Answer {
    let grant = s.webhooks.issue_external_id(&p, &input).await?;
    Ok(json_response(StatusCode::CREATED, &grant))
}

/// Read a webhook.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "getWebhook",
    params(("id" = String, Path, description = "wh_<ULID>")),
    responses(
        (status = 200, description = "The webhook", body = WebhookView, headers(("etag" = String, description = "The version"))),
        (status = "4XX", description = "No token (401), not found or not yours (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_webhook(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Answer {
    Ok(webhook_answer(&s.webhooks.get(&p, &id).await?))
}

/// Change some fields; a changed URL or headers is checked like on create.
#[utoipa::path(
    patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "updateWebhook",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 if it changed since"),
    ),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The webhook as changed", body = WebhookView, headers(("etag" = String, description = "The version"))),
        (status = "4XX", description = "Malformed (400), no token (401), no edit-app on an App it names (403), not found (404), conflict (409), version changed (412), too large (413), not JSON (415), invalid (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn update_webhook(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<WebhookPatch>,
) -> Answer {
    let if_match = parse_if_match(&headers)?;
    Ok(webhook_answer(
        &s.webhooks.update(&p, &id, &patch, if_match).await?,
    ))
}

/// Delete a webhook; it receives nothing more.
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "deleteWebhook",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 if it changed since"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = "4XX", description = "No token (401), not found (404), version changed (412)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_webhook(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let if_match = parse_if_match(&headers)?;
    s.webhooks.delete(&p, &id, if_match).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Make a new signing secret; the old one keeps signing for the overlap (24 h by default).
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/secret/rotate", tag = "webhooks", operation_id = "rotateSecret",
    params(("id" = String, Path, description = "wh_<ULID>")),
    responses(
        (status = 200, description = "The webhook with its new secret, shown this once", body = WebhookView),
        (status = "4XX", description = "No token (401), not found (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn rotate_secret(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let created = s.webhooks.rotate_secret(&p, &id).await?;
    let w = &created.webhook;
    Ok(with_etag(
        json_response(
            StatusCode::OK,
            &WebhookView::of(w, Some(created.secret.expose())),
        ),
        w.version,
    ))
}

/// Turn deliveries back on: clears the reason and the failure run; emits webhook.enabled.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/enable", tag = "webhooks", operation_id = "enableWebhook",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 if it changed since"),
    ),
    responses(
        (status = 200, description = "The webhook, enabled (unchanged if it was)", body = WebhookView, headers(("etag" = String, description = "The version"))),
        (status = "4XX", description = "No token (401), the platform revoked your permission on an App it names (403), not found (404), version changed (412)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn enable_webhook(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let if_match = parse_if_match(&headers)?;
    Ok(webhook_answer(
        &s.webhooks.set_enabled(&p, &id, true, if_match).await?,
    ))
}

/// Turn deliveries off by hand (disabledReason manual); emits webhook.disabled.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/disable", tag = "webhooks", operation_id = "disableWebhook",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("If-Match" = Option<String>, Header, description = "The ETag read; 412 if it changed since"),
    ),
    responses(
        (status = 200, description = "The webhook, disabled (unchanged if it was)", body = WebhookView, headers(("etag" = String, description = "The version"))),
        (status = "4XX", description = "No token (401), the platform revoked your permission on an App it names (403), not found (404), version changed (412)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn disable_webhook(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let if_match = parse_if_match(&headers)?;
    Ok(webhook_answer(
        &s.webhooks.set_enabled(&p, &id, false, if_match).await?,
    ))
}
