//! Queue adapters for the ports: SQS, and the embedded queue on SQLite with the same
//! semantics (visibility timeout, receive count, delay, redrive to a dead-letter queue).

#[cfg(feature = "lambda-sqs")]
pub mod lambda;
#[cfg(feature = "sqlite")]
pub mod schedule;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;

/// Queue names, as in `template.yaml` and `hookline-bootstrap` (after the prefix).
pub mod names {
    /// Intake.
    pub const EVENTS: &str = "events";
    /// Intake messages that could not be processed.
    pub const EVENTS_DLQ: &str = "events-dlq";
    /// One message per (event, webhook).
    pub const DELIVERIES: &str = "deliveries";
    /// Deliveries that exhausted their retries.
    pub const DELIVERIES_DLQ: &str = "deliveries-dlq";
}
