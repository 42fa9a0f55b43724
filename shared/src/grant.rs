//! Grant changes: the platform took a client's permission on an App away, or gave it back
//! (`POST /v1/grants/revoke|restore`, or a `grant.*` message on the events queue).

use serde::Deserialize;

use crate::urn::Namespace;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
