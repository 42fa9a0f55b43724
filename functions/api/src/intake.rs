//! Event intake (`POST /v1/events`): validate the envelope, check `publish-events` on the
//! event's App, and put it on the events queue. Nothing is sent for bad input.

use std::sync::Arc;

use hookline_core::auth::{Action, Principal};
use hookline_core::event::{Event, EventError, IntakeRules};
use hookline_core::event_type::Catalog;
use hookline_core::ports::EventQueue;
use hookline_core::telemetry::{self, Published};
use hookline_core::urn::Namespace;
use time::OffsetDateTime;

use crate::admission::Admission;
use crate::error::ServiceError;

/// The intake service.
#[derive(Clone)]
pub struct IntakeService {
    queue: Arc<dyn EventQueue>,
    namespace: Namespace,
    admission: Option<Arc<dyn Admission>>,
}

impl IntakeService {
    /// Intake onto `queue`, validating URNs in `namespace`.
    pub fn new(queue: Arc<dyn EventQueue>, namespace: Namespace) -> Self {
        Self {
            queue,
            namespace,
            admission: None,
        }
    }

    /// The same, asking `admission` for room before each event is queued.
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Validates `body`, checks the caller may publish for the event's App, and enqueues it.
    /// Returns the event as queued (its id assigned when the body had none).
    pub async fn publish(&self, principal: &Principal, body: &[u8]) -> Result<Event, ServiceError> {
        let result = self.admit(principal, body).await;
        let outcome = match &result {
            Ok(_) => Published::Accepted,
            Err(ServiceError::Overloaded(_)) => Published::Backpressure,
            Err(
                ServiceError::Invalid(_) | ServiceError::BadRequest(_) | ServiceError::Forbidden(_),
            ) => Published::Rejected,
            // The queue failed: nothing was decided about the event.
            Err(_) => return result,
        };
        telemetry::event_published(outcome, result.as_ref().ok().map(|e| e.urn.app_id()));
        result
    }

    async fn admit(&self, principal: &Principal, body: &[u8]) -> Result<Event, ServiceError> {
        let rules = IntakeRules {
            namespace: &self.namespace,
            catalog: Catalog::builtin(),
        };
        let event =
            Event::from_intake(body, rules, OffsetDateTime::now_utc()).map_err(|e| match e {
                EventError::Invalid(errors) => ServiceError::Invalid(errors),
                other => ServiceError::BadRequest(other.to_string()),
            })?;
        if hookline_core::operational::is_operational(&event.event_type) {
            return Err(ServiceError::Invalid(
                hookline_core::validation::ValidationErrors::new(vec![
                    hookline_core::validation::FieldError::new(
                        "type",
                        format!(
                            "{} is emitted by Hookline itself and cannot be published",
                            event.event_type
                        ),
                    ),
                ]),
            ));
        }
        let app = event.urn.app_id();
        if !principal.may(Action::PublishEvents, app) {
            return Err(ServiceError::Forbidden(format!(
                "publishing events needs publish-events on App {app}"
            )));
        }
        if let Some(admission) = &self.admission {
            admission.admit().await.map_err(|e| {
                tracing::debug!(event_id = %event.id, retry_after = ?e.retry_after, "event refused: {e}");
                ServiceError::Overloaded(e)
            })?;
        }
        self.queue.send_event(&event).await?;
        tracing::info!(event_id = %event.id, event_type = %event.event_type, urn = %event.urn, sub = %principal.sub, "event accepted");
        Ok(event)
    }
}
