//! The REST routes of DESIGN §4 over [`WebhookService`], and the GraphQL endpoint
//! ([`crate::graphql`], `POST /graphql` and `POST /`), as one `axum` router: `hookline serve`
//! serves it with `axum::serve`, the `api` Lambda with `lambda_http`. Each handler
//! carries its OpenAPI operation (`utoipa`), and the request and response types their schemas,
//! so [`openapi`] generates the document from the code that serves the requests.
//!
//! The router serves the checked-in copy (`functions/api/openapi.json`), which a test keeps
//! equal to [`openapi`]'s: the same bytes, without the document builder in the Lambda binary
//! or its init.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hookline_core::event::RawEvent;
use hookline_core::event_type::EventTypeInfo;
use hookline_core::lifecycle::GrantInput;
use hookline_core::ports::Attempt;
use hookline_core::rules::{Ordering, RateLimit, RetryInput, WebhookRetry};
use hookline_core::webhook::{NewWebhook, Webhook, WebhookPatch};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::{Authenticated, Caller};
use crate::deliveries::{DeliveriesService, Queued};
use crate::graphql::GraphQl;
use crate::intake::IntakeService;
use crate::problem::{problems_only, Problem};
use crate::service::{ProbeInput, ProbeReport, WebhookService};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The services the routes call.
#[derive(Clone)]
struct Services {
    webhooks: WebhookService,
    intake: IntakeService,
    deliveries: DeliveriesService,
    graphql: GraphQl,
}

/// The API (REST and GraphQL) bound to its services: an `axum` router for the edges, and
/// [`Router::handle`] for callers that already know who is calling.
#[derive(Clone)]
pub struct Router {
    webhooks: WebhookService,
    routes: axum::Router,
}

impl Router {
    /// The routes over the webhook service, event intake and deliveries.
    pub fn new(
        service: WebhookService,
        intake: IntakeService,
        deliveries: DeliveriesService,
    ) -> Self {
        let services = Services {
            webhooks: service.clone(),
            intake,
            graphql: GraphQl::new(service.clone(), deliveries.clone()),
            deliveries,
        };
        let routes = axum::Router::new()
            .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
            .route("/v1/webhooks/test", post(probe_url))
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
            .merge(crate::console::routes())
            .fallback(no_route)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(services);
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

/// The OpenAPI 3.1 document of every route, generated from the handlers and types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// [`openapi`] as pretty JSON with a final newline: what `functions/api/openapi.json` holds.
pub fn openapi_json() -> String {
    let mut json = openapi().to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document did not serialize");
        String::from("{}")
    });
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
    // The operations, as `Router::new` routes them (a test checks the two agree).
    paths(
        list_webhooks, create_webhook, probe_url, get_webhook, update_webhook, delete_webhook,
        rotate_secret, enable_webhook, disable_webhook, send_test, list_deliveries, redeliver,
        event_types, publish_event, revoke_grant, restore_grant, openapi_document, graphql,
        who_am_i
    ),
    tags(
        (name = "webhooks", description = "Subscriptions: an endpoint, event types and URN patterns"),
        (name = "deliveries", description = "A webhook's attempt log, redelivery and test events"),
        (name = "events", description = "Event intake and the event-type catalog"),
        (name = "caller", description = "Who the token is"),
        (name = "grants", description = "The platform reports revoked and restored permissions (manage-grants)"),
        (name = "graphql", description = "The same subscriptions as GraphQL (schema: functions/api/schema.graphql)"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the document's `security` refers to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Claims: sub, and permissions (space-separated: edit-app:<appId>, edit-app:*, publish-events:<appId>, manage-grants:*)."))
                    .build(),
            ),
        );
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

/// A webhook as the API shows it: never its secrets, but the new one once on create and
/// rotation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Webhook)]
struct WebhookView {
    /// `wh_<ULID>`.
    #[schema(example = "wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB")]
    id: String,
    /// A name for people.
    name: String,
    /// The endpoint.
    url: String,
    /// `*`, `family.*` or catalog types.
    event_types: Vec<String>,
    /// URN patterns, one App each.
    urns: Vec<String>,
    /// `X-` headers sent with every delivery.
    custom_headers: BTreeMap<String, String>,
    /// Whether deliveries go out.
    enabled: bool,
    /// Why it is disabled: `manual` (by hand), `failing` (its deliveries kept failing),
    /// `gone` (the endpoint answered 410).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "failing")]
    disabled_reason: Option<String>,
    /// Since when it is disabled (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
    /// The delivery error that disabled it (`failing`, `gone`).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// The current run of failed deliveries, on a single webhook's read (not in listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    failing: Option<FailingView>,
    /// Apps it receives nothing from, because its owner's permission there was revoked.
    suspended: Vec<SuspensionView>,
    /// Only events matching this content pattern over the envelope are delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"data": {"priority": ["high", "urgent"]}}))]
    filter: Option<serde_json::Value>,
    /// Its own retry schedule (absent: the deployment's).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<RetryInput>,
    /// Its rate limit (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimit>,
    /// Whether its deliveries keep the events' order.
    ordering: Ordering,
    /// Bumped by every change; the ETag.
    version: u64,
    /// The `sub` that created it.
    owner: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    updated_at: String,
    /// The signing secret (`whsec_...`), in the answers to create and rotate only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_")]
    secret: Option<String>,
}

/// A run of failed deliveries; any 2xx ends it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FailingView {
    /// Its first failure (RFC 3339).
    #[schema(format = DateTime)]
    since: String,
    /// Failures in the run (final failures and exhausted retries).
    failures: u32,
    /// The latest failure's error.
    last_error: Option<String>,
}

/// The webhook receives nothing from this App.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SuspensionView {
    /// The App.
    app_id: String,
    /// Why: `permission revoked`.
    reason: String,
    /// Since when (RFC 3339).
    #[schema(format = DateTime)]
    since: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl WebhookView {
    fn of(w: &Webhook, secret: Option<String>) -> Self {
        Self {
            id: w.id.to_string(),
            name: w.spec.name.clone(),
            url: w.spec.url.to_string(),
            event_types: w.spec.event_types.iter().map(ToString::to_string).collect(),
            urns: w.spec.urns.iter().map(ToString::to_string).collect(),
            custom_headers: w
                .spec
                .custom_headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            enabled: w.spec.enabled,
            disabled_reason: w.state.disabled_reason().map(str::to_owned),
            disabled_at: w.state.disabled_at().map(rfc3339),
            last_error: w.state.last_error().map(str::to_owned),
            failing: w.state.failures.as_ref().map(|r| FailingView {
                since: rfc3339(r.since),
                failures: r.failures,
                last_error: r.last_error.clone(),
            }),
            filter: w.spec.filter.as_ref().map(|f| f.pattern().clone()),
            retry: w.spec.retry.as_ref().map(WebhookRetry::to_input),
            rate_limit: w.spec.rate_limit,
            ordering: w.spec.ordering,
            suspended: w
                .state
                .suspended
                .iter()
                .map(|s| SuspensionView {
                    app_id: s.app_id.clone(),
                    reason: s.reason.clone(),
                    since: rfc3339(s.since),
                })
                .collect(),
            version: w.version,
            owner: w.owner.clone(),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            secret,
        }
    }
}

/// A page of webhooks.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookPage {
    items: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

/// A page of the attempt log, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttemptPage {
    items: Vec<Attempt>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

/// The event-type catalog.
#[derive(Serialize, ToSchema)]
struct EventTypes<'a> {
    items: &'a [EventTypeInfo],
}

/// An event was accepted: it is durable and will be fanned out.
#[derive(Serialize, ToSchema)]
struct Accepted {
    /// The event id (assigned when the body had none).
    #[schema(example = "evt_01KAXR5V6N9R3Q8ZC2W4E7T1YB")]
    id: String,
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "response did not serialize");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "response did not serialize",
            )
            .into_response()
        }
    }
}

/// 200 with the webhook (never its secret) and its version as the ETag.
fn webhook_answer(w: &Webhook) -> Response {
    with_etag(
        json_response(StatusCode::OK, &WebhookView::of(w, None)),
        w.version,
    )
}

fn with_etag(mut r: Response, version: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn is_json(headers: &HeaderMap) -> Result<(), Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = ct.map(|c| {
        c.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(e) if e.starts_with("application/") && e.ends_with("+json") => Ok(()),
        _ => Err(Problem::unsupported_media_type(ct)),
    }
}

/// A JSON request body: 415 unless it says JSON, 413 over [`MAX_BODY_BYTES`], the raw bytes.
struct JsonBytes(Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        is_json(request.headers())?;
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::too_large(MAX_BODY_BYTES)
                } else {
                    Problem::bad_request(format!("the body could not be read: {e}"))
                }
            })
    }
}

/// A JSON request body parsed into `T`, unknown fields refused (400 naming what is wrong).
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let JsonBytes(body) = JsonBytes::from_request(request, state).await?;
        serde_json::from_slice(&body).map(Self).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "the body does not match the schema",
                serde_json::error::Category::Eof => "the body ends too early",
                _ => "the body is not valid JSON",
            };
            Problem::bad_request(format!("{what}: {e}"))
        })
    }
}

fn parse_if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Problem::bad_request("If-Match is not text"))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<u64>()
        .map(Some)
        .map_err(|_| {
            Problem::bad_request(format!("If-Match {text} is not an ETag this API returned"))
        })
}

/// The query string's parameters (the last of a repeated name wins).
struct Query(BTreeMap<String, String>);

impl Query {
    fn of(raw: Option<String>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn limit(&self) -> Result<Option<usize>, Problem> {
        self.get("limit")
            .map(|l| {
                l.parse::<usize>()
                    .map_err(|_| Problem::bad_request(format!("limit \"{l}\" is not a number")))
            })
            .transpose()
    }
}

type Answer = Result<Response, Problem>;

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
async fn list_webhooks(
    State(s): State<Services>,
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
async fn create_webhook(
    State(s): State<Services>,
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
async fn probe_url(
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<ProbeInput>,
) -> Answer {
    let report = s.webhooks.test_url(&p, &input).await?;
    Ok(json_response(StatusCode::OK, &report))
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
async fn get_webhook(
    State(s): State<Services>,
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
async fn update_webhook(
    State(s): State<Services>,
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
async fn delete_webhook(
    State(s): State<Services>,
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
async fn rotate_secret(
    State(s): State<Services>,
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
async fn enable_webhook(
    State(s): State<Services>,
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
async fn disable_webhook(
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let if_match = parse_if_match(&headers)?;
    Ok(webhook_answer(
        &s.webhooks.set_enabled(&p, &id, false, if_match).await?,
    ))
}

/// What a grant change did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct GrantChanged {
    /// The client.
    sub: String,
    /// The App.
    app_id: String,
    /// True after a revocation, false after a restore.
    revoked: bool,
    /// The client's webhooks on that App now suspended (revoke) or resumed (restore).
    webhooks: Vec<String>,
}

async fn change_grant(
    s: &Services,
    p: &hookline_core::auth::Principal,
    input: &GrantInput,
    revoked: bool,
) -> Answer {
    let outcome = s.webhooks.change_grant(p, input, revoked).await?;
    Ok(json_response(
        StatusCode::OK,
        &GrantChanged {
            sub: outcome.change.sub,
            app_id: outcome.change.app_id,
            revoked,
            webhooks: outcome.webhooks.iter().map(ToString::to_string).collect(),
        },
    ))
}

/// The platform revoked a client's permission on an App: its webhooks there are suspended
/// from the next event on, and it may not create more there until the grant is restored.
#[utoipa::path(
    post, path = "/v1/grants/revoke", tag = "grants", operation_id = "revokeGrant",
    request_body = GrantInput,
    responses(
        (status = 200, description = "Recorded; the webhooks suspended by it", body = GrantChanged),
        (status = "4XX", description = "Malformed (400), no token (401), no manage-grants on the App (403), not JSON (415), invalid (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_grant(
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<GrantInput>,
) -> Answer {
    change_grant(&s, &p, &input, true).await
}

/// The platform gave a client its permission back: its webhooks there resume with the next
/// event (events published meanwhile are not replayed).
#[utoipa::path(
    post, path = "/v1/grants/restore", tag = "grants", operation_id = "restoreGrant",
    request_body = GrantInput,
    responses(
        (status = 200, description = "Recorded; the webhooks resumed by it", body = GrantChanged),
        (status = "4XX", description = "Malformed (400), no token (401), no manage-grants on the App (403), not JSON (415), invalid (422)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore_grant(
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    JsonBody(input): JsonBody<GrantInput>,
) -> Answer {
    change_grant(&s, &p, &input, false).await
}

/// Send a signed webhook.test event through the real delivery path.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/test", tag = "deliveries", operation_id = "sendTestEvent",
    params(("id" = String, Path, description = "wh_<ULID>")),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = "4XX", description = "No token (401), not found (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn send_test(
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let queued = s.deliveries.send_test(&p, &id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &queued))
}

/// The webhook's delivery attempts, newest first.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/deliveries", tag = "deliveries", operation_id = "listDeliveries",
    params(
        ("id" = String, Path, description = "wh_<ULID>"),
        ("status" = Option<hookline_core::ports::AttemptStatus>, Query, description = "Only attempts that ended so"),
        ("cursor" = Option<String>, Query, description = "From the previous page's nextCursor"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
    ),
    responses(
        (status = 200, description = "A page of attempts", body = AttemptPage),
        (status = "4XX", description = "Bad parameter (400), no token (401), not found (404)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_deliveries(
    State(s): State<Services>,
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
async fn redeliver(
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    Path((id, delivery)): Path<(String, String)>,
) -> Answer {
    let queued = s.deliveries.redeliver(&p, &id, &delivery).await?;
    Ok(json_response(StatusCode::ACCEPTED, &queued))
}

/// The event-type catalog.
#[utoipa::path(
    get, path = "/v1/event-types", tag = "events", operation_id = "listEventTypes",
    security(()),
    responses((status = 200, description = "The catalog", body = EventTypes))
)]
async fn event_types(State(s): State<Services>) -> Response {
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
async fn publish_event(
    State(s): State<Services>,
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

/// This document.
#[utoipa::path(
    get, path = "/v1/openapi.json", operation_id = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_document() -> Response {
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
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

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
    State(s): State<Services>,
    Authenticated(p): Authenticated,
    JsonBytes(body): JsonBytes,
) -> Answer {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Problem::bad_request(
            "batching is off: send one operation per request",
        ));
    }
    let request: async_graphql::Request = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_request(format!(
            "the body is not a GraphQL request {{\"query\", \"operationName\", \"variables\"}}: {e}"
        ))
    })?;
    let response = s.graphql.execute(p, request).await;
    Ok(json_response(StatusCode::OK, &response))
}

/// The root, opened in a browser: the console (`POST /` is GraphQL).
async fn to_console() -> Response {
    axum::response::Redirect::to("/console").into_response()
}

/// Who a token is.
#[derive(Serialize, ToSchema)]
struct Me {
    /// The token's `sub`.
    sub: String,
    /// Its grants (`edit-app:A1`, `edit-app:*`, `publish-events:A1`, `manage-grants:*`).
    permissions: Vec<String>,
}

/// Who the token is: its subject and permissions (the console picks the App from them).
#[utoipa::path(
    get, path = "/v1/me", tag = "caller", operation_id = "whoAmI",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = "4XX", description = "No token (401)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn who_am_i(Authenticated(p): Authenticated) -> Response {
    json_response(
        StatusCode::OK,
        &Me {
            permissions: p
                .permissions_claim()
                .split(' ')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
            sub: p.sub,
        },
    )
}
