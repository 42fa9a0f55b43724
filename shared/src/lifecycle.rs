//! The lifecycle service: applies the webhook state rules ([`crate::webhook::WebhookState`],
//! [`crate::webhook::DisablePolicy`]) over the ports, for the api (enable/disable, grants),
//! ingest (`grant.*` messages) and deliver (failure runs) alike, and announces each change
//! with an operational event ([`crate::operational`]).

use std::sync::Arc;

use time::OffsetDateTime;

use crate::grant::GrantChange;
use crate::operational::{operational_event, Operational};
use crate::ports::{EventQueue, GrantStore, PortError, Ports, WebhookStore};
use crate::telemetry;
use crate::timestamp::rfc3339;
use crate::urn::Namespace;
use crate::webhook::{
    DisabledReason, FailureRun, Suspension, Webhook, WebhookId, PERMISSION_REVOKED,
};

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

    /// Lifecycle over a composition's ports.
    pub fn from_ports(ports: &Ports) -> Self {
        Self::new(
            ports.webhooks.clone(),
            ports.grants.clone(),
            ports.event_queue.clone(),
            ports.namespace.clone(),
        )
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

    /// Removes App `app_id` from `webhook` (as read; re-read after a conflict) and announces
    /// it to each App it still names. `Ok(None)`: it is gone, or names that App no more
    /// (or nothing else: a purge deletes those).
    pub async fn remove_app(
        &self,
        webhook: &Webhook,
        app_id: &str,
    ) -> Result<Option<Webhook>, PortError> {
        let written = self
            .change(&webhook.id, Some(webhook.clone()), |w| w.remove_app(app_id))
            .await?;
        if let Some(w) = &written {
            tracing::info!(webhook_id = %w.id, app_id, "the App was removed from the webhook");
            self.announce_app_purged(w, app_id).await;
        }
        Ok(written)
    }

    /// Tells each App `webhook` still names that it lost App `purged`'s URNs
    /// (`webhook.app-purged`).
    pub async fn announce_app_purged(&self, webhook: &Webhook, purged: &str) {
        let mut extra = serde_json::Map::new();
        extra.insert("purgedAppId".into(), purged.into());
        self.announce(
            Operational::AppPurged,
            webhook,
            None,
            &format!("App {purged} was purged"),
            &extra,
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
        let state_change = match kind {
            Operational::Disabled => Some((false, reason_code(reason))),
            Operational::Enabled => Some((true, "manual")),
            Operational::Suspended => Some((false, "permission_revoked")),
            Operational::Restored => Some((true, "permission_restored")),
            Operational::AppPurged => None,
        };
        if let Some((enabled, code)) = state_change {
            telemetry::webhook_state(enabled, code);
        }
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

/// The bounded metric label of a disable reason as [`DisabledReason::as_str`] writes it.
fn reason_code(reason: &str) -> &'static str {
    [
        DisabledReason::Manual,
        DisabledReason::Failing,
        DisabledReason::Gone,
    ]
    .into_iter()
    .map(DisabledReason::as_str)
    .find(|r| *r == reason)
    .unwrap_or("other")
}
