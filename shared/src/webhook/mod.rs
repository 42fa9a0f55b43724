//! Webhooks: the stored model ([`Webhook`], [`WebhookSpec`]) with its per-App route items
//! ([`Route`]), the create/patch inputs and their validation ([`input`]), custom headers
//! ([`headers`]) and the lifecycle state ([`state`]). Rules: `docs/ARCHITECTURE.md`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::destination::AwsDestination;
use crate::event_type::{EventType, EventTypeFilter};
use crate::filter::Filter;
use crate::rules::{Ordering, RateLimit, WebhookRetry};
use crate::sealed::{Keyring, Protected, SealError};
use crate::signing::Secret;
use crate::urn::{Urn, UrnPattern};

pub mod headers;
pub mod input;
pub mod oauth2;
pub mod state;

pub use headers::{
    check_header_name, check_header_value, validate_custom_headers, CustomHeader,
    MAX_CUSTOM_HEADERS, MAX_HEADER_NAME_CHARS, MAX_HEADER_VALUE_CHARS, RESERVED_HEADER_PREFIXES,
};
pub use input::{
    DestinationInput, NewWebhook, WebhookPatch, WebhookRules, MAX_APPS, MAX_EVENT_TYPES,
    MAX_NAME_CHARS, MAX_URL_CHARS, MAX_URNS,
};
pub use oauth2::{OAuth2, OAuth2Input};
pub use state::{
    DisablePolicy, Disabled, DisabledReason, FailureRun, Suspension, WebhookState,
    DEFAULT_DISABLE_AFTER, DEFAULT_DISABLE_MIN_FAILURES, PERMISSION_REVOKED,
};

/// The grammar of an endpoint URL, as the API document states it and [`WebhookUrl::parse`]
/// enforces it: `http(s)://`, a DNS name whose last label starts with a letter or an IPv4
/// address, an optional port, then a path and query of URL characters (ASCII, no spaces, no
/// `#`, `%` only before two hex digits). No user name, no IPv6 literal.
pub const URL_PATTERN: &str = concat!(
    r"^[hH][tT][tT][pP][sS]?://",
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    r"|(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})",
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"(?:[/?](?:[!$&'()*+,./0-9:;=?@A-Z_a-z~-]|%[0-9A-Fa-f]{2})*)?$",
);

/// Whether `input` follows [`URL_PATTERN`] (compiled once; a test proves it compiles).
fn follows_url_grammar(input: &str) -> bool {
    static RE: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(URL_PATTERN).ok());
    RE.as_ref().is_some_and(|re| re.is_match(input))
}

/// An endpoint URL that passed the save rules and the target guard's literal checks.
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
        if input.trim().is_empty() {
            return Err("must not be empty: enter the endpoint's https:// URL".to_owned());
        }
        let url = url::Url::parse(input).map_err(|e| {
            if input.contains("://") {
                format!("is not a valid URL: {e}")
            } else {
                format!("is not a valid URL ({e}): enter the endpoint's whole https:// URL")
            }
        })?;
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
        if !follows_url_grammar(input) {
            return Err("must be an http(s) URL of plain ASCII: a host name or IPv4 address, an optional port, a path and query without spaces".to_owned());
        }
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

/// Where a webhook's deliveries go: an HTTPS endpoint, or an AWS destination reached through
/// a role the integrator grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// POSTed to this URL.
    Http(WebhookUrl),
    /// Sent to this queue, topic, bus or stream.
    Aws(AwsDestination),
}

impl Endpoint {
    /// The URL of an HTTP endpoint.
    pub fn url(&self) -> Option<&WebhookUrl> {
        match self {
            Self::Http(url) => Some(url),
            Self::Aws(_) => None,
        }
    }

    /// The AWS destination, if it is one.
    pub fn destination(&self) -> Option<&AwsDestination> {
        match self {
            Self::Http(_) => None,
            Self::Aws(d) => Some(d),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => url.fmt(f),
            Self::Aws(d) => f.write_str(&d.describe()),
        }
    }
}

/// A validated webhook definition: what a user controls.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    /// A name for people.
    pub name: String,
    /// Where deliveries go.
    pub endpoint: Endpoint,
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
    /// OAuth2 client credentials: deliveries carry a bearer token (HTTP endpoints only).
    pub oauth2: Option<OAuth2>,
}

impl WebhookSpec {
    /// The Apps its URNs name; managing it needs `edit-app` on each.
    pub fn app_ids(&self) -> BTreeSet<&str> {
        self.urns.iter().map(UrnPattern::app_id).collect()
    }

    /// Whether one of its URN patterns is in App `app_id` (no allocation: the deliverer asks
    /// for every delivery).
    pub fn names_app(&self, app_id: &str) -> bool {
        self.urns.iter().any(|p| p.app_id() == app_id)
    }

    /// The custom headers of webhook `id`, names and opened values.
    pub fn open_headers(
        &self,
        id: &WebhookId,
        keys: &Keyring,
    ) -> Result<Vec<(String, String)>, CredentialError> {
        self.custom_headers
            .iter()
            .map(|h| {
                let value =
                    h.value
                        .open(keys, &h.field(id.as_str()))
                        .map_err(|e| CredentialError {
                            field: format!("customHeaders.{}", h.name),
                            error: e,
                        })?;
                Ok((h.name.clone(), value.into_owned()))
            })
            .collect()
    }

    /// True when an event of this type on this URN is wanted (ignores `enabled`).
    pub fn wants(&self, event_type: &EventType, urn: &Urn) -> bool {
        self.event_types.iter().any(|f| f.matches(event_type))
            && self.urns.iter().any(|p| p.matches(urn))
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
    /// The secret's `whsec_` text, sealed before it is stored.
    pub secret: Protected,
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
    /// A new webhook with a fresh id, version 1 and `secret` as its only signing secret
    /// (plaintext until [`Webhook::seal`]).
    pub fn new(spec: WebhookSpec, secret: &Secret, owner: &str, now: OffsetDateTime) -> Self {
        let mut webhook = Self {
            id: WebhookId::generate(),
            spec,
            secrets: vec![SigningSecret {
                secret: Protected::Plain(secret.expose()),
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

    /// Whether App `app_id` is the only App it names (a purge of that App deletes it).
    pub fn names_only(&self, app_id: &str) -> bool {
        self.spec.urns.iter().all(|p| p.app_id() == app_id)
    }

    /// Removes App `app_id` from it (its URN patterns and its suspension there); false when
    /// it did not name the App or names nothing else (a webhook names at least one App).
    pub fn remove_app(&mut self, app_id: &str) -> bool {
        if !self.spec.names_app(app_id) || self.names_only(app_id) {
            return false;
        }
        self.spec.urns.retain(|p| p.app_id() != app_id);
        self.state.suspended.retain(|s| s.app_id != app_id);
        true
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

    /// The secrets that sign at `now`, opened: the current one and any rotated out whose
    /// overlap has not ended.
    pub fn active_secrets(
        &self,
        keys: &Keyring,
        now: OffsetDateTime,
    ) -> Result<Vec<Secret>, CredentialError> {
        let field = self.secret_field();
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| {
                let text = s.secret.open(keys, &field).map_err(|e| CredentialError {
                    field: "secret".into(),
                    error: e,
                })?;
                Secret::parse(&text).map_err(|_| CredentialError {
                    field: "secret".into(),
                    error: SealError::Malformed("not a whsec_ secret".into()),
                })
            })
            .collect()
    }

    /// Its OAuth2 client secret, opened (`None` without OAuth2).
    pub fn open_oauth2_secret(&self, keys: &Keyring) -> Result<Option<String>, CredentialError> {
        self.spec
            .oauth2
            .as_ref()
            .map(|o| {
                o.client_secret
                    .open(keys, &OAuth2::field(self.id.as_str()))
                    .map(std::borrow::Cow::into_owned)
                    .map_err(|e| CredentialError {
                        field: "oauth2.clientSecret".into(),
                        error: e,
                    })
            })
            .transpose()
    }

    /// Its custom headers, names and opened values.
    pub fn open_headers(&self, keys: &Keyring) -> Result<Vec<(String, String)>, CredentialError> {
        self.spec.open_headers(&self.id, keys)
    }

    fn secret_field(&self) -> String {
        format!("{}:secret", self.id)
    }

    /// Seals every plaintext credential, and reseals any sealed under another key than the
    /// active one; true when anything changed.
    pub fn seal(&mut self, keys: &Keyring) -> Result<bool, CredentialError> {
        let mut changed = false;
        let field = self.secret_field();
        for s in &mut self.secrets {
            changed |= s.secret.seal(keys, &field).map_err(|e| CredentialError {
                field: "secret".into(),
                error: e,
            })?;
        }
        let id = self.id.clone();
        if let Some(o) = &mut self.spec.oauth2 {
            changed |= o
                .client_secret
                .seal(keys, &OAuth2::field(id.as_str()))
                .map_err(|e| CredentialError {
                    field: "oauth2.clientSecret".into(),
                    error: e,
                })?;
        }
        for h in &mut self.spec.custom_headers {
            let field = h.field(id.as_str());
            changed |= h.value.seal(keys, &field).map_err(|e| CredentialError {
                field: format!("customHeaders.{}", h.name),
                error: e,
            })?;
        }
        Ok(changed)
    }

    /// The ids of the keys its credentials are sealed under (`None` for plaintext ones).
    pub fn key_ids(&self) -> BTreeSet<Option<&str>> {
        self.secrets
            .iter()
            .map(|s| s.secret.key_id())
            .chain(self.spec.custom_headers.iter().map(|h| h.value.key_id()))
            .chain(self.spec.oauth2.iter().map(|o| o.client_secret.key_id()))
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
                endpoint: self.spec.endpoint.clone(),
                filter: self.spec.filter.clone(),
                ordering: self.spec.ordering,
            })
            .collect()
    }
}

/// A webhook credential that could not be opened or sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook's {field} {error}")]
pub struct CredentialError {
    /// `secret` or `customHeaders.<name>`.
    pub field: String,
    /// Why.
    pub error: SealError,
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
    /// Where its deliveries go.
    pub endpoint: Endpoint,
    /// Its payload filter.
    pub filter: Option<Filter>,
    /// Whether its deliveries keep the events' order.
    pub ordering: Ordering,
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_type::Catalog;
    use crate::target::TargetPolicy;
    use crate::urn::Namespace;
    use crate::validation::ValidationErrors;
    use std::collections::BTreeMap;

    fn rules() -> WebhookRules<'static> {
        static NS: std::sync::LazyLock<Namespace> = std::sync::LazyLock::new(Namespace::default);
        WebhookRules {
            namespace: &NS,
            catalog: Catalog::builtin(),
            allow_http: false,
            targets: TargetPolicy::PUBLIC_ONLY,
            ordered: true,
            destinations: None,
        }
    }

    fn new(url: &str) -> NewWebhook {
        NewWebhook {
            name: "Tickets to CRM".into(),
            url: url.into(),
            destination: None,
            event_types: vec!["ticket.created".into()],
            urns: None,
            custom_headers: None,
            enabled: None,
            secret: None,
            filter: None,
            retry: None,
            rate_limit: None,
            ordering: None,
            oauth2: None,
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
    fn the_url_grammar_compiles_and_agrees_with_the_parser() {
        let ok = [
            "https://crm.example.com/hooks?x=1",
            "http://127.0.0.1:8080/w/0",
            "HTTPS://Example.COM",
            "https://a.b/p/%41@x?q=%7e",
        ];
        for u in ok {
            assert!(follows_url_grammar(u), "{u}");
            assert!(url::Url::parse(u).is_ok(), "{u}");
        }
        for u in [
            "https://a b.com",
            "https://999.1.1.1",
            "https://[::1]/",
            "https://ex.com:70000",
            "https://é.com",
            "ftp://a.com",
            "https://user@a.com",
            "https://a.com/%zz",
        ] {
            assert!(!follows_url_grammar(u), "{u}");
        }
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
            destination: None,
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
            oauth2: None,
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
            ("crm.example.com/hooks", "whole https:// URL"),
            ("", "must not be empty: enter the endpoint's https:// URL"),
            ("  ", "must not be empty"),
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
        assert_eq!(next.endpoint, spec.endpoint);
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
                    secret: Protected::Plain(current.expose()),
                    expires_at: None,
                },
                SigningSecret {
                    secret: Protected::Plain(old.expose()),
                    expires_at: Some(now + time::Duration::hours(1)),
                },
                SigningSecret {
                    secret: Protected::Plain(gone.expose()),
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
        let keys = Keyring::generate().expect("rng");
        assert_eq!(
            hook.active_secrets(&keys, now).expect("plaintext opens"),
            vec![current.clone(), old.clone()]
        );
        let mut sealed = hook.clone();
        assert!(sealed.seal(&keys).expect("seals"));
        assert!(sealed
            .secrets
            .iter()
            .all(|s| s.secret.as_stored().is_some()));
        assert_eq!(
            sealed.active_secrets(&keys, now).expect("opens"),
            vec![current, old]
        );
        assert!(!sealed.seal(&keys).expect("already sealed"));
        assert!(WebhookId::parse(hook.id.as_str()).is_some());
        assert!(WebhookId::parse("wh_nope").is_none());
    }
}
