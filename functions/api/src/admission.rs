//! Intake's backpressure: whether there is room for one more event, and the 429 when there
//! is not.

use std::time::Duration;

use async_trait::async_trait;

/// Whether intake has room for one more event: backpressure, so that a publisher faster
/// than delivery is slowed down or told to come back instead of filling a queue that
/// delivers seconds late. The embedded runner has one (`hookline serve`); on AWS, SQS and
/// Lambda scale instead.
#[async_trait]
pub trait Admission: Send + Sync {
    /// `Ok` when the event may be taken, possibly after a bounded wait for room.
    async fn admit(&self) -> Result<(), Overloaded>;
}

/// No room for the event: the 429 the publisher gets, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Overloaded {
    /// When to try again (`Retry-After`).
    pub retry_after: Duration,
    /// What is full.
    pub detail: String,
}
