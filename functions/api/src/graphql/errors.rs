//! [`ServiceError`] at the GraphQL edge, in this one place. A refused mutation answers a
//! `WebhookMutationResult` with `success: false`, a stable `code` and every failing field; a
//! refused query, and any failure of the server, is a GraphQL error whose `extensions.code`
//! is the same code.

use async_graphql::ErrorExtensions as _;
use hookline_core::ports::PortError;
use hookline_core::validation::FieldError;

use crate::error::ServiceError;

/// Why the caller's request was refused: what `WebhookMutationResult` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Stable code: `VALIDATION_FAILED`, `ENDPOINT_CHECK_FAILED`, `FORBIDDEN`, `NOT_FOUND`,
    /// `CONFLICT`, `PRECONDITION_FAILED` or `BAD_REQUEST`.
    pub code: &'static str,
    /// For a person; names every failing field.
    pub message: String,
    /// The failing fields, named as the GraphQL input names them.
    pub fields: Vec<FieldError>,
}

/// The GraphQL input's name of a field the service names as REST does: the documented schema
/// calls the REST `name` `description` and `eventTypes` `events`; the rest are the same
/// (`url`, `urns[1]`, `customHeaders.X-Api-Key`, `appId`, `secret`, `enabled`).
pub fn graphql_field(rest: &str) -> String {
    for (from, to) in [("name", "description"), ("eventTypes", "events")] {
        if let Some(rest_of_path) = rest.strip_prefix(from) {
            if rest_of_path.is_empty() || rest_of_path.starts_with(['[', '.']) {
                return format!("{to}{rest_of_path}");
            }
        }
    }
    rest.to_owned()
}

fn named(fields: &[FieldError]) -> Vec<FieldError> {
    fields
        .iter()
        .map(|f| FieldError::new(graphql_field(&f.field), f.message.clone()))
        .collect()
}

/// Sorts a service error into the caller's refusal, or a failure of the server (already
/// logged) as a GraphQL error.
pub fn refusal(e: ServiceError) -> Result<Refusal, async_graphql::Error> {
    let (code, message, fields) = match e {
        ServiceError::Forbidden(d) => ("FORBIDDEN", d, Vec::new()),
        ServiceError::NotFound(_) => ("NOT_FOUND", e.to_string(), Vec::new()),
        ServiceError::Invalid(errors) => {
            let fields = named(errors.errors());
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect();
            (
                "VALIDATION_FAILED",
                format!("validation failed: {}", list.join("; ")),
                fields,
            )
        }
        ServiceError::BadRequest(d) => ("BAD_REQUEST", d, Vec::new()),
        ServiceError::EndpointRejected { detail } => (
            "ENDPOINT_CHECK_FAILED",
            format!("url: {detail}"),
            vec![FieldError::new("url", detail)],
        ),
        ServiceError::Conflict(d) => ("CONFLICT", d, Vec::new()),
        ServiceError::PreconditionFailed { .. } => (
            "PRECONDITION_FAILED",
            format!("{e}; read it again and retry with its version"),
            Vec::new(),
        ),
        ServiceError::Overloaded(o) => {
            return Err(server_error("OVERLOADED", &o.detail));
        }
        ServiceError::Store(PortError::Unavailable(source)) => {
            tracing::error!(error = %source, "storage unavailable");
            return Err(server_error(
                "UNAVAILABLE",
                "storage is unavailable; retry shortly",
            ));
        }
        ServiceError::Store(other) => {
            tracing::error!(error = %other, "storage error");
            return Err(server_error(
                "INTERNAL",
                "an internal error occurred; it has been logged",
            ));
        }
    };
    Ok(Refusal {
        code,
        message,
        fields,
    })
}

fn server_error(code: &'static str, message: &str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
}

/// A service error as the GraphQL error of a query: `extensions.code`, and
/// `extensions.fieldErrors` for validation.
pub fn query_error(e: ServiceError) -> async_graphql::Error {
    match refusal(e) {
        Ok(r) => {
            let fields: Vec<async_graphql::Value> = r
                .fields
                .iter()
                .map(|f| {
                    async_graphql::Value::Object(
                        [
                            (
                                async_graphql::Name::new("field"),
                                async_graphql::Value::String(f.field.clone()),
                            ),
                            (
                                async_graphql::Name::new("message"),
                                async_graphql::Value::String(f.message.clone()),
                            ),
                        ]
                        .into_iter()
                        .collect(),
                    )
                })
                .collect();
            async_graphql::Error::new(r.message).extend_with(|_, ext| {
                ext.set("code", r.code);
                if !fields.is_empty() {
                    ext.set("fieldErrors", async_graphql::Value::List(fields.clone()));
                }
            })
        }
        Err(failed) => failed,
    }
}

#[cfg(test)]
mod tests {
    use hookline_core::validation::ValidationErrors;

    use super::*;

    #[test]
    fn rest_field_names_become_the_graphql_inputs_names() {
        assert_eq!(graphql_field("name"), "description");
        assert_eq!(graphql_field("eventTypes"), "events");
        assert_eq!(graphql_field("eventTypes[2]"), "events[2]");
        assert_eq!(graphql_field("urns[0]"), "urns[0]");
        assert_eq!(
            graphql_field("customHeaders.X-Name"),
            "customHeaders.X-Name"
        );
        assert_eq!(graphql_field("names"), "names", "only whole path segments");
    }

    #[test]
    fn every_failing_field_is_in_the_message_and_the_list() {
        let r = refusal(ServiceError::Invalid(ValidationErrors::new(vec![
            FieldError::new("name", "must not be empty"),
            FieldError::new("eventTypes[0]", "unknown event type nope.created"),
        ])))
        .expect("a refusal");
        assert_eq!(r.code, "VALIDATION_FAILED");
        assert_eq!(
            r.message,
            "validation failed: description: must not be empty; events[0]: unknown event type nope.created"
        );
        assert_eq!(
            r.fields
                .iter()
                .map(|f| f.field.as_str())
                .collect::<Vec<_>>(),
            ["description", "events[0]"]
        );
    }

    #[test]
    fn server_failures_are_errors_not_refusals() {
        let e = refusal(ServiceError::Store(PortError::Corrupt("x".into())))
            .expect_err("not the caller's fault");
        assert_eq!(e.message, "an internal error occurred; it has been logged");
        let e = query_error(ServiceError::Forbidden("needs edit-app on App A2".into()));
        assert_eq!(e.message, "needs edit-app on App A2");
        let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
        assert_eq!(code, Some(async_graphql::Value::String("FORBIDDEN".into())));
    }
}
