//! HS256 bearer tokens for `hookline serve`, with `jsonwebtoken`: what API Gateway's JWT
//! authorizer does in AWS. The key lives in the store, so a token works with the store whose
//! `serve` or `token` minted it, and with no other.

use std::time::Duration;

use hookline_api::auth::{bearer_token, Authenticate, Caller};
use hookline_core::auth::Principal;
use http::{Extensions, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Why a bearer token was refused (always a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT.
    #[error("token is malformed")]
    Malformed,
    /// The header's `alg` is not HS256 (`none` included).
    #[error("token algorithm must be HS256")]
    WrongAlgorithm,
    /// The signature does not match this store's key.
    #[error("token signature is invalid (tokens work only with the store that minted them)")]
    BadSignature,
    /// `exp` is in the past, or missing.
    #[error("token has expired or has no exp")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// No `sub`.
    #[error("token has no sub")]
    NoSubject,
}

/// Mints and verifies the store's HS256 tokens; the claim named `permissions_claim` holds the
/// grants.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    permissions_claim: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("permissions_claim", &self.permissions_claim)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Tokens {
    /// Tokens signed with `key`.
    pub fn new(key: &[u8], permissions_claim: impl Into<String>) -> Self {
        // HS256 only (no `alg` confusion), `exp` and `sub` required, no leeway on `exp`/`nbf`.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // Valid while exp > now, as before: a token expiring this second is refused.
        validation.reject_tokens_expiring_in_less_than = 1;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            permissions_claim: permissions_claim.into(),
        }
    }

    /// A token for `principal`, valid for `ttl` from now.
    pub fn mint(&self, principal: &Principal, ttl: Duration) -> String {
        let issued_at = now();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.mint_at(principal, issued_at, issued_at.saturating_add(ttl))
    }

    /// A token for `principal` issued at `issued_at`, expiring at `expires_at` (epoch seconds).
    pub fn mint_at(&self, principal: &Principal, issued_at: i64, expires_at: i64) -> String {
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(principal.sub.clone()));
        claims.insert(
            self.permissions_claim.clone(),
            Value::String(principal.permissions_claim()),
        );
        claims.insert("iat".into(), Value::from(issued_at));
        claims.insert("exp".into(), Value::from(expires_at));
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            // HS256 over a JSON map cannot fail; an empty token is refused by every check.
            .unwrap_or_default()
    }

    /// The principal of a valid token.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(
            token.as_bytes(),
            &self.decoding,
            &self.validation,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenError::WrongAlgorithm
            }
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::MissingRequiredClaim(c) if c == "exp" => TokenError::Expired,
            ErrorKind::MissingRequiredClaim(_) => TokenError::NoSubject,
            _ => TokenError::Malformed,
        })?;
        let sub = data
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::NoSubject)?;
        Ok(Principal::from_claims(
            sub,
            data.claims.get(&self.permissions_claim),
        ))
    }
}

impl Authenticate for Tokens {
    fn caller(&self, headers: &HeaderMap, _extensions: &Extensions) -> Caller {
        match bearer_token(headers) {
            Ok(None) => Caller::Anonymous,
            Ok(Some(token)) => match self.verify(token) {
                Ok(p) => Caller::Principal(p),
                Err(e) => Caller::Refused(e.to_string()),
            },
            Err(refused) => refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use hookline_core::auth::{Action, Grant};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn alice() -> Principal {
        Principal::from_claims(
            "alice",
            Some(&Value::String(
                "edit-app:A1 publish-events:A2 other:x".into(),
            )),
        )
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let tokens = Tokens::new(KEY, "permissions");
        let now = now();
        let token = tokens.mint_at(&alice(), now, now + 60);
        let p = tokens.verify(&token).expect("valid");
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
        let expired = tokens.mint_at(&alice(), now - 120, now - 60);
        assert_eq!(tokens.verify(&expired), Err(TokenError::Expired));
        let expiring_now = tokens.mint_at(&alice(), now, now);
        assert_eq!(tokens.verify(&expiring_now), Err(TokenError::Expired));
        assert_eq!(
            Tokens::new(b"another key", "permissions").verify(&token),
            Err(TokenError::BadSignature)
        );
        let (head_payload, _) = token.rsplit_once('.').expect("3 parts");
        assert_eq!(
            tokens.verify(&format!("{head_payload}.AAAA")),
            Err(TokenError::BadSignature)
        );
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = head_payload.split_once('.').expect("2 parts").1;
        for alg in ["HS512", "RS256"] {
            let header = b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            assert_eq!(
                tokens.verify(&format!("{header}.{payload}.")),
                Err(TokenError::WrongAlgorithm),
                "{alg}"
            );
        }
        // `none` is no algorithm jsonwebtoken knows: refused before any signature check.
        let none = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(tokens.verify(&format!("{none}.{payload}.")).is_err());
        let no_sub = b64.encode(format!(r#"{{"exp":{}}}"#, now + 60));
        let header = token.split('.').next().expect("header");
        assert!(tokens.verify(&format!("{header}.{no_sub}.AAAA")).is_err());
        for junk in ["", "a.b", "a.b.c.d", "!!!.!!!.!!!", "e30.e30.AAAA"] {
            assert!(tokens.verify(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_permissions_claim_name_is_the_deployments() {
        let tokens = Tokens::new(KEY, "https://example.com/perms");
        let token = tokens.mint(&alice(), Duration::from_secs(60));
        assert!(tokens
            .verify(&token)
            .expect("valid")
            .may(Action::EditApp, "A1"));
        let other = Tokens::new(KEY, "permissions");
        assert!(!other
            .verify(&token)
            .expect("valid")
            .may(Action::EditApp, "A1"));
    }
}
