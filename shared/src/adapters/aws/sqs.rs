//! SQS adapter for the queue ports: `SendMessage`, `SendMessageBatch` (10 a call, failed
//! entries retried), `ChangeMessageVisibility` for backoff; and `ReceiveMessage` and
//! `DeleteMessageBatch`, as Lambda's SQS poller calls them, for benchmarks and tests.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use futures_util::stream::{self, StreamExt};

use crate::delivery::{
    DeliveryId, DeliveryMessage, ReceiptHandle, ReceivedMessage, REPLAY_OF_ATTRIBUTE,
};
use crate::event::Event;
use crate::job::JobChunk;
use crate::ports::{DeadLetters, DeliveryQueue, EventQueue, PortError};
use crate::retry::MAX_VISIBILITY;

/// Most entries SQS takes in one `SendMessageBatch`.
pub const BATCH_LIMIT: usize = 10;

/// `SendMessageBatch` requests in flight at once for one fan-out to the standard queue: an
/// event matching 10 000 webhooks is 1 000 requests, too many for one Lambda batch one after
/// another.
pub const SEND_CONCURRENCY: usize = 16;
/// Attempts per batch before its still-failing entries are reported back.
pub const BATCH_ATTEMPTS: usize = 3;
/// Message attribute carrying why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "hookline-reason";

/// One SQS queue, by URL.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

fn unavailable<E>(e: aws_sdk_sqs::error::SdkError<E>) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
{
    PortError::Unavailable(
        aws_sdk_sqs::error::DisplayErrorContext(e)
            .to_string()
            .into(),
    )
}

fn build_err(e: aws_sdk_sqs::error::BuildError) -> PortError {
    PortError::Corrupt(format!("building an SQS request: {e}"))
}

impl SqsQueue {
    /// The queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Receives up to `max` (≤ 10) messages, long-polling up to `wait_seconds`, as Lambda's
    /// SQS poller does before it invokes a function with them.
    pub async fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(REPLAY_OF_ATTRIBUTE)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| ReceivedMessage {
                replay_of: m
                    .message_attributes()
                    .and_then(|a| a.get(REPLAY_OF_ATTRIBUTE))
                    .and_then(|a| a.string_value().map(str::to_owned)),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                message_id: m.message_id.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
                receipt: ReceiptHandle(m.receipt_handle.unwrap_or_default()),
            })
            .collect())
    }

    /// Deletes handled messages, 10 a call (`DeleteMessageBatch`), as Lambda's poller does.
    pub async fn delete_batch(&self, receipts: &[&ReceiptHandle]) -> Result<(), PortError> {
        for chunk in receipts.chunks(BATCH_LIMIT) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.0)
                        .build()
                        .map_err(build_err)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(f) = out.failed().first() {
                // The message comes back after its visibility timeout; handling is idempotent.
                tracing::warn!(code = f.code(), "a handled message was not deleted");
            }
        }
        Ok(())
    }

    /// Sends one body; returns the message id.
    pub async fn send(&self, body: &str, reason: Option<&str>) -> Result<String, PortError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        if let Some(reason) = reason {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(reason)
                .build()
                .map_err(build_err)?;
            request = request.message_attributes(REASON_ATTRIBUTE, attr);
        }
        let out = request.send().await.map_err(unavailable)?;
        Ok(out.message_id.unwrap_or_default())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn send_batch(&self, batch: &[&DeliveryMessage]) -> Result<Vec<DeliveryId>, PortError> {
        let mut pending: Vec<&DeliveryMessage> = batch.to_vec();
        for attempt in 1..=BATCH_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|m| {
                    let body =
                        serde_json::to_string(m).map_err(|e| PortError::Corrupt(e.to_string()))?;
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(m.delivery_id.as_str())
                        .message_body(body);
                    let entry = match &m.group {
                        Some(group) => entry
                            .message_group_id(group)
                            .message_deduplication_id(dedup_id(m)),
                        None => entry,
                    };
                    entry.build().map_err(build_err)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if attempt < BATCH_ATTEMPTS => {
                    tracing::warn!(attempt, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SendMessageBatch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    continue;
                }
                Err(e) => return Err(unavailable(e)),
            };
            let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
            if failed.is_empty() {
                return Ok(Vec::new());
            }
            for f in out.failed() {
                tracing::warn!(
                    delivery_id = f.id(),
                    code = f.code(),
                    sender_fault = f.sender_fault(),
                    attempt,
                    "delivery message not accepted"
                );
            }
            pending.retain(|m| failed.contains(&m.delivery_id.as_str()));
            if attempt < BATCH_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(pending.into_iter().map(|m| m.delivery_id.clone()).collect())
    }
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send_event(&self, event: &Event) -> Result<(), PortError> {
        let body = event
            .stored_doc()
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
        self.send(&body, None).await.map(|_| ())
    }

    async fn send_job_chunk(&self, chunk: &JobChunk, delay: Duration) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(chunk.to_body())
            .delay_seconds(whole_seconds(delay, MAX_MESSAGE_DELAY))
            .send()
            .await
            .map_err(unavailable)
            .map(|_| ())
    }
}

/// A FIFO queue deduplicates within 5 minutes by this id: a repeated fan-out of one event
/// sends its deliveries once, while a replay (more prior attempts) goes through.
fn dedup_id(m: &DeliveryMessage) -> String {
    format!("{}-{}", m.delivery_id, m.prior_attempts)
}

/// Longest per-message delay SQS accepts (15 min).
pub const MAX_MESSAGE_DELAY: Duration = Duration::from_secs(15 * 60);

fn whole_seconds(delay: Duration, cap: Duration) -> i32 {
    let secs = delay.min(cap).as_secs_f64().ceil();
    i32::try_from(secs as i64).unwrap_or(i32::MAX)
}

/// The deliveries queues on SQS: the standard queue, the FIFO queue ordered webhooks'
/// deliveries go to (`MessageGroupId` = their ordering group), and the dead-letter queue of
/// each. A delivery's `group` picks the queue.
#[derive(Clone, Debug)]
pub struct SqsDeliveries {
    standard: SqsQueue,
    dlq: SqsQueue,
    ordered: Option<(SqsQueue, SqsQueue)>,
}

impl SqsDeliveries {
    /// The standard deliveries queue and its DLQ; ordered deliveries are refused until
    /// [`SqsDeliveries::with_ordered`] names the FIFO pair.
    pub fn new(standard: SqsQueue, dlq: SqsQueue) -> Self {
        Self {
            standard,
            dlq,
            ordered: None,
        }
    }

    /// Adds the FIFO queue (`….fifo`) and its FIFO DLQ for ordered deliveries.
    pub fn with_ordered(mut self, fifo: SqsQueue, fifo_dlq: SqsQueue) -> Self {
        self.ordered = Some((fifo, fifo_dlq));
        self
    }

    /// The standard deliveries queue.
    pub fn standard(&self) -> &SqsQueue {
        &self.standard
    }

    /// The FIFO deliveries queue, if configured.
    pub fn ordered(&self) -> Option<&SqsQueue> {
        self.ordered.as_ref().map(|(q, _)| q)
    }

    fn route(&self, m: &DeliveryMessage) -> Result<(&SqsQueue, &SqsQueue), PortError> {
        match (&m.group, &self.ordered) {
            (None, _) => Ok((&self.standard, &self.dlq)),
            (Some(_), Some((fifo, dlq))) => Ok((fifo, dlq)),
            (Some(_), None) => Err(PortError::Unavailable(
                "an ordered delivery needs the FIFO deliveries queue (HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL)".into(),
            )),
        }
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveries {
    async fn send_deliveries(
        &self,
        messages: &[DeliveryMessage],
    ) -> Result<Vec<DeliveryId>, PortError> {
        let (ordered, unordered): (Vec<&DeliveryMessage>, Vec<&DeliveryMessage>) =
            messages.iter().partition(|m| m.group.is_some());
        // The standard queue keeps no order, so its batches go out side by side; if one
        // fails the fan-out fails and is retried whole (delivery ids repeat, so the copies
        // are recognisable).
        let mut failed = Vec::new();
        // Futures built up front (not in a stream closure) keep this future `Send`.
        let sends: Vec<_> = unordered
            .chunks(BATCH_LIMIT)
            .map(|batch| self.standard.send_batch(batch))
            .collect();
        let mut sends = stream::iter(sends).buffer_unordered(SEND_CONCURRENCY);
        let mut error = None;
        while let Some(result) = sends.next().await {
            match result {
                Ok(ids) => failed.extend(ids),
                Err(e) => error = error.or(Some(e)),
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        // A FIFO queue keeps the order of sends: one batch after another.
        if let Some(first) = ordered.first() {
            let (fifo, _) = self.route(first)?;
            for batch in ordered.chunks(BATCH_LIMIT) {
                failed.extend(fifo.send_batch(batch).await?);
            }
        }
        Ok(failed)
    }

    async fn retry_later(
        &self,
        delivery: &DeliveryMessage,
        receipt: &ReceiptHandle,
        delay: Duration,
    ) -> Result<(), PortError> {
        let (queue, _) = self.route(delivery)?;
        queue
            .client
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(whole_seconds(delay, MAX_VISIBILITY))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn send_later(
        &self,
        delivery: &DeliveryMessage,
        delay: Duration,
    ) -> Result<(), PortError> {
        if delivery.group.is_some() {
            // A FIFO queue has no per-message delay, and a copy would lose its place.
            return Err(PortError::Corrupt(
                "an ordered delivery cannot be sent again later".into(),
            ));
        }
        let body =
            serde_json::to_string(delivery).map_err(|e| PortError::Corrupt(e.to_string()))?;
        self.standard
            .client
            .send_message()
            .queue_url(&self.standard.url)
            .message_body(body)
            .delay_seconds(whole_seconds(delay, MAX_MESSAGE_DELAY))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn dead_letter(&self, delivery: &DeliveryMessage, reason: &str) -> Result<(), PortError> {
        let (_, dlq) = self.route(delivery)?;
        let body =
            serde_json::to_string(delivery).map_err(|e| PortError::Corrupt(e.to_string()))?;
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(build_err)?;
        let mut request = dlq
            .client
            .send_message()
            .queue_url(&dlq.url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, attr);
        if let Some(group) = &delivery.group {
            request = request
                .message_group_id(group)
                .message_deduplication_id(dedup_id(delivery));
        }
        request.send().await.map(|_| ()).map_err(unavailable)
    }
}

#[async_trait]
impl DeadLetters for SqsQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), PortError> {
        self.send(body, Some(reason)).await.map(|_| ())
    }
}
