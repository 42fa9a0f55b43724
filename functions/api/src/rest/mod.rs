//! The REST API over [`WebhookService`] (one file per resource), and the GraphQL endpoint
//! ([`crate::graphql`], `POST /graphql` and `POST /`), as one `axum` router: `hookline serve`
//! serves it with `axum::serve`, the `api` Lambda with `lambda_http`. Each handler
//! carries its OpenAPI operation (`utoipa`), and the request and response types their schemas,
//! so [`openapi::openapi()`] generates the document from the code that serves the requests.
//!
//! The router serves the checked-in copy (`functions/api/openapi.json`), which a test keeps
//! equal to [`openapi::openapi()`]'s: the same bytes, without the document builder in the Lambda binary
//! or its init.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use hookline_core::delivery::Attempt;
use hookline_core::event::RawEvent;
use hookline_core::event_type::EventTypeInfo;
use hookline_core::grant::GrantInput;
use hookline_core::rules::{Ordering, RateLimit, RetryInput, WebhookRetry};
use hookline_core::sealed::Protected;
use hookline_core::stats::WebhookStats;
use hookline_core::webhook::{NewWebhook, Webhook, WebhookPatch};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use std::sync::Arc;

use hookline_core::lifecycle::Lifecycle;
use hookline_core::ports::{HttpSender, Ports};

use crate::admission::Admission;
use crate::auth::{Authenticated, Caller};
use crate::deliveries::{DeliveriesService, Queued};
use crate::graphql::GraphQl;
use crate::intake::IntakeService;
use crate::problem::{problems_only, Problem};
use crate::recovery::{JobView, Recovery, RecoveryService, WindowInput};
use crate::service::{ExternalIdGrant, ExternalIdInput, ProbeInput, ProbeReport, WebhookService};
use crate::settings::Settings;
use hookline_core::jobs::Jobs;
use hookline_core::timestamp::rfc3339;

mod caller;
mod contract;
mod deliveries;
mod events;
mod extract;
mod grants;
mod jobs;
pub mod openapi;
mod views;
mod webhooks;

use caller::*;
use deliveries::*;
use events::*;
use extract::*;
use grants::*;
use jobs::*;
use openapi::*;
use views::*;
use webhooks::*;

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The services the routes call, shared by every request (axum clones its state per request:
/// one `Arc` rather than every service's handles).
struct Services {
    webhooks: WebhookService,
    intake: IntakeService,
    deliveries: DeliveriesService,
    graphql: GraphQl,
    recovery: Option<RecoveryService>,
}

/// The API (REST and GraphQL) bound to its services: an `axum` router for the edges, and
/// [`Api::handle`] for callers that already know who is calling.
#[derive(Clone)]
pub struct Api {
    webhooks: WebhookService,
    routes: axum::Router,
}

impl Api {
    /// The routes over the webhook service, event intake and deliveries (without the
    /// background jobs, which need every port: [`Api::from_ports`] has them).
    pub fn new(
        service: WebhookService,
        intake: IntakeService,
        deliveries: DeliveriesService,
    ) -> Self {
        Self::build(service, intake, deliveries, None)
    }

    fn build(
        service: WebhookService,
        intake: IntakeService,
        deliveries: DeliveriesService,
        recovery: Option<RecoveryService>,
    ) -> Self {
        let with_jobs = recovery.is_some();
        let services = Services {
            webhooks: service.clone(),
            intake,
            graphql: GraphQl::new(service.clone(), deliveries.clone())
                .with_recovery(recovery.clone()),
            deliveries,
            recovery,
        };
        let mut routes = axum::Router::new();
        if with_jobs {
            routes = routes
                .route("/v1/webhooks/{id}/recover", post(recover))
                .route("/v1/webhooks/{id}/backfill", post(backfill))
                .route("/v1/jobs/{id}", get(get_job))
                .route("/v1/jobs/{id}/cancel", post(cancel_job))
                .route("/v1/apps/{appId}", delete(purge_app));
        }
        let routes = routes
            .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
            .route("/v1/webhooks/test", post(probe_url))
            .route("/v1/destinations/external-ids", post(issue_external_id))
            .route(
                "/v1/webhooks/{id}",
                get(get_webhook)
                    .patch(update_webhook)
                    .delete(delete_webhook),
            )
            .route("/v1/webhooks/{id}/secret/rotate", post(rotate_secret))
            .route("/v1/webhooks/{id}/enable", post(enable_webhook))
            .route("/v1/webhooks/{id}/disable", post(disable_webhook))
            .route("/v1/grants/revoke", post(revoke_grant))
            .route("/v1/grants/restore", post(restore_grant))
            .route("/v1/webhooks/{id}/test", post(send_test))
            .route("/v1/webhooks/{id}/deliveries", get(list_deliveries))
            .route("/v1/webhooks/{id}/stats", get(webhook_stats))
            .route(
                "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
                post(redeliver),
            )
            .route("/v1/event-types", get(event_types))
            .route("/v1/events", post(publish_event))
            .route("/v1/openapi.json", get(openapi_document))
            // The platform's public example posts to the root.
            .route("/graphql", post(graphql))
            .route("/", post(graphql).get(to_console))
            .route("/v1/me", get(who_am_i))
            .route("/v1/apps", get(list_apps))
            .merge(crate::console::routes())
            .fallback(no_route)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(Arc::new(services));
        // Wrapped whole, so the middleware sees the router's own answers (405 with Allow).
        let routes = axum::Router::new()
            .fallback_service(routes)
            .layer(axum::middleware::from_fn(problems_only))
            .layer(axum::middleware::from_fn(log_request));
        Self {
            webhooks: service,
            routes,
        }
    }

    /// The whole API over a composition's ports, wired once for every deployment: the webhook
    /// service (with the lifecycle), intake (asking `admission` for room, where there is
    /// backpressure) and the deliveries service.
    pub fn from_ports(
        ports: &Ports,
        http: Arc<dyn HttpSender>,
        settings: Settings,
        admission: Option<Arc<dyn Admission>>,
    ) -> Self {
        let mut intake = IntakeService::new(ports.event_queue.clone(), ports.namespace.clone());
        if let Some(admission) = admission {
            intake = intake.with_admission(admission);
        }
        let webhooks = WebhookService::new(
            ports.webhooks.clone(),
            http,
            ports.vault.clone(),
            Lifecycle::from_ports(ports),
            settings,
        );
        let webhooks = match &ports.destinations {
            Some(sender) => webhooks.with_destinations(sender.clone()),
            None => webhooks,
        };
        let deliveries = DeliveriesService::new(
            webhooks.clone(),
            ports.attempts.clone(),
            ports.events.clone(),
            ports.deliveries.clone(),
        );
        let recovery = RecoveryService::new(webhooks.clone(), Jobs::from_ports(ports));
        Self::build(webhooks, intake, deliveries, Some(recovery))
    }

    /// The service behind the routes.
    pub fn service(&self) -> &WebhookService {
        &self.webhooks
    }

    /// Every route, for an edge to add its [`crate::auth::Authenticate`] to
    /// ([`crate::auth::with_auth`]): without one, every caller is anonymous.
    pub fn routes(&self) -> axum::Router {
        self.routes.clone()
    }

    /// Serves one request from `caller`; never fails: every error is a problem+json response.
    pub async fn handle(&self, request: http::Request<Bytes>, caller: Caller) -> Response<Bytes> {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(caller);
        let request = Request::from_parts(parts, Body::from(body));
        let response = match self.routes.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "response body failed");
                Bytes::new()
            });
        Response::from_parts(parts, bytes)
    }
}

async fn no_route(request: Request) -> Problem {
    Problem::not_found(format!("no route {}", request.uri().path()))
}

/// One log line per request: method, path, status, latency.
async fn log_request(request: Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method, %path, status = response.status().as_u16(),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

type Answer = Result<Response, Problem>;

/// A GraphQL request: one operation (batching is off).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; async-graphql parses it
struct GraphQlRequest {
    /// The document, e.g. `mutation($webhook: RegisterWebhookInput!) { registerWebhook(webhook: $webhook) { code message success } }`.
    query: String,
    /// Which operation of the document to run.
    #[schema(rename = "operationName")]
    operation_name: Option<String>,
    /// The operation's variables.
    variables: Option<BTreeMap<String, serde_json::Value>>,
}

/// A GraphQL response: `data`, and `errors` (each with `extensions.code`). A refused mutation
/// is data: `success: false` with its `code`, `message` and `fieldErrors`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body; async-graphql writes it
struct GraphQlResponse {
    /// The selection's result.
    data: Option<serde_json::Value>,
    /// What went wrong.
    errors: Option<Vec<serde_json::Value>>,
}

/// Run a GraphQL query or mutation; `POST /` is the same endpoint. The schema is
/// functions/api/schema.graphql (introspection is on).
#[utoipa::path(
    post, path = "/graphql", tag = "graphql", operation_id = "graphql",
    request_body = GraphQlRequest,
    responses(
        (status = 200, description = "The operation ran: data and errors", body = GraphQlResponse),
        (status = "4XX", description = "Not a GraphQL request or a batch (400), no token (401), too large (413), not JSON (415)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn graphql(
    State(s): State<Arc<Services>>,
    Authenticated(p): Authenticated,
    JsonBytes(body): JsonBytes,
) -> Answer {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Problem::bad_request(
            "batching is off: send one operation per request",
        ));
    }
    let not_a_request = |e: &dyn std::fmt::Display| {
        Problem::bad_request(format!(
            "the body is not a GraphQL request {{\"query\", \"operationName\", \"variables\"}}: {e}"
        ))
    };
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| not_a_request(&e))?;
    // GraphQL over HTTP: a request names its document; without one it is a 400, not a
    // GraphQL error.
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return Err(not_a_request(&"\"query\" must be a string"));
    }
    let request: async_graphql::Request =
        serde_json::from_value(value).map_err(|e| not_a_request(&e))?;
    let response = s.graphql.execute(p, request).await;
    Ok(json_response(StatusCode::OK, &response))
}

/// The root, opened in a browser: the console (`POST /` is GraphQL).
async fn to_console() -> Response {
    axum::response::Redirect::to("/console").into_response()
}
