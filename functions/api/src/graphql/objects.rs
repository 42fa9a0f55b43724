//! The schema's object, input and enum types: names follow the platform's documented webhook
//! schema; what it does not name is ours, in the same style.

use std::collections::BTreeMap;

use async_graphql::{
    ComplexObject, Context, Enum, InputObject, Json, MaybeUndefined, Result, SimpleObject, ID,
};
use hookline_core::delivery::{Attempt, AttemptStatus};
use hookline_core::event_type::EventTypeInfo;
use hookline_core::outbound::OutboundErrorKind;
use hookline_core::rules::{Ordering, RateLimit, RetryInput};
use hookline_core::sealed::Protected;
use hookline_core::validation::FieldError;
use hookline_core::webhook::Webhook;

use super::errors::{query_error, refusal};
use super::query::*;
use crate::deliveries::Queued;
use crate::error::ServiceError;
use crate::service::{Created, ProbeReport};
use hookline_core::timestamp::rfc3339;

/// Pagination information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// A start cursor for use in pagination.
    pub(crate) start_cursor: Option<String>,
    /// An end cursor for use in pagination: pass it as `after` for the next page.
    pub(crate) end_cursor: Option<String>,
    /// Indicates if there are more pages to fetch.
    pub(crate) has_next_page: bool,
    /// Indicates if there are any pages prior to the current page.
    pub(crate) has_previous_page: bool,
}

impl PageInfo {
    pub(crate) fn of<E>(
        edges: &[E],
        cursor: impl Fn(&E) -> &String,
        next: bool,
        previous: bool,
    ) -> Self {
        Self {
            start_cursor: edges.first().map(|e| cursor(e).clone()),
            end_cursor: edges.last().map(|e| cursor(e).clone()),
            has_next_page: next,
            has_previous_page: previous,
        }
    }

    /// The total count when this page is the whole connection (nothing before or after it):
    /// no need to ask the store again.
    pub(crate) fn whole_count(&self, edges: usize) -> Option<i32> {
        (!self.has_next_page && !self.has_previous_page)
            .then(|| i32::try_from(edges).unwrap_or(i32::MAX))
    }
}

/// A Webhooks connection.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct WebhooksConnection {
    /// A list of node edges.
    pub(crate) edges: Vec<WebhookEdge>,
    /// Information for pagination.
    pub(crate) page_info: PageInfo,
    #[graphql(skip)]
    pub(crate) filter: WebhooksFilter,
}

#[ComplexObject]
impl WebhooksConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<&WebhookObject> {
        self.edges.iter().map(|e| &e.node).collect()
    }

    /// The total count of items in the connection.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        if let Some(n) = self.page_info.whole_count(self.edges.len()) {
            return Ok(n);
        }
        let (all, _) = self
            .filter
            .walk(webhooks(ctx)?, principal(ctx)?, None, None)
            .await
            .map_err(query_error)?;
        Ok(i32::try_from(all.len()).unwrap_or(i32::MAX))
    }
}

/// A Webhook edge.
#[derive(SimpleObject)]
pub struct WebhookEdge {
    /// A cursor for use in pagination.
    pub(crate) cursor: String,
    /// The item at the end of edge.
    pub(crate) node: WebhookObject,
}

/// An HTTP header sent with every delivery.
#[derive(SimpleObject, Clone)]
pub struct HttpHeader {
    /// `X-` name.
    pub(crate) name: String,
    /// Value.
    pub(crate) value: String,
}

/// An HTTP header to send with every delivery: up to five, names starting `X-`.
#[derive(InputObject, Clone)]
pub struct HttpHeaderInput {
    /// `X-` name.
    pub(crate) name: String,
    /// Value.
    pub(crate) value: String,
}

/// The headers as the service takes them. A null entry, and a name given twice (the map
/// would keep one), are refused here.
pub(crate) fn header_map(
    headers: Option<Vec<Option<HttpHeaderInput>>>,
) -> Result<Option<BTreeMap<String, String>>, ServiceError> {
    let Some(headers) = headers else {
        return Ok(None);
    };
    let mut map = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, h) in headers.into_iter().enumerate() {
        let Some(h) = h else {
            errors.push(FieldError::new(
                format!("customHeaders[{i}]"),
                "is null, not a header",
            ));
            continue;
        };
        if map.insert(h.name.clone(), h.value).is_some() {
            errors.push(FieldError::new(
                format!("customHeaders.{}", h.name),
                format!("header \"{}\" is given twice", h.name),
            ));
        }
    }
    if errors.is_empty() {
        Ok(Some(map))
    } else {
        Err(ServiceError::Invalid(
            hookline_core::validation::ValidationErrors::new(errors),
        ))
    }
}

/// A run of failed deliveries; any 2xx ends it. Long enough, it disables the webhook.
#[derive(SimpleObject)]
pub struct WebhookFailureRun {
    /// Its first failure (RFC 3339).
    pub(crate) since: String,
    /// Failures in the run (final failures and exhausted retries).
    pub(crate) failures: i32,
    /// The latest failure's error.
    pub(crate) last_error: Option<String>,
}

/// The webhook receives nothing from this App.
#[derive(SimpleObject)]
pub struct WebhookSuspension {
    /// The App.
    pub(crate) app_id: String,
    /// Why: `permission revoked`.
    pub(crate) reason: String,
    /// Since when (RFC 3339).
    pub(crate) since: String,
}

/// A webhook: where events of some types about some URNs are delivered.
#[derive(SimpleObject)]
#[graphql(name = "Webhook", complex)]
pub struct WebhookObject {
    /// `wh_<ULID>`.
    pub(crate) id: ID,
    /// A short name and/or description mostly for UI convenience.
    pub(crate) description: String,
    /// URL of HTTPS endpoint where webhook events are delivered to; null for an AWS
    /// destination.
    pub(crate) url: Option<String>,
    /// The AWS destination events are delivered to; null for a URL.
    pub(crate) destination: Option<WebhookDestination>,
    /// Events to subscribe to: catalog names, `family.*` or `*`.
    pub(crate) events: Vec<String>,
    /// Event URNs to filter for (`urn:allthings:app:<appId>:*` and narrower patterns).
    pub(crate) urns: Vec<String>,
    /// `X-` headers sent with every delivery.
    pub(crate) custom_headers: Vec<HttpHeader>,
    /// Whether the webhook is enabled and receiving deliveries.
    pub(crate) enabled: bool,
    /// Why it is disabled: `manual` (by hand), `failing` (its deliveries kept failing) or
    /// `gone` (its endpoint answered 410).
    pub(crate) disabled_reason: Option<String>,
    /// Since when it is disabled (RFC 3339).
    pub(crate) disabled_at: Option<String>,
    /// The delivery error that disabled it.
    pub(crate) last_error: Option<String>,
    /// Apps it receives nothing from, because its owner's permission there was revoked.
    pub(crate) suspended: Vec<WebhookSuspension>,
    /// Its current run of failed deliveries (`webhook(id)` only; null in listings).
    pub(crate) failing: Option<WebhookFailureRun>,
    /// A content pattern over the event envelope (EventBridge form): only matching events
    /// are delivered; null for none.
    pub(crate) filter: Option<Json<serde_json::Value>>,
    /// Its own retry schedule; null: the deployment's.
    pub(crate) retry: Option<WebhookRetryPolicy>,
    /// Its rate limit; null: none.
    pub(crate) rate_limit: Option<WebhookRateLimit>,
    /// Whether its deliveries keep the events' order.
    pub(crate) ordering: WebhookOrdering,
    /// Its OAuth2 client credentials (the secret is never shown); null for none.
    pub(crate) oauth2: Option<WebhookOAuth2>,
    /// A shared secret used to sign the request payload (`whsec_...`, Standard Webhooks).
    /// Readable only in the result of `registerWebhook` and `rotateWebhookSecret`; null
    /// elsewhere.
    pub(crate) secret: Option<String>,
    /// Bumped by every change; pass it as `expectedVersion` to update only what you read.
    pub(crate) version: i64,
    /// The `sub` of the token that registered it.
    pub(crate) owner: String,
    /// When it was registered (RFC 3339).
    pub(crate) created_at: String,
    /// When it last changed (RFC 3339).
    pub(crate) updated_at: String,
}

impl WebhookObject {
    pub(crate) fn of(w: Webhook, secret: Option<String>) -> Self {
        Self {
            id: ID(w.id.to_string()),
            description: w.spec.name,
            url: w.spec.endpoint.url().map(ToString::to_string),
            destination: w.spec.endpoint.destination().map(WebhookDestination::of),
            oauth2: w.spec.oauth2.as_ref().map(|o| WebhookOAuth2 {
                token_url: o.token_url.to_string(),
                client_id: o.client_id.clone(),
                scope: o.scope.clone(),
                audience: o.audience.clone(),
            }),
            events: w.spec.event_types.iter().map(ToString::to_string).collect(),
            urns: w.spec.urns.iter().map(ToString::to_string).collect(),
            custom_headers: w
                .spec
                .custom_headers
                .into_iter()
                .filter_map(|h| match h.value {
                    // The service opens them for the answer; a sealed one is never shown.
                    Protected::Plain(value) => Some(HttpHeader {
                        name: h.name,
                        value,
                    }),
                    Protected::Sealed(_) => None,
                })
                .collect(),
            enabled: w.spec.enabled,
            disabled_reason: w.state.disabled_reason().map(str::to_owned),
            disabled_at: w.state.disabled_at().map(rfc3339),
            last_error: w.state.last_error().map(str::to_owned),
            filter: w.spec.filter.as_ref().map(|f| Json(f.pattern().clone())),
            retry: w.spec.retry.as_ref().map(|r| {
                let input = r.to_input();
                WebhookRetryPolicy {
                    schedule: input.schedule,
                    max_attempts: i32::try_from(r.max_attempts).unwrap_or(i32::MAX),
                }
            }),
            rate_limit: w.spec.rate_limit.map(|r| WebhookRateLimit {
                per_second: i32::try_from(r.per_second).unwrap_or(i32::MAX),
            }),
            ordering: w.spec.ordering.into(),
            failing: w.state.failures.as_ref().map(|r| WebhookFailureRun {
                since: rfc3339(r.since),
                failures: i32::try_from(r.failures).unwrap_or(i32::MAX),
                last_error: r.last_error.clone(),
            }),
            suspended: w
                .state
                .suspended
                .into_iter()
                .map(|s| WebhookSuspension {
                    app_id: s.app_id,
                    reason: s.reason,
                    since: rfc3339(s.since),
                })
                .collect(),
            secret,
            version: i64::try_from(w.version).unwrap_or(i64::MAX),
            owner: w.owner,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

#[ComplexObject]
impl WebhookObject {
    /// Get the history of all events delivered to the Webhook's URL: every attempt, newest
    /// first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 50).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        #[graphql(desc = "Only attempts that ended so.")] status: Option<WebhookDeliveryStatus>,
    ) -> Result<WebhookDeliveriesConnection> {
        let limit = first_of(first).map_err(query_error)?;
        let status = status.map(|s| AttemptStatus::from(s).as_str());
        let page = deliveries(ctx)?
            .list(
                principal(ctx)?,
                &self.id,
                status,
                after.as_deref(),
                Some(limit),
            )
            .await
            .map_err(query_error)?;
        let edges: Vec<WebhookDeliveryEdge> = page
            .items
            .into_iter()
            .map(|a| WebhookDeliveryEdge {
                cursor: a.attempt_id.clone(),
                node: WebhookDelivery::of(a),
            })
            .collect();
        Ok(WebhookDeliveriesConnection {
            page_info: PageInfo::of(&edges, |e| &e.cursor, page.next.is_some(), after.is_some()),
            edges,
            webhook_id: self.id.to_string(),
            status,
        })
    }

    /// The webhook's health since `since` (default: the last 24 hours), from its attempt log.
    async fn stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The window's start (RFC 3339); not in the future, not before the retention horizon (default 30 days back)."
        )]
        since: Option<String>,
    ) -> Result<WebhookStats> {
        let stats = deliveries(ctx)?
            .stats(principal(ctx)?, &self.id, since.as_deref())
            .await
            .map_err(query_error)?;
        Ok(WebhookStats::of(stats))
    }
}

/// A webhook's health over a window, from its attempt log (REST: `GET
/// /v1/webhooks/{id}/stats`).
#[derive(SimpleObject)]
pub struct WebhookStats {
    /// The window's start (RFC 3339).
    pub(crate) since: String,
    /// The window's end: the time of the answer (RFC 3339).
    pub(crate) until: String,
    /// Attempts sent (`delivered` + `failed`).
    pub(crate) attempts: i64,
    /// Attempts acknowledged with a 2xx.
    pub(crate) delivered: i64,
    /// Attempts that failed: final failures and retried failures.
    pub(crate) failed: i64,
    /// `delivered / attempts`, 0 to 1; null when nothing was sent.
    pub(crate) success_rate: Option<f64>,
    /// Latency percentiles of the answered attempts, in milliseconds.
    pub(crate) latency_ms: WebhookLatency,
    /// One per hour of the window, oldest first.
    pub(crate) buckets: Vec<WebhookStatsBucket>,
    /// True when the window held more than `attemptLimit` attempts: the numbers are those of
    /// the newest `attemptLimit`.
    pub(crate) truncated: bool,
    /// Most attempts one answer reads.
    pub(crate) attempt_limit: i64,
}

/// Latency percentiles in milliseconds (null: nothing answered).
#[derive(SimpleObject)]
pub struct WebhookLatency {
    /// Median.
    pub(crate) p50: Option<i64>,
    /// 95th percentile.
    pub(crate) p95: Option<i64>,
    /// 99th percentile.
    pub(crate) p99: Option<i64>,
}

/// One hour of a stats window.
#[derive(SimpleObject)]
pub struct WebhookStatsBucket {
    /// Its first instant (RFC 3339).
    pub(crate) start: String,
    /// Attempts acknowledged with a 2xx.
    pub(crate) delivered: i64,
    /// Attempts that failed.
    pub(crate) failed: i64,
    /// The 95th percentile of its answered attempts' latency (ms).
    pub(crate) p95_latency_ms: Option<i64>,
}

fn whole(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl WebhookStats {
    pub(crate) fn of(s: hookline_core::stats::WebhookStats) -> Self {
        Self {
            since: rfc3339(s.since),
            until: rfc3339(s.until),
            attempts: whole(s.attempts),
            delivered: whole(s.delivered),
            failed: whole(s.failed),
            success_rate: s.success_rate,
            latency_ms: WebhookLatency {
                p50: s.latency_ms.p50.map(whole),
                p95: s.latency_ms.p95.map(whole),
                p99: s.latency_ms.p99.map(whole),
            },
            buckets: s
                .buckets
                .into_iter()
                .map(|b| WebhookStatsBucket {
                    start: rfc3339(b.start),
                    delivered: whole(b.delivered),
                    failed: whole(b.failed),
                    p95_latency_ms: b.p95_latency_ms.map(whole),
                })
                .collect(),
            truncated: s.truncated,
            attempt_limit: whole(s.attempt_limit),
        }
    }
}

/// A WebhookDeliveries connection.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct WebhookDeliveriesConnection {
    /// A list of node edges.
    pub(crate) edges: Vec<WebhookDeliveryEdge>,
    /// Information for pagination.
    pub(crate) page_info: PageInfo,
    #[graphql(skip)]
    pub(crate) webhook_id: String,
    #[graphql(skip)]
    pub(crate) status: Option<&'static str>,
}

#[ComplexObject]
impl WebhookDeliveriesConnection {
    /// A list of nodes.
    async fn nodes(&self) -> Vec<&WebhookDelivery> {
        self.edges.iter().map(|e| &e.node).collect()
    }

    /// The total count of items in the connection.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i32> {
        if let Some(n) = self.page_info.whole_count(self.edges.len()) {
            return Ok(n);
        }
        let n = deliveries(ctx)?
            .count(principal(ctx)?, &self.webhook_id, self.status)
            .await
            .map_err(query_error)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// A WebhookDelivery edge.
#[derive(SimpleObject)]
pub struct WebhookDeliveryEdge {
    /// A cursor for use in pagination.
    pub(crate) cursor: String,
    /// The item at the end of edge.
    pub(crate) node: WebhookDelivery,
}

/// How a delivery attempt ended.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "AttemptStatus")]
pub enum WebhookDeliveryStatus {
    /// The endpoint answered 2xx.
    Delivered,
    /// It failed and is retried later (`nextRetryAt`).
    Retrying,
    /// It failed and is not retried (3xx, 4xx, a refused target).
    Failed,
    /// It failed on the last allowed attempt and went to the dead-letter queue.
    Exhausted,
    /// The endpoint answered 410 Gone; the webhook was disabled.
    Gone,
    /// Not sent: the webhook was deleted or disabled, or the event expired.
    Skipped,
    /// Not sent yet: waiting for the webhook's rate limit (`nextRetryAt` is its slot).
    Delayed,
}

/// A webhook's own retry schedule.
#[derive(SimpleObject)]
pub struct WebhookRetryPolicy {
    /// Delay after attempt 1, 2, … (`30s`, `5m`, `1h`), each ±20%.
    pub(crate) schedule: Vec<String>,
    /// Attempts in all, the first included; the last step repeats past the schedule.
    pub(crate) max_attempts: i32,
}

/// A webhook's rate limit.
#[derive(SimpleObject)]
pub struct WebhookRateLimit {
    /// Most deliveries started per second, spaced evenly.
    pub(crate) per_second: i32,
}

/// Whether a webhook's deliveries keep the events' order.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "Ordering")]
pub enum WebhookOrdering {
    /// In parallel (the default).
    None,
    /// One at a time per webhook, each after the previous is acknowledged or finally failed.
    PerWebhook,
    /// One at a time per webhook and resource URN.
    PerUrn,
}

/// A retry schedule to set.
#[derive(InputObject)]
pub struct WebhookRetryInput {
    /// Delay after attempt 1, 2, … (`30s`, `5m`, `1h`; 1 s to 12 h each, 24 h in all).
    pub(crate) schedule: Vec<String>,
    /// Attempts in all, the first included (1 to 10; default one more than the steps).
    pub(crate) max_attempts: Option<i32>,
}

impl WebhookRetryInput {
    pub(crate) fn into_input(self) -> RetryInput {
        RetryInput {
            schedule: self.schedule,
            // Out of range is refused by the same check as any other bad count.
            max_attempts: self.max_attempts.map(|n| u32::try_from(n).unwrap_or(0)),
        }
    }
}

/// A rate limit to set.
#[derive(InputObject)]
pub struct WebhookRateLimitInput {
    /// Most deliveries started per second (1 to 1000).
    pub(crate) per_second: i32,
}

impl WebhookRateLimitInput {
    pub(crate) fn into_limit(self) -> RateLimit {
        RateLimit {
            per_second: u32::try_from(self.per_second).unwrap_or(0),
        }
    }
}

/// A PATCH-style field: absent keeps, null removes, a value sets.
pub(crate) fn patch_field<T, U>(
    field: MaybeUndefined<T>,
    into: impl FnOnce(T) -> U,
) -> Option<Option<U>> {
    match field {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(into(v))),
    }
}

/// Why an attempt got no HTTP answer.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDeliveryErrorKind {
    /// No complete answer within the timeout.
    Timeout,
    /// Could not connect (refused, unreachable, reset, DNS).
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// The address is one deliveries may not reach (private, loopback, metadata).
    Blocked,
    /// Not sent at all (see `WebhookDelivery.status`: skipped).
    NotSent,
    /// Anything else.
    Other,
}

/// One delivery attempt of an event to the webhook's URL.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// The attempt (ULID, time-ordered).
    pub(crate) id: ID,
    /// The delivery: one event to one webhook, over all its attempts
    /// (`redeliverWebhookDelivery` takes it).
    pub(crate) delivery_id: ID,
    /// The event (the `webhook-id` header the endpoint saw).
    pub(crate) event_id: ID,
    /// Which attempt of the delivery this was, from 1.
    pub(crate) attempt: i32,
    /// How it ended.
    pub(crate) status: WebhookDeliveryStatus,
    /// When it was made (RFC 3339).
    pub(crate) created_at: String,
    /// When the next attempt is due, while `RETRYING` (RFC 3339).
    pub(crate) next_retry_at: Option<String>,
    /// What the endpoint answered.
    pub(crate) result: WebhookDeliveryResult,
}

/// The HTTP Response from a Webhook Delivery attempt.
#[derive(SimpleObject)]
pub struct WebhookDeliveryResult {
    /// The HTTP status, when the endpoint answered.
    pub(crate) status_code: Option<i32>,
    /// Time to answer, in milliseconds.
    pub(crate) duration_ms: i64,
    /// The start of the answer's body.
    pub(crate) response_excerpt: String,
    /// Why there was no answer, when there was none.
    pub(crate) error: Option<String>,
    /// The kind of `error`.
    pub(crate) error_kind: Option<WebhookDeliveryErrorKind>,
}

impl WebhookDelivery {
    pub(crate) fn of(a: Attempt) -> Self {
        let error_kind = a.error.as_deref().map(|e| {
            if a.status == AttemptStatus::Skipped {
                WebhookDeliveryErrorKind::NotSent
            } else {
                error_kind(e)
            }
        });
        Self {
            id: ID(a.attempt_id),
            delivery_id: ID(a.delivery_id.to_string()),
            event_id: ID(a.event_id.to_string()),
            attempt: i32::try_from(a.attempt).unwrap_or(i32::MAX),
            status: a.status.into(),
            created_at: rfc3339(a.at),
            next_retry_at: a.next_retry_at.map(rfc3339),
            result: WebhookDeliveryResult {
                status_code: a.response_status.map(i32::from),
                duration_ms: i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
                response_excerpt: a.response_excerpt,
                error: a.error,
                error_kind,
            },
        }
    }
}

/// An event type webhooks can subscribe to.
#[derive(SimpleObject)]
pub struct RegisterableWebhookDescription {
    /// Namespace of the event (`ticket`).
    pub(crate) namespace: String,
    /// The name of the event (`ticket.created`): what `events` takes.
    pub(crate) name: String,
    /// A short name and/or description mostly for UI convenience.
    pub(crate) description: String,
    /// An example of the event's `data`, as JSON text.
    pub(crate) example: String,
}

impl RegisterableWebhookDescription {
    pub(crate) fn of(info: &EventTypeInfo) -> Self {
        Self {
            namespace: info
                .name
                .split_once('.')
                .map_or(info.name.as_str(), |(family, _)| family)
                .to_owned(),
            name: info.name.clone(),
            description: info.description.clone(),
            example: info.example.to_string(),
        }
    }
}

/// An AWS destination as given: the role Hookline assumes and the external id it issued
/// (`issueExternalId`).
#[derive(InputObject, Clone)]
#[graphql(name = "DestinationInput")]
pub struct DestinationInputObject {
    /// `aws-sqs`, `aws-sns`, `aws-eventbridge` or `aws-kinesis`.
    #[graphql(name = "type")]
    pub(crate) kind: String,
    /// The queue's, topic's or event bus's ARN.
    pub(crate) arn: String,
    /// The IAM role Hookline assumes to send.
    pub(crate) role_arn: String,
    /// The external id `issueExternalId` gave for one of the webhook's Apps.
    pub(crate) external_id: String,
    /// EventBridge only: the events' `source` (default `hookline`).
    pub(crate) source: Option<String>,
}

impl DestinationInputObject {
    pub(crate) fn into_input(self) -> hookline_core::webhook::DestinationInput {
        hookline_core::webhook::DestinationInput {
            kind: self.kind,
            arn: self.arn,
            role_arn: self.role_arn,
            external_id: self.external_id,
            source: self.source,
        }
    }
}

/// OAuth2 client credentials as given.
#[derive(InputObject, Clone)]
#[graphql(name = "OAuth2Input")]
pub struct OAuth2InputObject {
    /// The token endpoint.
    pub(crate) token_url: String,
    /// The client id.
    pub(crate) client_id: String,
    /// The client secret (sealed at rest, never shown again).
    pub(crate) client_secret: String,
    /// The scope to ask for.
    pub(crate) scope: Option<String>,
    /// The audience to ask for.
    pub(crate) audience: Option<String>,
}

impl OAuth2InputObject {
    pub(crate) fn into_input(self) -> hookline_core::webhook::OAuth2Input {
        hookline_core::webhook::OAuth2Input {
            token_url: self.token_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            scope: self.scope,
            audience: self.audience,
        }
    }
}

/// A webhook's OAuth2 client credentials, without the secret.
#[derive(SimpleObject)]
#[graphql(name = "WebhookOAuth2")]
pub struct WebhookOAuth2 {
    /// The token endpoint.
    pub(crate) token_url: String,
    /// The client id.
    pub(crate) client_id: String,
    /// The scope asked for.
    pub(crate) scope: Option<String>,
    /// The audience asked for.
    pub(crate) audience: Option<String>,
}

/// An AWS destination: where a webhook's events go instead of a URL.
#[derive(SimpleObject)]
pub struct WebhookDestination {
    /// `aws-sqs`, `aws-sns`, `aws-eventbridge` or `aws-kinesis`.
    #[graphql(name = "type")]
    pub(crate) kind: String,
    /// The queue, topic, bus or stream.
    pub(crate) arn: String,
    /// The role Hookline assumes.
    pub(crate) role_arn: String,
    /// The external id the role's trust policy requires.
    pub(crate) external_id: String,
    /// EventBridge's `source`.
    pub(crate) source: Option<String>,
    /// The permission policy the role needs (JSON).
    pub(crate) permission_policy: Json<serde_json::Value>,
}

impl WebhookDestination {
    pub(crate) fn of(d: &hookline_core::destination::AwsDestination) -> Self {
        Self {
            kind: d.service.type_name().to_owned(),
            arn: d.arn.to_string(),
            role_arn: d.role_arn.to_string(),
            external_id: d.external_id.to_string(),
            source: d.source.clone(),
            permission_policy: Json(d.permission_policy()),
        }
    }
}

/// An external id issued for an App's AWS destinations, with the policies to give the role.
#[derive(SimpleObject)]
pub struct ExternalIdGrantObject {
    /// The id the role's trust policy requires (`sts:ExternalId`).
    pub(crate) external_id: String,
    /// The AWS principal Hookline assumes roles as.
    pub(crate) principal: Option<String>,
    /// The trust policy to give the role (JSON).
    pub(crate) trust_policy: Option<Json<serde_json::Value>>,
    /// The permission policy (JSON), when the type and ARN were given.
    pub(crate) permission_policy: Option<Json<serde_json::Value>>,
}

/// A new webhook. Its URL must answer 200 (to HEAD, or to a signed `webhook.test` POST)
/// within 5 s before it is saved.
#[derive(InputObject)]
pub struct RegisterWebhookInput {
    /// A short name and/or description mostly for UI convenience.
    pub(crate) description: String,
    /// Events to subscribe to: catalog names, `family.*` or `*`.
    pub(crate) events: Vec<String>,
    /// URL of HTTPS endpoint the webhook should deliver events to; leave out for a
    /// `destination`.
    pub(crate) url: Option<String>,
    /// An AWS destination (SQS queue, SNS topic, EventBridge bus, Kinesis stream) instead of a URL.
    pub(crate) destination: Option<DestinationInputObject>,
    /// Event URNs to filter for; without them, the whole App `appId` names.
    pub(crate) urns: Option<Vec<String>>,
    /// Up to five `X-` headers sent with every delivery.
    pub(crate) custom_headers: Option<Vec<Option<HttpHeaderInput>>>,
    /// Whether deliveries go out (default true).
    pub(crate) enabled: Option<bool>,
    /// The App it is registered in: without `urns` the webhook covers all of it.
    pub(crate) app_id: Option<String>,
    /// The signing secret to use (`whsec_` and base64 of 24 to 64 random bytes), for an
    /// endpoint that must know it before the check on save; Hookline makes one when absent.
    pub(crate) secret: Option<String>,
    /// Only events matching this content pattern over the envelope are delivered
    /// (EventBridge form, e.g. `{"data": {"priority": ["high"]}}`).
    pub(crate) filter: Option<Json<serde_json::Value>>,
    /// Its own retry schedule (default: the deployment's).
    pub(crate) retry: Option<WebhookRetryInput>,
    /// Most deliveries per second (default: no limit).
    pub(crate) rate_limit: Option<WebhookRateLimitInput>,
    /// Deliver in order (default `NONE`).
    pub(crate) ordering: Option<WebhookOrdering>,
    /// OAuth2 client credentials: each delivery carries a bearer token.
    pub(crate) oauth2: Option<OAuth2InputObject>,
}

/// Changes to a webhook: only the fields given change. A changed URL or headers is checked
/// like on registration.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    /// A short name and/or description mostly for UI convenience.
    pub(crate) description: Option<String>,
    /// Events to subscribe to.
    pub(crate) events: Option<Vec<String>>,
    /// URL of HTTPS endpoint the webhook should deliver events to (replaces a destination).
    pub(crate) url: Option<String>,
    /// An AWS destination (replaces a URL).
    pub(crate) destination: Option<DestinationInputObject>,
    /// Event URNs to filter for (at least one).
    pub(crate) urns: Option<Vec<String>>,
    /// The headers to send (an empty list removes them all).
    pub(crate) custom_headers: Option<Vec<Option<HttpHeaderInput>>>,
    /// Enable or disable.
    pub(crate) enabled: Option<bool>,
    /// A new payload filter; null removes it.
    pub(crate) filter: MaybeUndefined<Json<serde_json::Value>>,
    /// A new retry schedule; null returns to the deployment's.
    pub(crate) retry: MaybeUndefined<WebhookRetryInput>,
    /// A new rate limit; null removes it.
    pub(crate) rate_limit: MaybeUndefined<WebhookRateLimitInput>,
    /// A new ordering.
    pub(crate) ordering: Option<WebhookOrdering>,
    /// New OAuth2 client credentials (the secret given again); null removes them.
    pub(crate) oauth2: MaybeUndefined<OAuth2InputObject>,
}

/// A delivery that was queued (by `testWebhook` or `redeliverWebhookDelivery`).
#[derive(SimpleObject)]
pub struct QueuedWebhookDelivery {
    /// The delivery: see `Webhook.deliveries` for its attempts.
    pub(crate) delivery_id: ID,
    /// The event it carries (the `webhook-id` header the endpoint will see).
    pub(crate) event_id: ID,
}

/// What an endpoint answered to the check `probeWebhookUrl` ran.
#[derive(SimpleObject)]
pub struct WebhookProbe {
    /// True when it answered 200: it would pass the check on save.
    pub(crate) ok: bool,
    /// The request that got that answer (`HEAD`, or the signed `POST`), or the last one tried.
    pub(crate) method: String,
    /// The answer.
    pub(crate) result: WebhookDeliveryResult,
}

impl WebhookProbe {
    pub(crate) fn of(r: ProbeReport) -> Self {
        // Without an answer, the error's last part says why ("...; POST failed: timed out").
        let error_kind = match (r.status, &r.error) {
            (None, Some(e)) => Some(error_kind(
                e.rsplit("failed: ").next().unwrap_or(e.as_str()),
            )),
            _ => None,
        };
        Self {
            ok: r.ok,
            method: r.method.to_owned(),
            result: WebhookDeliveryResult {
                status_code: r.status.map(i32::from),
                duration_ms: r
                    .latency_ms
                    .map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
                response_excerpt: r.body_excerpt.unwrap_or_default(),
                error: r.error,
                error_kind,
            },
        }
    }
}

pub(crate) fn error_kind(message: &str) -> WebhookDeliveryErrorKind {
    match OutboundErrorKind::of_message(message) {
        OutboundErrorKind::Timeout => WebhookDeliveryErrorKind::Timeout,
        OutboundErrorKind::Connect => WebhookDeliveryErrorKind::Connect,
        OutboundErrorKind::Tls => WebhookDeliveryErrorKind::Tls,
        OutboundErrorKind::Blocked => WebhookDeliveryErrorKind::Blocked,
        OutboundErrorKind::Other => WebhookDeliveryErrorKind::Other,
    }
}

/// One failing input field.
#[derive(SimpleObject)]
pub struct WebhookFieldError {
    /// Its path in the input (`url`, `events[1]`, `customHeaders.X-Api-Key`).
    pub(crate) field: String,
    /// What is wrong with it.
    pub(crate) message: String,
}

/// What a mutation did.
#[derive(SimpleObject, Default)]
pub struct WebhookMutationResult {
    /// `OK`, or why it was refused: `VALIDATION_FAILED`, `ENDPOINT_CHECK_FAILED`,
    /// `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`, `PRECONDITION_FAILED`, `BAD_REQUEST`.
    pub(crate) code: String,
    /// What happened, for a person; names every failing field.
    pub(crate) message: String,
    /// Whether it was done.
    pub(crate) success: bool,
    /// The webhook it touched (as it was, for `deleteWebhook`).
    pub(crate) webhook: Option<WebhookObject>,
    /// The delivery it queued (`testWebhook`, `redeliverWebhookDelivery`).
    pub(crate) delivery: Option<QueuedWebhookDelivery>,
    /// What the endpoint answered (`probeWebhookUrl`).
    pub(crate) probe: Option<WebhookProbe>,
    /// Every failing input field, when `VALIDATION_FAILED` or `ENDPOINT_CHECK_FAILED`.
    pub(crate) field_errors: Vec<WebhookFieldError>,
    /// How many deliveries a recover, or events a backfill, matched
    /// (`recoverWebhookDeliveries`, `backfillWebhook`).
    pub(crate) matched: Option<i64>,
    /// The background job it started or cancelled (`recoverWebhookDeliveries`,
    /// `backfillWebhook`, `purgeApp`, `cancelJob`).
    pub(crate) job: Option<JobObject>,
}

/// A background job (REST: `GET /v1/jobs/{id}`).
#[derive(SimpleObject)]
#[graphql(name = "Job")]
pub struct JobObject {
    /// The job (`job_...`).
    pub(crate) id: ID,
    /// What it does: `recover`, `backfill` or `purge`.
    pub(crate) kind: String,
    /// The webhook it works on (recover, backfill).
    pub(crate) webhook_id: Option<ID>,
    /// The App it works on (purge).
    pub(crate) app_id: Option<String>,
    /// Where it stands: `queued`, `running`, `done`, `failed`, `cancelled`.
    pub(crate) state: String,
    /// Items handled so far.
    pub(crate) done: i64,
    /// Items it matched when it started (a purge: what it has found so far; it grows).
    pub(crate) total: i64,
    /// The window's start (RFC 3339).
    pub(crate) since: String,
    /// The window's end (RFC 3339).
    pub(crate) until: String,
    /// When it was created (RFC 3339).
    pub(crate) created_at: String,
    /// When its first chunk ran.
    pub(crate) started_at: Option<String>,
    /// When it ended.
    pub(crate) finished_at: Option<String>,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// What a purge deleted and changed so far.
    pub(crate) purge: Option<JobPurge>,
}

/// What an App purge deleted and changed so far.
#[derive(SimpleObject)]
pub struct JobPurge {
    /// Webhooks deleted (they named only the App).
    pub(crate) deleted_webhooks: Vec<ID>,
    /// Webhooks that lost the App's URNs and keep working for their other Apps.
    pub(crate) changed_webhooks: Vec<ID>,
    /// Events deleted.
    pub(crate) events: i64,
    /// Attempts deleted.
    pub(crate) attempts: i64,
    /// Queued messages deleted (embedded store; on SQS deliverers drop them instead).
    pub(crate) messages: i64,
}

impl JobObject {
    pub(crate) fn of(job: &hookline_core::job::Job) -> Self {
        let view = crate::recovery::JobView::from(job);
        Self {
            id: ID(view.id.to_string()),
            kind: serde_json::to_value(view.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            webhook_id: view.webhook_id.map(ID),
            app_id: view.app_id,
            state: view.state.as_str().to_owned(),
            done: whole(view.done),
            total: whole(view.total),
            since: view.since,
            until: view.until,
            created_at: view.created_at,
            started_at: view.started_at,
            finished_at: view.finished_at,
            error: view.error,
            purge: view.purge.map(|p| JobPurge {
                deleted_webhooks: p.deleted_webhooks.into_iter().map(ID).collect(),
                changed_webhooks: p.changed_webhooks.into_iter().map(ID).collect(),
                events: whole(p.events),
                attempts: whole(p.attempts),
                messages: whole(p.messages),
            }),
        }
    }
}

impl WebhookMutationResult {
    pub(crate) fn done(message: impl Into<String>, webhook: WebhookObject) -> Self {
        Self {
            code: "OK".into(),
            message: message.into(),
            success: true,
            webhook: Some(webhook),
            ..Self::default()
        }
    }

    /// `webhook <id> <what>`, with the webhook and no secret.
    pub(crate) fn touched(webhook: Webhook, what: &str) -> Self {
        Self::done(
            format!("webhook {} {what}", webhook.id),
            WebhookObject::of(webhook, None),
        )
    }

    /// `webhook <id> <what>`, with the webhook and its new secret, shown this once.
    pub(crate) fn with_secret(created: Created, what: &str) -> Self {
        Self::done(
            format!("webhook {} {what}", created.webhook.id),
            WebhookObject::of(created.webhook, Some(created.secret.expose())),
        )
    }

    pub(crate) fn queued(message: impl Into<String>, webhook: Webhook, q: Queued) -> Self {
        Self {
            delivery: Some(QueuedWebhookDelivery {
                delivery_id: ID(q.delivery_id.to_string()),
                event_id: ID(q.event_id.to_string()),
            }),
            ..Self::done(message, WebhookObject::of(webhook, None))
        }
    }

    /// The caller's refusal as a result; a failure of the server stays an error.
    pub(crate) fn refused(e: ServiceError) -> Result<Self> {
        let r = refusal(e)?;
        Ok(Self {
            code: r.code.into(),
            message: r.message,
            success: false,
            field_errors: r
                .fields
                .into_iter()
                .map(|f| WebhookFieldError {
                    field: f.field,
                    message: f.message,
                })
                .collect(),
            ..Self::default()
        })
    }
}
