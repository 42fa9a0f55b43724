//! The embedded stand-in for Lambda's SQS event source: receive a batch from an embedded
//! queue, hand it to the same handler the Lambda runs, delete what succeeded, and leave
//! failures to come back after their visibility timeout (or go to the DLQ by redrive).
//!
//! An idle consumer does not poll: it sleeps until the queue's wake-up (a send, a group's
//! next member, another consumer handing on a full batch), until the queue's next message is
//! due (a retry's backoff, a visibility timeout), or [`ConsumerSettings::idle_poll`] at most.
//! [`watch_other_writers`] looks once a second for another process's writes.

use std::future::Future;
use std::time::Duration;

use hookline_core::adapters::sqlite::{Database, SqliteQueue};
use hookline_core::delivery::{ReceiptHandle, ReceivedMessage};
use tokio::sync::watch;

/// How a consumer polls.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings {
    /// Messages per batch (Lambda's `BatchSize`).
    pub batch_size: usize,
    /// How long a received message stays hidden (the queue's visibility timeout).
    pub visibility: Duration,
    /// Longest sleep of an idle consumer (a backstop: it is woken when work arrives).
    pub idle_poll: Duration,
}

/// Consumes `queue` until `stop` turns true; `handle` returns the ids of messages to retry.
pub async fn consume<F, Fut>(
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
    let wakeup = queue.wakeup();
    while !*stop.borrow() {
        while deletes.try_join_next().is_some() {}
        // Register for the wake-up before looking, so a send in between is not missed.
        let announced = wakeup.notified();
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
                () = tokio::time::sleep(idle_for(queue.next_due(), settings.idle_poll)) => {}
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

/// How long a consumer that found nothing may sleep: until the next message is due, at most
/// `cap`.
fn idle_for(next_due: Option<i64>, cap: Duration) -> Duration {
    let Some(due) = next_due else { return cap };
    let now = hookline_core::timestamp::unix_ms(time::OffsetDateTime::now_utc());
    let wait = u64::try_from(due.saturating_sub(now)).unwrap_or(0);
    // A millisecond at least: the due message may be one a full receive just left behind.
    Duration::from_millis(wait.max(1)).min(cap)
}

/// How often [`watch_other_writers`] looks.
pub const OTHER_WRITERS_EVERY: Duration = Duration::from_secs(1);

/// Looks every [`OTHER_WRITERS_EVERY`] whether another process wrote to the store (`hookline
/// dlq replay`, a second `hookline` on the same file), and wakes the consumers if so, until
/// `stop`.
pub async fn watch_other_writers(db: Database, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Err(e) = db.check_other_writers().await {
            tracing::warn!(error = %e, "looking for other writers to the store failed");
        }
        tokio::select! {
            () = tokio::time::sleep(OTHER_WRITERS_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_consumer_sleeps_until_the_next_due_message_at_most_the_cap() {
        let cap = Duration::from_secs(30);
        let now = hookline_core::timestamp::unix_ms(time::OffsetDateTime::now_utc());
        assert_eq!(idle_for(None, cap), cap);
        assert_eq!(idle_for(Some(now - 5_000), cap), Duration::from_millis(1));
        let soon = idle_for(Some(now + 2_000), cap);
        assert!(soon <= Duration::from_millis(2_000) && soon >= Duration::from_millis(1_900));
        assert_eq!(idle_for(Some(now + 3_600_000), cap), cap);
    }
}
