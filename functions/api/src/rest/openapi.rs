//! The OpenAPI 3.1 document: generated from the handlers' annotations ([`openapi()`]), and
//! served as the checked-in copy a test keeps equal to it.

use super::*;

/// The OpenAPI 3.1 document of every route, generated from the handlers and types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// [`openapi()`] with the validators' constraints and links written in
/// (`rest::contract::tighten`), as pretty JSON with a final newline: what
/// `functions/api/openapi.json` holds.
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document did not serialize");
        serde_json::Value::Object(serde_json::Map::new())
    });
    super::contract::tighten(&mut doc);
    let mut json = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| String::from("{}"));
    json.push('\n');
    json
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookline API",
        description = "Webhook subscriptions scoped by URN patterns and event types. Errors are RFC 9457 application/problem+json. Unknown JSON fields are rejected.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    servers((url = "http://127.0.0.1:8080", description = "hookline serve")),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    // The operations, as `Api::new` routes them (a test checks the two agree).
    paths(
        webhooks::list_webhooks, webhooks::create_webhook, webhooks::probe_url,
        webhooks::issue_external_id,
        webhooks::get_webhook, webhooks::update_webhook, webhooks::delete_webhook,
        webhooks::rotate_secret, webhooks::enable_webhook, webhooks::disable_webhook,
        deliveries::send_test, deliveries::list_deliveries, deliveries::webhook_stats,
        deliveries::redeliver, jobs::recover, jobs::backfill, jobs::get_job, jobs::cancel_job,
        jobs::purge_app,
        events::event_types, events::publish_event, grants::revoke_grant, grants::restore_grant,
        openapi_document, graphql, caller::who_am_i, caller::list_apps
    ),
    tags(
        (name = "webhooks", description = "Subscriptions: an endpoint, event types and URN patterns"),
        (name = "deliveries", description = "A webhook's attempt log, health, redelivery and test events"),
        (name = "jobs", description = "Background jobs: recover a webhook's failed deliveries in bulk, send it past events, purge an App"),
        (name = "events", description = "Event intake and the event-type catalog"),
        (name = "caller", description = "Who the token is"),
        (name = "grants", description = "The platform reports revoked and restored permissions (manage-grants)"),
        (name = "graphql", description = "The same subscriptions as GraphQL (schema: functions/api/schema.graphql)"),
    )
)]
pub(crate) struct ApiDoc;

/// The `bearer` security scheme the document's `security` refers to.
pub(crate) struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Claims: sub, and permissions (space-separated: edit-app:<appId>, edit-app:*, publish-events:<appId>, manage-grants:*, manage-apps:*)."))
                    .build(),
            ),
        );
    }
}

/// This document.
#[utoipa::path(
    get, path = "/v1/openapi.json", operation_id = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn openapi_document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// The checked-in document, equal to [`openapi_json`] (a test keeps them so).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");
