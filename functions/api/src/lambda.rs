//! The API Gateway edge: the caller from the HTTP API's JWT authorizer (payload v2), which
//! `lambda_http` hands over in the request's extensions.

use hookline_core::auth::Principal;
use http::{Extensions, HeaderMap};
use lambda_http::request::RequestContext;

use crate::auth::{Authenticate, Caller};

/// The caller from `requestContext.authorizer.jwt.claims`: `sub` and the permissions claim.
/// API Gateway has already verified the token; without claims the caller is anonymous.
#[derive(Debug, Clone)]
pub struct ApiGatewayClaims {
    permissions_claim: String,
}

impl ApiGatewayClaims {
    /// Reads permissions from the claim named `permissions_claim`.
    pub fn new(permissions_claim: impl Into<String>) -> Self {
        Self {
            permissions_claim: permissions_claim.into(),
        }
    }
}

impl Authenticate for ApiGatewayClaims {
    fn caller(&self, _headers: &HeaderMap, extensions: &Extensions) -> Caller {
        let claims = match extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|jwt| &jwt.claims),
            _ => None,
        };
        let Some(claims) = claims else {
            return Caller::Anonymous;
        };
        match claims.get("sub").filter(|s| !s.is_empty()) {
            Some(sub) => Caller::Principal(Principal::from_claims(
                sub,
                claims
                    .get(&self.permissions_claim)
                    .map(|p| serde_json::Value::String(p.clone()))
                    .as_ref(),
            )),
            None => Caller::Refused("the token has no sub claim".to_owned()),
        }
    }
}
