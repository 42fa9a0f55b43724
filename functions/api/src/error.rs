//! [`ServiceError`]: why a service call failed. The REST edge maps it to problem+json
//! ([`crate::problem`]) and GraphQL to mutation results and errors, each in one place.

use hookline_core::ports::PortError;
use hookline_core::validation::ValidationErrors;

use crate::admission::Overloaded;

/// Why a service call failed; the HTTP edge maps each to one problem type.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller lacks a permission it could see it needs.
    #[error("{0}")]
    Forbidden(String),
    /// No such webhook (or delivery, or job), or the caller may not see it; names what.
    #[error("{0} not found")]
    NotFound(String),
    /// Input broke validation rules; every failing field is listed.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// A request parameter is unusable (bad cursor, limit, If-Match).
    #[error("{0}")]
    BadRequest(String),
    /// The endpoint did not pass verification.
    #[error("{detail}")]
    EndpointRejected {
        /// What the endpoint answered.
        detail: String,
    },
    /// Conflicts with another webhook (one URL per App and event type).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` named another version than the stored one.
    #[error("webhook {id} is at version {current}, not {expected}")]
    PreconditionFailed {
        /// The webhook.
        id: String,
        /// The caller's version.
        expected: u64,
        /// The stored version.
        current: u64,
    },
    /// Intake has no room now (backpressure): come back after a while.
    #[error(transparent)]
    Overloaded(Overloaded),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] PortError),
}
