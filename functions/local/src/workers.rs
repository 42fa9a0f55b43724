//! The embedded stand-in for Lambda's SQS event source: receive a batch from an embedded
//! queue, hand it to the same handler the Lambda runs, delete what succeeded, and leave
//! failures to come back after their visibility timeout (or go to the DLQ by redrive).

use std::future::Future;
use std::time::Duration;

use hookline_core::adapters::sqlite::Database;
use hookline_core::adapters::sqlite::SqliteQueue;
use hookline_core::delivery::{ReceiptHandle, ReceivedMessage};
use tokio::sync::watch;

/// How a consumer polls.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings {
    /// Messages per batch (Lambda's `BatchSize`).
    pub batch_size: usize,
    /// How long a received message stays hidden (the queue's visibility timeout).
    pub visibility: Duration,
    /// Longest wait between polls when nothing was announced.
    pub idle_poll: Duration,
}

/// Consumes `queue` until `stop` turns true; `handle` returns the ids of messages to retry.
pub async fn consume<F, Fut>(
    db: Database,
    queue: SqliteQueue,
    settings: ConsumerSettings,
    mut stop: watch::Receiver<bool>,
    handle: F,
) where
    F: Fn(Vec<ReceivedMessage>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    // Deletes run beside the next batch instead of before it: a handled message is hidden
    // until its delete lands (and after a crash it is delivered again, at least once, as
    // ever). They are awaited before the consumer returns.
    let mut deletes = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        while deletes.try_join_next().is_some() {}
        // Register for the wake-up before looking, so a send in between is not missed.
        let announced = db.message_sent().notified();
        tokio::pin!(announced);
        announced.as_mut().enable();
        let batch = match queue
            .receive(settings.batch_size, settings.visibility)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(queue = queue.name(), error = %e, "receive failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = &mut announced => {}
                () = tokio::time::sleep(settings.idle_poll) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let failed = handle(batch.clone()).await;
        let handled: Vec<ReceiptHandle> = batch
            .into_iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt)
            .collect();
        // One transaction for the batch, as Lambda's poller sends one DeleteMessageBatch.
        let queue = queue.clone();
        deletes.spawn(async move {
            if let Err(e) = queue.delete_many(&handled).await {
                // They come back after their visibility timeout and are handled again
                // (idempotent).
                tracing::warn!(queue = queue.name(), messages = handled.len(), error = %e, "delete failed");
            }
        });
    }
    while deletes.join_next().await.is_some() {}
}
