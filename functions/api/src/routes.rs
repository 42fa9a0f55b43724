//! The REST routes of DESIGN §4 over [`WebhookService`], on plain `http` types so the same
//! code serves API Gateway (through `lambda_http`) and `hookline serve` (through hyper).

use std::collections::BTreeMap;

use bytes::Bytes;
use hookline_core::auth::Principal;
use hookline_core::webhook::{NewWebhook, Webhook, WebhookPatch};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::deliveries::DeliveriesService;
use crate::intake::IntakeService;
use crate::problem::Problem;
use crate::service::{ProbeInput, WebhookService};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The OpenAPI 3.1 document served at `GET /v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Every route the router serves: path template and methods. The OpenAPI document must list
/// exactly these (a test compares them).
pub const ROUTES: &[(&str, &[Method])] = &[
    ("/v1/webhooks", &[Method::GET, Method::POST]),
    ("/v1/webhooks/test", &[Method::POST]),
    (
        "/v1/webhooks/{id}",
        &[Method::GET, Method::PATCH, Method::DELETE],
    ),
    ("/v1/webhooks/{id}/secret/rotate", &[Method::POST]),
    ("/v1/webhooks/{id}/test", &[Method::POST]),
    ("/v1/webhooks/{id}/deliveries", &[Method::GET]),
    (
        "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
        &[Method::POST],
    ),
    ("/v1/event-types", &[Method::GET]),
    ("/v1/events", &[Method::POST]),
    ("/v1/openapi.json", &[Method::GET]),
];

/// Who is calling, as the edge found out.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A verified principal.
    Principal(Principal),
    /// No credentials were sent.
    Anonymous,
    /// Credentials were sent but refused; the reason is safe to show.
    Refused(String),
}

/// The routes, bound to one service.
#[derive(Clone)]
pub struct Router {
    service: WebhookService,
    intake: IntakeService,
    deliveries: DeliveriesService,
}

enum Endpoint {
    Webhooks,
    ProbeUrl,
    Webhook(String),
    RotateSecret(String),
    SendTest(String),
    Deliveries(String),
    Redeliver(String, String),
    EventTypes,
    Events,
    OpenApi,
}

fn match_path(path: &str) -> Option<(Endpoint, &'static [Method])> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (endpoint, index) = match segments.as_slice() {
        ["v1", "webhooks"] => (Endpoint::Webhooks, 0),
        ["v1", "webhooks", "test"] => (Endpoint::ProbeUrl, 1),
        ["v1", "webhooks", id] => (Endpoint::Webhook((*id).to_owned()), 2),
        ["v1", "webhooks", id, "secret", "rotate"] => (Endpoint::RotateSecret((*id).to_owned()), 3),
        ["v1", "webhooks", id, "test"] => (Endpoint::SendTest((*id).to_owned()), 4),
        ["v1", "webhooks", id, "deliveries"] => (Endpoint::Deliveries((*id).to_owned()), 5),
        ["v1", "webhooks", id, "deliveries", delivery, "redeliver"] => (
            Endpoint::Redeliver((*id).to_owned(), (*delivery).to_owned()),
            6,
        ),
        ["v1", "event-types"] => (Endpoint::EventTypes, 7),
        ["v1", "events"] => (Endpoint::Events, 8),
        ["v1", "openapi.json"] => (Endpoint::OpenApi, 9),
        _ => return None,
    };
    Some((endpoint, ROUTES[index].1))
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Bytes> {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = Response::new(Bytes::from(bytes));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
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

fn with_etag(mut r: Response<Bytes>, version: u64) -> Response<Bytes> {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// A webhook as the API shows it: never its secrets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookView<'a> {
    id: &'a str,
    name: &'a str,
    url: String,
    event_types: Vec<String>,
    urns: Vec<String>,
    custom_headers: BTreeMap<&'a str, &'a str>,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<&'a str>,
    version: u64,
    owner: &'a str,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn view(w: &Webhook, secret: Option<String>) -> WebhookView<'_> {
    WebhookView {
        id: w.id.as_str(),
        name: &w.spec.name,
        url: w.spec.url.to_string(),
        event_types: w.spec.event_types.iter().map(ToString::to_string).collect(),
        urns: w.spec.urns.iter().map(ToString::to_string).collect(),
        custom_headers: w
            .spec
            .custom_headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect(),
        enabled: w.spec.enabled,
        disabled_reason: w.disabled_reason.as_deref(),
        version: w.version,
        owner: &w.owner,
        created_at: rfc3339(w.created_at),
        updated_at: rfc3339(w.updated_at),
        secret,
    }
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

fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Problem> {
    is_json(headers)?;
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "the body does not match the schema",
            serde_json::error::Category::Eof => "the body ends too early",
            _ => "the body is not valid JSON",
        };
        Problem::bad_request(format!("{what}: {e}"))
    })
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

fn limit_param(query: &BTreeMap<String, String>) -> Result<Option<usize>, Problem> {
    query
        .get("limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| Problem::bad_request(format!("limit \"{l}\" is not a number")))
        })
        .transpose()
}

fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

impl Router {
    /// The routes over the webhook service and event intake.
    pub fn new(
        service: WebhookService,
        intake: IntakeService,
        deliveries: DeliveriesService,
    ) -> Self {
        Self {
            service,
            intake,
            deliveries,
        }
    }

    /// The service behind the routes.
    pub fn service(&self) -> &WebhookService {
        &self.service
    }

    /// Serves one request; never fails: every error is a problem+json response.
    pub async fn handle(&self, request: Request<Bytes>, caller: Caller) -> Response<Bytes> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let started = std::time::Instant::now();
        let response = match self.dispatch(request, caller).await {
            Ok(r) => r,
            Err(p) => p.into_response(),
        };
        tracing::info!(
            %method, %path, status = response.status().as_u16(),
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request"
        );
        response
    }

    async fn dispatch(
        &self,
        request: Request<Bytes>,
        caller: Caller,
    ) -> Result<Response<Bytes>, Problem> {
        let (parts, body) = request.into_parts();
        let Some((endpoint, allowed)) = match_path(parts.uri.path()) else {
            return Err(Problem::not_found(format!("no route {}", parts.uri.path())));
        };
        if !allowed.contains(&parts.method) {
            return Err(Problem::method_not_allowed(&parts.method, allowed));
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(Problem::too_large(MAX_BODY_BYTES));
        }
        let principal = || match &caller {
            Caller::Principal(p) => Ok(p),
            Caller::Anonymous => Err(Problem::unauthorized("send Authorization: Bearer <token>")),
            Caller::Refused(why) => Err(Problem::unauthorized(format!(
                "the token was refused: {why}"
            ))),
        };
        let query = query_params(parts.uri.query());
        let headers = &parts.headers;
        let service = &self.service;
        match (endpoint, parts.method) {
            (Endpoint::OpenApi, _) => {
                let mut r = Response::new(Bytes::from_static(OPENAPI_JSON.as_bytes()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(r)
            }
            (Endpoint::Events, _) => {
                let p = principal()?;
                is_json(headers)?;
                let event = self.intake.publish(p, &body).await?;
                Ok(json_response(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({ "id": event.id }),
                ))
            }
            (Endpoint::EventTypes, _) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "items": service.event_types() }),
            )),
            (Endpoint::Webhooks, Method::GET) => {
                let p = principal()?;
                let app = query
                    .get("appId")
                    .ok_or_else(|| Problem::bad_request("the appId query parameter is required"))?;
                let limit = limit_param(&query)?;
                let page = service
                    .list(p, app, query.get("cursor").map(String::as_str), limit)
                    .await?;
                let items: Vec<WebhookView<'_>> =
                    page.items.iter().map(|w| view(w, None)).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "items": items, "nextCursor": page.next.map(|c| c.0) }),
                ))
            }
            (Endpoint::Webhooks, _) => {
                let p = principal()?;
                let input: NewWebhook = parse_body(headers, &body)?;
                let created = service
                    .create(p, &input, query.get("appId").map(String::as_str))
                    .await?;
                let w = &created.webhook;
                let mut r =
                    json_response(StatusCode::CREATED, &view(w, Some(created.secret.expose())));
                if let Ok(loc) = HeaderValue::from_str(&format!("/v1/webhooks/{}", w.id)) {
                    r.headers_mut().insert(header::LOCATION, loc);
                }
                Ok(with_etag(r, w.version))
            }
            (Endpoint::ProbeUrl, _) => {
                let p = principal()?;
                let input: ProbeInput = parse_body(headers, &body)?;
                let report = service.test_url(p, &input).await?;
                Ok(json_response(StatusCode::OK, &report))
            }
            (Endpoint::Webhook(id), Method::GET) => {
                let w = service.get(principal()?, &id).await?;
                Ok(with_etag(
                    json_response(StatusCode::OK, &view(&w, None)),
                    w.version,
                ))
            }
            (Endpoint::Webhook(id), Method::PATCH) => {
                let p = principal()?;
                let if_match = parse_if_match(headers)?;
                let patch: WebhookPatch = parse_body(headers, &body)?;
                let w = service.update(p, &id, &patch, if_match).await?;
                Ok(with_etag(
                    json_response(StatusCode::OK, &view(&w, None)),
                    w.version,
                ))
            }
            (Endpoint::Webhook(id), _) => {
                let p = principal()?;
                let if_match = parse_if_match(headers)?;
                service.delete(p, &id, if_match).await?;
                let mut r = Response::new(Bytes::new());
                *r.status_mut() = StatusCode::NO_CONTENT;
                Ok(r)
            }
            (Endpoint::SendTest(id), _) => {
                let queued = self.deliveries.send_test(principal()?, &id).await?;
                Ok(json_response(StatusCode::ACCEPTED, &queued))
            }
            (Endpoint::Redeliver(id, delivery), _) => {
                let queued = self
                    .deliveries
                    .redeliver(principal()?, &id, &delivery)
                    .await?;
                Ok(json_response(StatusCode::ACCEPTED, &queued))
            }
            (Endpoint::Deliveries(id), _) => {
                let p = principal()?;
                let limit = limit_param(&query)?;
                let page = self
                    .deliveries
                    .list(
                        p,
                        &id,
                        query.get("status").map(String::as_str),
                        query.get("cursor").map(String::as_str),
                        limit,
                    )
                    .await?;
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "items": page.items, "nextCursor": page.next.map(|c| c.0) }),
                ))
            }
            (Endpoint::RotateSecret(id), _) => {
                let created = service.rotate_secret(principal()?, &id).await?;
                let w = &created.webhook;
                Ok(with_etag(
                    json_response(StatusCode::OK, &view(w, Some(created.secret.expose()))),
                    w.version,
                ))
            }
        }
    }
}
