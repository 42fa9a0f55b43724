//! The create and patch inputs (`POST`/`PATCH /v1/webhooks`) and their validation: every
//! failing field reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use super::headers::{validate_custom_headers, CustomHeader};
use super::oauth2::{OAuth2, OAuth2Input};
use super::{Endpoint, WebhookSpec, WebhookUrl};
use crate::destination::{AwsDestination, AwsService, DestinationPolicy};
use crate::event_type::{Catalog, EventTypeFilter};
use crate::filter::Filter;
use crate::rules::{nullable, Ordering, RateLimit, RetryInput, WebhookRetry};
use crate::target::TargetPolicy;
use crate::urn::{Namespace, UrnPattern};
use crate::validation::{FieldError, ValidationErrors};

/// Longest webhook name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest endpoint URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Most event-type filters on one webhook.
pub const MAX_EVENT_TYPES: usize = 64;
/// Most URN patterns on one webhook.
pub const MAX_URNS: usize = 64;
/// Most distinct Apps one webhook may name (keeps an update within one DynamoDB transaction).
pub const MAX_APPS: usize = 32;

/// The body of `POST /v1/webhooks`, as sent (checked on save).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewWebhook {
    /// A name for people.
    pub name: String,
    /// The HTTPS endpoint; leave out for an AWS `destination`.
    #[serde(default)]
    pub url: String,
    /// An AWS destination instead of a URL.
    #[serde(default)]
    pub destination: Option<DestinationInput>,
    /// `*`, `family.*` or catalog types.
    pub event_types: Vec<String>,
    /// URN patterns; absent means the whole App the webhook is created in.
    #[serde(default)]
    pub urns: Option<Vec<String>>,
    /// Up to five `X-` headers sent with every delivery.
    #[serde(default)]
    pub custom_headers: Option<BTreeMap<String, String>>,
    /// Whether deliveries go out (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The signing secret to use (`whsec_` and base64 of 24–64 random bytes), for a receiver
    /// that must know it before the endpoint check; Hookline makes one when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^whsec_"))]
    pub secret: Option<String>,
    /// A content pattern over the event envelope (EventBridge form); only matching events
    /// are delivered. Absent or `{}`: every event the types and URNs select.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>, example = json!({"data": {"priority": ["high", "urgent"]}})))]
    pub filter: Option<serde_json::Value>,
    /// The webhook's own retry schedule; absent: the deployment's.
    #[serde(default)]
    pub retry: Option<RetryInput>,
    /// Most deliveries per second; absent: no limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// `per-webhook` or `per-urn` to deliver in order; default `none`.
    #[serde(default)]
    pub ordering: Option<Ordering>,
    /// OAuth2 client credentials: each delivery carries a bearer token from `tokenUrl`.
    #[serde(default)]
    pub oauth2: Option<OAuth2Input>,
}

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("destination", &self.destination)
            .field("event_types", &self.event_types)
            .field("urns", &self.urns)
            .field("custom_headers", &self.custom_headers)
            .field("enabled", &self.enabled)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("filter", &self.filter)
            .field("retry", &self.retry)
            .field("rate_limit", &self.rate_limit)
            .field("ordering", &self.ordering)
            .field("oauth2", &self.oauth2)
            .finish()
    }
}

/// The body of `PATCH /v1/webhooks/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookPatch {
    /// New name.
    pub name: Option<String>,
    /// New endpoint URL (replaces a destination).
    pub url: Option<String>,
    /// New AWS destination (replaces a URL).
    pub destination: Option<DestinationInput>,
    /// New event-type filters.
    pub event_types: Option<Vec<String>>,
    /// New URN patterns (at least one).
    pub urns: Option<Vec<String>>,
    /// New custom headers (`{}` removes them all).
    pub custom_headers: Option<BTreeMap<String, String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New payload filter; `null` or `{}` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Option<serde_json::Value>>,
    /// New retry schedule; `null` returns to the deployment's.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RetryInput>))]
    pub retry: Option<Option<RetryInput>>,
    /// New rate limit; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<RateLimit>))]
    pub rate_limit: Option<Option<RateLimit>>,
    /// New ordering (`none`, `per-webhook`, `per-urn`).
    pub ordering: Option<Ordering>,
    /// New OAuth2 client credentials (the secret given again); `null` removes them.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<OAuth2Input>))]
    pub oauth2: Option<Option<OAuth2Input>>,
}

/// An AWS destination as sent: `{"type": "aws-sqs", "arn": ..., "roleArn": ..., "externalId": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationInput {
    /// `aws-sqs`, `aws-sns`, `aws-eventbridge` or `aws-kinesis`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The queue's, topic's or event bus's ARN.
    pub arn: String,
    /// The IAM role Hookline assumes to send.
    pub role_arn: String,
    /// The external id Hookline issued for one of the webhook's Apps
    /// (`POST /v1/destinations/external-ids`); the role's trust policy requires it.
    pub external_id: String,
    /// EventBridge only: the events' `source` (default `hookline`).
    #[serde(default)]
    pub source: Option<String>,
}

impl DestinationInput {
    fn check(
        &self,
        policy: Option<&DestinationPolicy>,
        errors: &mut Vec<FieldError>,
    ) -> Option<AwsDestination> {
        let Some(policy) = policy else {
            errors.push(FieldError::new(
                "destination",
                "this deployment does not deliver to AWS destinations",
            ));
            return None;
        };
        let Some(service) = AwsService::parse(&self.kind) else {
            errors.push(FieldError::new(
                "destination.type",
                format!(
                    "\"{}\" is not a destination type: use one of {}",
                    self.kind,
                    AwsService::ALL.map(AwsService::type_name).join(", ")
                ),
            ));
            return None;
        };
        AwsDestination::parse(
            service,
            &self.arn,
            &self.role_arn,
            &self.external_id,
            self.source.as_deref(),
            policy,
        )
        .map_err(|e| {
            errors.extend(
                e.into_iter()
                    .map(|(field, m)| FieldError::new(format!("destination.{field}"), m)),
            )
        })
        .ok()
    }
}

/// OAuth2 only goes with an HTTP endpoint.
fn check_oauth2_endpoint(
    endpoint: &Endpoint,
    oauth2: Option<&OAuth2>,
    errors: &mut Vec<FieldError>,
) {
    if oauth2.is_some() && endpoint.destination().is_some() {
        errors.push(FieldError::new(
            "oauth2",
            "is for HTTP endpoints; an AWS destination authenticates with its role",
        ));
    }
}

/// The endpoint a create or patch gives: a URL or a destination, not both.
fn check_endpoint(
    url: Option<&str>,
    destination: Option<&DestinationInput>,
    rules: &WebhookRules<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<Endpoint> {
    match (url, destination) {
        (Some(url), Some(_)) if !url.is_empty() => {
            errors.push(FieldError::new(
                "destination",
                "give a url or a destination, not both",
            ));
            None
        }
        (_, Some(d)) => d.check(rules.destinations, errors).map(Endpoint::Aws),
        (Some(url), None) => {
            collect(WebhookUrl::parse(url, rules), "url", errors).map(Endpoint::Http)
        }
        (None, None) => None,
    }
}

/// What a deployment allows on save.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRules<'a> {
    /// The URN namespace.
    pub namespace: &'a Namespace,
    /// Types a webhook may subscribe to.
    pub catalog: &'a Catalog,
    /// Accept `http://` endpoints (local development only).
    pub allow_http: bool,
    /// Which targets the URL's host may be.
    pub targets: TargetPolicy,
    /// Ordered delivery is available (on AWS: the FIFO deliveries queue is configured).
    pub ordered: bool,
    /// Where AWS destinations may be; `None`: this deployment has none.
    pub destinations: Option<&'a DestinationPolicy>,
}

/// A payload filter as sent: `{}` is no filter.
fn check_filter(given: &serde_json::Value, errors: &mut Vec<FieldError>) -> Option<Option<Filter>> {
    if given.as_object().is_some_and(serde_json::Map::is_empty) {
        return Some(None);
    }
    Filter::parse(given, "filter")
        .map(Some)
        .map_err(|e| errors.extend(e))
        .ok()
}

fn check_retry(given: &RetryInput, errors: &mut Vec<FieldError>) -> Option<WebhookRetry> {
    WebhookRetry::parse(given, "retry")
        .map_err(|e| errors.extend(e))
        .ok()
}

fn check_ordering(
    ordering: Ordering,
    rules: &WebhookRules<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<Ordering> {
    if ordering != Ordering::None && !rules.ordered {
        errors.push(FieldError::new(
            "ordering",
            "this deployment has no ordered deliveries queue (HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL)",
        ));
        return None;
    }
    Some(ordering)
}

fn check_rate_limit(given: RateLimit, errors: &mut Vec<FieldError>) -> Option<RateLimit> {
    given.check("rateLimit").map_err(|e| errors.extend(e)).ok()
}

fn check_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// Checks a list field: at least one entry (else `empty`), at most `max`, each entry parsed by
/// `parse` and none listed twice. Every failing entry is reported, as `field[i]`.
fn check_list<T: PartialEq, E: fmt::Display>(
    field: &str,
    given: &[String],
    max: usize,
    empty: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<T>> {
    if given.is_empty() {
        errors.push(FieldError::new(field, empty));
        return None;
    }
    if given.len() > max {
        errors.push(FieldError::new(
            field,
            format!("has {} entries, at most {max} are allowed", given.len()),
        ));
        return None;
    }
    let before = errors.len();
    let mut out: Vec<T> = Vec::with_capacity(given.len());
    for (i, g) in given.iter().enumerate() {
        match parse(g) {
            Ok(v) if out.contains(&v) => errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("\"{g}\" is listed twice"),
            )),
            Ok(v) => out.push(v),
            Err(e) => errors.push(FieldError::new(format!("{field}[{i}]"), e.to_string())),
        }
    }
    (errors.len() == before).then_some(out)
}

fn check_event_types(
    given: &[String],
    catalog: &Catalog,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<EventTypeFilter>> {
    check_list(
        "eventTypes",
        given,
        MAX_EVENT_TYPES,
        "name at least one event type, or \"*\"",
        |t| EventTypeFilter::parse(t, catalog),
        errors,
    )
}

fn check_urns(
    given: &[String],
    namespace: &Namespace,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<UrnPattern>> {
    let out = check_list(
        "urns",
        given,
        MAX_URNS,
        "name at least one URN pattern",
        |u| UrnPattern::parse(u, namespace),
        errors,
    )?;
    let apps: BTreeSet<&str> = out.iter().map(UrnPattern::app_id).collect();
    if apps.len() > MAX_APPS {
        errors.push(FieldError::new(
            "urns",
            format!("names {} Apps, at most {MAX_APPS} are allowed", apps.len()),
        ));
        return None;
    }
    Some(out)
}

fn collect<T>(result: Result<T, String>, field: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    result
        .map_err(|m| errors.push(FieldError::new(field, m)))
        .ok()
}

fn collect_headers(
    headers: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<CustomHeader>> {
    validate_custom_headers(headers)
        .map_err(|e| errors.extend(e))
        .ok()
}

impl NewWebhook {
    /// Checks every rule and returns ALL failing fields at once. Without `urns`, the webhook
    /// covers the whole of `default_app` (the App it is created in).
    pub fn validate(
        &self,
        rules: &WebhookRules<'_>,
        default_app: Option<&str>,
    ) -> Result<WebhookSpec, ValidationErrors> {
        let mut errors = Vec::new();
        let name = collect(check_name(&self.name), "name", &mut errors);
        let endpoint = check_endpoint(
            Some(&self.url),
            self.destination.as_ref(),
            rules,
            &mut errors,
        );
        let event_types = check_event_types(&self.event_types, rules.catalog, &mut errors);
        let urns = match (&self.urns, default_app) {
            (Some(urns), Some(app)) => {
                let urns = check_urns(urns, rules.namespace, &mut errors);
                if let Some(urns) = &urns {
                    let named: BTreeSet<&str> = urns.iter().map(UrnPattern::app_id).collect();
                    if !named.contains(app) {
                        errors.push(FieldError::new(
                            "appId",
                            format!(
                                "the urns name App {}, not App {app} given as appId: name App {app} in urns too, or leave appId out",
                                named.into_iter().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                urns
            }
            (Some(urns), None) => check_urns(urns, rules.namespace, &mut errors),
            (None, Some(app)) => collect(
                UrnPattern::whole_app(rules.namespace, app)
                    .map(|p| vec![p])
                    .map_err(|e| format!("App id: {e}")),
                "appId",
                &mut errors,
            ),
            (None, None) => {
                errors.push(FieldError::new(
                    "urns",
                    "give URN patterns, or the appId to cover",
                ));
                None
            }
        };
        let custom_headers = match &self.custom_headers {
            Some(h) => collect_headers(h, &mut errors),
            None => Some(Vec::new()),
        };
        let filter = match &self.filter {
            Some(f) => check_filter(f, &mut errors),
            None => Some(None),
        };
        let retry = match &self.retry {
            Some(r) => check_retry(r, &mut errors).map(Some),
            None => Some(None),
        };
        let rate_limit = match self.rate_limit {
            Some(r) => check_rate_limit(r, &mut errors).map(Some),
            None => Some(None),
        };
        let ordering = check_ordering(self.ordering.unwrap_or_default(), rules, &mut errors);
        let oauth2 = match &self.oauth2 {
            Some(o) => o.check(rules, &mut errors).map(Some),
            None => Some(None),
        };
        if let (Some(endpoint), Some(oauth2)) = (&endpoint, &oauth2) {
            check_oauth2_endpoint(endpoint, oauth2.as_ref(), &mut errors);
        }
        match (
            (name, endpoint, event_types, urns, custom_headers),
            (filter, retry, rate_limit, ordering, oauth2),
        ) {
            (
                (Some(name), Some(endpoint), Some(event_types), Some(urns), Some(custom_headers)),
                (Some(filter), Some(retry), Some(rate_limit), Some(ordering), Some(oauth2)),
            ) if errors.is_empty() => Ok(WebhookSpec {
                name,
                endpoint,
                event_types,
                urns,
                custom_headers,
                enabled: self.enabled.unwrap_or(true),
                filter,
                retry,
                rate_limit,
                ordering,
                oauth2,
            }),
            _ => Err(ValidationErrors::new(errors)),
        }
    }
}

impl WebhookPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Validates the given fields (ALL failures at once) and applies them to `current`.
    pub fn apply(
        &self,
        current: &WebhookSpec,
        rules: &WebhookRules<'_>,
    ) -> Result<WebhookSpec, ValidationErrors> {
        let mut errors = Vec::new();
        let mut next = current.clone();
        if let Some(name) = &self.name {
            if let Some(v) = collect(check_name(name), "name", &mut errors) {
                next.name = v;
            }
        }
        if self.url.is_some() || self.destination.is_some() {
            if let Some(v) = check_endpoint(
                self.url.as_deref(),
                self.destination.as_ref(),
                rules,
                &mut errors,
            ) {
                next.endpoint = v;
            }
        }
        if let Some(types) = &self.event_types {
            if let Some(v) = check_event_types(types, rules.catalog, &mut errors) {
                next.event_types = v;
            }
        }
        if let Some(urns) = &self.urns {
            if let Some(v) = check_urns(urns, rules.namespace, &mut errors) {
                next.urns = v;
            }
        }
        if let Some(headers) = &self.custom_headers {
            if let Some(v) = collect_headers(headers, &mut errors) {
                next.custom_headers = v;
            }
        }
        if let Some(enabled) = self.enabled {
            next.enabled = enabled;
        }
        match &self.filter {
            Some(Some(f)) => {
                if let Some(v) = check_filter(f, &mut errors) {
                    next.filter = v;
                }
            }
            Some(None) => next.filter = None,
            None => {}
        }
        match &self.retry {
            Some(Some(r)) => {
                if let Some(v) = check_retry(r, &mut errors) {
                    next.retry = Some(v);
                }
            }
            Some(None) => next.retry = None,
            None => {}
        }
        match self.rate_limit {
            Some(Some(r)) => {
                if let Some(v) = check_rate_limit(r, &mut errors) {
                    next.rate_limit = Some(v);
                }
            }
            Some(None) => next.rate_limit = None,
            None => {}
        }
        if let Some(ordering) = self.ordering {
            if let Some(ordering) = check_ordering(ordering, rules, &mut errors) {
                next.ordering = ordering;
            }
        }
        match &self.oauth2 {
            Some(Some(o)) => {
                if let Some(v) = o.check(rules, &mut errors) {
                    next.oauth2 = Some(v);
                }
            }
            Some(None) => next.oauth2 = None,
            None => {}
        }
        check_oauth2_endpoint(&next.endpoint, next.oauth2.as_ref(), &mut errors);
        ValidationErrors::check(errors).map(|()| next)
    }
}
