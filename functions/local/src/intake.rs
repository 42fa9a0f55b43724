//! Fan-out at intake: on the embedded store an event taken in over HTTP is fanned out in the
//! commit that accepts it (its claim, its delivery messages and its mark, one fsync shared by
//! the group), so it skips the events queue. When that fails — the store refused, or a copy
//! of the event is being fanned out right now — the event goes onto the events queue as it
//! does on AWS, and the ingest consumers take it from there. Either way the 202 follows a
//! commit that holds the event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::event::Event;
use hookline_core::job::JobChunk;
use hookline_core::ports::{EventQueue, PortError};
use hookline_ingest::Ingest;

/// The API's events queue in `hookline serve`: fan-out first, the queue when it fails.
pub struct FanOutAtIntake {
    ingest: Ingest,
    queue: Arc<dyn EventQueue>,
}

impl FanOutAtIntake {
    /// Fans out with `ingest`, falling back to `queue` (the events queue).
    pub fn new(ingest: Ingest, queue: Arc<dyn EventQueue>) -> Self {
        Self { ingest, queue }
    }
}

#[async_trait]
impl EventQueue for FanOutAtIntake {
    async fn send_event(&self, event: &Event) -> Result<(), PortError> {
        match self.ingest.fan_out(event).await {
            Ok(_) => Ok(()),
            // `fan_out` logged why; the events queue's consumers retry it.
            Err(_) => self.queue.send_event(event).await,
        }
    }

    async fn send_job_chunk(&self, chunk: &JobChunk, delay: Duration) -> Result<(), PortError> {
        self.queue.send_job_chunk(chunk, delay).await
    }
}
