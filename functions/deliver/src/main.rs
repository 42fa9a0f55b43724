//! The `deliver` Lambda: SQS (deliveries queue) → signed POSTs, with a partial batch response.
//! Env: `HOOKLINE_TABLE`, `HOOKLINE_DELIVERIES_QUEUE_URL`, `HOOKLINE_EVENTS_QUEUE_URL` (where
//! operational events go), `HOOKLINE_ALLOW_PRIVATE_TARGETS` (default false),
//! `HOOKLINE_DELIVERY_TIMEOUT_SECS` (default 10), `HOOKLINE_DELIVERY_CONCURRENCY` (default 16),
//! `HOOKLINE_DISABLE_AFTER` (default 5d), `HOOKLINE_DISABLE_MIN_FAILURES` (default 10),
//! `HOOKLINE_URN_NAMESPACE`, `HOOKLINE_DELIVERIES_DLQ_URL`, `HOOKLINE_WEBHOOK_CACHE_SECS`
//! (default 5: how long a webhook document read serves later deliveries of its version), and
//! for ordered webhooks `HOOKLINE_ORDERED_DELIVERIES_QUEUE_URL` and
//! `HOOKLINE_ORDERED_DELIVERIES_DLQ_URL`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookline_core::http::ReqwestSender;
use hookline_core::lifecycle::DisablePolicy;
use hookline_core::queue::lambda::{batch_response, received_messages};
use hookline_core::queue::sqs::SqsDeliveries;
use hookline_core::store::dynamodb::{
    lifecycle, DynamoAttemptLog, DynamoEventLog, DynamoRateLimiter, DynamoWebhookStore,
};
use hookline_core::target::TargetPolicy;
use hookline_core::urn::Namespace;
use hookline_deliver::{Deliver, DeliverSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

fn env_number(name: &str, default: u64) -> Result<u64, Error> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v} is not a whole number").into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = env("HOOKLINE_TABLE")?;
    let allow_private = matches!(
        std::env::var("HOOKLINE_ALLOW_PRIVATE_TARGETS").as_deref(),
        Ok("true" | "1")
    );
    let settings = DeliverSettings {
        timeout: Duration::from_secs(env_number("HOOKLINE_DELIVERY_TIMEOUT_SECS", 10)?),
        concurrency: usize::try_from(env_number("HOOKLINE_DELIVERY_CONCURRENCY", 16)?)?,
        disable: DisablePolicy::from_env()?,
        webhook_cache_ttl: Duration::from_secs(env_number(
            "HOOKLINE_WEBHOOK_CACHE_SECS",
            hookline_deliver::LAMBDA_WEBHOOK_CACHE_TTL.as_secs(),
        )?),
        ..DeliverSettings::default()
    };
    let namespace = match std::env::var("HOOKLINE_URN_NAMESPACE") {
        Ok(ns) => Namespace::new(&ns)?,
        Err(_) => Namespace::default(),
    };
    let aws = hookline_core::sdk::config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let http = ReqwestSender::new(TargetPolicy { allow_private }, &settings.user_agent)?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let lifecycle = lifecycle(
        &dynamo,
        &sqs,
        &table,
        &env("HOOKLINE_EVENTS_QUEUE_URL")?,
        namespace,
    );
    let deliver = Deliver::new(
        Arc::new(DynamoWebhookStore::new(dynamo.clone(), table.clone())),
        Arc::new(DynamoEventLog::new(dynamo.clone(), table.clone())),
        Arc::new(DynamoAttemptLog::new(dynamo.clone(), table.clone())),
        Arc::new(SqsDeliveries::from_env(&sqs)?),
        Arc::new(http),
        lifecycle,
        settings,
    )
    .with_rate_limiter(Arc::new(DynamoRateLimiter::new(dynamo, table)));
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deliver = deliver.clone();
        async move {
            let failed = deliver
                .handle_batch(&received_messages(event.payload))
                .await;
            Ok::<SqsBatchResponse, Error>(batch_response(failed))
        }
    }))
    .await
}
