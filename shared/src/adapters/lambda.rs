//! The SQS event source's shapes: a Lambda `SqsEvent` into [`ReceivedMessage`]s, and the
//! failed message ids into an `SqsBatchResponse` (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::delivery::{ReceiptHandle, ReceivedMessage, REPLAY_OF_ATTRIBUTE};

/// The event's records as received messages; a record without an id cannot be reported
/// back and is skipped (SQS always sets one).
pub fn received_messages(event: SqsEvent) -> Vec<ReceivedMessage> {
    event
        .records
        .into_iter()
        .filter_map(|r| {
            let message_id = r.message_id?;
            let receive_count = r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let replay_of = r
                .message_attributes
                .get(REPLAY_OF_ATTRIBUTE)
                .and_then(|a| a.string_value.clone());
            Some(ReceivedMessage {
                message_id,
                body: r.body.unwrap_or_default(),
                receive_count,
                receipt: ReceiptHandle(r.receipt_handle.unwrap_or_default()),
                replay_of,
            })
        })
        .collect()
}

/// The partial batch response naming the messages to retry.
pub fn batch_response(failed_message_ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed_message_ids);
    response
}
