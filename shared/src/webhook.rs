//! Webhooks: the create/patch inputs, their validation (DESIGN §4), and the stored model
//! with its per-App route items (DESIGN §6).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event_type::{Catalog, EventType, EventTypeFilter};
use crate::filter::Filter;
use crate::lifecycle::{Disabled, DisabledReason, Suspension, WebhookState};
use crate::rules::{nullable, Ordering, RateLimit, RetryInput, WebhookRetry};
use crate::signing::Secret;
use crate::target::TargetPolicy;
use crate::urn::{Namespace, Urn, UrnPattern};
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
/// Most custom headers on one webhook.
pub const MAX_CUSTOM_HEADERS: usize = 5;
/// Longest custom header name.
pub const MAX_HEADER_NAME_CHARS: usize = 128;
/// Longest custom header value.
pub const MAX_HEADER_VALUE_CHARS: usize = 512;
/// Header name prefixes a webhook may not set, compared ignoring case.
pub const RESERVED_HEADER_PREFIXES: [&str; 4] =
    ["x-hookline-", "x-amz-", "x-amzn-", "x-forwarded-"];

/// The body of `POST /v1/webhooks`, as sent (checked on save).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewWebhook {
    /// A name for people.
    pub name: String,
    /// The endpoint.
    pub url: String,
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
}

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("urns", &self.urns)
            .field("custom_headers", &self.custom_headers)
            .field("enabled", &self.enabled)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("filter", &self.filter)
            .field("retry", &self.retry)
            .field("rate_limit", &self.rate_limit)
            .field("ordering", &self.ordering)
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
    /// New endpoint.
    pub url: Option<String>,
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
}

/// An endpoint URL that passed DESIGN §4's rules and the target guard's literal checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookUrl(url::Url);

impl Serialize for WebhookUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl WebhookUrl {
    /// Parses and checks a URL against `rules`.
    pub fn parse(input: &str, rules: &WebhookRules<'_>) -> Result<Self, String> {
        if input.chars().count() > MAX_URL_CHARS {
            return Err(format!("is longer than {MAX_URL_CHARS} characters"));
        }
        let url = url::Url::parse(input).map_err(|e| format!("is not a valid URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if rules.allow_http => {}
            "http" => {
                return Err(
                    "must use https:// (this deployment does not accept http://)".to_owned(),
                )
            }
            other if rules.allow_http => {
                return Err(format!("must use https:// or http://, not {other}://"))
            }
            other => return Err(format!("must use https://, not {other}://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".to_owned());
        }
        if url.fragment().is_some() {
            return Err("must not contain a #fragment (it is never sent)".to_owned());
        }
        rules.targets.check_host(&url).map_err(|e| e.to_string())?;
        Ok(Self(url))
    }

    /// Reads back a URL this deployment stored after validating it (no policy check).
    pub fn parse_stored(input: &str) -> Result<Self, url::ParseError> {
        url::Url::parse(input).map(Self)
    }

    /// The URL.
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// One custom header: an `X-` name of HTTP token characters and a visible-ASCII value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CustomHeader {
    /// Header name as given (case kept).
    pub name: String,
    /// Header value.
    pub value: String,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Checks one header name; the error says what breaks which rule.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let Some(rest) = name
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("x-"))
        .map(|_| &name[2..])
    else {
        return Err(format!("header \"{name}\" must start with \"X-\""));
    };
    if rest.is_empty() {
        return Err(format!("header \"{name}\" needs a name after \"X-\""));
    }
    if name.chars().count() > MAX_HEADER_NAME_CHARS {
        return Err(format!(
            "header \"{name}\" is longer than {MAX_HEADER_NAME_CHARS} characters"
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(format!(
            "header \"{name}\" contains the forbidden character {c:?}"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if let Some(prefix) = RESERVED_HEADER_PREFIXES
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        return Err(format!(
            "header \"{name}\" uses the reserved prefix \"{prefix}\""
        ));
    }
    Ok(())
}

/// Checks one header value for the header `name`.
pub fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_HEADER_VALUE_CHARS {
        return Err(format!(
            "value of header \"{name}\" is longer than {MAX_HEADER_VALUE_CHARS} characters"
        ));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        let what = match c {
            '\r' | '\n' => "a line break".to_owned(),
            c if c.is_control() => format!("the control character U+{:04X}", c as u32),
            c => format!("the non-ASCII character {c:?}"),
        };
        return Err(format!("value of header \"{name}\" contains {what}"));
    }
    Ok(())
}

/// Validates a whole header map: count, names, values, and names unique ignoring case.
/// Returns one error per failing header (field `customHeaders.<name>`).
pub fn validate_custom_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<CustomHeader>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if headers.len() > MAX_CUSTOM_HEADERS {
        errors.push(FieldError::new(
            "customHeaders",
            format!(
                "has {} headers, at most {MAX_CUSTOM_HEADERS} are allowed",
                headers.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let field = format!("customHeaders.{name}");
        if let Err(m) = check_header_name(name) {
            errors.push(FieldError::new(field, m));
            continue;
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            errors.push(FieldError::new(
                field,
                format!("header \"{name}\" is given twice (names ignore case)"),
            ));
            continue;
        }
        if let Err(m) = check_header_value(name, value) {
            errors.push(FieldError::new(field, m));
            continue;
        }
        out.push(CustomHeader {
            name: name.clone(),
            value: value.clone(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A validated webhook definition: what a user controls.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    /// A name for people.
    pub name: String,
    /// The endpoint.
    pub url: WebhookUrl,
    /// What it subscribes to.
    pub event_types: Vec<EventTypeFilter>,
    /// Where: URN patterns, possibly of several Apps.
    pub urns: Vec<UrnPattern>,
    /// Headers sent with every delivery.
    pub custom_headers: Vec<CustomHeader>,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Only events matching this pattern are delivered.
    pub filter: Option<Filter>,
    /// Its own retry schedule; `None`: the deployment's.
    pub retry: Option<WebhookRetry>,
    /// Most deliveries per second.
    pub rate_limit: Option<RateLimit>,
    /// Whether deliveries keep the events' order.
    pub ordering: Ordering,
}

impl WebhookSpec {
    /// The Apps its URNs name; managing it needs `edit-app` on each.
    pub fn app_ids(&self) -> BTreeSet<&str> {
        self.urns.iter().map(UrnPattern::app_id).collect()
    }

    /// True when an event of this type on this URN is wanted (ignores `enabled`).
    pub fn wants(&self, event_type: &EventType, urn: &Urn) -> bool {
        self.event_types.iter().any(|f| f.matches(event_type))
            && self.urns.iter().any(|p| p.matches(urn))
    }
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

fn check_event_types(
    given: &[String],
    catalog: &Catalog,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<EventTypeFilter>> {
    if given.is_empty() {
        errors.push(FieldError::new(
            "eventTypes",
            "name at least one event type, or \"*\"",
        ));
        return None;
    }
    if given.len() > MAX_EVENT_TYPES {
        errors.push(FieldError::new(
            "eventTypes",
            format!(
                "has {} entries, at most {MAX_EVENT_TYPES} are allowed",
                given.len()
            ),
        ));
        return None;
    }
    let before = errors.len();
    let mut out: Vec<EventTypeFilter> = Vec::with_capacity(given.len());
    for (i, t) in given.iter().enumerate() {
        match EventTypeFilter::parse(t, catalog) {
            Ok(f) if out.contains(&f) => errors.push(FieldError::new(
                format!("eventTypes[{i}]"),
                format!("\"{t}\" is listed twice"),
            )),
            Ok(f) => out.push(f),
            Err(e) => errors.push(FieldError::new(format!("eventTypes[{i}]"), e.to_string())),
        }
    }
    (errors.len() == before).then_some(out)
}

fn check_urns(
    given: &[String],
    namespace: &Namespace,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<UrnPattern>> {
    if given.is_empty() {
        errors.push(FieldError::new("urns", "name at least one URN pattern"));
        return None;
    }
    if given.len() > MAX_URNS {
        errors.push(FieldError::new(
            "urns",
            format!(
                "has {} entries, at most {MAX_URNS} are allowed",
                given.len()
            ),
        ));
        return None;
    }
    let before = errors.len();
    let mut out: Vec<UrnPattern> = Vec::with_capacity(given.len());
    for (i, u) in given.iter().enumerate() {
        match UrnPattern::parse(u, namespace) {
            Ok(p) if out.contains(&p) => errors.push(FieldError::new(
                format!("urns[{i}]"),
                format!("\"{u}\" is listed twice"),
            )),
            Ok(p) => out.push(p),
            Err(e) => errors.push(FieldError::new(format!("urns[{i}]"), e.to_string())),
        }
    }
    let apps: BTreeSet<&str> = out.iter().map(UrnPattern::app_id).collect();
    if apps.len() > MAX_APPS {
        errors.push(FieldError::new(
            "urns",
            format!("names {} Apps, at most {MAX_APPS} are allowed", apps.len()),
        ));
    }
    (errors.len() == before).then_some(out)
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
        let url = collect(WebhookUrl::parse(&self.url, rules), "url", &mut errors);
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
        match (
            (name, url, event_types, urns, custom_headers),
            (filter, retry, rate_limit, ordering),
        ) {
            (
                (Some(name), Some(url), Some(event_types), Some(urns), Some(custom_headers)),
                (Some(filter), Some(retry), Some(rate_limit), Some(ordering)),
            ) if errors.is_empty() => Ok(WebhookSpec {
                name,
                url,
                event_types,
                urns,
                custom_headers,
                enabled: self.enabled.unwrap_or(true),
                filter,
                retry,
                rate_limit,
                ordering,
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
        if let Some(url) = &self.url {
            if let Some(v) = collect(WebhookUrl::parse(url, rules), "url", &mut errors) {
                next.url = v;
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
        ValidationErrors::check(errors).map(|()| next)
    }
}

/// A webhook id, `wh_<ULID>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookId(String);

impl TryFrom<String> for WebhookId {
    type Error = String;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::parse(&id).ok_or_else(|| format!("\"{id}\" is not a webhook id"))
    }
}

impl From<WebhookId> for String {
    fn from(id: WebhookId) -> Self {
        id.0
    }
}

impl WebhookId {
    /// A new id.
    pub fn generate() -> Self {
        Self(format!("wh_{}", ulid::Ulid::new()))
    }

    /// Accepts an id from a path or a store; `None` when it cannot be one of ours.
    pub fn parse(id: &str) -> Option<Self> {
        let ulid = id.strip_prefix("wh_")?;
        ulid::Ulid::from_string(ulid).ok()?;
        Some(Self(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signing secret with the time it stops signing (set when it was rotated out).
#[derive(Debug, Clone, PartialEq)]
pub struct SigningSecret {
    /// The secret.
    pub secret: Secret,
    /// When it stops signing; `None` for the current secret.
    pub expires_at: Option<OffsetDateTime>,
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// What the user set.
    pub spec: WebhookSpec,
    /// Current secret first, then rotated-out ones still signing.
    pub secrets: Vec<SigningSecret>,
    /// `sub` of the principal that created it.
    pub owner: String,
    /// Optimistic-concurrency version, 1 on create, +1 per change (`ETag` / `If-Match`).
    pub version: u64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Disabled, failing, suspended: what Hookline did to it and why.
    pub state: WebhookState,
}

impl Webhook {
    /// A new webhook with a fresh id, version 1 and `secret` as its only signing secret.
    pub fn new(spec: WebhookSpec, secret: Secret, owner: &str, now: OffsetDateTime) -> Self {
        let mut webhook = Self {
            id: WebhookId::generate(),
            spec,
            secrets: vec![SigningSecret {
                secret,
                expires_at: None,
            }],
            owner: owner.to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
            state: WebhookState::default(),
        };
        if !webhook.spec.enabled {
            webhook.state.disabled = Some(Disabled {
                reason: DisabledReason::Manual,
                at: now,
                last_error: None,
            });
        }
        webhook
    }

    /// Turns deliveries off for `reason`.
    pub fn disable(
        &mut self,
        reason: DisabledReason,
        at: OffsetDateTime,
        last_error: Option<String>,
    ) {
        self.spec.enabled = false;
        self.state.disabled = Some(Disabled {
            reason,
            at,
            last_error,
        });
    }

    /// Turns deliveries back on; the failure run is cleared by the store.
    pub fn enable(&mut self) {
        self.spec.enabled = true;
        self.state.disabled = None;
        self.state.failures = None;
    }

    /// The suspension for `app_id`, if its owner lost the permission there.
    pub fn suspended_for(&self, app_id: &str) -> Option<&Suspension> {
        self.state.suspended.iter().find(|s| s.app_id == app_id)
    }

    /// The secrets that sign at `now`: the current one and any rotated out whose overlap has
    /// not ended.
    pub fn active_secrets(&self, now: OffsetDateTime) -> Vec<&Secret> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| &s.secret)
            .collect()
    }

    /// One route item per App the webhook names: what fan-out reads for that App.
    pub fn routes(&self) -> Vec<Route> {
        self.spec
            .app_ids()
            .into_iter()
            .map(|app| Route {
                webhook_id: self.id.clone(),
                version: self.version,
                app_id: app.to_owned(),
                patterns: self
                    .spec
                    .urns
                    .iter()
                    .filter(|p| p.app_id() == app)
                    .cloned()
                    .collect(),
                event_types: self.spec.event_types.clone(),
                enabled: self.spec.enabled && self.suspended_for(app).is_none(),
                url: self.spec.url.clone(),
                filter: self.spec.filter.clone(),
                ordering: self.spec.ordering,
            })
            .collect()
    }
}

/// What fan-out needs of one webhook in one App (`PK=APP#<appId> SK=WH#<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// The webhook's version (what a deliverer's cached copy is checked against).
    pub version: u64,
    /// The App of this item.
    pub app_id: String,
    /// The webhook's patterns in this App.
    pub patterns: Vec<UrnPattern>,
    /// Its event-type filters.
    pub event_types: Vec<EventTypeFilter>,
    /// Whether it receives deliveries from this App: enabled, and not suspended here.
    pub enabled: bool,
    /// Its endpoint.
    pub url: WebhookUrl,
    /// Its payload filter.
    pub filter: Option<Filter>,
    /// Whether its deliveries keep the events' order.
    pub ordering: Ordering,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> WebhookRules<'static> {
        static NS: std::sync::LazyLock<Namespace> = std::sync::LazyLock::new(Namespace::default);
        WebhookRules {
            namespace: &NS,
            catalog: Catalog::builtin(),
            allow_http: false,
            targets: TargetPolicy::PUBLIC_ONLY,
            ordered: true,
        }
    }

    fn new(url: &str) -> NewWebhook {
        NewWebhook {
            name: "Tickets to CRM".into(),
            url: url.into(),
            event_types: vec!["ticket.created".into()],
            urns: None,
            custom_headers: None,
            enabled: None,
            secret: None,
            filter: None,
            retry: None,
            rate_limit: None,
            ordering: None,
        }
    }

    fn fields(r: Result<WebhookSpec, ValidationErrors>) -> Vec<String> {
        r.expect_err("should fail")
            .errors()
            .iter()
            .map(|e| e.field.clone())
            .collect()
    }

    #[test]
    fn ordering_needs_a_deployment_that_serves_it() {
        let input = NewWebhook {
            ordering: Some(Ordering::PerUrn),
            ..new("https://crm.example.com/hooks")
        };
        let spec = input.validate(&rules(), Some("A1")).expect("served");
        assert_eq!(spec.ordering, Ordering::PerUrn);
        let without = WebhookRules {
            ordered: false,
            ..rules()
        };
        assert_eq!(fields(input.validate(&without, Some("A1"))), ["ordering"]);
        let patch = WebhookPatch {
            ordering: Some(Ordering::PerWebhook),
            ..WebhookPatch::default()
        };
        let refused = patch.apply(&spec, &without).expect_err("refused");
        assert_eq!(refused.errors()[0].field, "ordering");
        let unordered = WebhookPatch {
            ordering: Some(Ordering::None),
            ..WebhookPatch::default()
        };
        assert_eq!(
            unordered
                .apply(&spec, &without)
                .expect("none is always served")
                .ordering,
            Ordering::None
        );
    }

    #[test]
    fn a_webhook_without_urns_covers_its_whole_app() {
        let spec = new("https://crm.example.com/hooks")
            .validate(&rules(), Some("A1"))
            .expect("valid");
        assert_eq!(spec.urns.len(), 1);
        assert_eq!(spec.urns[0].to_string(), "urn:allthings:app:A1:*");
        assert!(spec.enabled);
        assert_eq!(
            fields(new("https://crm.example.com/hooks").validate(&rules(), None)),
            ["urns"]
        );
    }

    #[test]
    fn several_apps_and_sub_segments_are_allowed() {
        let mut w = new("https://crm.example.com/hooks");
        w.urns = Some(vec![
            "urn:allthings:app:A1:ticket:CAT7:*".into(),
            "urn:allthings:app:A2:*".into(),
        ]);
        let spec = w.validate(&rules(), Some("A1")).expect("valid");
        assert_eq!(spec.app_ids().into_iter().collect::<Vec<_>>(), ["A1", "A2"]);
    }

    #[test]
    fn every_failing_field_is_reported_at_once() {
        let w = NewWebhook {
            name: "  ".into(),
            url: "http://crm.example.com".into(),
            event_types: vec![
                "ticket.created".into(),
                "nope.nope".into(),
                "ticket.created".into(),
            ],
            urns: Some(vec![
                "urn:allthings:app:*".into(),
                "urn:allthings:app:A1:*".into(),
            ]),
            custom_headers: Some(BTreeMap::from([("Api-Key".into(), "x".into())])),
            enabled: None,
            secret: None,
            filter: None,
            retry: None,
            rate_limit: None,
            ordering: None,
        };
        assert_eq!(
            fields(w.validate(&rules(), None)),
            [
                "name",
                "url",
                "eventTypes[1]",
                "eventTypes[2]",
                "urns[0]",
                "customHeaders.Api-Key"
            ]
        );
    }

    #[test]
    fn url_rules() {
        let bad = [
            ("http://crm.example.com/", "https"),
            ("ftp://crm.example.com/", "https"),
            ("https://user:pw@crm.example.com/", "user name"),
            ("https://crm.example.com/#x", "fragment"),
            ("https://10.0.0.1/", "private"),
            ("https://2130706433/", "loopback"),
            ("https://[::ffff:127.0.0.1]/", "loopback"),
            ("https://localhost./", "local machine"),
            ("not a url", "valid URL"),
        ];
        for (url, says) in bad {
            let err = WebhookUrl::parse(url, &rules()).expect_err(url);
            assert!(err.contains(says), "{url}: {err}");
        }
        let long = format!("https://crm.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(WebhookUrl::parse(&long, &rules())
            .expect_err("long")
            .contains("longer"));
        let ok = format!("https://crm.example.com/{}", "a".repeat(MAX_URL_CHARS - 24));
        assert_eq!(ok.len(), MAX_URL_CHARS);
        assert!(WebhookUrl::parse(&ok, &rules()).is_ok());
        let local = WebhookRules {
            allow_http: true,
            targets: TargetPolicy {
                allow_private: true,
            },
            ..rules()
        };
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", &local).is_ok());
    }

    #[test]
    fn name_and_list_limits() {
        let mut w = new("https://crm.example.com/");
        w.name = "n".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(fields(w.validate(&rules(), Some("A1"))), ["name"]);
        w.name = "a\u{7}b".into();
        assert_eq!(fields(w.validate(&rules(), Some("A1"))), ["name"]);
        let mut w = new("https://crm.example.com/");
        w.event_types = vec![];
        w.urns = Some(vec![]);
        assert_eq!(
            fields(w.validate(&rules(), Some("A1"))),
            ["eventTypes", "urns"]
        );
        let mut w = new("https://crm.example.com/");
        w.urns = Some(
            (0..=MAX_APPS)
                .map(|i| format!("urn:allthings:app:A{i}:*"))
                .collect(),
        );
        assert_eq!(fields(w.validate(&rules(), Some("A1"))), ["urns"]);
        w.urns = Some(
            (0..=MAX_URNS)
                .map(|i| format!("urn:allthings:app:A{i}:*"))
                .collect(),
        );
        assert_eq!(fields(w.validate(&rules(), Some("A1"))), ["urns"]);
    }

    #[test]
    fn each_partoo_header_rule_is_enforced() {
        let cases: &[(&str, &str, &str)] = &[
            ("Api-Key", "x", "must start with \"X-\""),
            ("X-", "x", "needs a name"),
            ("X-A B", "x", "' '"),
            ("X-A(B", "x", "'('"),
            ("X-A)B", "x", "')'"),
            ("X-A<B", "x", "'<'"),
            ("X-A>B", "x", "'>'"),
            ("X-A@B", "x", "'@'"),
            ("X-A,B", "x", "','"),
            ("X-A;B", "x", "';'"),
            ("X-A:B", "x", "':'"),
            ("X-A\\B", "x", "'\\\\'"),
            ("X-A\"B", "x", "'\"'"),
            ("X-A/B", "x", "'/'"),
            ("X-A[B", "x", "'['"),
            ("X-A]B", "x", "']'"),
            ("X-A?B", "x", "'?'"),
            ("X-A=B", "x", "'='"),
            ("X-A{B", "x", "'{'"),
            ("X-A}B", "x", "'}'"),
            ("X-Hookline-Sig", "x", "reserved"),
            ("x-amz-date", "x", "reserved"),
            ("X-Amzn-Trace-Id", "x", "reserved"),
            ("X-FORWARDED-For", "x", "reserved"),
            ("X-Crlf", "a\r\nX-Injected: 1", "line break"),
            ("X-Tab", "a\tb", "control character"),
            ("X-Accent", "café", "non-ASCII"),
        ];
        for (name, value, says) in cases {
            let map = BTreeMap::from([(name.to_string(), value.to_string())]);
            let errs = validate_custom_headers(&map).expect_err(name);
            assert_eq!(errs.len(), 1, "{name}");
            assert_eq!(errs[0].field, format!("customHeaders.{name}"));
            assert!(
                errs[0].message.contains(says),
                "{name}: {}",
                errs[0].message
            );
            assert!(
                errs[0].message.contains(name),
                "{name}: error must name the header"
            );
        }
    }

    #[test]
    fn patch_changes_only_given_fields_and_reports_all_failures() {
        let spec = new("https://crm.example.com/hooks")
            .validate(&rules(), Some("A1"))
            .expect("valid");
        let patch = WebhookPatch {
            enabled: Some(false),
            name: Some("Renamed".into()),
            ..Default::default()
        };
        let next = patch.apply(&spec, &rules()).expect("valid");
        assert_eq!(next.name, "Renamed");
        assert!(!next.enabled);
        assert_eq!(next.url, spec.url);
        let bad = WebhookPatch {
            url: Some("http://x.example.com".into()),
            urns: Some(vec![]),
            custom_headers: Some(BTreeMap::from([
                ("X-A".into(), "1".into()),
                ("x-a".into(), "2".into()),
            ])),
            ..Default::default()
        };
        let err = bad.apply(&spec, &rules()).expect_err("invalid");
        let f: Vec<_> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(f, ["url", "urns", "customHeaders.x-a"]);
        assert!(WebhookPatch::default().is_empty());
    }

    #[test]
    fn routes_split_a_webhook_per_app_and_secrets_expire() {
        let mut w = new("https://crm.example.com/");
        w.urns = Some(vec![
            "urn:allthings:app:A1:ticket:*".into(),
            "urn:allthings:app:A2:*".into(),
            "urn:allthings:app:A1:booking:*".into(),
        ]);
        let spec = w.validate(&rules(), None).expect("valid");
        let now = OffsetDateTime::now_utc();
        let current = Secret::generate().expect("rng");
        let old = Secret::generate().expect("rng");
        let gone = Secret::generate().expect("rng");
        let hook = Webhook {
            id: WebhookId::generate(),
            spec,
            secrets: vec![
                SigningSecret {
                    secret: current.clone(),
                    expires_at: None,
                },
                SigningSecret {
                    secret: old.clone(),
                    expires_at: Some(now + time::Duration::hours(1)),
                },
                SigningSecret {
                    secret: gone,
                    expires_at: Some(now - time::Duration::seconds(1)),
                },
            ],
            owner: "user-1".into(),
            version: 1,
            created_at: now,
            updated_at: now,
            state: WebhookState::default(),
        };
        let routes = hook.routes();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].app_id, "A1");
        assert_eq!(routes[0].patterns.len(), 2);
        assert_eq!(routes[1].app_id, "A2");
        assert_eq!(hook.active_secrets(now), vec![&current, &old]);
        assert!(WebhookId::parse(hook.id.as_str()).is_some());
        assert!(WebhookId::parse("wh_nope").is_none());
    }
}
