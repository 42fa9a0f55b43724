//! `hookline dlq list|replay`: what sits in a dead-letter queue and why, and moving it back
//! to its queue — on the embedded store, or on SQS (a real account or moto).

use std::collections::HashSet;

use hookline_core::ports::{DeliveryMessage, PortError};
use hookline_core::queue::sqlite::{SqliteQueue, StoredMessage};
use hookline_core::queue::sqs::REASON_ATTRIBUTE;
use hookline_core::webhook::WebhookId;

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
) -> Result<usize, PortError> {
    let ids: Vec<String> = dlq
        .list(usize::MAX >> 1)
        .await?
        .into_iter()
        .filter(|m| filter.wants(&m.body))
        .take(filter.limit.unwrap_or(usize::MAX))
        .map(|m| m.message_id)
        .collect();
    dlq.move_messages(queue, &ids).await
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
) -> Result<usize, PortError> {
    let limit = filter.limit.unwrap_or(usize::MAX);
    let mut moved = 0;
    while moved < limit {
        let batch = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
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
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(sqs_err)?;
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(sqs_err)?;
            moved += 1;
            tracing::info!(message_id = m.message_id().unwrap_or_default(), "replayed");
        }
    }
    Ok(moved)
}
