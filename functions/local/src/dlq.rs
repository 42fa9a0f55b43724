//! `hookline dlq list|replay`: what sits in a dead-letter queue and why, and moving it back
//! to its queue — on the embedded store, or on SQS (a real account or moto).

use std::collections::HashSet;

use hookline_core::adapters::aws::sqs::REASON_ATTRIBUTE;
use hookline_core::adapters::sqlite::{SqliteQueue, StoredMessage};
use hookline_core::delivery::{DeliveryMessage, REPLAY_OF_ATTRIBUTE};
use hookline_core::ports::PortError;
use hookline_core::webhook::WebhookId;
use indicatif::ProgressBar;

/// Which messages a replay moves.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only deliveries of this webhook.
    pub webhook: Option<WebhookId>,
    /// At most this many.
    pub limit: Option<usize>,
}

impl ReplayFilter {
    fn wants(&self, body: &str) -> bool {
        match &self.webhook {
            None => true,
            Some(id) => {
                serde_json::from_str::<DeliveryMessage>(body).is_ok_and(|m| &m.webhook_id == id)
            }
        }
    }
}

/// The body a dead-lettered message goes back with: a delivery keeps counting its attempts
/// (`attempts` made before it was dead-lettered); anything else goes back as it was.
pub fn replay_body(body: &str, attempts: u32) -> String {
    match serde_json::from_str::<DeliveryMessage>(body) {
        Ok(mut m) => {
            m.prior_attempts = m.prior_attempts.saturating_add(attempts);
            serde_json::to_string(&m).unwrap_or_else(|_| body.to_owned())
        }
        Err(_) => body.to_owned(),
    }
}

/// Messages moved per transaction, so a large replay shows progress and holds no long lock.
const REPLAY_CHUNK: usize = 500;

/// Up to `limit` messages of an embedded DLQ, oldest first.
pub async fn list_embedded(
    dlq: &SqliteQueue,
    limit: usize,
) -> Result<Vec<StoredMessage>, PortError> {
    dlq.list(limit).await
}

/// Moves matching messages from an embedded DLQ back to its queue; returns how many.
pub async fn replay_embedded(
    dlq: &SqliteQueue,
    queue: &SqliteQueue,
    filter: &ReplayFilter,
    progress: &ProgressBar,
) -> Result<usize, PortError> {
    let messages: Vec<(String, String)> = dlq
        .list(usize::MAX >> 1)
        .await?
        .into_iter()
        .filter(|m| filter.wants(&m.body))
        .take(filter.limit.unwrap_or(usize::MAX))
        .map(|m| {
            // Redrive keeps the receive count: the attempts this message made.
            let body = replay_body(&m.body, m.receive_count);
            (m.message_id, body)
        })
        .collect();
    progress.set_length(messages.len() as u64);
    let mut moved = 0;
    for chunk in messages.chunks(REPLAY_CHUNK) {
        moved += dlq.move_messages(queue, chunk).await?;
        progress.set_position(moved as u64);
    }
    Ok(moved)
}

fn sqs_err<E: std::error::Error + Send + Sync + 'static>(
    e: aws_sdk_sqs::error::SdkError<E>,
) -> PortError {
    PortError::Unavailable(
        aws_sdk_sqs::error::DisplayErrorContext(e)
            .to_string()
            .into(),
    )
}

/// A message seen in an SQS DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsDeadLetter {
    /// Message id.
    pub message_id: String,
    /// Body.
    pub body: String,
    /// `hookline-reason`, when ingest put it there; redriven deliveries have none.
    pub reason: Option<String>,
    /// Times received before it was dead-lettered.
    pub receive_count: Option<String>,
}

/// Peeks at up to `limit` messages of an SQS DLQ (they become visible again after 30 s).
pub async fn list_sqs(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    limit: usize,
) -> Result<Vec<SqsDeadLetter>, PortError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    while out.len() < limit {
        let batch = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(sqs_err)?;
        if batch.messages().is_empty() {
            break;
        }
        for m in batch.messages() {
            let id = m.message_id().unwrap_or_default().to_owned();
            if !seen.insert(id.clone()) {
                continue;
            }
            out.push(SqsDeadLetter {
                message_id: id,
                body: m.body().unwrap_or_default().to_owned(),
                reason: m
                    .message_attributes()
                    .and_then(|a| a.get(REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned(),
            });
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// Moves matching messages from an SQS DLQ back to `queue_url` (send, then delete); messages
/// the filter skips become visible again after 30 s. Returns how many moved.
pub async fn replay_sqs(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    filter: &ReplayFilter,
    progress: &ProgressBar,
) -> Result<usize, PortError> {
    let limit = filter.limit.unwrap_or(usize::MAX);
    // Redrive moved a message after the queue's maxReceiveCount receives, one attempt each;
    // one the deliverer dead-lettered (it carries the reason) already counts its attempts.
    let redriven_attempts = max_receive_count(sqs, queue_url).await?;
    let mut moved = 0;
    while moved < limit {
        let batch = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names(REASON_ATTRIBUTE)
            .message_attribute_names(REPLAY_OF_ATTRIBUTE)
            .send()
            .await
            .map_err(sqs_err)?;
        if batch.messages().is_empty() {
            break;
        }
        for m in batch.messages() {
            let body = m.body().unwrap_or_default();
            if moved >= limit || !filter.wants(body) {
                continue;
            }
            let dead_lettered = m
                .message_attributes()
                .is_some_and(|a| a.contains_key(REASON_ATTRIBUTE));
            let attempts = if dead_lettered { 0 } else { redriven_attempts };
            let body = replay_body(body, attempts);
            let mut send = sqs.send_message().queue_url(queue_url).message_body(&body);
            if queue_url.ends_with(".fifo") {
                // Back in its ordering group, after what is queued there now.
                let delivery = serde_json::from_str::<DeliveryMessage>(&body).ok();
                let group = delivery.as_ref().and_then(|d| d.group.clone());
                let dedup = delivery.map(|d| format!("{}-{}", d.delivery_id, d.prior_attempts));
                send = send
                    .set_message_group_id(Some(group.unwrap_or_else(|| "replayed".into())))
                    .set_message_deduplication_id(
                        dedup.or_else(|| m.message_id().map(str::to_owned)),
                    );
            }
            if serde_json::from_str::<DeliveryMessage>(&body).is_err() {
                // An event: it goes back as the message it first was (a DLQ keeps the
                // message id), so the event log's claim of that message holds and the
                // fan-out is repeated rather than dropped as a duplicate publish.
                let first = m
                    .message_attributes()
                    .and_then(|a| a.get(REPLAY_OF_ATTRIBUTE))
                    .and_then(|a| a.string_value())
                    .or(m.message_id());
                if let Some(first) = first {
                    let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(first)
                        .build()
                        .map_err(|e| PortError::Unavailable(Box::new(e)))?;
                    send = send.message_attributes(REPLAY_OF_ATTRIBUTE, attribute);
                }
            }
            send.send().await.map_err(sqs_err)?;
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(sqs_err)?;
            moved += 1;
            progress.inc(1);
            tracing::info!(message_id = m.message_id().unwrap_or_default(), "replayed");
        }
    }
    Ok(moved)
}

/// The `maxReceiveCount` of the queue's redrive policy (0 when it has none).
async fn max_receive_count(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u32, PortError> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(sqs_err)?;
    Ok(attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy))
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| match &p["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0))
}
