//! The `api` Lambda: API Gateway HTTP API (payload v2) → the routes, on DynamoDB and SQS.
//! Env: `HOOKLINE_TABLE`, `HOOKLINE_EVENTS_QUEUE_URL`, `HOOKLINE_DELIVERIES_QUEUE_URL`, and the
//! settings read by [`config`].

use std::sync::Arc;

use hookline_api::auth::with_auth;
use hookline_api::deliveries::DeliveriesService;
use hookline_api::intake::IntakeService;
use hookline_api::lambda::ApiGatewayClaims;
use hookline_api::{config, routes::Router, service::WebhookService};
use hookline_core::http::ReqwestSender;
use hookline_core::lifecycle::Lifecycle;
use hookline_core::queue::sqs::{SqsDeliveries, SqsQueue};
use hookline_core::store::dynamodb::{
    DynamoAttemptLog, DynamoEventLog, DynamoGrantStore, DynamoWebhookStore,
};
use lambda_http::Error;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = config::settings_from_env(false)?;
    let claim = config::permissions_claim();
    let table = env("HOOKLINE_TABLE")?;
    let aws = hookline_core::sdk::config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let events = Arc::new(SqsQueue::new(
        sqs.clone(),
        env("HOOKLINE_EVENTS_QUEUE_URL")?,
    ));
    let deliveries = SqsDeliveries::from_env(&sqs)?;
    let intake = IntakeService::new(events.clone(), settings.namespace.clone());
    let http = Arc::new(ReqwestSender::new(settings.targets, &settings.user_agent)?);
    let store = Arc::new(DynamoWebhookStore::new(dynamo.clone(), table.clone()));
    let lifecycle = Lifecycle::new(
        store.clone(),
        Arc::new(DynamoGrantStore::new(dynamo.clone(), table.clone())),
        events,
        settings.namespace.clone(),
    );
    let webhooks = WebhookService::new(store, http, lifecycle, settings);
    let deliveries = DeliveriesService::new(
        webhooks.clone(),
        Arc::new(DynamoAttemptLog::new(dynamo.clone(), table.clone())),
        Arc::new(DynamoEventLog::new(dynamo, table)),
        Arc::new(deliveries),
    );
    let router = Router::new(webhooks, intake, deliveries);
    lambda_http::run(with_auth(router.routes(), ApiGatewayClaims::new(claim))).await
}
