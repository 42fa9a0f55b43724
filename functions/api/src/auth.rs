//! Who is calling: each edge (API Gateway's JWT authorizer in Lambda, HS256 tokens in
//! `hookline serve`) is an [`Authenticate`] that [`with_auth`] runs once per request; the
//! routes take the result through one extractor, [`Authenticated`].

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use hookline_core::auth::Principal;
use http::request::Parts;
use http::{Extensions, HeaderMap};

use crate::problem::Problem;

/// Who is calling, as the edge found out.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A verified principal.
    Principal(Principal),
    /// No credentials were sent.
    Anonymous,
    /// Credentials were sent but refused; the reason is safe to show.
    Refused(String),
}

/// An edge's way of telling who sent a request.
pub trait Authenticate: Send + Sync + 'static {
    /// The caller of a request with these headers and extensions (where `lambda_http` puts
    /// the API Gateway request context).
    fn caller(&self, headers: &HeaderMap, extensions: &Extensions) -> Caller;
}

/// `router` with `auth` telling every request's [`Caller`] to the routes.
pub fn with_auth(router: axum::Router, auth: impl Authenticate) -> axum::Router {
    let auth = Arc::new(auth);
    router.layer(axum::middleware::from_fn(
        move |mut request: Request, next: Next| {
            let caller = auth.caller(request.headers(), request.extensions());
            request.extensions_mut().insert(caller);
            next.run(request)
        },
    ))
}

/// The `Bearer` token of an `Authorization` header: `Ok(None)` when there is no header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Caller> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    match value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
        Some(token) => Ok(Some(token.trim())),
        None => Err(Caller::Refused(
            "Authorization must be \"Bearer <token>\"".into(),
        )),
    }
}

/// The verified principal of a request; 401 problem+json otherwise.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Principal(p)) => Ok(Self(p.clone())),
            Some(Caller::Refused(why)) => Err(Problem::unauthorized(format!(
                "the token was refused: {why}"
            ))),
            Some(Caller::Anonymous) | None => {
                Err(Problem::unauthorized("send Authorization: Bearer <token>"))
            }
        }
    }
}
