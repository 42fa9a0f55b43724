//! RFC 9457 problem details: every error response of the API, built in this one place.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookline_core::ports::PortError;
use hookline_core::validation::FieldError;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::error::ServiceError;

/// Base of the problem `type` URIs.
pub const PROBLEM_BASE: &str = "https://hookline.dev/problems/";

/// An `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "https://hookline.dev/problems/validation")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// Failing fields, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    #[serde(skip)]
    #[schema(ignore)]
    headers: Vec<(header::HeaderName, String)>,
}

impl Problem {
    /// A problem of kind `slug` (`validation`, `not-found`, ...).
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            headers: Vec::new(),
        }
    }

    /// Adds the failing fields.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = Some(errors);
        self
    }

    /// 401: no or bad credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        );
        p.headers
            .push((header::WWW_AUTHENTICATE, "Bearer".to_owned()));
        p
    }

    /// 400: unusable request (malformed JSON, unknown field, bad parameter).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 404: no such route or resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405 with the `Allow` header.
    pub fn method_not_allowed(method: &http::Method, allow: &[&str]) -> Self {
        let mut p = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not allowed here; use {}", allow.join(", ")),
        );
        p.headers.push((header::ALLOW, allow.join(", ")));
        p
    }

    /// 413: body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("the body is over {} KiB ({limit} bytes)", limit / 1024),
        )
    }

    /// 415: not JSON.
    pub fn unsupported_media_type(got: Option<&str>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "send content-type: application/json (got {})",
                got.unwrap_or("none")
            ),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// The media type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Middleware: turns the error responses the framework makes itself (405 with `Allow`, a path
/// that does not parse) into problems, so that every error a client sees is problem+json.
pub async fn problems_only(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // HEAD is answered wherever GET is; the Allow list names what the API documents.
        let allow = response
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let allow: Vec<&str> = allow
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty() && *m != "HEAD")
            .collect();
        return Problem::method_not_allowed(&method, &allow).into_response();
    }
    let (_, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Request refused");
    let slug = title.to_ascii_lowercase().replace(' ', "-");
    Problem::new(status, &slug, title, detail).into_response()
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Forbidden(d) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", d)
            }
            ServiceError::NotFound(_) => Self::not_found(e.to_string()),
            ServiceError::Invalid(errors) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Validation failed",
                errors.to_string(),
            )
            .with_errors(errors.errors().to_vec()),
            ServiceError::BadRequest(d) => Self::bad_request(d),
            ServiceError::EndpointRejected { detail } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "endpoint-verification-failed",
                "Endpoint verification failed",
                detail.clone(),
            )
            .with_errors(vec![FieldError::new("url", detail)]),
            ServiceError::Conflict(d) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", d),
            ServiceError::PreconditionFailed { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
                format!("{e}; read it again and retry with its ETag"),
            ),
            ServiceError::Overloaded(o) => {
                let mut p = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "overloaded",
                    "Too many requests",
                    o.detail,
                );
                // Whole seconds (RFC 9110), at least one.
                let secs = o.retry_after.as_secs_f64().ceil().max(1.0);
                p.headers.push((header::RETRY_AFTER, format!("{secs:.0}")));
                p
            }
            ServiceError::Store(PortError::Unavailable(source)) => {
                tracing::error!(error = %source, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "storage is unavailable; retry shortly",
                )
            }
            ServiceError::Store(other) => {
                tracing::error!(error = %other, "storage error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}
