//! The one JSON record format both store adapters keep a webhook in.
//!
//! Both adapters store a webhook as a [`WebhookRecord`] document: in DynamoDB as the `doc`
//! attribute of its `META` item and of each per-App route item, in SQLite as a column. The
//! record holds the signing secrets and custom header values sealed (`crate::sealed`): a
//! document is never written with a plaintext credential, and reading one needs no key.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::destination::AwsDestination;
use crate::event_type::EventTypeFilter;
use crate::filter::Filter;
use crate::ports::PortError;
use crate::rules::{Ordering, RateLimit, RetryInput, WebhookRetry};
use crate::sealed::Protected;
use crate::signing::Secret;
use crate::urn::UrnPattern;
use crate::webhook::{
    CustomHeader, Endpoint, OAuth2, SigningSecret, Webhook, WebhookId, WebhookSpec, WebhookUrl,
};
use crate::webhook::{Disabled, DisabledReason, Suspension, WebhookState};

/// A webhook as stored: plain strings, read back without re-running save-time policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookRecord {
    /// `wh_<ULID>`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Endpoint URL; empty for an AWS destination.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The AWS destination, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationRecord>,
    /// Event-type filters.
    pub event_types: Vec<String>,
    /// URN patterns.
    pub urns: Vec<String>,
    /// Custom headers, values sealed.
    pub custom_headers: Vec<HeaderRecord>,
    /// Whether deliveries go out.
    pub enabled: bool,
    /// Secrets, current first.
    pub secrets: Vec<SecretRecord>,
    /// Creator's `sub`.
    pub owner: String,
    /// Optimistic-concurrency version.
    pub version: u64,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Why it is disabled (`manual`, `failing`, `gone`).
    pub disabled_reason: Option<String>,
    /// Since when it is disabled.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// The delivery error that disabled it.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Apps it receives nothing from (its owner's grant there was revoked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<SuspensionRecord>,
    /// Payload filter, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// Its own retry schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryInput>,
    /// Its rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Its ordering (absent: `none`).
    #[serde(default, skip_serializing_if = "is_unordered")]
    pub ordering: Ordering,
    /// Its OAuth2 client credentials, the secret sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Record>,
}

/// Stored OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Record {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, sealed.
    pub client_secret: String,
    /// The scope asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The audience asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

fn is_unordered(o: &Ordering) -> bool {
    *o == Ordering::None
}

/// A stored AWS destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRecord {
    /// `aws-sqs`, `aws-sns`, `aws-eventbridge`, `aws-kinesis`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The queue, topic, bus or stream.
    pub arn: String,
    /// The role assumed.
    pub role_arn: String,
    /// The external id.
    pub external_id: String,
    /// EventBridge's `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl From<&AwsDestination> for DestinationRecord {
    fn from(d: &AwsDestination) -> Self {
        Self {
            kind: d.service.type_name().to_owned(),
            arn: d.arn.to_string(),
            role_arn: d.role_arn.to_string(),
            external_id: d.external_id.to_string(),
            source: d.source.clone(),
        }
    }
}

/// A stored suspension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuspensionRecord {
    /// The App.
    pub app_id: String,
    /// Why.
    pub reason: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// A stored custom header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRecord {
    /// Its name.
    pub name: String,
    /// Its value, sealed (plaintext in documents written before values were sealed).
    pub value: String,
}

/// A stored secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRecord {
    /// `whsec_...`, sealed (plaintext in documents written before secrets were sealed).
    pub secret: String,
    /// When it stops signing.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// The sealed text of a credential; a plaintext one is never written.
fn stored(id: &WebhookId, what: &str, value: &Protected) -> Result<String, PortError> {
    value.as_stored().map(str::to_owned).ok_or_else(|| {
        PortError::Corrupt(format!(
            "webhook {id}: refusing to store its {what} unsealed (a bug: the service seals credentials before writing)"
        ))
    })
}

impl TryFrom<&Webhook> for WebhookRecord {
    type Error = PortError;
    fn try_from(w: &Webhook) -> Result<Self, PortError> {
        Ok(Self {
            id: w.id.to_string(),
            name: w.spec.name.clone(),
            url: w
                .spec
                .endpoint
                .url()
                .map(ToString::to_string)
                .unwrap_or_default(),
            destination: w.spec.endpoint.destination().map(DestinationRecord::from),
            event_types: w.spec.event_types.iter().map(ToString::to_string).collect(),
            urns: w.spec.urns.iter().map(ToString::to_string).collect(),
            custom_headers: w
                .spec
                .custom_headers
                .iter()
                .map(|h| {
                    Ok(HeaderRecord {
                        name: h.name.clone(),
                        value: stored(&w.id, &format!("header {}", h.name), &h.value)?,
                    })
                })
                .collect::<Result<_, PortError>>()?,
            enabled: w.spec.enabled,
            secrets: w
                .secrets
                .iter()
                .map(|s| {
                    Ok(SecretRecord {
                        secret: stored(&w.id, "signing secret", &s.secret)?,
                        expires_at: s.expires_at,
                    })
                })
                .collect::<Result<_, PortError>>()?,
            owner: w.owner.clone(),
            version: w.version,
            created_at: w.created_at,
            updated_at: w.updated_at,
            disabled_reason: w.state.disabled_reason().map(str::to_owned),
            disabled_at: w.state.disabled_at(),
            last_error: w.state.last_error().map(str::to_owned),
            suspended: w
                .state
                .suspended
                .iter()
                .map(|s| SuspensionRecord {
                    app_id: s.app_id.clone(),
                    reason: s.reason.clone(),
                    since: s.since,
                })
                .collect(),
            filter: w.spec.filter.as_ref().map(|f| f.pattern().clone()),
            retry: w.spec.retry.as_ref().map(WebhookRetry::to_input),
            rate_limit: w.spec.rate_limit,
            ordering: w.spec.ordering,
            oauth2: w
                .spec
                .oauth2
                .as_ref()
                .map(|o| {
                    Ok(OAuth2Record {
                        token_url: o.token_url.to_string(),
                        client_id: o.client_id.clone(),
                        client_secret: stored(&w.id, "OAuth2 client secret", &o.client_secret)?,
                        scope: o.scope.clone(),
                        audience: o.audience.clone(),
                    })
                })
                .transpose()?,
        })
    }
}

fn corrupt(id: &str, what: impl std::fmt::Display) -> PortError {
    PortError::Corrupt(format!("webhook {id}: {what}"))
}

impl TryFrom<WebhookRecord> for Webhook {
    type Error = PortError;
    fn try_from(r: WebhookRecord) -> Result<Self, PortError> {
        let id = WebhookId::parse(&r.id).ok_or_else(|| corrupt(&r.id, "bad id"))?;
        let endpoint = match &r.destination {
            Some(d) => Endpoint::Aws(
                AwsDestination::parse_stored(
                    &d.kind,
                    &d.arn,
                    &d.role_arn,
                    &d.external_id,
                    d.source.as_deref(),
                )
                .map_err(|e| corrupt(&r.id, e))?,
            ),
            None => {
                Endpoint::Http(WebhookUrl::parse_stored(&r.url).map_err(|e| corrupt(&r.id, e))?)
            }
        };
        let event_types = r
            .event_types
            .iter()
            .map(|t| EventTypeFilter::parse_stored(t))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(&r.id, e))?;
        let urns = r
            .urns
            .iter()
            .map(|u| UrnPattern::parse_stored(u))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(&r.id, e))?;
        let secrets = r
            .secrets
            .iter()
            .map(|s| {
                let secret = Protected::stored(&s.secret);
                // Plaintext from before sealing is checked as it always was; a sealed one
                // is checked when opened.
                if let Protected::Plain(text) = &secret {
                    Secret::parse(text)?;
                }
                Ok(SigningSecret {
                    secret,
                    expires_at: s.expires_at,
                })
            })
            .collect::<Result<_, crate::signing::SigningError>>()
            .map_err(|e| corrupt(&r.id, e))?;
        let filter = r
            .filter
            .as_ref()
            .map(Filter::parse_stored)
            .transpose()
            .map_err(|e| corrupt(&r.id, e))?;
        let retry = r
            .retry
            .as_ref()
            .map(|input| WebhookRetry::parse(input, "retry"))
            .transpose()
            .map_err(|e| corrupt(&r.id, format!("retry: {e:?}")))?;
        Ok(Webhook {
            id,
            spec: WebhookSpec {
                name: r.name,
                endpoint,
                event_types,
                urns,
                custom_headers: r
                    .custom_headers
                    .into_iter()
                    .map(|h| CustomHeader {
                        name: h.name,
                        value: Protected::stored(&h.value),
                    })
                    .collect(),
                enabled: r.enabled,
                filter,
                retry,
                rate_limit: r.rate_limit,
                ordering: r.ordering,
                oauth2: r
                    .oauth2
                    .map(|o| {
                        Ok::<_, PortError>(OAuth2 {
                            token_url: WebhookUrl::parse_stored(&o.token_url)
                                .map_err(|e| corrupt(&r.id, e))?,
                            client_id: o.client_id,
                            client_secret: Protected::stored(&o.client_secret),
                            scope: o.scope,
                            audience: o.audience,
                        })
                    })
                    .transpose()?,
            },
            secrets,
            owner: r.owner,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            state: WebhookState {
                // A disabled webhook always says why; one stored before reasons were kept for
                // every disable was disabled by hand.
                disabled: (!r.enabled).then(|| Disabled {
                    reason: r
                        .disabled_reason
                        .as_deref()
                        .map_or(DisabledReason::Manual, DisabledReason::parse_stored),
                    at: r.disabled_at.unwrap_or(r.updated_at),
                    last_error: r.last_error,
                }),
                failures: None,
                suspended: r
                    .suspended
                    .into_iter()
                    .map(|s| Suspension {
                        app_id: s.app_id,
                        reason: s.reason,
                        since: s.since,
                    })
                    .collect(),
            },
        })
    }
}

/// Serializes a webhook into its stored JSON document.
pub fn to_document(webhook: &Webhook) -> Result<String, PortError> {
    serde_json::to_string(&WebhookRecord::try_from(webhook)?)
        .map_err(|e| corrupt(webhook.id.as_str(), e))
}

/// Reads a webhook back from its stored JSON document.
pub fn from_document(doc: &str) -> Result<Webhook, PortError> {
    let record: WebhookRecord = serde_json::from_str(doc)
        .map_err(|e| PortError::Corrupt(format!("webhook document: {e}")))?;
    Webhook::try_from(record)
}
