//! The `ingest` Lambda: SQS (events queue) → fan-out → deliveries queue, with a partial
//! batch response. Env: `HOOKLINE_TABLE`, `HOOKLINE_DELIVERIES_QUEUE_URL`,
//! `HOOKLINE_EVENTS_DLQ_URL`, `HOOKLINE_EVENTS_QUEUE_URL` (operational events from grant
//! changes), `HOOKLINE_URN_NAMESPACE`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookline_core::queue::lambda::{batch_response, received_messages};
use hookline_core::queue::sqs::{SqsDeliveries, SqsQueue};
use hookline_core::store::dynamodb::{lifecycle, DynamoEventLog, DynamoWebhookStore};
use hookline_core::urn::Namespace;
use hookline_ingest::{Ingest, IngestSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = env("HOOKLINE_TABLE")?;
    let namespace = match std::env::var("HOOKLINE_URN_NAMESPACE") {
        Ok(ns) => Namespace::new(&ns)?,
        Err(_) => Namespace::default(),
    };
    let aws = hookline_core::sdk::config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let lifecycle = lifecycle(
        &dynamo,
        &sqs,
        &table,
        &env("HOOKLINE_EVENTS_QUEUE_URL")?,
        namespace.clone(),
    );
    let ingest = Ingest::new(
        Arc::new(DynamoWebhookStore::new(dynamo.clone(), table.clone())),
        Arc::new(DynamoEventLog::new(dynamo, table)),
        Arc::new(SqsDeliveries::from_env(&sqs)?),
        Arc::new(SqsQueue::new(sqs, env("HOOKLINE_EVENTS_DLQ_URL")?)),
        lifecycle,
        IngestSettings {
            namespace,
            ..IngestSettings::default()
        },
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let ingest = ingest.clone();
        async move {
            let failed = ingest.handle_batch(&received_messages(event.payload)).await;
            Ok::<SqsBatchResponse, Error>(batch_response(failed))
        }
    }))
    .await
}
