//! The API Gateway edge: turns a `lambda_http` request (HTTP API, payload v2) into the
//! router's `http::Request<Bytes>` and its caller, from the JWT authorizer's claims.

use bytes::Bytes;
use hookline_core::auth::Principal;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};

use crate::routes::Caller;

/// The caller from `requestContext.authorizer.jwt.claims`: `sub` and the permissions claim.
/// API Gateway has already verified the token; without claims the caller is anonymous.
pub fn caller_from_context(request: &lambda_http::Request, permissions_claim: &str) -> Caller {
    let claims = match request.request_context_ref() {
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
                .get(permissions_claim)
                .map(|p| serde_json::Value::String(p.clone()))
                .as_ref(),
        )),
        None => Caller::Refused("the token has no sub claim".to_owned()),
    }
}

/// The request as the router takes it (body bytes, decoded from base64 by `lambda_http`).
pub fn into_http(request: lambda_http::Request) -> http::Request<Bytes> {
    let (parts, body) = request.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        // Any later variant carries no body the API accepts.
        #[allow(unreachable_patterns)]
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, bytes)
}

/// The router's response as `lambda_http` sends it back.
pub fn from_http(response: http::Response<Bytes>) -> lambda_http::Response<Body> {
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    lambda_http::Response::from_parts(parts, body)
}
