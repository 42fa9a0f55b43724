//! A webhook's lifecycle: disabled (by hand, after a sustained run of failures, or on 410
//! Gone), suspended per App when its owner loses the permission it relied on, and the
//! operational events (`webhook.disabled`, `webhook.enabled`, `webhook.suspended`,
//! `webhook.restored`) that tell an App about its webhooks' health.
//!
//! The rules are pure (this module's types and [`DisablePolicy`]); [`Lifecycle`] applies them
//! over the ports, for the api (enable/disable, grants), ingest (`grant.*` messages) and deliver
//! (failure runs) alike.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::event::{Event, EventId};
use crate::event_type::EventType;
use crate::ports::{EventQueue, GrantStore, PortError, WebhookStore};
use crate::urn::{Namespace, Urn};
use crate::webhook::{Webhook, WebhookId};

/// Default time a failure run must last before the webhook is disabled (Svix's 5 days).
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 60 * 60);
/// Default number of failures a run must hold before the webhook is disabled.
pub const DEFAULT_DISABLE_MIN_FAILURES: u32 = 10;
/// The reason a suspension shows.
pub const PERMISSION_REVOKED: &str = "permission revoked";
/// Types Hookline emits itself: never accepted from publishers over HTTP.
pub const OPERATIONAL_TYPES: [&str; 4] = [
    "webhook.disabled",
    "webhook.enabled",
    "webhook.suspended",
    "webhook.restored",
];

/// Why a webhook is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisabledReason {
    /// Someone disabled it (`POST .../disable`, `enabled: false`).
    Manual,
    /// Its deliveries kept failing for longer than the deployment allows.
    Failing,
    /// Its endpoint answered 410 Gone.
    Gone,
}

impl DisabledReason {
    /// `manual`, `failing` or `gone`, as the API shows and stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Failing => "failing",
            Self::Gone => "gone",
        }
    }

    /// Reads a stored reason; records written before reasons were codes said "410 Gone" in
    /// words, and any other text was a hand-made disable.
    pub fn parse_stored(s: &str) -> Self {
        match s {
            "failing" => Self::Failing,
            "gone" => Self::Gone,
            s if s.contains("410") => Self::Gone,
            _ => Self::Manual,
        }
    }
}

/// Why and since when a webhook is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// Why.
    pub reason: DisabledReason,
    /// Since when.
    pub at: OffsetDateTime,
    /// The last delivery error, for `failing` and `gone`.
    pub last_error: Option<String>,
}

/// A webhook's current run of failed deliveries: kept by the store beside the webhook,
/// counted atomically, ended by any acknowledged delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRun {
    /// The first failure of the run.
    pub since: OffsetDateTime,
    /// Failures in the run.
    pub failures: u32,
    /// The most recent failure's error.
    pub last_error: Option<String>,
}

/// A webhook receives nothing from `app_id`: its owner lost the permission there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// The App.
    pub app_id: String,
    /// Why ([`PERMISSION_REVOKED`]).
    pub reason: String,
    /// Since when.
    pub since: OffsetDateTime,
}

/// The lifecycle part of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookState {
    /// Set while the webhook is disabled.
    pub disabled: Option<Disabled>,
    /// Its current failure run, where the store read it (a single read, not listings).
    pub failures: Option<FailureRun>,
    /// Apps it receives nothing from.
    pub suspended: Vec<Suspension>,
}

impl WebhookState {
    /// Why it is disabled (`manual`, `failing`, `gone`), if it is.
    pub fn disabled_reason(&self) -> Option<&'static str> {
        self.disabled.as_ref().map(|d| d.reason.as_str())
    }

    /// Since when it is disabled, if it is.
    pub fn disabled_at(&self) -> Option<OffsetDateTime> {
        self.disabled.as_ref().map(|d| d.at)
    }

    /// The delivery error that disabled it, if one did.
    pub fn last_error(&self) -> Option<&str> {
        self.disabled.as_ref().and_then(|d| d.last_error.as_deref())
    }
}

/// When a failure run disables a webhook (`HOOKLINE_DISABLE_AFTER`,
/// `HOOKLINE_DISABLE_MIN_FAILURES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// The run must be at least this old.
    pub after: Duration,
    /// And hold at least this many failures.
    pub min_failures: u32,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        Self {
            after: DEFAULT_DISABLE_AFTER,
            min_failures: DEFAULT_DISABLE_MIN_FAILURES,
        }
    }
}

/// A lifecycle setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value}: {problem}")]
pub struct SettingError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Why it is unusable.
    pub problem: String,
}

/// Parses a duration setting such as `5d`, `90m` or `3s`.
pub fn parse_duration(name: &'static str, value: &str) -> Result<Duration, SettingError> {
    humantime::parse_duration(value.trim()).map_err(|e| SettingError {
        name,
        value: value.to_owned(),
        problem: format!("{e} (write a duration such as 5d, 90m or 3s)"),
    })
}

impl DisablePolicy {
    /// The policy from the two settings' values, the defaults where absent.
    pub fn from_settings(
        after: Option<&str>,
        min_failures: Option<&str>,
    ) -> Result<Self, SettingError> {
        let mut policy = Self::default();
        if let Some(v) = after {
            policy.after = parse_duration("HOOKLINE_DISABLE_AFTER", v)?;
        }
        if let Some(v) = min_failures {
            policy.min_failures = v.trim().parse().map_err(|_| SettingError {
                name: "HOOKLINE_DISABLE_MIN_FAILURES",
                value: v.to_owned(),
                problem: "expected a whole number".into(),
            })?;
        }
        Ok(policy)
    }

    /// The policy from `HOOKLINE_DISABLE_AFTER` and `HOOKLINE_DISABLE_MIN_FAILURES`.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_settings(
            std::env::var("HOOKLINE_DISABLE_AFTER").ok().as_deref(),
            std::env::var("HOOKLINE_DISABLE_MIN_FAILURES")
                .ok()
                .as_deref(),
        )
    }

    /// True when `run` has lasted long enough, with enough failures, at `now`.
    pub fn should_disable(&self, run: &FailureRun, now: OffsetDateTime) -> bool {
        run.failures >= self.min_failures && now - run.since >= self.after
    }
}

/// The operational events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operational {
    /// `webhook.disabled`.
    Disabled,
    /// `webhook.enabled`.
    Enabled,
    /// `webhook.suspended`.
    Suspended,
    /// `webhook.restored`.
    Restored,
}

impl Operational {
    /// The event type's name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Disabled => OPERATIONAL_TYPES[0],
            Self::Enabled => OPERATIONAL_TYPES[1],
            Self::Suspended => OPERATIONAL_TYPES[2],
            Self::Restored => OPERATIONAL_TYPES[3],
        }
    }
}

/// True for the types only Hookline emits.
pub fn is_operational(event_type: &EventType) -> bool {
    OPERATIONAL_TYPES.contains(&event_type.as_str())
}

/// The event about `webhook` for `app_id`: URN `urn:<nid>:app:<app>:webhook:<id>`, data
/// `{webhookId, appId, reason, ...extra}`.
pub fn operational_event(
    kind: Operational,
    webhook: &WebhookId,
    app_id: &str,
    reason: &str,
    extra: serde_json::Map<String, serde_json::Value>,
    namespace: &Namespace,
    now: OffsetDateTime,
) -> Result<Event, String> {
    let urn = Urn::parse(
        &format!(
            "urn:{}:app:{app_id}:webhook:{}",
            namespace.as_str(),
            webhook
        ),
        namespace,
    )
    .map_err(|e| e.to_string())?;
    let mut data = serde_json::Map::new();
    data.insert("webhookId".into(), webhook.as_str().into());
    data.insert("appId".into(), app_id.into());
    data.insert("reason".into(), reason.into());
    data.extend(extra);
    Ok(Event {
        id: EventId::generate(),
        event_type: EventType::parse_stored(kind.type_name()).map_err(|e| e.to_string())?,
        urn,
        timestamp: now,
        data: serde_json::Value::Object(data),
    })
}

/// The webhook an event of the `webhook.*` family is about (its `data.webhookId`): fan-out
/// never sends such an event to that webhook.
pub fn about_webhook(event: &Event) -> Option<&str> {
    if event.event_type.family() != "webhook" {
        return None;
    }
    event.data.get("webhookId").and_then(|v| v.as_str())
}

/// A grant the platform took away or gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantChange {
    /// Revoked or restored.
    pub revoked: bool,
    /// The client (`sub`) that lost or regained it.
    pub sub: String,
    /// On which App.
    pub app_id: String,
}

/// Body of `POST /v1/grants/revoke` and `/restore`, and `data` of a `grant.*` message.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrantInput {
    /// The client whose permission changed.
    pub sub: String,
    /// The App it changed on.
    pub app_id: String,
}

impl GrantInput {
    /// Checks the two fields: a non-empty `sub` of at most 256 characters, and an App id as
    /// URNs allow it.
    pub fn validate(
        &self,
        revoked: bool,
        namespace: &Namespace,
    ) -> Result<GrantChange, crate::validation::ValidationErrors> {
        use crate::validation::FieldError;
        let mut errors = Vec::new();
        let sub = self.sub.trim();
        if sub.is_empty() || sub.chars().count() > 256 || sub.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "sub",
                "must be 1 to 256 characters without control characters",
            ));
        }
        if let Err(e) = crate::urn::UrnPattern::whole_app(namespace, &self.app_id) {
            errors.push(FieldError::new("appId", e.to_string()));
        }
        crate::validation::ValidationErrors::check(errors).map(|()| GrantChange {
            revoked,
            sub: sub.to_owned(),
            app_id: self.app_id.clone(),
        })
    }
}

/// A `grant.revoked` / `grant.restored` message on the events queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantMessage {
    #[serde(default)]
    #[allow(dead_code)] // accepted for envelope symmetry; grant changes are idempotent
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    timestamp: Option<String>,
    data: GrantInput,
}

/// Reads a queue message as a grant change: `None` when it is not one (an ordinary event),
/// `Some(Err)` when it says `grant.*` but is malformed.
/// Shape: `{"type": "grant.revoked", "data": {"sub", "appId"}}` (`id`, `timestamp` optional).
pub fn grant_message(body: &[u8], namespace: &Namespace) -> Option<Result<GrantChange, String>> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let kind = serde_json::from_slice::<Kind>(body).ok()?.kind?;
    let revoked = match kind.as_str() {
        "grant.revoked" => true,
        "grant.restored" => false,
        _ => return None,
    };
    Some(
        serde_json::from_slice::<GrantMessage>(body)
            .map_err(|e| {
                format!("{kind} message is not {{\"type\", \"data\": {{\"sub\", \"appId\"}}}}: {e}")
            })
            .and_then(|m| {
                debug_assert_eq!(m.kind, kind);
                m.data
                    .validate(revoked, namespace)
                    .map_err(|e| format!("{kind} message: {e}"))
            }),
    )
}

/// What a grant change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantOutcome {
    /// The change.
    pub change: GrantChange,
    /// The owner's webhooks on that App whose suspension changed.
    pub webhooks: Vec<WebhookId>,
}

/// Lifecycle changes over the ports: each writes the webhook conditionally (re-reading on a
/// conflict), then emits its operational events onto the events queue.
#[derive(Clone)]
pub struct Lifecycle {
    store: Arc<dyn WebhookStore>,
    grants: Arc<dyn GrantStore>,
    events: Arc<dyn EventQueue>,
    namespace: Namespace,
}

/// Tries of a conditional write before giving up on a webhook that keeps changing.
const WRITE_TRIES: usize = 5;

impl Lifecycle {
    /// Lifecycle over the webhook store, the grant store and the events queue.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        grants: Arc<dyn GrantStore>,
        events: Arc<dyn EventQueue>,
        namespace: Namespace,
    ) -> Self {
        Self {
            store,
            grants,
            events,
            namespace,
        }
    }

    /// Applies `change` to the stored webhook (re-read after a conflict) and writes it with a
    /// version bump. `change` returns false when there is nothing to do. `Ok(None)`: the
    /// webhook is gone or needed no change.
    async fn change(
        &self,
        id: &WebhookId,
        first: Option<Webhook>,
        change: impl Fn(&mut Webhook) -> bool,
    ) -> Result<Option<Webhook>, PortError> {
        let mut current = match first {
            Some(w) => w,
            None => match self.store.get(id).await? {
                Some(w) => w,
                None => return Ok(None),
            },
        };
        for _ in 0..WRITE_TRIES {
            let mut next = current.clone();
            if !change(&mut next) {
                return Ok(None);
            }
            next.version = current.version + 1;
            next.updated_at = OffsetDateTime::now_utc();
            match self.store.update(&next, current.version).await {
                Ok(()) => return Ok(Some(next)),
                Err(PortError::VersionConflict { .. }) => match self.store.get(id).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(None),
                },
                Err(PortError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(PortError::VersionConflict {
            expected: current.version,
        })
    }

    /// Disables `webhook` (as read) for `reason` unless it is disabled already; emits
    /// `webhook.disabled` for each App it names. Returns the webhook as written.
    pub async fn disable(
        &self,
        webhook: &Webhook,
        reason: DisabledReason,
        last_error: Option<String>,
        failures: Option<&FailureRun>,
    ) -> Result<Option<Webhook>, PortError> {
        let now = OffsetDateTime::now_utc();
        let written = self
            .change(&webhook.id, Some(webhook.clone()), |w| {
                if !w.spec.enabled {
                    return false;
                }
                w.disable(reason, now, last_error.clone());
                true
            })
            .await?;
        if let Some(w) = &written {
            tracing::warn!(webhook_id = %w.id, reason = reason.as_str(), last_error = ?last_error, "webhook disabled");
            let mut extra = serde_json::Map::new();
            if let Some(e) = &last_error {
                extra.insert("lastError".into(), e.clone().into());
            }
            if let Some(run) = failures {
                extra.insert("failures".into(), run.failures.into());
                extra.insert("failingSince".into(), rfc3339(run.since).into());
            }
            self.announce(Operational::Disabled, w, None, reason.as_str(), &extra)
                .await;
        }
        Ok(written)
    }

    /// After a webhook was enabled (by hand): emits `webhook.enabled` for each App it names.
    pub async fn announce_enabled(&self, webhook: &Webhook) {
        self.announce(
            Operational::Enabled,
            webhook,
            None,
            "manual",
            &serde_json::Map::new(),
        )
        .await;
    }

    /// After a webhook was disabled by hand: emits `webhook.disabled` (`manual`).
    pub async fn announce_disabled(&self, webhook: &Webhook) {
        self.announce(
            Operational::Disabled,
            webhook,
            None,
            DisabledReason::Manual.as_str(),
            &serde_json::Map::new(),
        )
        .await;
    }

    /// Emits `kind` about `webhook` for `app` (or each App it names). A failure to enqueue
    /// is logged: the change it reports is already stored and stands.
    async fn announce(
        &self,
        kind: Operational,
        webhook: &Webhook,
        app: Option<&str>,
        reason: &str,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) {
        let apps: Vec<&str> = match app {
            Some(a) => vec![a],
            None => webhook.spec.app_ids().into_iter().collect(),
        };
        let now = OffsetDateTime::now_utc();
        for app in apps {
            let event = match operational_event(
                kind,
                &webhook.id,
                app,
                reason,
                extra.clone(),
                &self.namespace,
                now,
            ) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(webhook_id = %webhook.id, app_id = app, error = %e, "operational event could not be built");
                    continue;
                }
            };
            match self.events.send_event(&event).await {
                Ok(()) => {
                    tracing::info!(webhook_id = %webhook.id, app_id = app, event_id = %event.id, event_type = kind.type_name(), "operational event queued")
                }
                Err(e) => {
                    tracing::error!(webhook_id = %webhook.id, app_id = app, event_type = kind.type_name(), error = %e, "operational event could not be queued; the change stands")
                }
            }
        }
    }

    /// The Apps on which the platform revoked `sub`'s grant.
    pub async fn revoked_apps(&self, sub: &str) -> Result<Vec<String>, PortError> {
        Ok(self
            .grants
            .revoked(sub)
            .await?
            .into_iter()
            .map(|g| g.app_id)
            .collect())
    }

    /// Records the change and suspends (revoked) or restores the owner's webhooks on that App;
    /// idempotent. Each webhook whose suspension changed is announced for that App.
    pub async fn apply_grant(&self, change: &GrantChange) -> Result<GrantOutcome, PortError> {
        let now = OffsetDateTime::now_utc();
        if change.revoked {
            self.grants.revoke(&change.sub, &change.app_id, now).await?;
        } else {
            self.grants.restore(&change.sub, &change.app_id).await?;
        }
        let owned = self.store.owned_in_app(&change.sub, &change.app_id).await?;
        let mut webhooks = Vec::new();
        for webhook in owned {
            let app = change.app_id.clone();
            let written = self
                .change(&webhook.id, Some(webhook.clone()), |w| {
                    let has = w.state.suspended.iter().any(|s| s.app_id == app);
                    if change.revoked && !has {
                        w.state.suspended.push(Suspension {
                            app_id: app.clone(),
                            reason: PERMISSION_REVOKED.into(),
                            since: now,
                        });
                        true
                    } else if !change.revoked && has {
                        w.state.suspended.retain(|s| s.app_id != app);
                        true
                    } else {
                        false
                    }
                })
                .await?;
            if let Some(w) = written {
                let kind = if change.revoked {
                    Operational::Suspended
                } else {
                    Operational::Restored
                };
                let reason = if change.revoked {
                    PERMISSION_REVOKED
                } else {
                    "permission restored"
                };
                tracing::info!(webhook_id = %w.id, app_id = %change.app_id, sub = %change.sub, event_type = kind.type_name(), "webhook suspension changed");
                self.announce(
                    kind,
                    &w,
                    Some(&change.app_id),
                    reason,
                    &serde_json::Map::new(),
                )
                .await;
                webhooks.push(w.id);
            }
        }
        tracing::info!(sub = %change.sub, app_id = %change.app_id, revoked = change.revoked, webhooks = webhooks.len(), "grant change applied");
        Ok(GrantOutcome {
            change: change.clone(),
            webhooks,
        })
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_run_disables_only_when_old_enough_and_long_enough() {
        let policy = DisablePolicy {
            after: Duration::from_secs(3),
            min_failures: 3,
        };
        let since = datetime!(2026-11-26 12:00:00 UTC);
        let run = |failures| FailureRun {
            since,
            failures,
            last_error: None,
        };
        assert!(!policy.should_disable(&run(10), since + time::Duration::seconds(2)));
        assert!(!policy.should_disable(&run(2), since + time::Duration::seconds(60)));
        assert!(policy.should_disable(&run(3), since + time::Duration::seconds(3)));
    }

    #[test]
    fn settings_parse_durations_and_counts() {
        let p = DisablePolicy::from_settings(Some("90m"), Some("4")).expect("valid");
        assert_eq!(p.after, Duration::from_secs(90 * 60));
        assert_eq!(p.min_failures, 4);
        assert_eq!(
            DisablePolicy::from_settings(None, None).expect("defaults"),
            DisablePolicy::default()
        );
        assert_eq!(
            DisablePolicy::from_settings(Some("5d"), None)
                .expect("valid")
                .after,
            DEFAULT_DISABLE_AFTER
        );
        let e = DisablePolicy::from_settings(Some("soon"), None).expect_err("bad");
        assert_eq!(e.name, "HOOKLINE_DISABLE_AFTER");
        assert!(DisablePolicy::from_settings(None, Some("-1")).is_err());
    }

    #[test]
    fn operational_events_name_their_webhook_and_app() {
        let id = WebhookId::generate();
        let e = operational_event(
            Operational::Suspended,
            &id,
            "A1",
            PERMISSION_REVOKED,
            serde_json::Map::new(),
            &Namespace::default(),
            datetime!(2026-11-26 12:00:00 UTC),
        )
        .expect("event");
        assert_eq!(e.event_type.as_str(), "webhook.suspended");
        assert_eq!(e.urn.app_id(), "A1");
        assert_eq!(
            e.urn.to_string(),
            format!("urn:allthings:app:A1:webhook:{id}")
        );
        assert_eq!(about_webhook(&e), Some(id.as_str()));
        assert_eq!(e.data["reason"], PERMISSION_REVOKED);
    }

    #[test]
    fn grant_messages_are_recognised_and_checked() {
        let ns = Namespace::default();
        assert_eq!(
            grant_message(br#"{"type":"ticket.created","urn":"x","data":{}}"#, &ns),
            None
        );
        assert_eq!(grant_message(b"not json", &ns), None);
        let ok = grant_message(
            br#"{"type":"grant.revoked","data":{"sub":"auth0|7","appId":"A1"}}"#,
            &ns,
        );
        assert_eq!(
            ok,
            Some(Ok(GrantChange {
                revoked: true,
                sub: "auth0|7".into(),
                app_id: "A1".into()
            }))
        );
        let restored = grant_message(
            br#"{"id":"g1","type":"grant.restored","data":{"sub":"s","appId":"A1"}}"#,
            &ns,
        );
        assert!(matches!(
            restored,
            Some(Ok(GrantChange { revoked: false, .. }))
        ));
        for bad in [
            r#"{"type":"grant.revoked","data":{"sub":"s"}}"#,
            r#"{"type":"grant.revoked","data":{"sub":"","appId":"A1"}}"#,
            r#"{"type":"grant.revoked","data":{"sub":"s","appId":"A:1"}}"#,
            r#"{"type":"grant.revoked","data":{"sub":"s","appId":"A1"},"extra":1}"#,
        ] {
            assert!(
                matches!(grant_message(bad.as_bytes(), &ns), Some(Err(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn stored_reasons_read_back() {
        for r in [
            DisabledReason::Manual,
            DisabledReason::Failing,
            DisabledReason::Gone,
        ] {
            assert_eq!(DisabledReason::parse_stored(r.as_str()), r);
        }
        assert_eq!(
            DisabledReason::parse_stored("the endpoint answered 410 Gone"),
            DisabledReason::Gone
        );
    }
}
