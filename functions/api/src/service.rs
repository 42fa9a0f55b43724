//! The webhook service: create, list, get, update, delete, probe, rotate — plain async
//! functions over the ports, taking a principal. No HTTP types: the REST routes, and later a
//! GraphQL API and a console, are thin layers over it.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::auth::{Action, Principal};
use hookline_core::destination::{
    permission_policy, trust_policy, AwsDestination, AwsService, DestinationMessage, ExternalId,
};
use hookline_core::event_type::{Catalog, EventTypeInfo};
use hookline_core::grant::GrantInput;
use hookline_core::lifecycle::{GrantOutcome, Lifecycle};
use hookline_core::outbound::{OutboundMethod, OutboundRequest, OutboundResponse};
use hookline_core::ports::{
    Cursor, DestinationSender, HttpSender, Page, PortError, Vault, WebhookStore,
};
use hookline_core::sealed::{Keyring, Protected};
use hookline_core::signing::{signature_header, Secret};
use hookline_core::telemetry;
use hookline_core::tokens::Tokens;
use hookline_core::validation::{FieldError, ValidationErrors};
use hookline_core::webhook::DisabledReason;
use hookline_core::webhook::{
    validate_custom_headers, CredentialError, Endpoint, NewWebhook, OAuth2, SigningSecret, Webhook,
    WebhookId, WebhookPatch, WebhookRules, WebhookSpec, WebhookUrl,
};
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::settings::Settings;
use time::OffsetDateTime;

/// Time the endpoint has to answer the verification request (the save check).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default and largest page size of listings.
pub const DEFAULT_PAGE: usize = 50;
/// Largest page size a caller may ask for.
pub const MAX_PAGE: usize = 100;
/// Longest part of an endpoint's answer quoted back to the caller.
pub const EXCERPT_CHARS: usize = 512;

/// A caller's page size: [`DEFAULT_PAGE`] when not given, 1 to [`MAX_PAGE`] when given.
pub fn page_size(limit: Option<usize>) -> Result<usize, ServiceError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ServiceError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )))
    }
}

/// A created webhook and its secret, shown this once.
#[derive(Debug)]
pub struct Created {
    /// The webhook.
    pub webhook: Webhook,
    /// Its signing secret.
    pub secret: Secret,
}

/// Input of `POST /v1/webhooks/test`: a URL and headers to probe before saving.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeInput {
    /// Endpoint to probe.
    pub url: String,
    /// Headers to send along.
    #[serde(default)]
    pub custom_headers: Option<std::collections::BTreeMap<String, String>>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// True when the endpoint answered 200.
    pub ok: bool,
    /// Which request got that answer (`HEAD` or `POST`), or the last one tried.
    pub method: &'static str,
    /// Its status, when it answered.
    pub status: Option<u16>,
    /// Time to answer, in milliseconds.
    pub latency_ms: Option<u64>,
    /// The start of its body.
    pub body_excerpt: Option<String>,
    /// Why there was no answer.
    pub error: Option<String>,
}

/// The body of `POST /v1/destinations/external-ids`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalIdInput {
    /// The App whose webhooks may use it.
    pub app_id: String,
    /// The destination's type, for its permission policy.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The destination's ARN, for its permission policy.
    #[serde(default)]
    pub arn: Option<String>,
}

/// An issued external id and the policies that go with it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIdGrant {
    /// The id the role's trust policy requires (`sts:ExternalId`).
    pub external_id: String,
    /// The AWS principal Hookline assumes roles as (`HOOKLINE_AWS_PRINCIPAL`).
    pub principal: Option<String>,
    /// The trust policy for the role (when the principal is known).
    #[schema(value_type = Option<Object>)]
    pub trust_policy: Option<serde_json::Value>,
    /// The permission policy for the role (when the type and ARN were given).
    #[schema(value_type = Option<Object>)]
    pub permission_policy: Option<serde_json::Value>,
}

/// The webhook service.
#[derive(Clone)]
pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    http: Arc<dyn HttpSender>,
    tokens: Arc<Tokens>,
    destinations: Option<Arc<dyn DestinationSender>>,
    vault: Arc<dyn Vault>,
    lifecycle: Lifecycle,
    settings: Settings,
    catalog: &'static Catalog,
}

/// A credential that does not open is the store's fault, never the caller's.
fn unreadable(e: CredentialError) -> ServiceError {
    ServiceError::Store(PortError::Corrupt(e.to_string()))
}

/// A `webhook.test` event for a check on save, signed with `secret`.
struct TestEvent {
    id: String,
    /// The envelope.
    body: Vec<u8>,
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    signed: Vec<(String, String)>,
}

fn test_event(secret: &Secret) -> TestEvent {
    let id = format!("msg_test_{}", ulid::Ulid::new());
    let now = OffsetDateTime::now_utc();
    let body = serde_json::json!({
        "id": id,
        "type": "webhook.test",
        "urn": null,
        "timestamp": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "data": {"message": "Hookline is checking that this endpoint answers. Reply 200."},
    })
    .to_string()
    .into_bytes();
    let ts = now.unix_timestamp();
    let signed = vec![
        ("webhook-id".to_owned(), id.clone()),
        ("webhook-timestamp".to_owned(), ts.to_string()),
        (
            "webhook-signature".to_owned(),
            signature_header(std::slice::from_ref(secret), &id, ts, &body),
        ),
    ];
    TestEvent { id, body, signed }
}

fn excerpt(body: &str) -> String {
    body.chars().take(EXCERPT_CHARS).collect()
}

impl WebhookService {
    /// The service over a store, an outbound HTTP sender, the keys that seal credentials and
    /// the lifecycle (grants, operational events).
    pub fn new(
        store: Arc<dyn WebhookStore>,
        http: Arc<dyn HttpSender>,
        vault: Arc<dyn Vault>,
        lifecycle: Lifecycle,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            tokens: Arc::new(Tokens::new(http.clone())),
            http,
            destinations: None,
            vault,
            lifecycle,
            settings,
            catalog: Catalog::builtin(),
        }
    }

    /// Accepts AWS destinations, checked and (by the deliverer) sent with `sender`.
    pub fn with_destinations(mut self, sender: Arc<dyn DestinationSender>) -> Self {
        self.destinations = Some(sender);
        self
    }

    /// Issues an external id for an AWS destination's role in App `app_id`, with the trust
    /// policy to give the role (and, given the destination's type and ARN, the permission
    /// policy). Needs `edit-app` on the App.
    pub async fn issue_external_id(
        &self,
        principal: &Principal,
        input: &ExternalIdInput,
    ) -> Result<ExternalIdGrant, ServiceError> {
        self.check_app_id(&input.app_id)?;
        if !principal.may(Action::EditApp, &input.app_id) {
            return Err(ServiceError::Forbidden(format!(
                "issuing an external id needs edit-app on App {}",
                input.app_id
            )));
        }
        if self.destinations.is_none() {
            return Err(ServiceError::BadRequest(
                "this deployment does not deliver to AWS destinations".into(),
            ));
        }
        // Each given field is checked, even alone; the permission policy needs both.
        let invalid = |field: &str, m: String| {
            ServiceError::Invalid(ValidationErrors::new(vec![FieldError::new(field, m)]))
        };
        let service = input
            .kind
            .as_deref()
            .map(|kind| {
                AwsService::parse(kind)
                    .ok_or_else(|| invalid("type", format!("\"{kind}\" is not a destination type")))
            })
            .transpose()?;
        let arn = input
            .arn
            .as_deref()
            .map(|arn| hookline_core::destination::Arn::parse(arn).map_err(|e| invalid("arn", e)))
            .transpose()?;
        let permission = match (service, &arn) {
            (Some(service), Some(arn)) => Some(permission_policy(&service.actions(), arn.as_str())),
            _ => None,
        };
        let keys = self.keys().await?;
        let external_id = ExternalId::issue(&keys, &input.app_id);
        let principal_arn = self.settings.aws_principal.clone();
        Ok(ExternalIdGrant {
            trust_policy: principal_arn
                .as_deref()
                .map(|p| trust_policy(p, &external_id)),
            external_id: external_id.to_string(),
            principal: principal_arn,
            permission_policy: permission,
        })
    }

    /// A destination's external id must have been issued for one of the webhook's Apps.
    async fn check_external_id(&self, spec: &WebhookSpec) -> Result<(), ServiceError> {
        let Some(d) = spec.endpoint.destination() else {
            return Ok(());
        };
        let keys = self.keys().await?;
        if spec
            .app_ids()
            .into_iter()
            .any(|app| d.external_id.issued_for(&keys, app))
        {
            return Ok(());
        }
        Err(ServiceError::Invalid(ValidationErrors::new(vec![FieldError::new(
            "destination.externalId",
            format!(
                "was not issued for App(s) {} of this webhook: ask for one with POST /v1/destinations/external-ids",
                spec.app_ids().into_iter().collect::<Vec<_>>().join(", ")
            ),
        )])))
    }

    /// The check on save for an AWS destination: assume the role, read the resource, send a
    /// signed `webhook.test` message marked `hookline-test`.
    async fn verify_destination(
        &self,
        d: &AwsDestination,
        headers: &[(String, String)],
        secret: &Secret,
    ) -> Result<(), ServiceError> {
        let Some(sender) = &self.destinations else {
            return Err(ServiceError::BadRequest(
                "this deployment does not deliver to AWS destinations".into(),
            ));
        };
        let test = test_event(secret);
        let mut attributes = test.signed;
        attributes.push(("hookline-test".to_owned(), "true".to_owned()));
        attributes.extend(headers.iter().cloned());
        let message = DestinationMessage {
            attributes,
            body: test.body,
            event_type: "webhook.test".into(),
            urn: None,
            group: None,
            dedup_id: test.id,
        };
        let result = sender.check(d, &message).await;
        telemetry::endpoint_check(result.is_ok());
        match result {
            Ok(()) => {
                tracing::info!(destination = %d.describe(), "destination verified");
                Ok(())
            }
            Err(e) => {
                tracing::info!(destination = %d.describe(), error = %e, "destination verification failed");
                Err(ServiceError::EndpointRejected {
                    detail: format!("{} ({}, role {})", e, d.describe(), d.role_arn),
                })
            }
        }
    }

    /// The deployment's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// An `appId` parameter names one App: one URN segment.
    pub(crate) fn check_app_id(&self, app_id: &str) -> Result<(), ServiceError> {
        hookline_core::urn::UrnPattern::whole_app(&self.settings.namespace, app_id)
            .map(|_| ())
            .map_err(|e| {
                ServiceError::BadRequest(format!("appId \"{app_id}\" is not an App id: {e}"))
            })
    }

    /// The keys that seal and open credentials.
    pub async fn keys(&self) -> Result<Arc<Keyring>, ServiceError> {
        self.vault.keyring().await.map_err(ServiceError::Store)
    }

    /// Seals every credential of `webhook` before it is written.
    async fn seal(&self, webhook: &mut Webhook) -> Result<(), ServiceError> {
        let keys = self.keys().await?;
        webhook.seal(&keys).map_err(unreadable)?;
        Ok(())
    }

    /// `webhook` as its editors see it: custom header values opened (a value that does not
    /// open is left out, and logged), secrets still sealed. What the API answers with; never
    /// written back (stores refuse plaintext).
    async fn reveal(&self, mut webhook: Webhook) -> Result<Webhook, ServiceError> {
        if webhook.spec.custom_headers.is_empty() {
            return Ok(webhook);
        }
        let keys = self.keys().await?;
        let id = webhook.id.clone();
        webhook.spec.custom_headers.retain_mut(|h| {
            match h.value.open(&keys, &h.field(id.as_str())) {
                Ok(v) => {
                    h.value = Protected::Plain(v.into_owned());
                    true
                }
                Err(e) => {
                    tracing::error!(webhook_id = %id, header = %h.name, error = %e, "a custom header value does not open; left out of the answer");
                    false
                }
            }
        });
        Ok(webhook)
    }

    /// The custom headers of webhook `id` with `spec`, opened.
    pub async fn open_headers(
        &self,
        id: &WebhookId,
        spec: &WebhookSpec,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let keys = self.keys().await?;
        spec.open_headers(id, &keys).map_err(unreadable)
    }

    fn rules(&self) -> WebhookRules<'_> {
        WebhookRules {
            namespace: &self.settings.namespace,
            catalog: self.catalog,
            allow_http: self.settings.allow_http,
            targets: self.settings.targets,
            ordered: self.settings.ordered_deliveries,
            destinations: self
                .destinations
                .is_some()
                .then_some(&self.settings.destinations),
        }
    }

    /// The event-type catalog.
    pub fn event_types(&self) -> &[EventTypeInfo] {
        self.catalog.entries()
    }

    /// `edit-app` on every App the webhook names, none of them revoked by the platform since
    /// the token was issued.
    async fn require_edit_all(
        &self,
        principal: &Principal,
        spec: &WebhookSpec,
    ) -> Result<(), ServiceError> {
        let missing: Vec<&str> = spec
            .app_ids()
            .into_iter()
            .filter(|app| !principal.may(Action::EditApp, app))
            .collect();
        if !missing.is_empty() {
            return Err(ServiceError::Forbidden(format!(
                "managing this webhook needs edit-app on App(s) {}",
                missing.join(", ")
            )));
        }
        let revoked = self.lifecycle.revoked_apps(&principal.sub).await?;
        let lost: Vec<&str> = spec
            .app_ids()
            .into_iter()
            .filter(|app| revoked.iter().any(|r| r == app))
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "the platform revoked {}'s permission on App(s) {}: webhooks there are refused until it is restored",
                principal.sub,
                lost.join(", ")
            )))
        }
    }

    /// Reads a webhook the caller may manage; anything else is "not found".
    pub(crate) async fn load_visible(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Webhook, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("webhook {id}"));
        let id = WebhookId::parse(id).ok_or_else(not_found)?;
        let webhook = self.store.get(&id).await?.ok_or_else(not_found)?;
        if principal.may_all(Action::EditApp, webhook.spec.app_ids()) {
            Ok(webhook)
        } else {
            Err(not_found())
        }
    }

    /// Sends HEAD, then a signed `webhook.test` POST, both within one [`VERIFY_TIMEOUT`];
    /// `ok` when one of them got a 200. Counted in `hookline_endpoint_checks_total`.
    async fn probe(
        &self,
        url: &WebhookUrl,
        headers: &[(String, String)],
        secret: &Secret,
    ) -> ProbeReport {
        let report = self.probe_once(url, headers, secret).await;
        telemetry::endpoint_check(report.ok);
        report
    }

    async fn probe_once(
        &self,
        url: &WebhookUrl,
        headers: &[(String, String)],
        secret: &Secret,
    ) -> ProbeReport {
        let started = std::time::Instant::now();
        let head = self
            .http
            .send(OutboundRequest {
                method: OutboundMethod::Head,
                url: url.clone(),
                headers: headers.to_vec(),
                body: Vec::new(),
                timeout: VERIFY_TIMEOUT,
            })
            .await;
        if let Ok(r) = &head {
            if r.status == 200 {
                return report("HEAD", Ok(r));
            }
        }
        let left = VERIFY_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            let mut r = report("HEAD", head.as_ref());
            let head_said = match &head {
                Ok(h) => format!("HEAD answered {}", h.status),
                Err(e) => format!("HEAD failed: {e}"),
            };
            r.error = Some(format!("{head_said}; no time was left to try POST"));
            return r;
        }
        let test = test_event(secret);
        let mut post_headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        post_headers.extend(test.signed);
        post_headers.extend(headers.iter().cloned());
        let post = self
            .http
            .send(OutboundRequest {
                method: OutboundMethod::Post,
                url: url.clone(),
                headers: post_headers,
                body: test.body,
                timeout: left,
            })
            .await;
        let mut r = report("POST", post.as_ref());
        if !r.ok {
            // Say what HEAD got too: "HEAD 405, POST 500" explains more than the last answer.
            let head_said = match &head {
                Ok(h) => format!("HEAD answered {}", h.status),
                Err(e) => format!("HEAD failed: {e}"),
            };
            r.error = Some(match r.error.take() {
                Some(e) => format!("{head_said}; POST failed: {e}"),
                None => format!(
                    "{head_said}; POST answered {}",
                    r.status.unwrap_or_default()
                ),
            });
        }
        r
    }

    async fn verify_endpoint(
        &self,
        id: &WebhookId,
        spec: &WebhookSpec,
        secret: &Secret,
    ) -> Result<(), ServiceError> {
        let mut headers = self.open_headers(id, spec).await?;
        let url = match &spec.endpoint {
            Endpoint::Http(url) => url,
            Endpoint::Aws(d) => return self.verify_destination(d, &headers, secret).await,
        };
        if let Some(oauth2) = &spec.oauth2 {
            // The check carries a token as deliveries will: a token endpoint that refuses
            // the client is said here, not at the first delivery.
            let keys = self.keys().await?;
            let client_secret = oauth2
                .client_secret
                .open(&keys, &OAuth2::field(id.as_str()))
                .map_err(|e| {
                    unreadable(CredentialError {
                        field: "oauth2.clientSecret".into(),
                        error: e,
                    })
                })?;
            let (token, _) = self
                .tokens
                .fetch(oauth2, &client_secret, VERIFY_TIMEOUT)
                .await
                .map_err(|e| {
                    tracing::info!(%url, error = %e, "endpoint verification failed: no token");
                    telemetry::endpoint_check(false);
                    ServiceError::EndpointRejected {
                        detail: format!("no OAuth2 token: {e}"),
                    }
                })?;
            headers.push(("authorization".to_owned(), format!("Bearer {token}")));
        }
        let r = self.probe(url, &headers, secret).await;
        if r.ok {
            tracing::info!(%url, method = r.method, "endpoint verified");
            return Ok(());
        }
        let mut detail = format!(
            "the endpoint must answer 200 within {} s; {}",
            VERIFY_TIMEOUT.as_secs(),
            r.error.unwrap_or_default()
        );
        if let Some(body) = r.body_excerpt.filter(|b| !b.is_empty()) {
            detail.push_str(&format!("; it said: {body}"));
        }
        tracing::info!(%url, %detail, "endpoint verification failed");
        Err(ServiceError::EndpointRejected { detail })
    }

    async fn check_one_url_per_event(
        &self,
        spec: &WebhookSpec,
        own: Option<&WebhookId>,
    ) -> Result<(), ServiceError> {
        if !self.settings.one_url_per_event || !spec.enabled {
            return Ok(());
        }
        for app in spec.app_ids() {
            for route in self.store.routes_for_app(app).await? {
                if Some(&route.webhook_id) == own
                    || !route.enabled
                    || route.endpoint == spec.endpoint
                {
                    continue;
                }
                if let Some(t) = spec
                    .event_types
                    .iter()
                    .find(|mine| route.event_types.iter().any(|theirs| theirs.overlaps(mine)))
                {
                    return Err(ServiceError::Conflict(format!(
                        "App {app} already sends {t} to another URL (webhook {}); this deployment allows one URL per App and event type",
                        route.webhook_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Creates a webhook after validation, permission, conflict and endpoint checks.
    /// `app_id` is the App it is created in: its whole-App pattern is the default URN.
    #[tracing::instrument(skip_all, fields(webhook_id, sub = %principal.sub))]
    pub async fn create(
        &self,
        principal: &Principal,
        input: &NewWebhook,
        app_id: Option<&str>,
    ) -> Result<Created, ServiceError> {
        if let Some(app) = app_id {
            self.check_app_id(app)?;
        }
        let spec = input.validate(&self.rules(), app_id);
        let chosen = input.secret.as_deref().map(Secret::parse).transpose();
        let (spec, chosen) = match (spec, chosen) {
            (Ok(spec), Ok(chosen)) => (spec, chosen),
            (spec, chosen) => {
                let mut errors = spec.err().map(|e| e.errors().to_vec()).unwrap_or_default();
                if let Err(e) = chosen {
                    errors.push(FieldError::new("secret", e.to_string()));
                }
                return Err(ServiceError::Invalid(ValidationErrors::new(errors)));
            }
        };
        self.require_edit_all(principal, &spec).await?;
        self.check_external_id(&spec).await?;
        self.check_one_url_per_event(&spec, None).await?;
        let secret = match chosen {
            Some(secret) => secret,
            None => Secret::generate()
                .map_err(|e| ServiceError::Store(PortError::Unavailable(e.into())))?,
        };
        let mut webhook = Webhook::new(spec, &secret, &principal.sub, OffsetDateTime::now_utc());
        self.verify_endpoint(&webhook.id, &webhook.spec, &secret)
            .await?;
        self.seal(&mut webhook).await?;
        tracing::Span::current().record("webhook_id", webhook.id.as_str());
        self.store.create(&webhook).await?;
        tracing::info!(apps = ?webhook.spec.app_ids(), "webhook created");
        let webhook = self.reveal(webhook).await?;
        Ok(Created { webhook, secret })
    }

    /// The Apps that have webhooks and that the caller may manage, sorted.
    pub async fn apps(&self, principal: &Principal) -> Result<Vec<String>, ServiceError> {
        if !principal.may_any(Action::EditApp) {
            return Err(ServiceError::Forbidden(
                "listing Apps needs edit-app on at least one App".into(),
            ));
        }
        let mut apps = self.store.app_ids().await?;
        apps.retain(|app| principal.may(Action::EditApp, app));
        Ok(apps)
    }

    /// Lists the webhooks of `app_id` the caller may manage, oldest first.
    pub async fn list(
        &self,
        principal: &Principal,
        app_id: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<Webhook>, ServiceError> {
        self.check_app_id(app_id)?;
        if !principal.may(Action::EditApp, app_id) {
            return Err(ServiceError::Forbidden(format!(
                "listing webhooks needs edit-app on App {app_id}"
            )));
        }
        let limit = page_size(limit)?;
        let cursor = cursor
            .map(|c| {
                WebhookId::parse(c)
                    .map(|id| Cursor(id.to_string()))
                    .ok_or_else(|| {
                        ServiceError::BadRequest(format!(
                            "cursor \"{c}\" is not one this API returned"
                        ))
                    })
            })
            .transpose()?;
        let mut page = self
            .store
            .list_for_app(app_id, cursor.as_ref(), limit)
            .await?;
        // A webhook that also names an App the caller cannot edit stays invisible to them.
        page.items
            .retain(|w| principal.may_all(Action::EditApp, w.spec.app_ids()));
        let mut shown = Vec::with_capacity(page.items.len());
        for w in std::mem::take(&mut page.items) {
            shown.push(self.reveal(w).await?);
        }
        page.items = shown;
        Ok(page)
    }

    /// Reads one webhook.
    pub async fn get(&self, principal: &Principal, id: &str) -> Result<Webhook, ServiceError> {
        let webhook = self.load_visible(principal, id).await?;
        self.reveal(webhook).await
    }

    fn check_version(webhook: &Webhook, if_match: Option<u64>) -> Result<u64, ServiceError> {
        match if_match {
            Some(v) if v != webhook.version => Err(ServiceError::PreconditionFailed {
                id: webhook.id.to_string(),
                expected: v,
                current: webhook.version,
            }),
            _ => Ok(webhook.version),
        }
    }

    fn store_conflict(id: &WebhookId, expected: u64, e: PortError) -> ServiceError {
        match e {
            PortError::VersionConflict { .. } => ServiceError::PreconditionFailed {
                id: id.to_string(),
                expected,
                current: expected + 1,
            },
            PortError::NotFound(_) => ServiceError::NotFound(format!("webhook {id}")),
            other => ServiceError::Store(other),
        }
    }

    /// Applies a partial update; `if_match` guards against lost updates.
    #[tracing::instrument(skip_all, fields(webhook_id = %id, sub = %principal.sub))]
    pub async fn update(
        &self,
        principal: &Principal,
        id: &str,
        patch: &WebhookPatch,
        if_match: Option<u64>,
    ) -> Result<Webhook, ServiceError> {
        let current = self.load_visible(principal, id).await?;
        // A body that cannot apply is refused as such (422), whatever its If-Match says.
        let spec = patch
            .apply(&current.spec, &self.rules())
            .map_err(ServiceError::Invalid)?;
        let expected = Self::check_version(&current, if_match)?;
        if patch.is_empty() || spec == current.spec {
            // Nothing changes (enabling an enabled webhook): no write, no new version.
            return self.reveal(current).await;
        }
        self.require_edit_all(principal, &spec).await?;
        if spec.endpoint != current.spec.endpoint || spec.urns != current.spec.urns {
            self.check_external_id(&spec).await?;
        }
        self.check_one_url_per_event(&spec, Some(&current.id))
            .await?;
        let endpoint_changed = spec.endpoint != current.spec.endpoint
            || spec.custom_headers != current.spec.custom_headers
            || spec.oauth2 != current.spec.oauth2;
        if endpoint_changed {
            let now = OffsetDateTime::now_utc();
            let keys = self.keys().await?;
            let secrets = current.active_secrets(&keys, now).map_err(unreadable)?;
            match secrets.first() {
                Some(secret) => self.verify_endpoint(&current.id, &spec, secret).await?,
                None => {
                    return Err(ServiceError::Store(PortError::Corrupt(format!(
                        "webhook {id} has no active secret"
                    ))))
                }
            }
        }
        let enabling = spec.enabled && !current.spec.enabled;
        let disabling = !spec.enabled && current.spec.enabled;
        let now = OffsetDateTime::now_utc();
        let mut next = current.clone();
        next.spec = spec;
        if enabling {
            // A fresh start: the failure run that may have disabled it ends first (ending it
            // on a webhook that then stays disabled is harmless).
            self.store.clear_failures(&current.id).await?;
            next.enable();
        } else if disabling {
            next.disable(DisabledReason::Manual, now, None);
        }
        next.version = expected + 1;
        next.updated_at = now;
        self.seal(&mut next).await?;
        self.store
            .update(&next, expected)
            .await
            .map_err(|e| Self::store_conflict(&next.id, expected, e))?;
        tracing::info!(
            version = next.version,
            enabling,
            disabling,
            "webhook updated"
        );
        if enabling {
            self.lifecycle.announce_enabled(&next).await;
        } else if disabling {
            self.lifecycle.announce_disabled(&next).await;
        }
        self.reveal(next).await
    }

    /// Turns deliveries on (`enabled`) or off by hand; enabling ends the failure run. Doing
    /// what is already so changes nothing.
    pub async fn set_enabled(
        &self,
        principal: &Principal,
        id: &str,
        enabled: bool,
        if_match: Option<u64>,
    ) -> Result<Webhook, ServiceError> {
        let patch = WebhookPatch {
            enabled: Some(enabled),
            ..WebhookPatch::default()
        };
        self.update(principal, id, &patch, if_match).await
    }

    /// The platform reports that a client lost (`revoked`) or regained a permission on an App:
    /// needs `manage-grants` on that App.
    #[tracing::instrument(skip_all, fields(sub = %principal.sub, revoked))]
    pub async fn change_grant(
        &self,
        principal: &Principal,
        input: &GrantInput,
        revoked: bool,
    ) -> Result<GrantOutcome, ServiceError> {
        let change = input
            .validate(revoked, &self.settings.namespace)
            .map_err(ServiceError::Invalid)?;
        if !principal.may(Action::ManageGrants, &change.app_id) {
            return Err(ServiceError::Forbidden(format!(
                "reporting grant changes needs manage-grants on App {} (the platform's permission)",
                change.app_id
            )));
        }
        Ok(self.lifecycle.apply_grant(&change).await?)
    }

    /// Deletes a webhook; it receives nothing more.
    #[tracing::instrument(skip_all, fields(webhook_id = %id, sub = %principal.sub))]
    pub async fn delete(
        &self,
        principal: &Principal,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(), ServiceError> {
        let current = self.load_visible(principal, id).await?;
        let expected = Self::check_version(&current, if_match)?;
        self.store
            .delete(&current.id, expected)
            .await
            .map_err(|e| Self::store_conflict(&current.id, expected, e))?;
        tracing::info!("webhook deleted");
        Ok(())
    }

    /// Probes a URL (and headers) before saving: any caller who manages some App may.
    pub async fn test_url(
        &self,
        principal: &Principal,
        input: &ProbeInput,
    ) -> Result<ProbeReport, ServiceError> {
        if !principal.may_any(Action::EditApp) {
            return Err(ServiceError::Forbidden(
                "probing endpoints needs edit-app on an App".into(),
            ));
        }
        let mut errors: Vec<FieldError> = Vec::new();
        let url = WebhookUrl::parse(&input.url, &self.rules())
            .map_err(|m| errors.push(FieldError::new("url", m)))
            .ok();
        let headers = match &input.custom_headers {
            Some(h) => validate_custom_headers(h)
                .map_err(|e| errors.extend(e))
                .ok(),
            None => Some(Vec::new()),
        };
        let (Some(url), Some(headers)) = (url, headers) else {
            return Err(ServiceError::Invalid(ValidationErrors::new(errors)));
        };
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .filter_map(|h| match h.value {
                Protected::Plain(v) => Some((h.name, v)),
                Protected::Sealed(_) => None,
            })
            .collect();
        let throwaway = Secret::generate()
            .map_err(|e| ServiceError::Store(PortError::Unavailable(e.into())))?;
        Ok(self.probe(&url, &headers, &throwaway).await)
    }

    /// Makes a new current secret; the old one keeps signing for the deployment's overlap
    /// ([`Settings::secret_overlap`]).
    #[tracing::instrument(skip_all, fields(webhook_id = %id, sub = %principal.sub))]
    pub async fn rotate_secret(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Created, ServiceError> {
        let current = self.load_visible(principal, id).await?;
        let now = OffsetDateTime::now_utc();
        let overlap = self.settings.secret_overlap;
        let secret = Secret::generate()
            .map_err(|e| ServiceError::Store(PortError::Unavailable(e.into())))?;
        let mut next = current.clone();
        next.secrets = std::iter::once(SigningSecret {
            secret: Protected::Plain(secret.expose()),
            expires_at: None,
        })
        .chain(
            current
                .secrets
                .iter()
                .filter(|s| s.expires_at.is_none_or(|t| t > now))
                .map(|s| SigningSecret {
                    secret: s.secret.clone(),
                    expires_at: Some(s.expires_at.unwrap_or(now + overlap).min(now + overlap)),
                }),
        )
        .collect();
        next.version = current.version + 1;
        next.updated_at = now;
        self.seal(&mut next).await?;
        self.store
            .update(&next, current.version)
            .await
            .map_err(|e| Self::store_conflict(&next.id, current.version, e))?;
        tracing::info!("secret rotated");
        Ok(Created {
            webhook: self.reveal(next).await?,
            secret,
        })
    }
}

fn report(
    method: &'static str,
    result: Result<&OutboundResponse, &hookline_core::outbound::OutboundError>,
) -> ProbeReport {
    match result {
        Ok(r) => ProbeReport {
            ok: r.status == 200,
            method,
            status: Some(r.status),
            latency_ms: Some(u64::try_from(r.latency.as_millis()).unwrap_or(u64::MAX)),
            body_excerpt: Some(excerpt(&r.body)),
            error: None,
        },
        Err(e) => ProbeReport {
            ok: false,
            method,
            status: None,
            latency_ms: None,
            body_excerpt: None,
            error: Some(e.to_string()),
        },
    }
}
