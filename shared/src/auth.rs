//! Who may do what: the principal and its permissions (`edit-app:A1`,
//! `edit-app:*`, `publish-events:A1`), read from a token's claims.
//!
//! In AWS the API Gateway JWT authorizer verifies tokens and hands over their claims; locally
//! `hookline serve` verifies HS256 tokens itself. Both end in a [`Principal`].

use std::collections::BTreeSet;

use serde_json::Value;

/// The claim holding permissions unless a deployment names another.
pub const DEFAULT_PERMISSIONS_CLAIM: &str = "permissions";

/// An action that needs a grant on an App.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Manage the App's webhooks (`edit-app`).
    EditApp,
    /// Publish events for the App (`publish-events`).
    PublishEvents,
    /// Report the App's revoked and restored grants (`manage-grants`): the platform's, never an
    /// integrator's.
    ManageGrants,
    /// Read the deployment's metrics (`read-metrics:*`, `GET /metrics`): an operator's.
    ReadMetrics,
    /// Purge an App's data (`manage-apps`, `DELETE /v1/apps/{appId}`): the platform's.
    ManageApps,
}

impl Action {
    /// The permission's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EditApp => "edit-app",
            Self::PublishEvents => "publish-events",
            Self::ManageGrants => "manage-grants",
            Self::ReadMetrics => "read-metrics",
            Self::ManageApps => "manage-apps",
        }
    }

    /// Parses `edit-app`, `publish-events`, `manage-grants`, `read-metrics` or `manage-apps`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "edit-app" => Some(Self::EditApp),
            "publish-events" => Some(Self::PublishEvents),
            "manage-grants" => Some(Self::ManageGrants),
            "read-metrics" => Some(Self::ReadMetrics),
            "manage-apps" => Some(Self::ManageApps),
            _ => None,
        }
    }
}

/// One grant: an action on one App, or on every App (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// What may be done.
    pub action: Action,
    /// On which App; `None` for `*`.
    pub app_id: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub sub: String,
    grants: BTreeSet<Grant>,
}

impl Principal {
    /// A principal with these grants.
    pub fn new(sub: impl Into<String>, grants: impl IntoIterator<Item = Grant>) -> Self {
        Self {
            sub: sub.into(),
            grants: grants.into_iter().collect(),
        }
    }

    /// Builds a principal from a permissions claim: space-separated `action:app` entries, as a
    /// string, a JSON array, or API Gateway's flattened array form `[a b c]`. Unknown entries
    /// are ignored (tokens carry permissions of other services too).
    pub fn from_claims(sub: &str, permissions: Option<&Value>) -> Self {
        let entries: Vec<String> = match permissions {
            Some(Value::String(s)) => s
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split([' ', ','])
                .map(str::to_owned)
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let grants = entries.iter().filter_map(|e| parse_grant(e.trim()));
        Self::new(sub, grants)
    }

    /// True when the principal may do `action` on `app_id`.
    pub fn may(&self, action: Action, app_id: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.action == action && g.app_id.as_deref().is_none_or(|a| a == app_id))
    }

    /// True when the principal may do `action` on every App in `app_ids`.
    pub fn may_all<'a>(&self, action: Action, app_ids: impl IntoIterator<Item = &'a str>) -> bool {
        app_ids.into_iter().all(|app| self.may(action, app))
    }

    /// True when the principal holds `action` on at least one App.
    pub fn may_any(&self, action: Action) -> bool {
        self.grants.iter().any(|g| g.action == action)
    }

    /// The grants, in the token's space-separated form.
    pub fn permissions_claim(&self) -> String {
        self.grants
            .iter()
            .map(|g| {
                format!(
                    "{}:{}",
                    g.action.as_str(),
                    g.app_id.as_deref().unwrap_or("*")
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parses `edit-app:A1` or `edit-app:*`; `None` for anything else.
pub fn parse_grant(entry: &str) -> Option<Grant> {
    let (action, app) = entry.split_once(':')?;
    let action = Action::parse(action)?;
    let app_id = match app {
        "*" => None,
        a if !a.is_empty() && !a.contains(':') => Some(a.to_owned()),
        _ => return None,
    };
    Some(Grant { action, app_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal::from_claims(
            "alice",
            Some(&Value::String(
                "edit-app:A1 publish-events:A2 other:x".into(),
            )),
        )
    }

    #[test]
    fn grants_per_app_and_wildcard() {
        let p = alice();
        assert!(p.may(Action::EditApp, "A1"));
        assert!(!p.may(Action::EditApp, "A2"));
        assert!(p.may(Action::PublishEvents, "A2"));
        assert!(!p.may(Action::PublishEvents, "A1"));
        assert!(!p.may_all(Action::EditApp, ["A1", "A2"]));
        assert!(p.may_all(Action::EditApp, ["A1"]));
        let admin = Principal::from_claims("root", Some(&Value::String("edit-app:*".into())));
        assert!(admin.may_all(Action::EditApp, ["A1", "A9"]));
        assert!(!admin.may(Action::PublishEvents, "A1"));
        let platform = Principal::from_claims("p", Some(&Value::String("manage-grants:*".into())));
        assert!(platform.may(Action::ManageGrants, "A7"));
        assert!(!admin.may(Action::ManageGrants, "A1"));
    }

    #[test]
    fn api_gateway_claim_forms() {
        for claim in [
            Value::String("[edit-app:A1 edit-app:A2]".into()),
            Value::String("edit-app:A1,edit-app:A2".into()),
            serde_json::json!(["edit-app:A1", "edit-app:A2"]),
        ] {
            let p = Principal::from_claims("s", Some(&claim));
            assert!(p.may_all(Action::EditApp, ["A1", "A2"]), "{claim}");
        }
        assert!(!Principal::from_claims("s", None).may_any(Action::EditApp));
        assert_eq!(parse_grant("edit-app:"), None);
        assert_eq!(parse_grant("edit-app:A1:x"), None);
    }
}
