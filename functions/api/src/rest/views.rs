//! Webhooks as the REST API shows them (never their secrets), and the JSON answers.

use super::*;

/// A webhook as the API shows it: never its secrets, but the new one once on create and
/// rotation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Webhook)]
pub(crate) struct WebhookView {
    /// `wh_<ULID>`.
    #[schema(example = "wh_01KAXR5V6N9R3Q8ZC2W4E7T1YB")]
    pub(crate) id: String,
    /// A name for people.
    pub(crate) name: String,
    /// The endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// Its AWS destination, when it delivers to one instead of a URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) destination: Option<DestinationView>,
    /// Its OAuth2 client credentials (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) oauth2: Option<OAuth2View>,
    /// `*`, `family.*` or catalog types.
    pub(crate) event_types: Vec<String>,
    /// URN patterns, one App each.
    pub(crate) urns: Vec<String>,
    /// `X-` headers sent with every delivery.
    pub(crate) custom_headers: BTreeMap<String, String>,
    /// Whether deliveries go out.
    pub(crate) enabled: bool,
    /// Why it is disabled: `manual` (by hand), `failing` (its deliveries kept failing),
    /// `gone` (the endpoint answered 410).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "failing")]
    pub(crate) disabled_reason: Option<String>,
    /// Since when it is disabled (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub(crate) disabled_at: Option<String>,
    /// The delivery error that disabled it (`failing`, `gone`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    /// The current run of failed deliveries, on a single webhook's read (not in listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failing: Option<FailingView>,
    /// Apps it receives nothing from, because its owner's permission there was revoked.
    pub(crate) suspended: Vec<SuspensionView>,
    /// Only events matching this content pattern over the envelope are delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"data": {"priority": ["high", "urgent"]}}))]
    pub(crate) filter: Option<serde_json::Value>,
    /// Its own retry schedule (absent: the deployment's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retry: Option<RetryInput>,
    /// Its rate limit (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit: Option<RateLimit>,
    /// Whether its deliveries keep the events' order.
    pub(crate) ordering: Ordering,
    /// Bumped by every change; the ETag.
    pub(crate) version: u64,
    /// The `sub` that created it.
    pub(crate) owner: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub(crate) created_at: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub(crate) updated_at: String,
    /// The signing secret (`whsec_...`), in the answers to create and rotate only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_")]
    pub(crate) secret: Option<String>,
}

/// OAuth2 client credentials as shown: the secret never is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OAuth2View {
    /// The token endpoint.
    pub(crate) token_url: String,
    /// The client id.
    pub(crate) client_id: String,
    /// The scope asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// The audience asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audience: Option<String>,
}

/// An AWS destination, with the permission policy its role needs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DestinationView {
    /// `aws-sqs`, `aws-sns`, `aws-eventbridge` or `aws-kinesis`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The queue, topic, bus or stream.
    pub(crate) arn: String,
    /// The role Hookline assumes.
    pub(crate) role_arn: String,
    /// The external id the role's trust policy requires.
    pub(crate) external_id: String,
    /// EventBridge's `source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    /// The permission policy the role needs.
    #[schema(value_type = Object)]
    pub(crate) permission_policy: serde_json::Value,
}

impl DestinationView {
    pub(crate) fn of(d: &hookline_core::destination::AwsDestination) -> Self {
        Self {
            kind: d.service.type_name().to_owned(),
            arn: d.arn.to_string(),
            role_arn: d.role_arn.to_string(),
            external_id: d.external_id.to_string(),
            source: d.source.clone(),
            permission_policy: d.permission_policy(),
        }
    }
}

/// A run of failed deliveries; any 2xx ends it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FailingView {
    /// Its first failure (RFC 3339).
    #[schema(format = DateTime)]
    pub(crate) since: String,
    /// Failures in the run (final failures and exhausted retries).
    pub(crate) failures: u32,
    /// The latest failure's error.
    pub(crate) last_error: Option<String>,
}

/// The webhook receives nothing from this App.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SuspensionView {
    /// The App.
    pub(crate) app_id: String,
    /// Why: `permission revoked`.
    pub(crate) reason: String,
    /// Since when (RFC 3339).
    #[schema(format = DateTime)]
    pub(crate) since: String,
}

impl WebhookView {
    pub(crate) fn of(w: &Webhook, secret: Option<String>) -> Self {
        Self {
            id: w.id.to_string(),
            name: w.spec.name.clone(),
            url: w.spec.endpoint.url().map(ToString::to_string),
            destination: w.spec.endpoint.destination().map(DestinationView::of),
            oauth2: w.spec.oauth2.as_ref().map(|o| OAuth2View {
                token_url: o.token_url.to_string(),
                client_id: o.client_id.clone(),
                scope: o.scope.clone(),
                audience: o.audience.clone(),
            }),
            event_types: w.spec.event_types.iter().map(ToString::to_string).collect(),
            urns: w.spec.urns.iter().map(ToString::to_string).collect(),
            custom_headers: w
                .spec
                .custom_headers
                .iter()
                .filter_map(|h| match &h.value {
                    // The service opens them for the answer; a sealed one is never shown.
                    Protected::Plain(v) => Some((h.name.clone(), v.clone())),
                    Protected::Sealed(_) => None,
                })
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
pub(crate) struct WebhookPage {
    pub(crate) items: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub(crate) next_cursor: Option<String>,
}

/// A page of the attempt log, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttemptPage {
    pub(crate) items: Vec<Attempt>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub(crate) next_cursor: Option<String>,
}

/// The event-type catalog.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventTypes<'a> {
    pub(crate) items: &'a [EventTypeInfo],
}

/// An event was accepted: it is durable and will be fanned out.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// The event id (assigned when the body had none).
    #[schema(example = "evt_01KAXR5V6N9R3Q8ZC2W4E7T1YB")]
    pub(crate) id: String,
}

pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
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
pub(crate) fn webhook_answer(w: &Webhook) -> Response {
    with_etag(
        json_response(StatusCode::OK, &WebhookView::of(w, None)),
        w.version,
    )
}

pub(crate) fn with_etag(mut r: Response, version: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}
