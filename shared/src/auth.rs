//! Who may do what (DESIGN §5): the principal, its permissions (`edit-app:A1`, `edit-app:*`,
//! `publish-events:A1`), and HS256 bearer tokens as `hookline serve` verifies them locally.
//!
//! In AWS the API Gateway JWT authorizer verifies tokens and hands over their claims; locally
//! [`verify_hs256`] does the same job with a shared key. Both end in a [`Principal`].

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The claim holding permissions unless a deployment names another.
pub const DEFAULT_PERMISSIONS_CLAIM: &str = "permissions";

/// An action that needs a grant on an App.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Manage the App's webhooks (`edit-app`).
    EditApp,
    /// Publish events for the App (`publish-events`).
    PublishEvents,
}

impl Action {
    /// The permission's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EditApp => "edit-app",
            Self::PublishEvents => "publish-events",
        }
    }

    /// Parses `edit-app` or `publish-events`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "edit-app" => Some(Self::EditApp),
            "publish-events" => Some(Self::PublishEvents),
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

/// Why a bearer token was refused (always a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("token is malformed")]
    Malformed,
    /// The header's `alg` is not HS256 (`none` included).
    #[error("token algorithm must be HS256")]
    WrongAlgorithm,
    /// The signature does not match the key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past (or missing).
    #[error("token has expired or has no exp")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// No `sub`.
    #[error("token has no sub")]
    NoSubject,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Mints an HS256 token for `principal`, valid until `expires_at` (epoch seconds).
pub fn mint_hs256(
    key: &[u8],
    principal: &Principal,
    permissions_claim: &str,
    issued_at: i64,
    expires_at: i64,
) -> String {
    let header = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(principal.sub.clone()));
    claims.insert(
        permissions_claim.into(),
        Value::String(principal.permissions_claim()),
    );
    claims.insert("iat".into(), Value::from(issued_at));
    claims.insert("exp".into(), Value::from(expires_at));
    let payload = B64URL.encode(Value::Object(claims).to_string());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    let sig = B64URL.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies an HS256 token at `now` (epoch seconds) and returns its principal.
pub fn verify_hs256(
    key: &[u8],
    token: &str,
    permissions_claim: &str,
    now: i64,
) -> Result<Principal, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Value = decode_json(h)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(TokenError::WrongAlgorithm);
    }
    let sig = B64URL.decode(s).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(key);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let claims: Value = decode_json(p)?;
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        _ => return Err(TokenError::Expired),
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now)
    {
        return Err(TokenError::NotYetValid);
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::NoSubject)?;
    Ok(Principal::from_claims(sub, claims.get(permissions_claim)))
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = B64URL.decode(part).map_err(|_| TokenError::Malformed)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_764_000_000;

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

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let token = mint_hs256(KEY, &alice(), "permissions", NOW, NOW + 60);
        let p = verify_hs256(KEY, &token, "permissions", NOW).expect("valid");
        assert_eq!(
            p,
            Principal::new(
                "alice",
                [
                    Grant {
                        action: Action::EditApp,
                        app_id: Some("A1".into())
                    },
                    Grant {
                        action: Action::PublishEvents,
                        app_id: Some("A2".into())
                    },
                ]
            )
        );
        assert_eq!(
            verify_hs256(KEY, &token, "permissions", NOW + 60),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_hs256(b"another key", &token, "permissions", NOW),
            Err(TokenError::BadSignature)
        );
        let (head_payload, _) = token.rsplit_once('.').expect("3 parts");
        assert_eq!(
            verify_hs256(KEY, &format!("{head_payload}.AAAA"), "permissions", NOW),
            Err(TokenError::BadSignature)
        );
        let none_header = B64URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = head_payload.split_once('.').expect("2 parts").1;
        assert_eq!(
            verify_hs256(
                KEY,
                &format!("{none_header}.{payload}."),
                "permissions",
                NOW
            ),
            Err(TokenError::WrongAlgorithm)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!!.!!!.!!!", "e30.e30.AAAA"] {
            assert!(
                verify_hs256(KEY, junk, "permissions", NOW).is_err(),
                "{junk}"
            );
        }
    }
}
